"""The three views a plan is computed from: desired (inventory), recorded (ledger), observed.

They are plain frozen dataclasses so that computing a plan is a pure function: fast, and
testable without clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from reconciler.plan._onboard import Onboarding, OnboardingObservation

JobMode = Literal["backup", "replicate"]


@dataclass(frozen=True)
class DesiredObject:
    kind: str
    name: str
    spec_digest: str

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class DesiredJob:
    name: str
    slice: str
    source_cluster: str
    destination_cluster: str
    repository: str
    namespace: str
    target_namespace: str
    spec_digest: str
    # digest of the fields that change what is copied (not schedule/retention/policy)
    content_digest: str
    backup_frequency: str | None = None
    # replications only: refresh the destination on this schedule, not after every backup
    restore_frequency: str | None = None
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    pre_check_flag: Literal["ignorePrechecks", "stopOnPrecheck"] = "stopOnPrecheck"
    # volume movers (Cluster spec.volumeMover): the source's reads, the destination's writes;
    # "" for a job that copies no volume data (k8sObjectsOnly)
    backup_mover: str = "hostPath"
    restore_mover: str = "hostPath"
    mover_notes: tuple[str, ...] = ()
    """Why a job mover's pods may not reach the repository (shown with the job's action)."""

    @property
    def address(self) -> str:
        return f"ReplicationJob/{self.name}"

    @property
    def mode(self) -> JobMode:
        same_place = (
            self.source_cluster == self.destination_cluster
            and self.namespace == self.target_namespace
        )
        return "backup" if same_place else "replicate"


@dataclass(frozen=True)
class DesiredState:
    inventory_path: str
    inventory_digest: str
    clusters: dict[str, DesiredObject] = field(default_factory=dict)
    repositories: dict[str, DesiredObject] = field(default_factory=dict)
    slices: dict[str, DesiredObject] = field(default_factory=dict)
    application_slices: dict[str, DesiredObject] = field(default_factory=dict)
    jobs: dict[str, DesiredJob] = field(default_factory=dict)
    # job -> the application slice its destination namespace joins
    onboardings: dict[str, Onboarding] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedJob:
    spec_digest: str
    content_digest: str
    last_success_at: datetime | None = None
    source_fingerprint: str | None = None
    destination_fingerprint: str | None = None
    deletion_policy: str = "Retain"
    mode: JobMode = "replicate"
    destination_cluster: str = ""
    target_namespace: str = ""
    last_restore_at: datetime | None = None


@dataclass(frozen=True)
class RecordedState:
    serial: int
    # kind -> name -> spec digest, for Cluster, ReplicationRepository, ReplicationSlice, ApplicationSlice
    objects: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: dict[str, RecordedJob] = field(default_factory=dict)
    # what the last refresh saw, for refresh-only drift
    cluster_reachable: dict[str, bool] = field(default_factory=dict)
    cluster_versions: dict[str, str] = field(default_factory=dict)
    repository_available: dict[str, bool] = field(default_factory=dict)
    # job -> what kubeferry onboarded for it (from the ledger's onboarding events)
    onboardings: dict[str, Onboarding] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterObservation:
    name: str
    reachable: bool
    version: str = ""
    message: str = ""
    # "verb resource" -> allowed, from SelfSubjectAccessReview
    permissions: dict[str, bool] = field(default_factory=dict)
    # API discovery: group -> preferred version ("" is the core group)
    api_groups: dict[str, str] = field(default_factory=dict)

    @property
    def missing_permissions(self) -> list[str]:
        return sorted(k for k, allowed in self.permissions.items() if not allowed)


@dataclass(frozen=True)
class HostingObservation:
    """The MinIO of a hostedIn repository as a refresh saw it (never its credentials)."""

    cluster: str
    namespace: str
    create: tuple[str, ...] = ()
    """Objects to create, e.g. ``Deployment/minio``; ``Bucket/<name>`` for the bucket."""
    update: tuple[str, ...] = ()
    ready: bool = False
    message: str = ""

    @property
    def location(self) -> str:
        return f"{self.cluster}/{self.namespace}"

    @property
    def pending(self) -> bool:
        """Apply has work to do: objects to create or update, or MinIO to wait for."""
        return bool(self.create or self.update) or not self.ready


@dataclass(frozen=True)
class RepositoryObservation:
    name: str
    available: bool
    initialized: bool = False
    message: str = ""
    # hostedIn repositories only
    hosting: HostingObservation | None = None


@dataclass(frozen=True)
class NamespaceObservation:
    cluster: str
    namespace: str
    exists: bool
    phase: str = ""
    fingerprint: str | None = None
    message: str = ""


@dataclass(frozen=True)
class StatusTargetObservation:
    """statusWriteBack: the ReplicationJobConfig a job's runs are mirrored into, or why none."""

    target: str = ""
    problem: str = ""


@dataclass(frozen=True)
class ObservedState:
    clusters: dict[str, ClusterObservation] = field(default_factory=dict)
    repositories: dict[str, RepositoryObservation] = field(default_factory=dict)
    # (cluster, namespace) -> observation
    namespaces: dict[tuple[str, str], NamespaceObservation] = field(default_factory=dict)
    # job -> restore pre-checks against its destination, as KubeSlice reports them:
    # {"overallCompatibility": ..., "compatibilityChecks": [{"name", "status", "message"}]}
    prechecks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # job -> its namespace in the SliceConfig of its (desired or recorded) onboarding
    onboardings: dict[str, OnboardingObservation] = field(default_factory=dict)
    # job -> where its runs' status is written back (slices with statusWriteBack only)
    status_targets: dict[str, StatusTargetObservation] = field(default_factory=dict)
