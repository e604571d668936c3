"""Plumbing shared by the operations outside the plan (on-demand backup and restore,
drills, repository and ledger administration): a locked ActionRunner, one-line errors,
job and snapshot lookups."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime

from reconciler._events import EventBus
from reconciler.apply import Interrupted
from reconciler.engines import ObjectReplicator
from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.reconcile._actions import ActionRunner, SnapshotInfo
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._session import (
    _ledger_event_sink,
    default_engine,
    ledger_lock,
    open_ledger,
)
from reconciler.reconcile._views import desired_job
from reconciler.workspace import Workspace
from state import Ledger, LedgerError, LedgerNotFoundError

SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@contextlib.contextmanager
def locked_runner(
    workspace: Workspace,
    operation: str,
    *,
    bus: EventBus | None,
    engine: ObjectReplicator | None,
    lock_timeout: float,
    inventory: Inventory | None = None,
) -> Iterator[ActionRunner]:
    """An ActionRunner on an open, locked ledger whose events go to the ledger and ``bus``."""
    inventory = inventory or workspace.load_inventory()
    bus = bus or EventBus()
    ledger = open_ledger(workspace)
    try:
        with ledger_lock(ledger, operation, lock_timeout, inventory=inventory):
            unsubscribe = bus.subscribe(_ledger_event_sink(ledger))
            connections = Connections(inventory)
            try:
                yield ActionRunner(
                    inventory, connections, ledger, engine or default_engine(), bus, {}
                )
            finally:
                unsubscribe()
                connections.close()
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    finally:
        ledger.close()


@contextlib.contextmanager
def one_line_errors(what: str) -> Iterator[None]:
    """Expected failures pass through; an engine's unexpected one becomes one line."""
    try:
        yield
    except (KubeferryError, Interrupted, KeyboardInterrupt):
        raise
    except Exception as error:  # the run is recorded Failed already
        raise KubeferryError(f"{what} failed: {type(error).__name__}: {error}") from error


def require_job(inventory: Inventory, name: str) -> None:
    if name not in inventory.jobs:
        known = ", ".join(sorted(inventory.jobs)) or "none"
        raise KubeferryError(
            f"no ReplicationJob {name!r} in the inventory {inventory.path}", hint=f"jobs: {known}"
        )


def note_backup_on_job(runner: ActionRunner, name: str, fingerprint: str) -> None:
    """A backup-mode job's whole work is a backup: record it as its latest success.

    Only when the ledger's job is the applied version of today's spec; a replicating job's
    destination is not touched by a backup, so its fingerprints stay as they are.
    """
    wanted = desired_job(runner.inventory, runner.inventory.jobs[name])
    recorded = {job.name: job for job in runner.ledger.jobs()}.get(name)
    if wanted.mode != "backup" or recorded is None:
        return
    if recorded.content_digest != wanted.content_digest:
        return
    runner.ledger.upsert_job(
        name, source_fingerprint=fingerprint, last_success_at=datetime.now(UTC)
    )


@contextlib.contextmanager
def ledger_if_any(workspace: Workspace) -> Iterator[Ledger | None]:
    """The ledger for reading, or None when there is none yet (a read creates nothing)."""
    try:
        ledger = Ledger.open(workspace.ledger_path, create=False)
    except LedgerNotFoundError:
        yield None
        return
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    try:
        yield ledger
    finally:
        ledger.close()


def find_snapshot(runner: ActionRunner, snapshot_id: str) -> tuple[str, SnapshotInfo]:
    """(repository name, info) of a complete snapshot: the ledger's record, else a scan."""
    inventory = runner.inventory
    row = runner.ledger.snapshot(snapshot_id)
    candidates = sorted(inventory.repositories)
    if row is not None and row.repository in inventory.repositories:
        candidates = [row.repository] + [c for c in candidates if c != row.repository]
    for name in candidates:
        stored = runner.connections.repository(name)
        if stored.is_initialized() and stored.snapshot_exists(snapshot_id):
            return name, runner.snapshot_info(name, stored, snapshot_id)
    where = ", ".join(candidates) or "none"
    raise KubeferryError(
        f"no snapshot {snapshot_id!r} in the inventory's repositories ({where})",
        hint="list them with `kubeferry snapshots`",
    )
