"""The history screen: runs from the ledger, filters, a run's detail (Pilot tests, no network).

The ledger is the scenario of ``tests/tui/_data.py`` (filled through the real Ledger API);
the screens read it through ``reconciler.reconcile.list_runs`` / ``run_detail`` in workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from reconciler.reconcile import Workspace
from state import EventLevel, IssueSeverity, Ledger, RunKind, RunPhase
from tests.tui._data import NOW, scenario
from tests.tui._navigation import wait_for_screen
from tests.tui._pilot import wait_for
from tui.app import KubeferryApp
from tui.screens.history import HistoryScreen, RunDetailScreen, normalize_phase
from tui.screens.run import RunScreen

pytestmark = pytest.mark.anyio


def _app(workspace: Workspace, **extra: object) -> KubeferryApp:
    return KubeferryApp(workspace, poll_interval=0, clock=lambda: NOW, **extra)  # type: ignore[arg-type]


def _table_jobs(screen: HistoryScreen) -> list[tuple[str, str, str]]:
    """(kind, job, phase) of every row shown."""
    table = screen.query_one("#history-table", DataTable)
    rows = []
    for index in range(table.row_count):
        cells = table.get_row_at(index)
        rows.append((str(cells[1]), str(cells[2]), str(cells[3])))
    return rows


async def _shown(app: KubeferryApp, pilot: Pilot[None], screen: HistoryScreen) -> HistoryScreen:
    """``screen`` pushed, once it has loaded the runs."""
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.serial is not None)
    return screen


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    found = scenario(tmp_path, monkeypatch)
    # a run with per-item warnings, an error and events, for the detail view
    with Ledger.open(found.ledger_path) as ledger:
        run = ledger.start_run(RunKind.RESTORE, "web")
        assert run.id is not None
        ledger.update_run_progress(run.id, total_items=12, items_done=12, bytes_done=2048)
        ledger.add_run_issue(
            run.id, IssueSeverity.WARNING, "owner reference dropped", item="pods/web-0"
        )
        ledger.add_run_issue(run.id, IssueSeverity.ERROR, "forbidden", item="secrets/tls")
        ledger.update_run_details(
            run.id,
            {
                "precheck": {
                    "overallCompatibility": "warning",
                    "compatibilityChecks": [
                        {"name": "quota", "status": "warning", "message": "near the limit"},
                        {"name": "crds", "status": "compatible", "message": "none needed"},
                    ],
                },
                "cluster": "worker-2",
            },
        )
        ledger.record_event("RunStarted", "ReplicationJob/web: restore run started", run_id=run.id)
        ledger.record_event(
            "ItemWarning",
            "ReplicationJob/web: owner reference dropped (pods/web-0)",
            level=EventLevel.WARNING,
            run_id=run.id,
        )
        ledger.finish_run(run.id, RunPhase.PARTIALLY_FAILED, message="1 object failed")
    return found


async def test_lists_runs_newest_first_with_counts(workspace: Workspace) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _shown(app, pilot, HistoryScreen())
        rows = _table_jobs(screen)
        # 12 runs of the scenario + the one added above, newest first
        assert len(rows) == 13
        assert rows[0] == ("restore", "web", "PartiallyFailed")
        table = screen.query_one("#history-table", DataTable)
        first = table.get_row_at(0)
        assert str(first[6]) == "12/12"  # items
        assert str(first[7]) == "1/1"  # warnings/errors
        status = screen.query_one("#history-status", Static)
        assert "13 run(s)" in str(status.render())


async def test_filters_by_job_cluster_and_phase(workspace: Workspace) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _shown(app, pilot, HistoryScreen())

        await pilot.press("/")  # focuses the job filter
        assert screen.focused is screen.query_one("#history-job", Input)
        await pilot.press(*"batch")
        await wait_for(pilot, lambda: {job for _, job, _ in _table_jobs(screen)} == {"batch"})
        assert len(_table_jobs(screen)) == 4

        # phase: case-insensitive, a unique prefix is enough
        await pilot.press("tab")
        await pilot.press("tab")
        assert screen.focused is screen.query_one("#history-phase", Input)
        await pilot.press(*"fail")
        await wait_for(pilot, lambda: len(_table_jobs(screen)) == 1)
        assert _table_jobs(screen) == [("restore", "batch", "Failed")]

        # cluster: db-backup runs on worker-1 only, so worker-2 leaves it out
        screen.query_one("#history-job", Input).value = ""
        screen.query_one("#history-phase", Input).value = ""
        screen.query_one("#history-cluster", Input).value = "worker-2"
        await wait_for(pilot, lambda: len(_table_jobs(screen)) == 12)
        assert "db-backup" not in {job for _, job, _ in _table_jobs(screen)}

        # an unknown phase names the known ones instead of failing silently
        screen.query_one("#history-cluster", Input).value = ""
        screen.query_one("#history-phase", Input).value = "bogus"
        await wait_for(
            pilot, lambda: "unknown run phase" in str(screen.query_one("#history-status").render())
        )


async def test_enter_opens_the_run_detail(workspace: Workspace) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _shown(app, pilot, HistoryScreen())
        await pilot.press("enter")  # the newest run: the partially failed restore of web
        detail = await wait_for_screen(pilot, RunDetailScreen)
        await wait_for(pilot, lambda: detail.detail is not None)
        text = str(detail.query_one("#run-detail", Static).render())
        assert "restore of web" in text
        assert "PartiallyFailed" in text
        assert "Message: 1 object failed" in text
        assert "Issues (2: 1 warnings, 1 errors)" in text
        assert "pods/web-0: owner reference dropped" in text
        assert "secrets/tls: forbidden" in text
        assert "pre-checks: warning" in text
        assert "warning: quota: near the limit" in text
        assert "Events (2)" in text
        assert "owner reference dropped (pods/web-0)" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)

        # a failed run from the middle of the list shows its error issue and message
        await pilot.press("/")
        await pilot.press(*"batch")
        await wait_for(pilot, lambda: len(_table_jobs(screen)) == 4)
        await pilot.press("enter")  # back to the table
        assert isinstance(screen.focused, DataTable)
        await pilot.press("enter")
        failed = await wait_for_screen(pilot, RunDetailScreen)
        await wait_for(pilot, lambda: failed.detail is not None)
        text = str(failed.query_one("#run-detail", Static).render())
        assert "namespace batch is terminating on worker-2" in text
        assert "error   restore refused" in text


async def test_follow_opens_the_live_view_of_a_run(workspace: Workspace) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _shown(app, pilot, HistoryScreen(job="cache"))
        assert _table_jobs(screen)[0] == ("backup", "cache", "InProgress")
        await pilot.press("f")
        run_screen = await wait_for_screen(pilot, RunScreen)
        assert run_screen.mode == "tail"
        await wait_for(pilot, lambda: "ReplicationJob/cache" in run_screen.rows)
        row = run_screen.rows["ReplicationJob/cache"]
        assert row.items_done == 40
        assert row.state == "running"
        assert run_screen.running


async def test_a_run_recorded_while_open_appears(workspace: Workspace) -> None:
    """A cron `reconcile` writing to the ledger shows up without a key press."""
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _shown(app, pilot, HistoryScreen())
        with Ledger.open(workspace.ledger_path) as ledger:
            run = ledger.start_run(RunKind.BACKUP, "db-backup")
            assert run.id is not None
        await wait_for(pilot, lambda: len(_table_jobs(screen)) == 14, timeout=10)
        assert _table_jobs(screen)[0] == ("backup", "db-backup", "InProgress")


def test_normalize_phase() -> None:
    assert normalize_phase("completed") == "Completed"
    assert normalize_phase("partial") == "PartiallyFailed"
    assert normalize_phase("inp") == "InProgress"
    assert normalize_phase("i") == "i"  # ambiguous: InProgress or Interrupted
    assert normalize_phase("Int") == "Interrupted"
    assert normalize_phase("") is None
    assert normalize_phase("nope") == "nope"
