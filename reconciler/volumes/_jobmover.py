"""The Job mover: one Kubernetes Job per volume, running ``kubeferry mover backup|restore``.

For real clusters, where a volume's data is reachable only from the node that mounts it.
Per PersistentVolumeClaim the mover

1. creates a Secret holding what the pod needs to open the repository (settings, the
   passphrase, S3 credentials and CA bundle if any): values live only in the Secret's data;
   the Job reaches them through a read-only secret volume and ``secretKeyRef`` env entries;
2. creates a Job (``backoffLimit: 0``, ``activeDeadlineSeconds``,
   ``ttlSecondsAfterFinished``) that mounts the claim at ``/data`` (read-only for a backup),
   runs the project image, and - for a ReadWriteOnce claim in use - sits on the node of the
   pod using it (``nodeSelector kubernetes.io/hostname``);
3. polls the Job until it completes, fails or the timeout passes, reads the result (JSON:
   snapshot id, files, bytes) from the pod's termination message; meanwhile, given the
   repository, it forwards the pod's live progress (``volumes/progress/<job>.json``, see
   :mod:`reconciler.volumes._moverprogress`) to the reporter on every poll;
4. always deletes the Job (propagation Background, so its pods go too), the Secret and the
   progress object, also after a failure, a timeout or a cancellation. The Secret is also
   owned by the Job, so the garbage collector removes it should kubeferry die before
   cleaning up.

Building the manifests is pure (:func:`mover_secret_manifest`, :func:`mover_job_manifest`);
waiting and cleaning up take a :class:`~reconciler.kube.KubeClient`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler import __version__
from reconciler.errors import KubeferryError
from reconciler.kube import ApiResource, KubeApiError, KubeClient, KubeError, Manifest
from reconciler.repository import (
    FilesystemBackend,
    Repository,
    RepositoryBackend,
    S3Backend,
    S3Credentials,
)
from reconciler.volumes._moverprogress import (
    DEFAULT_PROGRESS_INTERVAL,
    delete_progress,
    read_progress,
    sweep_stale_progress,
)
from reconciler.volumes._verify import TreeVerification

if TYPE_CHECKING:
    from reconciler.engines import JobSpec, Reporter

log = logging.getLogger("kubeferry.volumes.jobmover")

DEFAULT_IMAGE = f"ghcr.io/kubeferry/kubeferry:{__version__}"
MoverOperation = Literal["backup", "restore", "verify"]
"""verify: compare a restored claim with its volume snapshot (DR drills), read-only."""

# labels (values are sanitised to label syntax; the full values are in annotations)
LABEL_JOB = "kubeferry.io/job"
LABEL_SNAPSHOT = "kubeferry.io/snapshot"
LABEL_MOVER = "kubeferry.io/mover"
LABEL_CLAIM = "kubeferry.io/pvc"
LABEL_MOVER_RUN = "kubeferry.io/mover-run"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
HOSTNAME_LABEL = "kubernetes.io/hostname"

# inside the pod
DATA_MOUNT = "/data"
CONFIG_MOUNT = "/etc/kubeferry/mover"
REPOSITORY_MOUNT = "/repository"
TERMINATION_LOG = "/dev/termination-log"
CONFIG_ENV = "KUBEFERRY_MOVER_CONFIG"

# keys of the Secret (= file names in the config directory)
SETTINGS_KEY = "repository.json"
PASSPHRASE_KEY = "passphrase"  # noqa: S105 - a key name
ACCESS_KEY_ID_KEY = "accessKeyId"
SECRET_ACCESS_KEY_KEY = "secretAccessKey"  # noqa: S105 - a key name
SESSION_TOKEN_KEY = "sessionToken"  # noqa: S105 - a key name
CA_BUNDLE_KEY = "ca.crt"

DEADLINE_MARGIN_SECONDS = 60
_JOB_RESOURCE = ApiResource("batch", "v1", "jobs", "Job", True, frozenset())
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")
_RWO_MODES = {"ReadWriteOnce", "ReadWriteOncePod"}
# waiting reasons that never resolve by themselves: fail now instead of at the timeout
_HOPELESS_WAITING = {"InvalidImageName", "ErrImageNeverPull"}


class MoverError(KubeferryError):
    """A mover Job failed (its pod's error message is in the text)."""


class MoverTimeout(MoverError):
    """A mover Job did not finish in time (it was deleted)."""


@dataclass(frozen=True, repr=False)
class MoverRepository:
    """What a mover pod needs to open the repository. ``repr()`` shows no secret."""

    kind: Literal["filesystem", "s3"]
    passphrase: str
    path: str | None = None
    """filesystem: the repository directory on the node (mounted as a hostPath volume)."""
    bucket: str | None = None
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    force_path_style: bool = False
    ca_bundle: str | None = None
    """PEM text of the CA bundle that verifies the S3 endpoint (not a path)."""
    credentials: S3Credentials | None = None
    """None: the pod uses boto3's default chain (e.g. IRSA / instance roles)."""

    def __post_init__(self) -> None:
        if not self.passphrase:
            raise KubeferryError("the Job mover needs the repository passphrase")
        if self.kind == "filesystem" and not self.path:
            raise KubeferryError("filesystem repository: 'path' is required")
        if self.kind == "s3" and not self.bucket:
            raise KubeferryError("s3 repository: 'bucket' is required")

    def __repr__(self) -> str:
        where = self.path if self.kind == "filesystem" else f"s3://{self.bucket}/{self.prefix}"
        return f"MoverRepository({self.kind}, {where!r})"

    @classmethod
    def from_backend(
        cls,
        backend: RepositoryBackend,
        *,
        passphrase: str,
        credentials: S3Credentials | None = None,
    ) -> MoverRepository:
        """The settings of an opened backend; S3 credentials default to the backend's own."""
        if isinstance(backend, FilesystemBackend):
            return cls("filesystem", passphrase, path=str(backend.root))
        if isinstance(backend, S3Backend):
            if credentials is None:  # what open_backend() resolved (env, file or Secret)
                credentials = backend.credentials
            ca_text = None
            if backend.ca_bundle:
                try:
                    ca_text = Path(backend.ca_bundle).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as error:
                    raise KubeferryError(
                        f"cannot read the S3 CA bundle {backend.ca_bundle}: {error}"
                    ) from None
            return cls(
                "s3",
                passphrase,
                bucket=backend.bucket,
                prefix=backend.prefix,
                endpoint=backend.endpoint,
                region=backend.region,
                force_path_style=backend.force_path_style,
                ca_bundle=ca_text,
                credentials=credentials,
            )
        raise KubeferryError(f"the Job mover cannot use a {type(backend).__name__} repository")

    def settings(self) -> dict[str, object]:
        """``repository.json`` in the Secret: where the repository is (no secret values)."""
        if self.kind == "filesystem":
            return {"kind": "filesystem", "path": REPOSITORY_MOUNT}
        document: dict[str, object] = {"kind": "s3", "bucket": self.bucket, "prefix": self.prefix}
        if self.endpoint:
            document["endpoint"] = self.endpoint
        if self.region:
            document["region"] = self.region
        if self.force_path_style:
            document["forcePathStyle"] = True
        if self.ca_bundle:
            document["caBundle"] = CA_BUNDLE_KEY
        return document


@dataclass(frozen=True)
class MoverRequest:
    """One volume to move: what :func:`mover_job_manifest` needs besides the settings."""

    operation: MoverOperation
    namespace: str
    claim: str
    snapshot_set: str
    """The replication snapshot this volume belongs to (label kubeferry.io/snapshot)."""
    job: str = ""
    """The ReplicationJob's name (label kubeferry.io/job)."""
    volume_snapshot: str | None = None
    """restore: the volume snapshot to write into the claim."""
    parent: str | None = None
    """backup: a previous volume snapshot of this claim, for an incremental backup."""
    node: str | None = None
    """Pin the pod to this node (the node of the pod using a ReadWriteOnce claim)."""

    def __post_init__(self) -> None:
        if self.operation in ("restore", "verify") and not self.volume_snapshot:
            raise KubeferryError("a restore mover needs the volume snapshot id")


@dataclass(frozen=True)
class MoverSettings:
    """How mover Jobs run; defaults suit most clusters."""

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    timeout: float = 6 * 3600.0
    """Seconds to wait for one Job; its activeDeadlineSeconds is this plus a margin."""
    poll_interval: float = 2.0
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    """Seconds between the pod's progress writes into the repository (one more at the end)."""
    ttl_seconds_after_finished: int = 3600
    run_as_user: int = 0
    """Root by default: a backup must read every file and a restore must set ownership.
    Privilege escalation stays off and capabilities are reduced to what each step needs."""
    workers: int = 4
    service_account: str | None = None
    resources: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        }
    )
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class MoverResult:
    """What a mover pod reported through its termination message."""

    operation: MoverOperation
    snapshot: str
    files: int
    bytes: int
    new_bytes: int = 0
    seconds: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_message(cls, text: str, operation: MoverOperation) -> MoverResult:
        try:
            document = json.loads(text)
        except ValueError:
            raise MoverError(
                f"mover {operation}: unreadable result {_one_line(text)[:200]!r}"
            ) from None
        if not isinstance(document, dict):
            raise MoverError(f"mover {operation}: unreadable result (not a JSON object)")
        if document.get("error"):
            raise MoverError(f"mover {operation} failed: {_one_line(str(document['error']))}")
        try:
            return cls(
                operation=operation,
                snapshot=str(document["snapshot"]),
                files=int(document.get("files", 0)),
                bytes=int(document.get("bytes", 0)),
                new_bytes=int(document.get("newBytes", 0)),
                seconds=float(document.get("seconds", 0.0)),
                raw=document,
            )
        except (KeyError, TypeError, ValueError):
            raise MoverError(f"mover {operation}: result without a snapshot id") from None

    def verification(self) -> TreeVerification:
        """A verify run's findings (files and bytes compared, mismatches)."""
        try:
            return TreeVerification.from_dict(dict(self.raw))
        except (KeyError, TypeError, ValueError):
            raise MoverError(f"mover {self.operation}: result without its findings") from None


