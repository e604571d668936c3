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

from reconciler.errors import KubeferryError
from reconciler.kube import KubeClient
from reconciler.repository import Repository

ExistingResourcePolicy = Literal["none", "update", "recreate"]
PreCheckFlag = Literal["ignorePrechecks", "stopOnPrecheck"]
Compatibility = Literal["compatible", "warning", "not_compatible"]
_SEVERITY: dict[str, int] = {"compatible": 0, "warning": 1, "not_compatible": 2}


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
    pre_check_flag: PreCheckFlag = "stopOnPrecheck"
    quiesce: bool = False


@dataclass(frozen=True)
class RestoreRequirements:
    """What restoring a namespace needs from a destination cluster.

    Computed from a live source listing (for the plan) or from a snapshot's metadata (for a
    restore), so pre-checks can run before anything is written.
    """

    resources: dict[str, str] = field(default_factory=dict)
    """group_resource (``deployments.apps``, ``configmaps``) -> apiVersion used by the source."""
    counts: dict[str, int] = field(default_factory=dict)
    """group_resource -> number of objects to restore."""
    crds: tuple[str, ...] = ()
    """Names of CustomResourceDefinitions the restore needs (included in the snapshot or not)."""
    included_crds: tuple[str, ...] = ()
    """The subset of ``crds`` the snapshot carries (restored first)."""
    storage_classes: tuple[str, ...] = ()
    """Storage classes of PVCs and volumeClaimTemplates as the source names them ("" = the
    default class); the pre-check applies the restoring job's storageClassMapping."""

    def to_dict(self) -> dict[str, object]:
        return {
            "resources": dict(sorted(self.resources.items())),
            "counts": dict(sorted(self.counts.items())),
            "crds": sorted(self.crds),
            "includedCrds": sorted(self.included_crds),
            "storageClasses": sorted(self.storage_classes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RestoreRequirements:
        def names(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        resources = data.get("resources") or {}
        counts = data.get("counts") or {}
        return cls(
            resources={str(k): str(v) for k, v in dict(resources).items()}
            if isinstance(resources, dict)
            else {},
            counts={str(k): int(v) for k, v in dict(counts).items()}
            if isinstance(counts, dict)
            else {},
            crds=names("crds"),
            included_crds=names("includedCrds"),
            storage_classes=names("storageClasses"),
        )


@dataclass(frozen=True)
class PrecheckResult:
    """One compatibility check, like an entry of KubeSlice's ``compatibilityChecks``."""

    name: str
    """destination-access, api-resources, crds, storage-classes, namespace, quota."""
    status: Compatibility
    message: str


@dataclass(frozen=True)
class PrecheckReport:
    checks: tuple[PrecheckResult, ...] = ()

    @property
    def overall(self) -> Compatibility:
        """``overallCompatibility``: the worst status of any check."""
        worst: Compatibility = "compatible"
        for check in self.checks:
            if _SEVERITY[check.status] > _SEVERITY[worst]:
                worst = check.status
        return worst

    def to_dict(self) -> dict[str, object]:
        return {
            "overallCompatibility": self.overall,
            "compatibilityChecks": [
                {"name": c.name, "status": c.status, "message": c.message} for c in self.checks
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PrecheckReport:
        checks = data.get("compatibilityChecks") or []
        assert isinstance(checks, list)
        return cls(
            tuple(
                PrecheckResult(str(c["name"]), c["status"], str(c.get("message", "")))
                for c in checks
            )
        )


@dataclass(frozen=True)
class SourceObservation:
    """What refresh learns from the source namespace in one listing."""

    fingerprint: str
    requirements: RestoreRequirements


class Reporter(Protocol):
    """Progress sink: the orchestrator forwards to the ledger and the event bus."""

    def total(self, items: int) -> None: ...

    def item_done(self, item: str, size: int = 0) -> None: ...

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        """Bytes of `item` copied so far, of `total` (volume data, while it moves)."""
        ...

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
    precheck: PrecheckReport | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    """created / updated / recreated / exists-identical / exists-differs / failed -> count."""


class ObjectReplicator(Protocol):
    name: str

    def fingerprint(self, client: KubeClient, namespace: str, job: JobSpec) -> str:
        """A digest of the objects this engine would copy: equal digests mean nothing to do."""
        ...

    def observe(self, client: KubeClient, namespace: str, job: JobSpec) -> SourceObservation:
        """The fingerprint plus what a restore of the current objects would need."""
        ...

    def precheck(
        self, client: KubeClient, job: JobSpec, requirements: RestoreRequirements
    ) -> PrecheckReport:
        """Compatibility of the destination ``client`` for a restore; writes nothing."""
        ...

    def snapshot_requirements(
        self, repository: Repository, snapshot_id: str
    ) -> RestoreRequirements: ...

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
    ) -> RestoreResult:
        """Run the pre-checks, then restore; raises PrecheckFailed when they stop it."""
        ...


class PrecheckFailed(KubeferryError):
    """A restore stopped by its pre-checks (``preCheckFlag: stopOnPrecheck``)."""

    def __init__(self, report: PrecheckReport, where: str) -> None:
        failed = [f"{c.name}: {c.message}" for c in report.checks if c.status == "not_compatible"]
        super().__init__(
            f"pre-checks failed for {where}: " + "; ".join(failed),
            hint="fix the destination, or set preCheckFlag: ignorePrechecks to proceed anyway",
        )
        self.report = report


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
