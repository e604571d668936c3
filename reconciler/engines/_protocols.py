"""The interfaces replication engines plug into.

An ``ObjectReplicator`` copies a namespace's Kubernetes objects through the repository; a
``VolumeMover`` copies its volume data. The reconciler drives both through these protocols,
so engines can be swapped (the full object engine, the file-system volume engine) without
touching planning or the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from reconciler.kube import KubeClient
from reconciler.repository import Repository

ExistingResourcePolicy = Literal["none", "update", "recreate"]


@dataclass(frozen=True)
class JobSpec:
    """What an engine needs to know about one ReplicationJob."""

    name: str
    namespace: str
    target_namespace: str
    source_cluster: str
    destination_cluster: str
    existing_resource_policy: ExistingResourcePolicy = "none"
    resources_to_include: tuple[str, ...] = ()
    resources_to_exclude: tuple[str, ...] = ()
    label_selector: str | None = None
    k8s_objects_only: bool = False
    pv_data_only: bool = False
    storage_class_mapping: dict[str, str] = field(default_factory=dict)


class Reporter(Protocol):
    """Progress sink: the orchestrator forwards to the ledger and the event bus."""

    def total(self, items: int) -> None: ...

    def item_done(self, item: str, size: int = 0) -> None: ...

    def warning(self, text: str, item: str = "") -> None: ...

    def check_cancelled(self) -> None:
        """Raise when the user cancelled; engines call it between items."""
        ...


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: str
    items: int
    size_bytes: int
    source_fingerprint: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    items: int
    destination_fingerprint: str
    warnings: list[str] = field(default_factory=list)


class ObjectReplicator(Protocol):
    name: str

    def fingerprint(self, client: KubeClient, namespace: str, job: JobSpec) -> str:
        """A digest of the objects this engine would copy: equal digests mean nothing to do."""
        ...

    def backup(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
        metadata: dict[str, object],
    ) -> BackupResult: ...

    def restore(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> RestoreResult: ...


class VolumeMover(Protocol):
    """Moves volume data of a namespace's PVCs (issue: file-system backup engine)."""

    name: str

    def backup_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        """Returns bytes stored."""
        ...

    def restore_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int: ...


ClientFactory = Callable[[str], KubeClient]
"""Returns the client of a cluster by inventory name."""
