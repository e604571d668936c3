"""Observe, create/update and wait for a hosted repository's MinIO, through KubeClient only.

Credentials are generated once, when the Secret is created; an existing Secret's data is never
replaced (MinIO keeps using the credentials it started with). Nothing here deletes anything:
the data volume outlives a repository removed from the inventory.
"""

from __future__ import annotations

import base64
import binascii
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from reconciler.errors import KubeferryError
from reconciler.hosting._minio import (
    ACCESS_KEY_ID,
    CLAIM,
    DEPLOYMENT,
    HASH_ANNOTATION,
    SECRET,
    SECRET_ACCESS_KEY,
    MinioCredentials,
    MinioSettings,
    address,
    desired_objects,
    generate_credentials,
    secret_manifest,
)
from reconciler.inventory import quantity_bytes
from reconciler.kube import KubeApiError, KubeClient, Manifest
from reconciler.repository import S3Backend

_POLL_SECONDS: Final = 2.0
_BUCKET_ATTEMPTS: Final = 10


class HostingError(KubeferryError):
    """The hosted MinIO cannot be deployed or used as declared (one line, no secret)."""


class _Unreachable(HostingError):
    """The S3 endpoint did not answer (worth another try)."""


class HostingNotReady(HostingError):
    """The MinIO Deployment did not become Available in time; its objects stay."""


@dataclass(frozen=True)
class HostingState:
    """What a refresh saw of a hosted repository's MinIO."""

    settings: MinioSettings
    create: tuple[str, ...] = ()
    """Objects to create, e.g. ``Deployment/minio``."""
    update: tuple[str, ...] = ()
    ready: bool = False
    """The Deployment is Available with the current pod template."""
    message: str = ""
    """Why it is not ready, or what is wrong (never a credential)."""

    @property
    def pending(self) -> bool:
        return bool(self.create or self.update) or not self.ready


@dataclass
class DeployResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


# -- observing ------------------------------------------------------------------------------


def _annotation(live: Manifest) -> str | None:
    value = ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return None if value is None else str(value)


def _differs(live: Manifest, desired: Manifest) -> bool:
    if _annotation(live) != desired["metadata"]["annotations"][HASH_ANNOTATION]:
        return True
    if desired["kind"] == "Deployment":
        # the edits people make by hand: scaling and swapping the image
        spec = live.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
        wanted = desired["spec"]["template"]["spec"]["containers"][0]["image"]
        return bool(spec.get("replicas") != 1 or containers[0].get("image") != wanted)
    return False


def missing_secret_keys(secret: Manifest) -> list[str]:
    data = secret.get("data") or {}
    return [key for key in (ACCESS_KEY_ID, SECRET_ACCESS_KEY) if not data.get(key)]


def observe(client: KubeClient, settings: MinioSettings) -> HostingState:
    """Which objects are missing or differ, and whether MinIO is ready (reads only)."""
    create: list[str] = []
    update: list[str] = []
    found: dict[str, Manifest] = {}
    for desired in desired_objects(settings):
        metadata = desired["metadata"]
        live = client.get(
            desired["apiVersion"], desired["kind"], metadata["name"], metadata.get("namespace")
        )
        if live is None:
            create.append(address(desired))
            if desired["kind"] == "Namespace":
                # nothing can exist in a missing namespace: no more reads
                create.extend(address(m) for m in desired_objects(settings)[1:])
                break
            continue
        found[desired["kind"]] = live
        if _differs(live, desired):
            update.append(address(desired))
    message = ""
    secret = found.get("Secret")
    if secret is not None and missing_secret_keys(secret):
        # planned as an update; apply refuses it with this message (never regenerates)
        message = _secret_problem(settings, missing_secret_keys(secret))
        if f"Secret/{SECRET}" not in update:
            update.insert(0, f"Secret/{SECRET}")
    ready, why = deployment_ready(found.get("Deployment"))
    ready = ready and f"Deployment/{DEPLOYMENT}" not in update and not message
    if not message and not ready:
        message = why or "Deployment to update"
        claim = found.get("PersistentVolumeClaim")
        if claim is not None and (claim.get("status") or {}).get("phase") != "Bound":
            message += f"; PersistentVolumeClaim {CLAIM} is not Bound"
    return HostingState(settings, tuple(create), tuple(update), ready, message)