@dataclass(frozen=True)
class LaunchedMover:
    """A mover's objects on the cluster."""

    namespace: str
    job: str
    secret: str
    operation: MoverOperation
    claim: str = ""

    @property
    def item(self) -> str:
        """The claim as the reporter knows it (as the host-path mover reports it)."""
        return f"persistentvolumeclaims/{self.claim}"


# -- pure manifest builders ---------------------------------------------------------------


def label_value(value: str) -> str:
    """``value`` when it is a valid label value, else a readable prefix plus a hash."""
    if len(value) <= 63 and _LABEL_VALUE.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:50].strip("-_.")
    return f"{cleaned}-{digest}" if cleaned else digest


def mover_name(request: MoverRequest, suffix: str | None = None) -> str:
    """``kf-<backup|restore>-<claim>-<random>``: a DNS label short enough for pod names."""
    claim = _NAME_UNSAFE.sub("-", request.claim.lower()).strip("-")[:30].strip("-") or "pvc"
    return f"kf-{request.operation}-{claim}-{suffix or secrets.token_hex(3)}"


def mover_labels(request: MoverRequest) -> dict[str, str]:
    labels = {
        LABEL_MANAGED_BY: "kubeferry",
        LABEL_MOVER: request.operation,
        LABEL_SNAPSHOT: label_value(request.snapshot_set),
        LABEL_CLAIM: label_value(request.claim),
    }
    if request.job:
        labels[LABEL_JOB] = label_value(request.job)
    return labels


