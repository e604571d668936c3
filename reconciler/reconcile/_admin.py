"""Destructive housekeeping outside the plan: delete one snapshot, look at / release the lock.

The TUI (and, later, the CLI) call these and only render what they return, so the UI
needs no ``state`` or ``repository`` import. ``delete_snapshot`` works under the ledger lock
as backup and restore do; the lock functions only read the ledger (``ledger_lock_status``)
or release one named lock (``unlock_ledger``, as ``kubeferry ledger unlock`` does).
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime

from reconciler.errors import KubeferryError
from reconciler.reconcile._runner import (
    SNAPSHOT_ID,
    find_snapshot,
    ledger_if_any,
    locked_runner,
    one_line_errors,
)
from reconciler.volumes import delete_volume_set
from reconciler.workspace import Workspace
from state import EventLevel, LedgerError, LockInfo, UnknownLockError

__all__ = [
    "DeletedSnapshot",
    "LockView",
    "delete_snapshot",
    "ledger_lock_status",
    "unlock_ledger",
]


@dataclass(frozen=True)
class DeletedSnapshot:
    """What ``delete_snapshot`` removed."""

    snapshot_id: str
    job: str
    repository: str
    reason: str
    """As recorded on the ledger row, e.g. "deleted by alice from the TUI"."""
    was_newest: bool
    """True when it was its job's newest snapshot (only with ``force``)."""
    volume_objects: int
    """Volume manifests removed with it; the chunks they named go with ``repo prune``."""


@dataclass(frozen=True)
class LockView:
    """The holder of the ledger lock, as a UI shows it."""

    lock_id: str
    operation: str
    user: str
    host: str
    pid: int
    created_at: datetime
    stale: bool
    """The holder ran on this host and its process is gone (safe to release)."""
    on_this_host: bool
    """False: the holder runs elsewhere and whether it is alive cannot be told from here."""
    holder: str
    """e.g. "'apply' (alice@host, pid 42, since 2026-03-14 12:00:00 UTC)"."""

    @classmethod
    def of(cls, info: LockInfo, this_host: str) -> LockView:
        return cls(
            lock_id=info.lock_id,
            operation=info.operation,
            user=info.user,
            host=info.host,
            pid=info.pid,
            created_at=info.created_at,
            stale=info.stale,
            on_this_host=info.host == this_host,
            holder=info.describe(),
        )

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.created_at).total_seconds())


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _this_host() -> str:
    return socket.gethostname()


def delete_snapshot(
    workspace: Workspace,
    snapshot_id: str,
    *,
    force: bool = False,
    origin: str = "the CLI",
    lock_timeout: float = 0.0,
) -> DeletedSnapshot:
    """Delete one complete snapshot from its repository and mark it deleted in the ledger.

    Under the ledger lock (LockBusyError when a live run holds it). Removes the object
    snapshot and its volume set; the volume chunks go with ``kubeferry repo prune``. The
    ledger row stays as history with reason "deleted by <user> from <origin>", and a
    ``snapshot.deleted`` event is recorded.

    Refuses (KubeferryError) an unknown snapshot, and the job's newest snapshot unless
    ``force``: it is the job's last restore point and what its RPO is measured from, which
    is why retention never deletes it either.
    """
    if not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise KubeferryError(f"invalid snapshot id {snapshot_id!r}")
    reason = f"deleted by {_current_user()} from {origin}"
    with (
        locked_runner(
            workspace, "delete-snapshot", bus=None, engine=None, lock_timeout=lock_timeout
        ) as runner,
        one_line_errors(f"deleting snapshot {snapshot_id}"),
    ):
        repository_name, info = find_snapshot(runner, snapshot_id)
        siblings = sorted(
            runner.job_snapshots(info.job, repository_name),
            key=lambda s: (s.created_at, s.id),
            reverse=True,
        )
        newest = bool(siblings) and siblings[0].id == snapshot_id
        if newest and not force:
            raise KubeferryError(
                f"snapshot {snapshot_id} is the newest of job {info.job!r}: not deleted "
                "(it is the job's last restore point; retention never deletes it either)",
                hint="force it only if a newer backup is not needed to restore this job",
            )
        stored = runner.connections.repository(repository_name)
        stored.delete_snapshot(snapshot_id)
        volume_objects = delete_volume_set(stored, snapshot_id)
        ledger = runner.ledger
        if ledger.snapshot(snapshot_id) is None:
            info.record(ledger)  # a snapshot this ledger did not write: keep it as history
        ledger.mark_snapshot_deleted(snapshot_id, reason=reason)
        ledger.record_event(
            "snapshot.deleted",
            f"snapshot {snapshot_id} of job {info.job!r} {reason}"
            + (" (it was the newest, forced)" if newest else ""),
            level=EventLevel.WARNING,
            job=info.job,
            data={
                "snapshot": snapshot_id,
                "repository": repository_name,
                "by": reason,
                "newest": newest,
            },
        )
        return DeletedSnapshot(
            snapshot_id=snapshot_id,
            job=info.job,
            repository=repository_name,
            reason=reason,
            was_newest=newest,
            volume_objects=volume_objects,
        )


def ledger_lock_status(workspace: Workspace) -> LockView | None:
    """Who holds the ledger lock (None when free or when there is no ledger); cheap, read-only."""
    with ledger_if_any(workspace) as ledger:
        if ledger is None:
            return None
        try:
            info = ledger.lock_status()
        except LedgerError as error:
            raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    return None if info is None else LockView.of(info, _this_host())


def unlock_ledger(workspace: Workspace, lock_id: str) -> LockView:
    """Release the ledger lock ``lock_id`` (only that lock), as ``kubeferry ledger unlock``.

    Recorded in the ledger's event log. Releasing a live holder's lock lets another run
    start beside it: callers must say so before asking.
    """
    with ledger_if_any(workspace) as ledger:
        if ledger is None:
            raise KubeferryError(f"no ledger at {workspace.ledger_path}: nothing is locked")
        try:
            released = ledger.unlock(lock_id)
        except UnknownLockError:
            holder = ledger.lock_status()
            now = "the ledger is not locked" if holder is None else f"held by {holder.lock_id}"
            raise KubeferryError(f"lock {lock_id} does not hold the ledger ({now})") from None
        except LedgerError as error:
            raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    return LockView.of(released, _this_host())