def deployment_ready(deployment: Manifest | None) -> tuple[bool, str]:
    """(Available with the current generation, why not)."""
    if deployment is None:
        return False, f"Deployment {DEPLOYMENT} does not exist"
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    available = status.get("availableReplicas") or 0
    summary = f"Deployment {DEPLOYMENT}: {available}/1 replicas available"
    if (status.get("observedGeneration") or 0) < generation:
        return False, f"{summary}, update not yet observed"
    if (status.get("updatedReplicas") or 0) < 1 or available < 1:
        return False, summary
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Available":
            if condition.get("status") == "True":
                return True, ""
            reason = condition.get("reason") or ""
            return False, f"{summary} ({reason})" if reason else summary
    return False, summary


def _secret_problem(settings: MinioSettings, missing: list[str]) -> str:
    return (
        f"Secret {settings.namespace}/{SECRET} on cluster {settings.cluster} lacks the key(s) "
        f"{', '.join(missing)}; kubeferry never regenerates credentials: restore the keys, or "
        "delete the Secret (new credentials are generated; restart the MinIO Deployment)"
    )


# -- deploying ------------------------------------------------------------------------------


def deploy(
    client: KubeClient,
    settings: MinioSettings,
    *,
    new_credentials: Callable[[], MinioCredentials] = generate_credentials,
) -> DeployResult:
    """Create the missing objects and update those that differ; the Secret's data is kept."""
    result = DeployResult()
    for desired in desired_objects(settings):
        metadata = desired["metadata"]
        kind, name, namespace = desired["kind"], metadata["name"], metadata.get("namespace")
        live = client.get(desired["apiVersion"], kind, name, namespace)
        if live is None:
            body = secret_manifest(settings, new_credentials()) if kind == "Secret" else desired
            try:
                client.create(body)
                result.created.append(address(desired))
                continue
            except KubeApiError as error:
                if error.status != 409:
                    raise
            # created meanwhile (another apply): treat it as existing
            live = client.get(desired["apiVersion"], kind, name, namespace)
            if live is None:
                raise HostingError(f"{kind} {_where(settings, name)} vanished while deploying")
        if kind == "Secret" and missing_secret_keys(live):
            raise HostingError(_secret_problem(settings, missing_secret_keys(live)))
        if _differs(live, desired):
            client.replace(_updated(settings, live, desired))
            result.updated.append(address(desired))
    return result


def _where(settings: MinioSettings, name: str) -> str:
    return f"{settings.namespace}/{name} on cluster {settings.cluster}"


def _updated(settings: MinioSettings, live: Manifest, desired: Manifest) -> Manifest:
    """``live`` carrying the desired labels, annotations and (where mutable) spec."""
    body = copy.deepcopy(live)
    body.pop("status", None)
    metadata = body["metadata"]
    metadata["labels"] = {**(metadata.get("labels") or {}), **desired["metadata"]["labels"]}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        **desired["metadata"]["annotations"],
    }
    kind = desired["kind"]
    if kind == "PersistentVolumeClaim":
        _check_claim(settings, live, desired)
        body["spec"]["resources"] = desired["spec"]["resources"]  # expansion
    elif kind == "Deployment":
        body["spec"] = desired["spec"]
    elif kind == "Service":
        spec = dict(desired["spec"])
        live_spec = live.get("spec") or {}
        for allocated in ("clusterIP", "clusterIPs"):  # immutable, allocated by the server
            if live_spec.get(allocated):
                spec[allocated] = live_spec[allocated]
        if settings.node_port is None and spec["type"] == live_spec.get("type"):
            # keep the port the server chose, so an endpoint naming it stays valid
            live_ports = live_spec.get("ports") or [{}]
            if live_ports[0].get("nodePort"):
                spec["ports"] = [{**spec["ports"][0], "nodePort": live_ports[0]["nodePort"]}]
        body["spec"] = spec
    return body


