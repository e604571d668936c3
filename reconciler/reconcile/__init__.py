"""The Terraform-style workflow: refresh, plan, apply, reconcile."""

from reconciler.reconcile._connect import Connections
from reconciler.reconcile._ondemand import (
    POLICIES,
    BackupOutcome,
    RestoreOutcome,
    RetentionResult,
    SnapshotInfo,
    apply_retention,
    backup_job,
    expired_snapshots,
    list_snapshots,
    restore_snapshot,
)
from reconciler.reconcile._refresh import REQUIRED_PERMISSIONS, refresh
from reconciler.reconcile._session import (
    LockBusyError,
    StalePlanError,
    Workspace,
    apply,
    check_saved_plan,
    default_engine,
    ledger_lock,
    make_plan,
)

__all__ = [
    "POLICIES",
    "REQUIRED_PERMISSIONS",
    "BackupOutcome",
    "Connections",
    "LockBusyError",
    "RestoreOutcome",
    "RetentionResult",
    "SnapshotInfo",
    "StalePlanError",
    "Workspace",
    "apply",
    "apply_retention",
    "backup_job",
    "check_saved_plan",
    "default_engine",
    "expired_snapshots",
    "ledger_lock",
    "list_snapshots",
    "make_plan",
    "refresh",
    "restore_snapshot",
]
