"""Deleting a snapshot (`x`, typing delete), the ledger lock line and `:unlock` (typing unlock),
and `d` on history and snapshot rows — Pilot tests on a real filesystem repository and a real
ledger (snapshots published through the repository API; no cluster, no network)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from reconciler.reconcile import Workspace, ledger_lock_status
from state import Ledger, RunKind, RunPhase
from tui.app import KubeferryApp
from tui.screens.describe import DescribeScreen
from tui.screens.history import HistoryScreen
from tui.screens.overview import OverviewScreen
from tui.screens.snapshots import SnapshotsScreen
from tui.widgets.confirm import ConfirmScreen

from ._pilot import make_app, wait_for, wait_for_text
from ._repository import MIDDLE, NEWEST, OLDEST, repository_ids, snapshot_workspace
from ._screen import screen_text

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """Three snapshots of job web in the repository, catalogued in the ledger with their runs."""
    monkeypatch.chdir(tmp_path)
    found = snapshot_workspace(tmp_path)
    with Ledger.open(found.ledger_path) as ledger:
        for snapshot_id in (OLDEST, MIDDLE, NEWEST):
            stamp = snapshot_id.rsplit("-", 2)[1]
            created = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            run = ledger.start_run(RunKind.BACKUP, "web")
            assert run.id is not None
            ledger.finish_run(run.id, RunPhase.COMPLETED, snapshot_id=snapshot_id)
            ledger.upsert_snapshot(
                snapshot_id,
                job="web",
                repository="local",
                namespace="shop",
                source_cluster="worker-1",
                created_at=created,
                size_bytes=120,
                total_items=2,
                items_backed_up=2,
                complete=True,
                run_id=run.id,
            )
    return found


@pytest.fixture
def live_lock(workspace: Workspace) -> Iterator[str]:
    """The ledger lock held by this (live) process, as a running apply holds it."""
    with Ledger.open(workspace.ledger_path) as ledger, ledger.acquire_lock("apply") as handle:
        yield handle.lock_id


def _stale_lock(workspace: Workspace) -> str:
    """A lock left by a process that exited without releasing it."""
    code = (
        "import sys; from state import Ledger; "
        "print(Ledger.open(sys.argv[1]).acquire_lock('apply').lock_id)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(workspace.ledger_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip()


def _deleted_reason(workspace: Workspace, snapshot_id: str) -> str | None:
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        row = ledger.snapshot(snapshot_id)
        assert row is not None
        return row.deletion_reason if row.deleted_at is not None else None


async def _snapshots(pilot: Pilot[None], app: KubeferryApp) -> SnapshotsScreen:
    await wait_for_text(pilot, "web")
    assert app.run_command("snapshots")
    await wait_for(pilot, lambda: isinstance(app.screen, SnapshotsScreen))
    screen = app.screen
    assert isinstance(screen, SnapshotsScreen)
    await wait_for(pilot, lambda: screen.catalog is not None and bool(screen.shown), what="catalog")
    assert [s.id for s in screen.shown] == [NEWEST, MIDDLE, OLDEST]
    return screen


async def _type(pilot: Pilot[None], text: str) -> None:
    confirm = pilot.app.screen
    assert isinstance(confirm, ConfirmScreen)
    confirm.query_one("#confirm-input", Input).value = ""
    await pilot.press(*text, "enter")
    await pilot.pause()


# -- delete a snapshot ---------------------------------------------------------------------------


async def test_x_deletes_a_snapshot_only_after_delete_is_typed(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _snapshots(pilot, app)
        await pilot.press("down")  # MIDDLE
        assert screen.selected is not None
        assert screen.selected.id == MIDDLE
        await pilot.press("x")
        text = await wait_for_text(pilot, "Type delete to confirm")
        assert f"Delete snapshot {MIDDLE}" in text
        assert "NEWEST" not in text

        # y, Enter, and another word do not delete
        await pilot.press("y", "enter")
        await _type(pilot, "remove")
        await _type(pilot, "Delete")
        assert isinstance(app.screen, ConfirmScreen)
        assert repository_ids(workspace) == [OLDEST, MIDDLE, NEWEST]

        await _type(pilot, "delete")
        await wait_for(pilot, lambda: MIDDLE not in repository_ids(workspace), what="deleted")
        await wait_for(pilot, lambda: [s.id for s in screen.shown] == [NEWEST, OLDEST])
        assert app.screen is screen
        assert repository_ids(workspace) == [OLDEST, NEWEST]
        reason = _deleted_reason(workspace, MIDDLE)
        assert reason is not None
        assert reason.endswith("from the TUI")
        assert _deleted_reason(workspace, OLDEST) is None


async def test_cancel_keeps_the_snapshot(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _snapshots(pilot, app)
        await pilot.press("down", "down", "x")  # OLDEST
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press(*"delet", "escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.pause(0.3)
        assert repository_ids(workspace) == [OLDEST, MIDDLE, NEWEST]
        assert _deleted_reason(workspace, OLDEST) is None


async def test_the_newest_snapshot_is_named_as_such_before_it_is_deleted(
    workspace: Workspace,
) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 30)) as pilot:
        screen = await _snapshots(pilot, app)
        await pilot.press("x")  # the first row: NEWEST
        text = await wait_for_text(pilot, "Type delete to confirm")
        assert "NEWEST snapshot" in text
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "NEWEST snapshot of job web: retention never deletes" in confirm.body
        await _type(pilot, "delete")
        await wait_for(pilot, lambda: NEWEST not in repository_ids(workspace), what="deleted")
        await wait_for(pilot, lambda: [s.id for s in screen.shown] == [MIDDLE, OLDEST])


async def test_read_only_hides_and_refuses_delete(workspace: Workspace) -> None:
    app = make_app(workspace, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _snapshots(pilot, app)
        assert screen.check_action("delete", ()) is False
        assert "Delete" not in screen_text(app).splitlines()[-1]  # not in the footer
        assert "x: delete" not in screen_text(app)
        await pilot.press("x")
        await pilot.pause(0.2)
        assert app.screen is screen
        screen.action_delete()  # even when called directly
        await pilot.pause(0.2)
        assert app.screen is screen
        assert repository_ids(workspace) == [OLDEST, MIDDLE, NEWEST]


async def test_footer_offers_delete_when_not_read_only(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(120, 24)) as pilot:
        screen = await _snapshots(pilot, app)
        assert screen.check_action("delete", ()) is True
        await wait_for_text(pilot, "Delete")
        assert "x: delete" in screen_text(app)


# -- describe (d) on history and snapshot rows ----------------------------------------------------


async def test_d_on_a_snapshot_row_describes_the_snapshot(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await _snapshots(pilot, app)
        await pilot.press("down", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, DescribeScreen))
        assert isinstance(app.screen, DescribeScreen)
        assert app.screen.address == f"Snapshot/{MIDDLE}"
        await wait_for_text(pilot, f"Snapshot/{MIDDLE}")


async def test_d_on_a_history_row_describes_its_job(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "web")
        assert app.run_command("history")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await wait_for_text(pilot, "3 run(s)")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        assert history.query_one("#history-table", DataTable).row_count == 3
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DescribeScreen))
        assert isinstance(app.screen, DescribeScreen)
        assert app.screen.address == "ReplicationJob/web"
        await wait_for_text(pilot, "replicationSliceName: w1-backup")


# -- the lock line and :unlock --------------------------------------------------------------------


async def test_unlock_a_stale_lock_after_typing_unlock(workspace: Workspace) -> None:
    lock_id = _stale_lock(workspace)
    app = make_app(workspace)
    async with app.run_test(size=(100, 24)) as pilot:
        text = await wait_for_text(pilot, "LOCKED: apply by ")
        assert "STALE (process gone) · :unlock" in text
        assert ":unlock" in text
        assert app.run_command("unlock")
        text = await wait_for_text(pilot, "Type unlock to confirm")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert lock_id in text
        assert "(stale lock)" in confirm.body
        assert "ALIVE" not in confirm.body
        assert "Type unlock to confirm" in text

        await _type(pilot, "yes")
        await _type(pilot, "unlock ")
        assert isinstance(app.screen, ConfirmScreen)
        lock = ledger_lock_status(workspace)
        assert lock is not None
        assert lock.lock_id == lock_id

        await _type(pilot, "unlock")
        await wait_for(pilot, lambda: ledger_lock_status(workspace) is None, what="unlocked")
        await wait_for(pilot, lambda: app.lock is None, what="the lock line to go")
        assert isinstance(app.screen, OverviewScreen)
        assert "LOCKED" not in screen_text(app)
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        assert any(e.kind == "lock.unlocked" and lock_id in e.message for e in ledger.events())


async def test_unlock_of_a_live_holder_warns_and_cancel_keeps_it(
    workspace: Workspace, live_lock: str
) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        text = await wait_for_text(pilot, "LOCKED: apply by ")
        assert "holder alive" in text
        assert app.run_command("unlock")
        text = await wait_for_text(pilot, "Type unlock to confirm")
        assert "The holder is ALIVE" in text
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "may break a running apply" in " ".join(confirm.body.split())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause(0.2)
        lock = ledger_lock_status(workspace)
        assert lock is not None
        assert lock.lock_id == live_lock


async def test_unlock_when_not_locked_says_so(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_text(pilot, "web")
        assert "LOCKED" not in screen_text(app)
        assert app.run_command("unlock")
        await wait_for_text(pilot, "not locked")
        assert not isinstance(app.screen, ConfirmScreen)


async def test_read_only_hides_and_refuses_unlock(workspace: Workspace) -> None:
    lock_id = _stale_lock(workspace)
    app = make_app(workspace, read_only=True)
    async with app.run_test(size=(100, 24)) as pilot:
        text = await wait_for_text(pilot, "LOCKED: apply by ")
        assert ":unlock" not in text
        assert "unlock" not in app.command_words()
        titles = [str(c.title) for c in app.get_system_commands(app.screen)]
        assert ":jobs" in titles
        assert ":unlock" not in titles
        assert not app.run_command("unlock")
        await pilot.pause(0.3)
        assert isinstance(app.screen, OverviewScreen)
        lock = ledger_lock_status(workspace)
        assert lock is not None
        assert lock.lock_id == lock_id


async def test_unlock_is_a_command_and_in_the_palette(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "web")
        assert "unlock" in app.command_words()
        titles = [str(c.title) for c in app.get_system_commands(app.screen)]
        assert ":unlock" in titles
