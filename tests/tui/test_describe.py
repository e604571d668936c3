"""The describe screen (`d`): status, spec from the inventory, last runs, the ledger's record
(Pilot tests against a real ledger, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.reconcile import Workspace
from state import Ledger
from tui.screens.describe import DescribeScreen

from ._data import scenario
from ._pilot import make_app, wait_for, wait_for_text
from ._screen import screen_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return scenario(tmp_path, monkeypatch)


async def test_describe_a_degraded_job(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("j", "d")  # batch
        text = await wait_for_text(pilot, "Health  Degraded")
        lines = text.splitlines()
        assert lines[1].strip() == "ReplicationJob/batch"
        assert "Sync    Synced" in text
        assert "restore run 7 Failed: namespace batch is terminating" in text
        assert "SPEC (inventory: kubeferry.yaml:" in text
        assert "replicationSliceName: w1-to-w2" in text
        # the runs further down, then the ledger's record (keys sorted)
        await pilot.press("end")
        text = await wait_for_text(pilot, "  target_namespace: batch")
        assert "  last_restore_at: '2026-03-13T12:01:00Z'" in text


async def test_describe_lists_the_runs_newest_first(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 40)) as pilot:
        await wait_for_text(pilot, "db-backup")
        app.describe("ReplicationJob/batch")
        text = await wait_for_text(pilot, "ID KIND")
        words = [line.split() for line in text.splitlines()]
        runs = [w for w in words if len(w) > 3 and w[0].isdigit() and w[1] in ("backup", "restore")]
        assert [(r[0], r[1], r[3]) for r in runs] == [
            ("7", "restore", "Failed"),
            ("6", "backup", "Completed"),
            ("5", "restore", "Completed"),
            ("4", "backup", "Completed"),
        ]


async def test_describe_a_cluster_and_a_repository(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("2", "G", "d")
        text = await wait_for_text(pilot, "Reachability")
        assert "Cluster/worker-2" in text
        assert "Version       v1.31.2" in text
        assert "protected: true" in text
        await pilot.press("escape", "3", "G", "d")
        text = await wait_for_text(pilot, "Availability")
        assert "ReplicationRepository/offsite" in text
        assert "Availability  Unavailable" in text
        assert "Size          512.0 KiB" in text
        assert "secretAccessKeyVar: DR_SECRET_KEY" in text


async def test_describe_a_job_never_applied(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("d")  # api, the first row
        text = await wait_for_text(pilot, "Health  Missing")
        assert "Sync    OutOfSync  never applied" in text
        await pilot.press("end")
        text = await wait_for_text(pilot, "no runs recorded")


async def test_describe_an_unknown_object_says_so(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        app.describe("Cluster/nowhere")
        text = await wait_for_text(pilot, "cannot describe: Cluster/nowhere")
        assert "neither in the inventory" in text


async def test_describe_follows_the_ledger(workspace: Workspace) -> None:
    app = make_app(workspace, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        app.describe("ReplicationJob/cache")
        await wait_for_text(pilot, "Health  Progressing")
        with Ledger.open(workspace.ledger_path) as ledger:
            running = ledger.runs(job="cache")[0]
            assert running.id is not None
            ledger.finish_run(running.id, "Interrupted", message="cancelled by the user")
        text = await wait_for_text(pilot, "Health  Degraded")
        assert "backup run 10 Interrupted: cancelled by the user" in text
        assert isinstance(app.screen, DescribeScreen)
        await pilot.press("escape")
        await wait_for(
            pilot, lambda: "cache" in screen_text(app) and "Degraded" in screen_text(app)
        )
