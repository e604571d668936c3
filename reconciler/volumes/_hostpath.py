"""The host-path mover: volume data of PVs whose directory this machine can read and write.

For hostPath and local PersistentVolumes (what the sandbox's host-path provisioner makes),
the data is a directory on the node; when kubeferry runs where that directory is (the
sandbox, a single-node cluster, a node with the volumes mounted) it backs the directory up
with `backup_tree` and restores it into the new PV's directory with `restore_tree`.

Which volume snapshot belongs to which PVC is recorded in a *volume set*: one sealed JSON
object per object snapshot, ``volumes/sets/<object snapshot id>.json``, written after every
volume of the set is stored (see docs/volume-data.md). The set of the previous backup of the
same job gives each PVC its incremental parent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.engines._protocols import JobSpec, Reporter
from reconciler.engines.objects._rules import resource_selected
from reconciler.kube import KubeClient, KubeError, Manifest
from reconciler.repository import (
    IntegrityError,
    ObjectNotFound,
    Repository,
    RepositoryCipher,
    RepositoryError,
)
from reconciler.volumes._selection import claim_volume_dir, select_volumes
from reconciler.volumes._store import VolumeStore
from reconciler.volumes._tree import TreeProgress, backup_tree, restore_tree

log = logging.getLogger("kubeferry.volumes")

SETS_PREFIX = "volumes/sets/"
# one empty marker per set, named by a keyed tag of (source cluster, namespace, job): the
# previous set of a job is found by listing its markers instead of reading every set
BY_JOB_PREFIX = f"{SETS_PREFIX}by-job/"
SET_FORMAT = "kubeferry.volume-set/v1"
_WORKLOAD_TYPES = (
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
)


@dataclass(frozen=True)
class _PvcType:
    group: str = ""
    resource: str = "persistentvolumeclaims"
    kind: str = "PersistentVolumeClaim"
    group_resource: str = "persistentvolumeclaims"


@dataclass(frozen=True)
class VolumeEntry:
    """One PVC's data in a volume set."""

    claim: str
    snapshot: str
    """The volume (tree) snapshot id in ``volumes/snapshots/``."""
    persistent_volume: str = ""
    storage_class: str = ""
    source_path: str = ""
    files: int = 0
    bytes: int = 0
    new_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "snapshot": self.snapshot,
            "persistentVolume": self.persistent_volume,
            "storageClass": self.storage_class,
            "sourcePath": self.source_path,
            "files": self.files,
            "bytes": self.bytes,
            "newBytes": self.new_bytes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VolumeEntry:
        return cls(
            claim=str(data["claim"]),
            snapshot=str(data["snapshot"]),
            persistent_volume=str(data.get("persistentVolume") or ""),
            storage_class=str(data.get("storageClass") or ""),
            source_path=str(data.get("sourcePath") or ""),
            files=int(data.get("files") or 0),
            bytes=int(data.get("bytes") or 0),
            new_bytes=int(data.get("newBytes") or 0),
        )