def _annotations(request: MoverRequest) -> dict[str, str]:
    annotations = {
        "kubeferry.io/snapshot-set": request.snapshot_set,
        "kubeferry.io/pvc": request.claim,
    }
    if request.job:
        annotations["kubeferry.io/job"] = request.job
    if request.volume_snapshot:
        annotations["kubeferry.io/volume-snapshot"] = request.volume_snapshot
    return annotations


def mover_secret_manifest(
    name: str, request: MoverRequest, repository: MoverRepository
) -> Manifest:
    """The Secret a mover pod reads its repository settings and credentials from."""
    data = {
        SETTINGS_KEY: json.dumps(repository.settings(), sort_keys=True),
        PASSPHRASE_KEY: repository.passphrase,
    }
    if repository.credentials is not None:
        data[ACCESS_KEY_ID_KEY] = repository.credentials.access_key_id
        data[SECRET_ACCESS_KEY_KEY] = repository.credentials.secret_access_key
        if repository.credentials.session_token:
            data[SESSION_TOKEN_KEY] = repository.credentials.session_token
    if repository.kind == "s3" and repository.ca_bundle:
        data[CA_BUNDLE_KEY] = repository.ca_bundle
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": request.namespace,
            "labels": mover_labels(request),
            "annotations": _annotations(request),
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def mover_command(
    request: MoverRequest, settings: MoverSettings, progress: str | None = None
) -> list[str]:
    """The container's arguments (the image's entrypoint is ``kubeferry``).

    ``progress``: the Job's name, under which the pod writes its live progress.
    """
    args = [
        "mover",
        request.operation,
        "--path",
        DATA_MOUNT,
        "--snapshot-set",
        request.snapshot_set,
        "--config",
        CONFIG_MOUNT,
        "--workers",
        str(settings.workers),
        # where the container's terminationMessagePath is: the result, explicitly, not by
        # the CLI's guess that /dev/termination-log exists
        "--termination-log",
        TERMINATION_LOG,
    ]
    if progress:
        args += ["--progress", progress, "--progress-interval", f"{settings.progress_interval:g}"]
    if request.operation in ("restore", "verify"):
        assert request.volume_snapshot is not None
        args += ["--snapshot", request.volume_snapshot]
    elif request.parent:
        args += ["--parent", request.parent]
    return args


