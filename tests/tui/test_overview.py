"""The overview screen: jobs with Sync/Health/last run/next due/RPO, clusters, repositories,
and the `/` filter (Pilot tests against a real ledger, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.reconcile import Workspace
from state import Ledger
from tui.screens.describe import DescribeScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.table import VirtualTable

from ._data import INVENTORY, scenario, write_inventory
from ._pilot import make_app, wait_for, wait_for_text
from ._screen import screen_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return scenario(tmp_path, monkeypatch)


def _row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{name} "))


def _job_names(text: str) -> list[str]:
    names = {"api", "batch", "cache", "db-backup", "old-job", "web"}
    firsts = [line.split()[0] for line in text.splitlines() if line.strip()]
    return [word for word in firsts if word in names]


async def test_jobs_table_shows_status_columns(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, "db-backup")
        header = next(line for line in text.splitlines() if line.startswith("NAME"))
        assert header.split()[:8] == ["NAME", "SYNC", "HEALTH", "LAST", "RUN", "NEXT", "DUE", "RPO"]
        assert _row(text, "web").split()[:7] == [
            "web",
            "Synced",
            "Healthy",
            "ok",
            "10m",
            "on",
            "demand",
        ]
        assert _row(text, "web").split()[7] == "11m"  # RPO: the snapshot is 11 minutes old
        assert _row(text, "db-backup").split()[:6] == [
            "db-backup",
            "OutOfSync",
            "Healthy",
            "ok",
            "3h",
            "now",
        ]
        assert _row(text, "api").split()[:4] == ["api", "OutOfSync", "Missing", "never"]
        assert _row(text, "batch").split()[:5] == ["batch", "Synced", "Degraded", "failed", "29m"]
        assert _row(text, "cache").split()[:5] == [
            "cache",
            "Synced",
            "Progressing",
            "running",
            "2m",
        ]
        summary = text.splitlines()[1]
        assert "6 jobs · 3 OutOfSync · 1 Degraded · 1 Progressing · 1 Missing" in summary


async def test_clusters_and_repositories_sections(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("2")
        text = await wait_for_text(pilot, "REACHABILITY")
        assert _row(text, "worker-2").split()[:6] == [
            "worker-2",
            "worker",
            "Reachable",
            "v1.31.2",
            "ok",
            "yes",
        ]
        assert _row(text, "controller").split()[1] == "controller"
        await pilot.press("3")
        text = await wait_for_text(pilot, "AVAILABILITY")
        assert _row(text, "local").split()[:7] == [
            "local",
            "filesystem",
            "Available",
            "3.0",
            "MiB",
            "1",
            "yes",
        ]
        assert _row(text, "offsite").split()[:3] == ["offsite", "s3", "Unavailable"]
        await pilot.press("1")
        await wait_for_text(pilot, "NEXT DUE")


async def test_slash_filters_jobs_by_any_column_and_escape_clears(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("slash", *"degr")
        await wait_for(pilot, lambda: _job_names(screen_text(app)) == ["batch"], what="degr")
        assert "1/6 jobs · filter 'degr'" in screen_text(app)
        await pilot.press(*["backspace"] * 4, *"worker-2")  # destination cluster
        await wait_for(
            pilot,
            lambda: _job_names(screen_text(app)) == ["api", "batch", "cache", "old-job", "web"],
            what="worker-2",
        )
        await pilot.press(*["backspace"] * 8, *"SHOP-DR")  # target namespace, any case
        await wait_for(pilot, lambda: _job_names(screen_text(app)) == ["web"], what="shop-dr")
        await pilot.press(*"x")
        await wait_for_text(pilot, "no job matches 'SHOP-DRx'")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(_job_names(screen_text(app))) == 6, what="all jobs")
        assert "filter" not in screen_text(app).splitlines()[1]


async def test_enter_in_the_filter_keeps_it_and_returns_to_the_table(
    workspace: Workspace,
) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("slash", *"outofsync", "enter")
        await wait_for(
            pilot,
            lambda: _job_names(screen_text(app)) == ["api", "db-backup", "old-job"],
            what="outofsync",
        )
        table = app.screen.query_one("#jobs", VirtualTable)
        assert table.has_focus
        await pilot.press("down", "d")  # the second match
        await wait_for(pilot, lambda: isinstance(app.screen, DescribeScreen))
        assert app.screen.address == "ReplicationJob/db-backup"  # type: ignore[attr-defined]


async def test_cursor_moves_and_describes_each_kind(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("j", "j", "enter")  # third row: cache
        await wait_for(pilot, lambda: isinstance(app.screen, DescribeScreen))
        assert app.screen.address == "ReplicationJob/cache"  # type: ignore[attr-defined]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("3", "G", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, DescribeScreen))
        assert app.screen.address == "ReplicationRepository/offsite"  # type: ignore[attr-defined]


async def test_the_cursor_stays_on_its_job_when_the_ledger_changes(workspace: Workspace) -> None:
    app = make_app(workspace, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("G")  # web, the last row
        table = app.screen.query_one("#jobs", VirtualTable)
        assert table.cursor_key == "web"
        with Ledger.open(workspace.ledger_path) as ledger:
            ledger.delete_job("old-job")  # a row above the cursor goes away
        await wait_for(pilot, lambda: "old-job" not in screen_text(app), what="old-job gone")
        assert table.cursor_key == "web"


async def test_inventory_edits_show_up_and_problems_are_listed(workspace: Workspace) -> None:
    app = make_app(workspace, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        write_inventory(workspace.inventory_path.parent, INVENTORY + "---\nkind: Nonsense\n")
        text = await wait_for_text(pilot, "! inventory:")
        assert "kubeferry.yaml" in text
        assert _row(text, "web").split()[1] == "Unknown"
        write_inventory(workspace.inventory_path.parent)
        await wait_for(pilot, lambda: "! inventory:" not in screen_text(app), what="fixed")
        assert _row(screen_text(app), "web").split()[1] == "Synced"


async def test_a_large_table_scrolls_with_the_cursor(tmp_path: Path) -> None:
    jobs = "".join(
        "---\napiVersion: kubeferry.io/v1alpha1\nkind: ReplicationJob\n"
        f"metadata: {{name: job-{i:03d}}}\n"
        f"spec: {{replicationSliceName: w1-to-w2, namespace: ns-{i:03d}}}\n"
        for i in range(60)
    )
    workspace = Workspace(write_inventory(tmp_path, INVENTORY + jobs), tmp_path / "ledger.sqlite")
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "job-000")
        assert "job-059" not in screen_text(app)
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
        await pilot.press("G")
        text = await wait_for_text(pilot, "web ")
        assert "job-000" not in text
        assert app.screen.query_one("#jobs", VirtualTable).cursor_key == "web"
        await pilot.press("g")
        await wait_for_text(pilot, "job-000")
        assert "65 jobs" in screen_text(app)  # 5 of the scenario + 60
