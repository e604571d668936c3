"""delete_snapshot, ledger_lock_status and unlock_ledger on a real filesystem repository and a
real ledger (snapshots published through the repository API; no cluster needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.reconcile import (
    LockBusyError,
    Workspace,
    delete_snapshot,
    ledger_lock_status,
    list_snapshots,
    unlock_ledger,
)
from state import Ledger
from tests.tui._repository import MIDDLE, NEWEST, OLDEST, repository_ids, snapshot_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return snapshot_workspace(tmp_path)


def _stale_lock(workspace: Workspace) -> str:
    """A lock whose holder process has exited (as after a SIGKILL): stale."""
    code = (
        "import sys; from state import Ledger; "
        "ledger = Ledger.open(sys.argv[1]); print(ledger.acquire_lock('apply').lock_id)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(workspace.ledger_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.stdout.strip()


def test_delete_removes_it_from_the_repository_and_marks_the_ledger(
    workspace: Workspace,
) -> None:
    deleted = delete_snapshot(workspace, MIDDLE, origin="the TUI")
    assert deleted.snapshot_id == MIDDLE
    assert deleted.job == "web"
    assert deleted.repository == "local"
    assert not deleted.was_newest
    assert deleted.reason.startswith("deleted by ")
    assert deleted.reason.endswith(" from the TUI")
    assert repository_ids(workspace) == [OLDEST, NEWEST]
    assert [s.id for s in list_snapshots(workspace)] == [NEWEST, OLDEST]
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        row = ledger.snapshot(MIDDLE)
        assert row is not None
        assert row.deleted_at is not None
        assert row.deletion_reason == deleted.reason
        assert [s.id for s in ledger.snapshots()] == []  # only the deleted row was catalogued
        events = [e for e in ledger.events() if e.kind == "snapshot.deleted"]
        assert len(events) == 1
        assert MIDDLE in events[0].message
        assert events[0].job == "web"
        assert ledger.lock_status() is None  # the lock was given back


def test_unknown_snapshot_is_refused(workspace: Workspace) -> None:
    with pytest.raises(KubeferryError, match="no snapshot 'web-20990101000000-ffffff'"):
        delete_snapshot(workspace, "web-20990101000000-ffffff")
    with pytest.raises(KubeferryError, match="invalid snapshot id"):
        delete_snapshot(workspace, "../etc")
    assert repository_ids(workspace) == [OLDEST, MIDDLE, NEWEST]


def test_the_newest_is_refused_without_force(workspace: Workspace) -> None:
    with pytest.raises(KubeferryError, match="is the newest of job 'web'") as refused:
        delete_snapshot(workspace, NEWEST)
    assert "\n" not in str(refused.value)
    assert repository_ids(workspace) == [OLDEST, MIDDLE, NEWEST]
    deleted = delete_snapshot(workspace, NEWEST, force=True)
    assert deleted.was_newest
    assert repository_ids(workspace) == [OLDEST, MIDDLE]


def test_delete_waits_for_no_live_lock(workspace: Workspace) -> None:
    with Ledger.open(workspace.ledger_path) as ledger, ledger.acquire_lock("apply"):
        with pytest.raises(LockBusyError):
            delete_snapshot(workspace, OLDEST)
        view = ledger_lock_status(workspace)
        assert view is not None
        assert view.operation == "apply"
        assert not view.stale
        assert view.on_this_host
    assert repository_ids(workspace) == [OLDEST, MIDDLE, NEWEST]


def test_lock_status_and_unlock_of_a_stale_lock(workspace: Workspace) -> None:
    assert ledger_lock_status(workspace) is None
    lock_id = _stale_lock(workspace)
    view = ledger_lock_status(workspace)
    assert view is not None
    assert view.lock_id == lock_id
    assert view.stale
    assert view.operation == "apply"
    assert "'apply'" in view.holder
    with pytest.raises(KubeferryError, match="does not hold the ledger"):
        unlock_ledger(workspace, "not-the-lock")
    released = unlock_ledger(workspace, lock_id)
    assert released.lock_id == lock_id
    assert ledger_lock_status(workspace) is None
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        assert any(e.kind == "lock.unlocked" and lock_id in e.message for e in ledger.events())
    with pytest.raises(KubeferryError, match="the ledger is not locked"):
        unlock_ledger(workspace, lock_id)


def test_no_ledger_means_no_lock(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "kubeferry.yaml", tmp_path / "none.sqlite")
    assert ledger_lock_status(workspace) is None
    assert not workspace.ledger_path.exists()
    with pytest.raises(KubeferryError, match="nothing is locked"):
        unlock_ledger(workspace, "x")
