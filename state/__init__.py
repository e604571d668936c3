"""The kubeferry ledger: SQLite via SQLModel. Imports nothing else of kubeferry.

Open it with ``Ledger.open(path)``; the schema is migrated on open. Every method is safe to
call from worker threads, and every write bumps ``Ledger.serial``. Expected failures raise
``LedgerError`` subclasses, whose messages are single lines meant for the user.
"""

from state._errors import (
    InUseError,
    LedgerError,
    LedgerNotFoundError,
    LedgerSchemaError,
    LockHeldError,
    NotFoundError,
    RunStateError,
    UnknownLockError,
)
from state._ledger import DEFAULT_BUSY_TIMEOUT, Ledger
from state._locking import LockHandle, LockInfo
from state._migrate import head_revision
from state._models import (
    ApplicationSlice,
    Availability,
    Cluster,
    Event,
    EventLevel,
    IssueSeverity,
    Job,
    Reachability,
    Repository,
    Run,
    RunIssue,
    RunKind,
    RunPhase,
    Slice,
    Snapshot,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "ApplicationSlice",
    "Availability",
    "Cluster",
    "Event",
    "EventLevel",
    "InUseError",
    "IssueSeverity",
    "Job",
    "Ledger",
    "LedgerError",
    "LedgerNotFoundError",
    "LedgerSchemaError",
    "LockHandle",
    "LockHeldError",
    "LockInfo",
    "NotFoundError",
    "Reachability",
    "Repository",
    "Run",
    "RunIssue",
    "RunKind",
    "RunPhase",
    "RunStateError",
    "Slice",
    "Snapshot",
    "UnknownLockError",
    "head_revision",
]