def _check_claim(settings: MinioSettings, live: Manifest, desired: Manifest) -> None:
    live_spec = live.get("spec") or {}
    wanted_class = desired["spec"].get("storageClassName")
    if wanted_class is not None and live_spec.get("storageClassName") != wanted_class:
        raise HostingError(
            f"PersistentVolumeClaim {_where(settings, CLAIM)} has storage class "
            f"{live_spec.get('storageClassName')!r}, not {wanted_class!r}: a claim's class "
            "cannot change (move the data to a new repository instead)"
        )
    current = str(((live_spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
    try:
        shrinking = quantity_bytes(settings.size) < quantity_bytes(current)
    except ValueError:  # a spelling we do not parse (e.g. "1e9"): let the server decide
        shrinking = False
    if shrinking:
        raise HostingError(
            f"PersistentVolumeClaim {_where(settings, CLAIM)} is {current}: hostedIn.size "
            f"{settings.size} would shrink it, and volumes only grow"
        )


def wait_ready(
    client: KubeClient,
    settings: MinioSettings,
    *,
    timeout: float | None = None,
    check_cancelled: Callable[[], None] = lambda: None,
    interval: float = _POLL_SECONDS,
) -> None:
    """Until the Deployment is Available; HostingNotReady (one line) after ``timeout``."""
    limit = settings.ready_timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    while True:
        state = observe(client, settings)
        if state.ready:
            return
        if time.monotonic() >= deadline:
            raise HostingNotReady(
                f"MinIO of ReplicationRepository/{settings.repository} not ready after "
                f"{limit:.0f}s: Deployment {_where(settings, DEPLOYMENT)} is not Available "
                f"({state.message}); check its pods, events and PersistentVolumeClaim "
                f"(kubectl -n {settings.namespace} get pods,pvc,events); the objects stay "
                "and the next apply resumes"
            )
        check_cancelled()
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())) or 0.05)


def read_credentials(client: KubeClient, settings: MinioSettings) -> MinioCredentials:
    """The credentials in the generated Secret (errors name the Secret, never a value)."""
    secret = client.get("v1", "Secret", SECRET, settings.namespace)
    if secret is None:
        raise HostingError(
            f"hosted repository {settings.repository}: Secret {_where(settings, SECRET)} "
            "not found (run kubeferry apply to deploy its MinIO)"
        )
    missing = missing_secret_keys(secret)
    if missing:
        raise HostingError(_secret_problem(settings, missing))
    data: dict[str, Any] = secret.get("data") or {}
    try:
        return MinioCredentials(
            base64.b64decode(data[ACCESS_KEY_ID], validate=True).decode(),
            base64.b64decode(data[SECRET_ACCESS_KEY], validate=True).decode(),
        )
    except (ValueError, binascii.Error):
        raise HostingError(
            f"Secret {_where(settings, SECRET)}: {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY} "
            "must be base64 UTF-8 text"
        ) from None


# -- the bucket -------------------------------------------------------------------------------


def _code(error: ClientError) -> str:
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    return str(details.get("Code") or status)


def bucket_exists(backend: S3Backend) -> bool:
    """HEAD the bucket; HostingError when the endpoint does not answer as S3."""
    try:
        backend.client.head_bucket(Bucket=backend.bucket)
    except ClientError as error:
        if _code(error) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise HostingError(f"{backend.location}: cannot check the bucket: {_code(error)}") from None
    except BotoCoreError as error:
        raise _Unreachable(f"{backend.location}: unreachable: {error}") from None
    return True


def ensure_bucket(
    backend: S3Backend,
    *,
    attempts: int = _BUCKET_ATTEMPTS,
    interval: float = _POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Create the bucket unless it exists; True when created.

    Retried a few times: a just-Available MinIO behind a NodePort or load balancer may take
    a moment to answer.
    """
    for attempt in range(attempts):
        try:
            if bucket_exists(backend):
                return False
            backend.client.create_bucket(Bucket=backend.bucket)
            return True
        except ClientError as error:
            if _code(error) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise HostingError(
                f"{backend.location}: cannot create the bucket: {_code(error)}"
            ) from None
        except (_Unreachable, BotoCoreError) as error:
            if attempt == attempts - 1:
                if isinstance(error, HostingError):
                    raise
                raise HostingError(f"{backend.location}: unreachable: {error}") from None
            sleep(interval)
    return False  # pragma: no cover - the loop returns or raises
