"""The drills screen: drill runs from the ledger, a run's detail, starting a drill, its report
(Pilot tests, no network: the drill itself is faked, the ledger is real)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Markdown, Static

from reconciler.errors import KubeferryError
from reconciler.reconcile import DrillReport, Workspace, list_runs
from reconciler.reconcile._drill_report import VolumeCheck
from state import Ledger, RunKind, RunPhase
from tests.tui._data import NOW, scenario
from tests.tui._navigation import wait_for_screen
from tests.tui._pilot import make_app, wait_for, wait_for_text
from tui.screens.drills import DrillReportScreen, DrillsScreen
from tui.screens.help import HelpScreen
from tui.screens.history import RunDetailScreen
from tui.widgets.confirm import ConfirmScreen

pytestmark = pytest.mark.anyio


def _summary(job: str, passed: bool, rpo: float, rto: float, **extra: Any) -> dict[str, Any]:
    return {
        "job": job,
        "snapshot": f"{job}-20260314110000-aa11",
        "cluster": "worker-2",
        "namespace": f"{job}-drill-abc123",
        "passed": passed,
        "rpoSeconds": rpo,
        "rtoSeconds": rto,
        "objectsChecked": 6,
        "objectMismatches": 0 if passed else 1,
        "volumesChecked": 0,
        "volumeMismatches": 0,
        "reasons": [] if passed else ["ConfigMap/settings: data.mode differs"],
        **extra,
    }


def _drill_run(ledger: Ledger, job: str, passed: bool, rpo: float, rto: float) -> int:
    run = ledger.start_run(RunKind.DRILL, job)
    assert run.id is not None
    ledger.update_run_details(run.id, {"drill": _summary(job, passed, rpo, rto)})
    phase = RunPhase.COMPLETED if passed else RunPhase.FAILED
    message = "" if passed else "drill failed: ConfigMap/settings: data.mode differs"
    ledger.finish_run(run.id, phase, message=message, snapshot_id=f"{job}-20260314110000-aa11")
    return run.id


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    found = scenario(tmp_path, monkeypatch)
    with Ledger.open(found.ledger_path) as ledger:
        _drill_run(ledger, "web", True, 125.0, 42.0)
        _drill_run(ledger, "batch", False, 3700.0, 8.0)
    return found


def _rows(screen: DrillsScreen) -> list[tuple[str, ...]]:
    table = screen.query_one("#drills-table", DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


def _report(run_id: int, passed: bool = True) -> DrillReport:
    report = DrillReport(
        job="web",
        snapshot_id="web-20260314115500-abcdef",
        repository="local",
        snapshot_created=NOW - timedelta(minutes=5),
        fresh_backup=True,
        source_cluster="worker-1",
        source_namespace="shop",
        cluster="worker-2",
        namespace="shop-drill-abc123",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=40),
        rpo_seconds=3.0,
        rto_seconds=12.5,
        run_id=run_id,
        precheck="compatible",
        outcomes={"created": 6},
        objects_checked=6,
        volumes=(VolumeCheck("data", True, files=3, bytes=1024),),
        cleanup="deleted",
    )
    if not passed:
        report = replace(report, errors=("volume data missing",))
    return report


def test_list_runs_filters_by_kind(workspace: Workspace) -> None:
    drills = list_runs(workspace, kind="drill")
    assert [(r.kind, r.job) for r in drills] == [("drill", "batch"), ("drill", "web")]
    assert drills[1].drill is not None
    assert drills[1].drill["rpoSeconds"] == 125.0
    backups = list_runs(workspace, kind="backup")
    assert backups
    assert all(r.kind == "backup" and r.drill is None for r in backups)
    with pytest.raises(KubeferryError, match="unknown run kind 'nope'"):
        list_runs(workspace, kind="nope")


async def test_drills_command_lists_drill_runs_with_rpo_rto(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 24)) as pilot:
        assert app.run_command(":drills")
        screen = await wait_for_screen(pilot, DrillsScreen)
        await wait_for(pilot, lambda: screen.serial is not None, what="drills loaded")
        rows = _rows(screen)
        assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
            ("batch", "fail", "1h01m", "8s"),
            ("web", "pass", "2m05s", "42s"),
        ]
        assert "2 drill(s)" in str(screen.query_one("#drills-status", Static).render())
        # a job argument narrows the list
        assert app.run_command("drills web")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DrillsScreen) and app.screen.job == "web",
        )
        narrowed = app.screen
        assert isinstance(narrowed, DrillsScreen)
        await wait_for(pilot, lambda: narrowed.serial is not None)
        assert [r[1] for r in _rows(narrowed)] == ["web"]


async def test_enter_opens_the_run_detail_and_o_the_report(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = DrillsScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.serial is not None)
        failed_id = int(_rows(screen)[0][0])
        await pilot.press("enter")
        detail = await wait_for_screen(pilot, RunDetailScreen)
        assert detail.run_id == failed_id
        await wait_for_text(pilot, "drill of batch")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)

        await pilot.press("o")
        report = await wait_for_screen(pilot, DrillReportScreen)
        assert "DR drill of job `batch`: fail" in report.markdown
        assert "| RPO | 1h01m |" in report.markdown
        assert "ConfigMap/settings: data.mode differs" in report.markdown
        assert report.query_one("#drill-report", Markdown) is not None
        await wait_for_text(pilot, "Why it failed")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)


async def test_r_asks_then_runs_a_drill_and_shows_the_result(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake_drill(ws: Workspace, job: str, **kwargs: Any) -> DrillReport:
        calls.append(job)
        bus = kwargs["bus"]
        from reconciler._events import RunStarted

        with Ledger.open(ws.ledger_path) as ledger:
            run_id = _drill_run(ledger, job, True, 3.0, 12.5)
        bus.publish(RunStarted(address=f"ReplicationJob/{job}", run_id=run_id, operation="drill"))
        return _report(run_id)

    monkeypatch.setattr("tui.screens.drills.run_drill", fake_drill)
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = DrillsScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.serial is not None)
        await pilot.press("down")  # web
        assert screen.target_job == "web"
        await pilot.press("r")
        confirm = await wait_for_screen(pilot, ConfirmScreen)
        assert "Run a DR drill of web?" in confirm.title_text
        await pilot.press("n")  # no: nothing runs
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.pause(0.1)
        assert calls == []

        await pilot.press("r")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.running is None and calls == ["web"])
        await wait_for(pilot, lambda: len(_rows(screen)) == 3, what="the new drill listed")
        progress = str(screen.query_one("#drills-progress", Static).render())
        assert "drill of web: PASSED" in progress
        new_id = max(screen.reports)
        assert _rows(screen)[0][0] == str(new_id)
        # o shows the full report of a drill run here
        await pilot.press("o")
        report = await wait_for_screen(pilot, DrillReportScreen)
        assert "fresh backup" in report.markdown  # render_markdown's full table


async def test_a_drill_that_cannot_run_is_reported(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ws: Workspace, job: str, **kwargs: Any) -> DrillReport:
        raise KubeferryError("cluster worker-2 is unreachable")

    monkeypatch.setattr("tui.screens.drills.run_drill", broken)
    app = make_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = DrillsScreen(job="web")
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.serial is not None)
        await pilot.press("r")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: "did not run" in str(screen.query_one("#drills-progress", Static).render()),
        )
        assert "worker-2 is unreachable" in str(
            screen.query_one("#drills-progress", Static).render()
        )
        assert screen.running is None


async def test_read_only_hides_and_refuses_the_drill(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr("tui.screens.drills.run_drill", lambda ws, job, **kw: calls.append(job))
    app = make_app(workspace, read_only=True)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = DrillsScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.serial is not None)
        assert "drill" not in {b.binding.action for b in screen.active_bindings.values()}
        await pilot.press("r")
        await pilot.pause(0.2)
        assert app.screen is screen
        screen.action_drill()
        await pilot.pause(0.1)
        assert app.screen is screen
        assert calls == []
        assert "r: run" not in str(screen.query_one("#drills-status", Static).render())


async def test_drills_in_help_and_palette(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(100, 60)) as pilot:
        assert "drills" in app.command_words()
        palette = [command.title for command in app.get_system_commands(app.screen)]
        assert ":drills" in palette
        app.action_help()
        await wait_for_screen(pilot, HelpScreen)
        await wait_for_text(pilot, ":drills [JOB]")