def mover_job_manifest(
    name: str,
    request: MoverRequest,
    repository: MoverRepository,
    settings: MoverSettings | None = None,
    *,
    secret_name: str | None = None,
    progress: bool = False,
) -> Manifest:
    """The Job that moves one claim's data; secrets only by reference (volume/secretKeyRef).

    ``progress``: the pod keeps live progress in the repository, under the Job's name (only
    when the caller reads it, and so deletes it again).
    """
    settings = settings or MoverSettings()
    secret_name = secret_name or name
    read_only = request.operation != "restore"  # backup and verify only read the claim
    labels = mover_labels(request)
    pod_labels = {**labels, LABEL_MOVER_RUN: name}

    env: list[dict[str, Any]] = [{"name": CONFIG_ENV, "value": CONFIG_MOUNT}]
    if repository.credentials is not None:
        refs = [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY_KEY),
        ]
        if repository.credentials.session_token:
            refs.append(("AWS_SESSION_TOKEN", SESSION_TOKEN_KEY))
        env += [
            {"name": var, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
            for var, key in refs
        ]

    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": DATA_MOUNT, "readOnly": read_only},
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "data",
            "persistentVolumeClaim": {"claimName": request.claim, "readOnly": read_only},
        },
        {"name": "config", "secret": {"secretName": secret_name, "defaultMode": 0o400}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if repository.kind == "filesystem":
        assert repository.path is not None
        mounts.append({"name": "repository", "mountPath": REPOSITORY_MOUNT})
        volumes.append(
            {"name": "repository", "hostPath": {"path": repository.path, "type": "Directory"}}
        )

    # a backup reads everything; a restore also writes and sets owners, modes and times
    capabilities = ["DAC_READ_SEARCH"] if read_only else ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    container: dict[str, Any] = {
        "name": "mover",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": mover_command(request, settings, progress=name if progress else None),
        "env": env,
        "volumeMounts": mounts,
        "resources": {kind: dict(values) for kind, values in settings.resources.items()},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": settings.run_as_user,
            "capabilities": {"drop": ["ALL"], "add": capabilities},
        },
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if request.node:
        pod_spec["nodeSelector"] = {HOSTNAME_LABEL: request.node}
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": request.namespace,
            "labels": labels,
            "annotations": _annotations(request),
        },
        "spec": {
            "backoffLimit": 0,
            # kubeferry's own wait ends first; the deadline is the backstop should it die
            "activeDeadlineSeconds": int(settings.timeout) + DEADLINE_MARGIN_SECONDS,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def claim_node(claim: Manifest, pods: list[Manifest]) -> str | None:
    """The node the mover must run on: that of a running pod using a ReadWriteOnce claim.

    None when the claim can be mounted anywhere (ReadWriteMany/ReadOnlyMany) or nobody uses
    it (the scheduler then follows the volume's own node affinity).
    """
    modes = set((claim.get("spec") or {}).get("accessModes") or [])
    if not modes & _RWO_MODES:
        return None
    name = claim["metadata"]["name"]
    for pod in pods:
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or not spec.get("nodeName"):
            continue
        for volume in spec.get("volumes") or []:
            source = volume.get("persistentVolumeClaim") or {}
            if source.get("claimName") == name:
                return str(spec["nodeName"])
    return None


# -- the job status -----------------------------------------------------------------------


def _job_state(job: Manifest) -> Literal["running", "complete", "failed"]:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "complete"
        if condition.get("type") == "Failed":
            return "failed"
    if status.get("succeeded"):
        return "complete"
    if status.get("failed"):
        return "failed"
    return "running"


def _job_failure(job: Manifest) -> str:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return _one_line(f"{condition.get('reason', '')}: {condition.get('message', '')}")
    return "the pod failed"


def _deadline_exceeded(job: Manifest) -> bool:
    return any(
        c.get("type") == "Failed" and c.get("reason") == "DeadlineExceeded"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _terminated(pod: Manifest) -> Mapping[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("terminated")
        if state:
            return dict(state)
    return None


def _hopeless(pod: Manifest) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _HOPELESS_WAITING:
            return _one_line(f"{waiting['reason']}: {waiting.get('message', '')}")
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _forward_progress(
    repository: Repository,
    launched: LaunchedMover,
    reporter: Reporter,
    forwarded: tuple[int, int] | None,
) -> tuple[int, int] | None:
    """Hand the pod's latest counters to the reporter; returns what was last forwarded.

    Only news: an unchanged object is not sent again, and a read that lags behind one
    already forwarded (a stale read) never makes the bar go back.
    """
    progress = read_progress(repository, launched.job)
    if progress is None or progress.operation != launched.operation:
        return forwarded
    counters = (progress.bytes_done, progress.bytes_total)
    if forwarded is not None and (counters == forwarded or counters[0] < forwarded[0]):
        return forwarded
    reporter.bytes_progress(launched.item, *counters)
    return counters


def _sweep_progress(repository: Repository) -> None:
    """Remove progress objects movers left behind (best effort, never raises)."""
    try:
        removed = sweep_stale_progress(repository)
    except KubeferryError as error:
        log.debug("cannot sweep stale mover progress: %s", error)
        return
    if removed:
        log.info("removed %d stale mover progress object(s)", removed)


# -- the mover ----------------------------------------------------------------------------


class JobMover:
    """A :class:`~reconciler.engines.VolumeMover` that moves each claim's data with a Job."""

    name = "job"

    def __init__(
        self,
        repository: MoverRepository | None,
        settings: MoverSettings | None = None,
    ) -> None:
        """``repository``: how the pods reach it; None for an unencrypted repository, which
        holds no volume data (a backup with claims to copy fails before any Job)."""
        self.repository = repository
        self.settings = settings or MoverSettings()

    # -- one claim ------------------------------------------------------------------------

    def launch(
        self, client: KubeClient, request: MoverRequest, *, progress: bool = False
    ) -> LaunchedMover:
        """Create the Secret, then the Job (the Secret becomes owned by the Job).

        ``progress``: the pod writes live progress; the caller's wait() reads it and its
        cleanup() deletes it (both given the repository).
        """
        if self.repository is None:
            raise KubeferryError(
                "volume data needs an encrypted repository: set spec.encryption.passphraseFrom"
            )
        name = mover_name(request)
        secret = mover_secret_manifest(name, request, self.repository)
        job = mover_job_manifest(
            name, request, self.repository, self.settings, secret_name=name, progress=progress
        )
        launched = LaunchedMover(request.namespace, name, name, request.operation, request.claim)
        client.create(secret)
        try:
            created = client.create(job)
            self._own_secret(client, launched, created)
        except BaseException:
            self.cleanup(client, launched)
            raise
        return launched

    def _own_secret(self, client: KubeClient, launched: LaunchedMover, job: Manifest) -> None:
        """Make the Job the Secret's owner: the garbage collector then removes both."""
        uid = (job.get("metadata") or {}).get("uid")
        if not uid:
            return
        secret = client.get("v1", "Secret", launched.secret, launched.namespace)
        if secret is None:
            return
        reference = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": launched.job,
            "uid": uid,
            "blockOwnerDeletion": False,
        }
        secret["metadata"]["ownerReferences"] = [reference]
        try:
            client.replace(secret)
        except KubeApiError as error:  # best effort: cleanup() deletes it anyway
            log.warning("could not make job %s own its secret: %s", launched.job, error)

    def wait(
        self,
        client: KubeClient,
        launched: LaunchedMover,
        *,
        timeout: float | None = None,
        reporter: Reporter | None = None,
        repository: Repository | None = None,
    ) -> MoverResult:
        """Poll the Job until it completes (result) or fails/times out (MoverError).

        With a ``repository`` and a ``reporter``, every poll forwards the pod's progress
        object to ``reporter.bytes_progress`` (nothing when it is missing or unreadable).
        """
        limit = self.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        where = f"job {launched.namespace}/{launched.job}"
        forwarded: tuple[int, int] | None = None
        while True:
            if reporter is not None:
                reporter.check_cancelled()
            job = client.get("batch/v1", "Job", launched.job, launched.namespace)
            if job is None:
                raise MoverError(f"mover {where} disappeared before it finished")
            state = _job_state(job)
            if state != "running":
                return self._result(client, launched, state, job)
            for pod in self._pods(client, launched):
                reason = _hopeless(pod)
                if reason:
                    raise MoverError(f"mover {where} cannot start: {reason}")
            if repository is not None and reporter is not None:
                forwarded = _forward_progress(repository, launched, reporter, forwarded)
            if time.monotonic() >= deadline:
                raise MoverTimeout(
                    f"mover {where} did not finish within {limit:.0f}s",
                    hint="check that its pod can be scheduled and pull the image; "
                    "raise the mover timeout for large volumes",
                )
            time.sleep(min(self.settings.poll_interval, max(0.0, deadline - time.monotonic())))

    def _pods(self, client: KubeClient, launched: LaunchedMover) -> list[Manifest]:
        return client.list_objects(
            "v1", "Pod", launched.namespace, label_selector=f"{LABEL_MOVER_RUN}={launched.job}"
        )

    def _result(
        self,
        client: KubeClient,
        launched: LaunchedMover,
        state: Literal["complete", "failed"],
        job: Manifest,
    ) -> MoverResult:
        where = f"job {launched.namespace}/{launched.job}"
        messages = [
            str(terminated.get("message") or "")
            for pod in self._pods(client, launched)
            if (terminated := _terminated(pod)) is not None
        ]
        message = next((m for m in messages if m.strip()), "")
        if state == "failed":
            if _deadline_exceeded(job):
                raise MoverTimeout(f"mover {where} exceeded its deadline")
            detail = message.strip() or _job_failure(job)
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                detail = str(json.loads(detail).get("error") or detail)
            raise MoverError(f"mover {where} failed: {_one_line(detail)[:500]}")
        if not message.strip():
            raise MoverError(f"mover {where} completed without a result")
        return MoverResult.from_message(message, launched.operation)

    def cleanup(
        self, client: KubeClient, launched: LaunchedMover, repository: Repository | None = None
    ) -> None:
        """Delete the Job (Background: its pods go too), the Secret and, given the
        repository, the progress object; never raises."""
        try:
            rest = client.rest(max_connections=1)
            try:
                rest.blocking.delete(
                    _JOB_RESOURCE, launched.job, launched.namespace, propagation="Background"
                )
            finally:
                rest.close()
        except KubeError as error:
            log.warning("could not delete mover job %s: %s", launched.job, error)
        try:
            client.delete("v1", "Secret", launched.secret, launched.namespace)
        except KubeError as error:
            log.warning("could not delete mover secret %s: %s", launched.secret, error)
        if repository is not None:
            # last: a pod still being killed may write once more before it goes
            try:
                delete_progress(repository, launched.job)
            except KubeferryError as error:
                log.warning("could not delete the progress of %s: %s", launched.job, error)

    def run(
        self,
        client: KubeClient,
        request: MoverRequest,
        *,
        timeout: float | None = None,
        reporter: Reporter | None = None,
        repository: Repository | None = None,
    ) -> MoverResult:
        """Launch, wait, and always clean up.

        ``repository`` (the one the pod writes to, opened): live progress for ``reporter``.
        """
        if repository is not None:
            _sweep_progress(repository)
        # the pod writes progress only for someone who reads it (and cleanup deletes it)
        live = repository is not None and reporter is not None
        launched = self.launch(client, request, progress=live)
        try:
            return self.wait(
                client, launched, timeout=timeout, reporter=reporter, repository=repository
            )
        finally:
            self.cleanup(client, launched, repository)

    def request_for(
        self,
        client: KubeClient,
        operation: MoverOperation,
        namespace: str,
        claim: str,
        snapshot_set: str,
        *,
        job: str = "",
        volume_snapshot: str | None = None,
        parent: str | None = None,
    ) -> MoverRequest:
        """A request with the node placement looked up on the cluster."""
        found = client.get("v1", "PersistentVolumeClaim", claim, namespace)
        if found is None:
            raise KubeferryError(f"persistent volume claim {namespace}/{claim} not found")
        node = claim_node(found, client.list_objects("v1", "Pod", namespace))
        return MoverRequest(
            operation,
            namespace,
            claim,
            snapshot_set,
            job=job,
            volume_snapshot=volume_snapshot,
            parent=parent,
            node=node,
        )

    def backup_claim(
        self,
        client: KubeClient,
        namespace: str,
        claim: str,
        snapshot_set: str,
        *,
        job: str = "",
        parent: str | None = None,
        reporter: Reporter | None = None,
        repository: Repository | None = None,
    ) -> MoverResult:
        request = self.request_for(
            client, "backup", namespace, claim, snapshot_set, job=job, parent=parent
        )
        return self.run(client, request, reporter=reporter, repository=repository)

    def verify_claim(
        self,
        client: KubeClient,
        namespace: str,
        claim: str,
        snapshot_set: str,
        volume_snapshot: str,
        *,
        job: str = "",
    ) -> TreeVerification:
        """Compare the claim's files with ``volume_snapshot`` in a Job (read-only mount):
        what a DR drill checks when the restored data is on a node, not on this machine."""
        request = self.request_for(
            client,
            "verify",
            namespace,
            claim,
            snapshot_set,
            job=job,
            volume_snapshot=volume_snapshot,
        )
        return self.run(client, request).verification()

    def restore_claim(
        self,
        client: KubeClient,
        namespace: str,
        claim: str,
        snapshot_set: str,
        volume_snapshot: str,
        *,
        job: str = "",
        reporter: Reporter | None = None,
        repository: Repository | None = None,
    ) -> MoverResult:
        request = self.request_for(
            client,
            "restore",
            namespace,
            claim,
            snapshot_set,
            job=job,
            volume_snapshot=volume_snapshot,
        )
        return self.run(client, request, reporter=reporter, repository=repository)

    # -- the VolumeMover protocol ---------------------------------------------------------

    def select(self, client: KubeClient, job: JobSpec) -> tuple[list[str], list[str]]:
        """The PVCs whose data a backup copies (docs/volume-data.md), and notes to report."""
        from reconciler.engines.objects._rules import resource_selected
        from reconciler.volumes._hostpath import _PvcType
        from reconciler.volumes._selection import select_volumes

        if job.k8s_objects_only or not resource_selected(job, _PvcType()):
            return [], []
        claims = client.list_objects(
            "v1", "PersistentVolumeClaim", job.namespace, label_selector=job.label_selector
        )
        workloads: list[Manifest] = []
        for api_version, kind in _WORKLOAD_TYPES:
            try:
                workloads.extend(client.list_objects(api_version, kind, job.namespace))
            except KubeError as error:  # opt-in annotations only: not worth failing for
                log.debug("cannot list %s in %s: %s", kind, job.namespace, error)
        selection = select_volumes(claims, workloads)
        notes = list(selection.notes)
        notes += [
            f"{v.owner}: volume {v.name!r} ({v.type}) is not copied: the job mover copies "
            "PersistentVolumeClaims only"
            for v in selection.pod_volumes
        ]
        return list(selection.claims), notes

    def backup_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        """Back up the selected PVCs with one Job each; writes the volume set (new bytes)."""
        from reconciler.volumes._hostpath import (
            VolumeEntry,
            VolumeSet,
            previous_volume_set,
            require_encryption,
            write_volume_set,
        )

        claims, notes = self.select(client, job)
        for text in notes:
            reporter.warning(text)
        if not claims:
            return 0
        require_encryption(repository, job, len(claims))
        previous = previous_volume_set(repository, job, snapshot_id)
        parents = {e.claim: e.snapshot for e in (previous.volumes if previous else ())}
        reporter.total(len(claims))
        entries: list[VolumeEntry] = []
        new_bytes = 0
        for claim in claims:
            reporter.check_cancelled()
            result = self.backup_claim(
                client,
                job.namespace,
                claim,
                snapshot_id,
                job=job.name,
                parent=parents.get(claim),
                reporter=reporter,
                repository=repository,
            )
            entries.append(
                VolumeEntry(
                    claim=claim,
                    snapshot=result.snapshot,
                    files=result.files,
                    bytes=result.bytes,
                    new_bytes=result.new_bytes,
                )
            )
            new_bytes += result.new_bytes
            reporter.item_done(f"persistentvolumeclaims/{claim}", result.bytes)
        write_volume_set(repository, VolumeSet.for_job(job, snapshot_id, self.name, entries))
        return new_bytes

    def restore_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        """Write each recorded volume into the same-named PVC of ``job.target_namespace``."""
        from reconciler.volumes._hostpath import read_volume_set

        if job.k8s_objects_only:
            return 0
        found = read_volume_set(repository, snapshot_id)
        if found is None or not found.volumes:
            return 0
        reporter.total(len(found.volumes))
        written = 0
        for entry in found.volumes:
            reporter.check_cancelled()
            item = f"persistentvolumeclaims/{entry.claim}"
            if client.get("v1", "PersistentVolumeClaim", entry.claim, job.target_namespace) is None:
                reporter.warning(f"data not restored: no claim {entry.claim}", item)
                reporter.item_done(item)
                continue
            result = self.restore_claim(
                client,
                job.target_namespace,
                entry.claim,
                snapshot_id,
                entry.snapshot,
                job=job.name,
                reporter=reporter,
                repository=repository,
            )
            written += result.bytes
            reporter.item_done(item, result.bytes)
        return written


_WORKLOAD_TYPES = (
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
)
