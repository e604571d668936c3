"""The ledger's expected failures.

state/ cannot import reconciler.errors, so these are its own types; the CLI turns any
``LedgerError`` into a one-line ``KubeferryError``. Messages never contain credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from state._locking import LockInfo


class LedgerError(Exception):
    """An expected ledger failure; ``str(error)`` is one line meant for the user."""


class LedgerNotFoundError(LedgerError):
    """A read-only command named a ledger file that does not exist."""


class LedgerSchemaError(LedgerError):
    """The ledger's schema cannot be used: written by a newer kubeferry, or a failed migration."""


class NotFoundError(LedgerError):
    """A row the caller named or referred to (run, cluster, slice, ...) is not in the ledger."""


class InUseError(LedgerError):
    """A row cannot be deleted because others still refer to it (a cluster used by a slice)."""


class RunStateError(LedgerError):
    """A run was asked to change in a way its phase does not allow (e.g. finishing twice)."""


class LockHeldError(LedgerError):
    """Another operation holds the ledger lock; ``holder`` says who, ``holder.stale`` if dead."""

    def __init__(self, holder: LockInfo, waited: float) -> None:
        self.holder = holder
        self.waited = waited
        who = holder.describe()
        if holder.stale:
            message = (
                f"the ledger is locked by {who}, but that process no longer runs (stale lock); "
                f"if nothing else uses this ledger, release it with "
                f"`kubeferry ledger unlock {holder.lock_id}`"
            )
        else:
            waited_note = f" (waited {waited:.1f}s)" if waited > 0 else ""
            message = f"the ledger is locked by {who}{waited_note}; lock id {holder.lock_id}"
        super().__init__(message)


class UnknownLockError(LedgerError):
    """``unlock``/``release`` named a lock id that does not hold the ledger lock."""
