"""The ledger's tables (SQLModel), with their own metadata so nothing else shares it.

What the reconciler diffs: the inventory (desired) against these rows (what was last applied
and observed) against the live clusters and repositories. Desired specs are kept as digests
only: enough to tell "changed since last apply" and never a place for credentials.

Runs, events and snapshots name their job by text rather than by foreign key: history must
outlive a job that was removed from the inventory, and the snapshot catalog mirrors what the
repository holds, whatever the inventory says today.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from state._columns import UTCDateTime, enum_type, utcnow


class Reachability(StrEnum):
    UNKNOWN = "Unknown"
    REACHABLE = "Reachable"
    UNREACHABLE = "Unreachable"


class Availability(StrEnum):
    """A repository's availability, named as Velero's BackupStorageLocation phases."""

    UNKNOWN = "Unknown"
    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"


class RunKind(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"
    DRILL = "drill"  # a restore into a scratch namespace, to prove a snapshot restores


class RunPhase(StrEnum):
    """Velero's backup/restore phases, plus Interrupted for runs whose process died."""

    NEW = "New"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"

    @property
    def finished(self) -> bool:
        return self not in (RunPhase.NEW, RunPhase.IN_PROGRESS)


class IssueSeverity(StrEnum):
    WARNING = "warning"
    ERROR = "error"


class EventLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LedgerModel(SQLModel, registry=registry()):
    """Base of the ledger's tables: a private registry, so its metadata holds only them."""


LEDGER_METADATA: sa.MetaData = LedgerModel.metadata

_SINGLE_ROW = "id = 1"


class Meta(LedgerModel, table=True):
    """One row: the serial number, bumped by every write transaction of the Ledger API."""

    __tablename__ = "meta"
    __table_args__ = (sa.CheckConstraint(_SINGLE_ROW, name="meta_single_row"),)

    id: int = Field(default=1, primary_key=True)
    serial: int = Field(default=0)


class LockRow(LedgerModel, table=True):
    """At most one row (id is always 1): who holds the ledger lock. No row: unlocked."""

    __tablename__ = "lock"
    __table_args__ = (sa.CheckConstraint(_SINGLE_ROW, name="lock_single_row"),)

    id: int = Field(default=1, primary_key=True)
    lock_id: str
    operation: str
    user: str
    host: str
    pid: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Cluster(LedgerModel, table=True):
    __tablename__ = "clusters"

    name: str = Field(primary_key=True)
    spec_digest: str | None = None  # digest of the inventory entry last applied
    observed_version: str | None = None  # e.g. "v1.31.2", from the last refresh
    reachability: Reachability = Field(
        default=Reachability.UNKNOWN, sa_type=enum_type(Reachability)
    )
    # what the credentials may do, e.g. {"namespaces": {"create": true}}; never the credentials
    permissions: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    last_refresh: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Repository(LedgerModel, table=True):
    __tablename__ = "repositories"

    name: str = Field(primary_key=True)
    spec_digest: str | None = None
    availability: Availability = Field(
        default=Availability.UNKNOWN, sa_type=enum_type(Availability)
    )
    last_validation: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Slice(LedgerModel, table=True):
    """A replication slice: source cluster -> destination cluster through one repository."""

    __tablename__ = "slices"

    name: str = Field(primary_key=True)
    source_cluster: str = Field(foreign_key="clusters.name", index=True)
    destination_cluster: str = Field(foreign_key="clusters.name", index=True)
    repository: str = Field(foreign_key="repositories.name", index=True)
    spec_digest: str | None = None
    last_applied: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApplicationSlice(LedgerModel, table=True):
    """An application slice that replicated namespaces are onboarded into."""

    __tablename__ = "application_slices"

    name: str = Field(primary_key=True)
    controller_cluster: str = ""
    project: str = ""
    spec_digest: str | None = None
    last_applied: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Job(LedgerModel, table=True):
    """A replication job: one namespace of one slice."""

    __tablename__ = "jobs"

    name: str = Field(primary_key=True)
    slice: str = Field(foreign_key="slices.name", index=True)
    namespace: str
    spec_digest: str | None = None  # digest of the desired spec last applied
    # digest of the spec fields that change what is copied (not schedule, retention, policy)
    content_digest: str | None = None
    mode: str = "replicate"  # "backup" when source and destination are the same place
    source_cluster: str = ""
    destination_cluster: str = ""
    target_namespace: str = ""
    deletion_policy: str = "Retain"
    # what the source looked like when last copied, and the destination right after
    source_fingerprint: str | None = None
    destination_fingerprint: str | None = None
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_applied: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_snapshot_id: str | None = None  # newest snapshot of a successful backup run
    last_backup_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_restore_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_drill_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Run(LedgerModel, table=True):
    """One backup, restore or drill attempt and its progress."""

    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_job_id", "job", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: RunKind = Field(sa_type=enum_type(RunKind))
    job: str
    phase: RunPhase = Field(default=RunPhase.IN_PROGRESS, sa_type=enum_type(RunPhase), index=True)
    total_items: int | None = None  # None while unknown
    items_done: int = 0
    bytes_total: int | None = None
    bytes_done: int = 0
    warning_count: int = 0
    error_count: int = 0
    snapshot_id: str | None = None
    message: str = ""
    # what the run found and did, e.g. a restore's pre-check report and per-outcome counts
    # ({"precheck": {...}, "outcomes": {"created": 3}}); never credentials or object contents
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # which process runs it, so a run left InProgress by a dead process can be found
    host: str
    pid: int
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class RunIssue(LedgerModel, table=True):
    """One warning or error of a run, about one item (e.g. "apps/v1 Deployment shop/web")."""

    __tablename__ = "run_issues"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    severity: IssueSeverity = Field(sa_type=enum_type(IssueSeverity))
    item: str | None = None
    message: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Snapshot(LedgerModel, table=True):
    """The snapshot catalog, mirrored from the repositories (the repository is the truth)."""

    __tablename__ = "snapshots"

    id: str = Field(primary_key=True)
    job: str = Field(index=True)
    repository: str = Field(index=True)
    namespace: str
    source_cluster: str
    created_at: datetime = Field(sa_type=UTCDateTime)  # when the snapshot was taken
    size_bytes: int | None = None
    total_items: int | None = None
    items_backed_up: int | None = None
    complete: bool = False
    run_id: int | None = None  # the run that wrote it, when it was this ledger's
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)  # last catalog sync
    # set when kubeferry deleted it from its repository (the row stays, as history)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deletion_reason: str | None = None  # e.g. "retention: keepLast 3"


class Event(LedgerModel, table=True):
    """The append-only event log (UPDATE and DELETE are refused by triggers)."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str  # dotted, e.g. "run.started", "lock.unlocked"
    level: EventLevel = Field(default=EventLevel.INFO, sa_type=enum_type(EventLevel))
    message: str
    run_id: int | None = Field(default=None, foreign_key="runs.id", index=True)
    job: str | None = Field(default=None, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


# every table a status report counts, by the name users see
COUNTED_TABLES: dict[str, type[LedgerModel]] = {
    "clusters": Cluster,
    "repositories": Repository,
    "slices": Slice,
    "jobs": Job,
    "runs": Run,
    "run_issues": RunIssue,
    "snapshots": Snapshot,
    "events": Event,
}
