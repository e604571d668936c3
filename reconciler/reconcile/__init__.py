"""The Terraform-style workflow: refresh, plan, apply, reconcile."""

from reconciler.reconcile._connect import Connections
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
    "REQUIRED_PERMISSIONS",
    "Connections",
    "LockBusyError",
    "StalePlanError",
    "Workspace",
    "apply",
    "check_saved_plan",
    "default_engine",
    "ledger_lock",
    "make_plan",
    "refresh",
]