@dataclass(frozen=True)
class VolumeSet:
    """Which volume snapshot holds the data of which PVC, for one object snapshot."""

    snapshot_id: str
    job: str
    namespace: str
    source_cluster: str
    mover: str
    created: str
    volumes: tuple[VolumeEntry, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    """PVC (or pod volume) -> why its data is not in the set."""

    @classmethod
    def for_job(
        cls,
        job: JobSpec,
        snapshot_id: str,
        mover: str,
        volumes: Sequence[VolumeEntry],
        skipped: dict[str, str] | None = None,
    ) -> VolumeSet:
        """The set one mover writes for one backup of ``job``, stamped now."""
        return cls(
            snapshot_id=snapshot_id,
            job=job.name,
            namespace=job.namespace,
            source_cluster=job.source_cluster,
            mover=mover,
            created=datetime.now(UTC).isoformat(),
            volumes=tuple(volumes),
            skipped=dict(skipped or {}),
        )

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.volumes)

    def summary(self) -> dict[str, Any]:
        """What the run details and the object snapshot's metadata record."""
        return {
            "mover": self.mover,
            "set": set_key(self.snapshot_id),
            "count": len(self.volumes),
            "bytes": self.total_bytes,
            "newBytes": sum(entry.new_bytes for entry in self.volumes),
            "skipped": len(self.skipped),
        }

    def to_json(self) -> bytes:
        document = {
            "format": SET_FORMAT,
            "snapshotId": self.snapshot_id,
            "job": self.job,
            "namespace": self.namespace,
            "sourceCluster": self.source_cluster,
            "mover": self.mover,
            "created": self.created,
            "volumes": [entry.to_dict() for entry in self.volumes],
            "skipped": dict(sorted(self.skipped.items())),
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> VolumeSet:
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != SET_FORMAT:
                raise ValueError(f"format is not {SET_FORMAT}")
            return cls(
                snapshot_id=str(document["snapshotId"]),
                job=str(document.get("job") or ""),
                namespace=str(document.get("namespace") or ""),
                source_cluster=str(document.get("sourceCluster") or ""),
                mover=str(document.get("mover") or ""),
                created=str(document.get("created") or ""),
                volumes=tuple(VolumeEntry.from_dict(v) for v in document.get("volumes") or []),
                skipped={str(k): str(v) for k, v in dict(document.get("skipped") or {}).items()},
            )
        except (ValueError, KeyError, TypeError) as error:
            raise IntegrityError(f"{where}: not a volume set: {error}") from None


def set_key(snapshot_id: str) -> str:
    return f"{SETS_PREFIX}{snapshot_id}.json"


def _job_prefix(cipher: RepositoryCipher, job: str, namespace: str, source_cluster: str) -> str:
    tag = cipher.keyed_id(json.dumps([source_cluster, namespace, job]).encode())
    return f"{BY_JOB_PREFIX}{tag}/"


def require_encryption(repository: Repository, job: JobSpec, claims: int) -> None:
    """Volume data goes into encrypted repositories only (both movers check before copying)."""
    if repository.cipher is None:
        raise RepositoryError(
            f"namespace {job.namespace} has {claims} PersistentVolumeClaim(s) to copy: "
            "volume data needs an encrypted repository: set spec.encryption.passphraseFrom",
            hint="or set k8sObjectsOnly: true on the job to copy objects only",
        )


def write_volume_set(repository: Repository, volume_set: VolumeSet) -> None:
    cipher = repository.cipher
    if cipher is None:
        raise RepositoryError(
            "volume data needs an encrypted repository: set spec.encryption.passphraseFrom"
        )
    key = set_key(volume_set.snapshot_id)
    repository.backend.put(key, cipher.seal(volume_set.to_json(), aad=key.encode()))
    prefix = _job_prefix(cipher, volume_set.job, volume_set.namespace, volume_set.source_cluster)
    repository.backend.put(f"{prefix}{volume_set.snapshot_id}", b"")


def read_volume_set(repository: Repository, snapshot_id: str) -> VolumeSet | None:
    """The volume set of object snapshot ``snapshot_id``; None when it has no volume data."""
    cipher = repository.cipher
    if cipher is None:
        return None  # sets are only ever written into encrypted repositories
    key = set_key(snapshot_id)
    try:
        blob = repository.backend.get(key)
    except ObjectNotFound:
        return None
    where = f"{repository.location}/{key}"
    try:
        data = cipher.open(blob, aad=key.encode())
    except IntegrityError as error:
        raise IntegrityError(f"{where}: {error.message}") from None
    return VolumeSet.from_json(data, where)


def delete_volume_set(repository: Repository, snapshot_id: str) -> int:
    """Forget the volume data of an object snapshot (its set and volume manifests).

    The chunks go with the next ``prune``. Returns the number of volume snapshots forgotten.
    """
    found = read_volume_set(repository, snapshot_id)
    if found is None or repository.cipher is None:
        return 0
    prefix = _job_prefix(repository.cipher, found.job, found.namespace, found.source_cluster)
    repository.backend.delete(f"{prefix}{snapshot_id}")  # first: a marker never outlives its set
    store = VolumeStore(repository)
    existing = set(store.list_snapshots())
    for entry in found.volumes:
        if entry.snapshot in existing:
            store.delete_snapshot(entry.snapshot)
    repository.backend.delete(set_key(snapshot_id))
    return len(found.volumes)


def previous_volume_set(repository: Repository, job: JobSpec, before: str) -> VolumeSet | None:
    """The newest set of the same job (namespace, source cluster), other than ``before``."""
    cipher = repository.cipher
    if cipher is None:
        return None
    prefix = _job_prefix(cipher, job.name, job.namespace, job.source_cluster)
    marked = sorted(
        (info.key[len(prefix) :] for info in repository.backend.list(prefix)), reverse=True
    )
    # a job's snapshot ids are <job>-<UTC time>-<random>: by name is oldest to newest
    candidates = marked or _unmarked_sets(repository)
    for snapshot_id in candidates:
        if snapshot_id == before:
            continue
        try:
            found = read_volume_set(repository, snapshot_id)
        except RepositoryError as error:
            log.warning("skipping volume set of %s: %s", snapshot_id, error)
            continue
        if (
            found is not None
            and found.job == job.name
            and found.namespace == job.namespace
            and found.source_cluster == job.source_cluster
        ):
            return found
    return None


def _unmarked_sets(repository: Repository) -> list[str]:
    """Every set, newest first: repositories written before the by-job markers."""
    listed = sorted(
        (
            info
            for info in repository.backend.list(SETS_PREFIX)
            if info.key.endswith(".json") and "/" not in info.key[len(SETS_PREFIX) :]
        ),
        key=lambda info: info.modified,
        reverse=True,
    )
    return [info.key[len(SETS_PREFIX) :].removesuffix(".json") for info in listed]


def _bytes_to(reporter: Reporter, item: str) -> Callable[[TreeProgress], None]:
    """Forward a volume's byte counters to the run's reporter (and so the event stream)."""

    def forward(progress: TreeProgress) -> None:
        reporter.bytes_progress(item, progress.bytes_done, progress.bytes_total)

    return forward


def _list_claims(client: KubeClient, job: JobSpec) -> list[Manifest]:
    """The job's PVCs; retries the dynamic client's discovery, which can trip (KeyError)
    over an API group that disappears while it looks (a CRD being deleted)."""
    for attempt in range(3):
        try:
            return client.list_objects(
                "v1", "PersistentVolumeClaim", job.namespace, label_selector=job.label_selector
            )
        except KeyError:
            if attempt == 2:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _bound(claim: Manifest) -> bool:
    return bool((claim.get("status") or {}).get("phase") == "Bound")


class HostPathMover:
    """Volume data of hostPath/local PVs, read and written on this machine's file system."""

    name = "hostpath"

    def __init__(
        self,
        *,
        bind_timeout: float = 120.0,
        workers: int = 4,
        path_of: Callable[[str], Path] = Path,
    ) -> None:
        self.bind_timeout = bind_timeout
        self.workers = workers
        self.path_of = path_of
        """Maps a PV's path to where this machine sees it (identity by default)."""

    # -- backup -------------------------------------------------------------------------------

    def select(self, client: KubeClient, job: JobSpec) -> tuple[list[Manifest], list[str]]:
        """The PVCs of the job's namespace whose data a backup copies, and notes to report."""
        if job.k8s_objects_only or not resource_selected(job, _PvcType()):
            return [], []
        claims = _list_claims(client, job)
        workloads: list[Manifest] = []
        notes: list[str] = []
        for api_version, kind in _WORKLOAD_TYPES:
            try:
                workloads.extend(client.list_objects(api_version, kind, job.namespace))
            except (KubeError, KeyError) as error:
                # only for the opt-in annotations: never fatal, and a job's credentials
                # need not allow listing every workload kind
                log.debug("cannot list %s in %s: %r", kind, job.namespace, error)
        selection = select_volumes(claims, workloads)
        notes.extend(selection.notes)
        for volume in selection.pod_volumes:
            notes.append(
                f"{volume.owner}: volume {volume.name!r} ({volume.type}) is not copied: the "
                "host-path mover copies PersistentVolumes only"
            )
        by_name = {str(c["metadata"]["name"]): c for c in claims}
        return [by_name[name] for name in selection.claims], notes

    def backup_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        """Back up the selected PVCs' data; writes the volume set. Returns new bytes stored."""
        claims, notes = self.select(client, job)
        for text in notes:
            reporter.warning(text)
        if not claims:
            return 0
        require_encryption(repository, job, len(claims))
        store = VolumeStore(repository)
        previous = previous_volume_set(repository, job, snapshot_id)
        stored = set(store.list_snapshots()) if previous is not None else set()
        parents = {
            entry.claim: entry.snapshot
            for entry in (previous.volumes if previous is not None else ())
            if entry.snapshot in stored
        }
        reporter.total(len(claims))
        entries: list[VolumeEntry] = []
        skipped: dict[str, str] = {}
        new_bytes = 0
        for claim in claims:
            reporter.check_cancelled()
            name = str(claim["metadata"]["name"])
            item = f"persistentvolumeclaims/{name}"
            directory, volume, reason = self._data_dir(client, claim)
            if directory is None:
                skipped[name] = reason
                reporter.warning(f"data not copied: {reason}", item)
                reporter.item_done(item)
                continue
            tree = backup_tree(
                store,
                directory,
                parent=parents.get(name),
                workers=self.workers,
                on_progress=_bytes_to(reporter, item),
                check_cancelled=reporter.check_cancelled,
            )
            for path in tree.skipped:
                reporter.warning(f"not copied: {path}", item)
            entries.append(
                VolumeEntry(
                    claim=name,
                    snapshot=tree.snapshot_id,
                    persistent_volume=volume,
                    storage_class=str((claim.get("spec") or {}).get("storageClassName") or ""),
                    source_path=str(directory),
                    files=tree.files,
                    bytes=tree.bytes,
                    new_bytes=tree.new_bytes,
                )
            )
            new_bytes += tree.new_bytes
            reporter.item_done(item, tree.bytes)
        write_volume_set(
            repository, VolumeSet.for_job(job, snapshot_id, self.name, entries, skipped)
        )
        return new_bytes

    def _data_dir(self, client: KubeClient, claim: Manifest) -> tuple[Path | None, str, str]:
        """(directory, PV name, "") or (None, PV name, why the data is out of reach)."""
        name = str(claim["metadata"]["name"])
        if not _bound(claim):
            phase = (claim.get("status") or {}).get("phase") or "no phase"
            return None, "", f"PersistentVolumeClaim {name} is not Bound ({phase})"
        volume_name = str((claim.get("spec") or {}).get("volumeName") or "")
        volume = client.get("v1", "PersistentVolume", volume_name) if volume_name else None
        if volume is None:
            return None, volume_name, f"PersistentVolume {volume_name or '?'} of {name} not found"
        return self._volume_dir(volume, volume_name)

    def _volume_dir(self, volume: Manifest, volume_name: str) -> tuple[Path | None, str, str]:
        path = claim_volume_dir(volume)
        if path is None:
            return (
                None,
                volume_name,
                f"PersistentVolume {volume_name} is neither hostPath nor local: the host-path "
                "mover cannot reach its data",
            )
        directory = self.path_of(path)
        if not directory.is_dir():
            return (
                None,
                volume_name,
                f"PersistentVolume {volume_name}: its directory {path} is not on this machine "
                "(run kubeferry on the node that holds it, or use the job mover)",
            )
        return directory, volume_name, ""

    # -- restore ------------------------------------------------------------------------------

    def restore_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        """Write each PVC's data into its restored PV; returns bytes written.

        Call once the PVCs are restored (before the workloads that mount them).
        """
        if job.k8s_objects_only:
            return 0
        found = read_volume_set(repository, snapshot_id)
        if found is None or not found.volumes:
            return 0
        store = VolumeStore(repository)
        reporter.total(len(found.volumes))
        written = 0
        for entry in found.volumes:
            reporter.check_cancelled()
            item = f"persistentvolumeclaims/{entry.claim}"
            directory, reason = self._restored_dir(client, job.target_namespace, entry.claim)
            if directory is None:
                reporter.warning(f"data not restored: {reason}", item)
                reporter.item_done(item)
                continue
            restored = restore_tree(
                store,
                entry.snapshot,
                directory,
                workers=self.workers,
                on_progress=_bytes_to(reporter, item),
                check_cancelled=reporter.check_cancelled,
            )
            written += restored.bytes
            reporter.item_done(item, restored.bytes)
        return written

    def _restored_dir(
        self, client: KubeClient, namespace: str, claim: str
    ) -> tuple[Path | None, str]:
        try:
            bound = client.wait_for(
                "v1",
                "PersistentVolumeClaim",
                claim,
                namespace,
                condition=_bound,
                timeout=self.bind_timeout,
            )
        except KubeError as error:
            return None, (
                f"{error} (a storage class with volumeBindingMode WaitForFirstConsumer binds "
                "only once a pod uses the claim)"
            )
        directory, _, reason = self._data_dir(client, bound)
        return directory, reason
