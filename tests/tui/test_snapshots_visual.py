"""Snapshot tests (pytest-textual-snapshot) of the overview, help and describe at 80x24.

The data is the fixed scenario of ``_data.py``: every time on screen is relative to the frozen
clock ``NOW``, and the working directory is the inventory's, so the banner shows
``kubeferry.yaml``. Update the SVGs after a deliberate change with
``pytest tests/tui/test_snapshots_visual.py --snapshot-update`` and look at them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from reconciler.reconcile import Workspace

from ._data import scenario
from ._pilot import make_app, wait_for_text

SnapCompare = Callable[..., bool]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return scenario(tmp_path, monkeypatch)


def _after(*steps: str | tuple[str, ...]) -> Callable[[Pilot[Any]], Any]:
    """Wait for the overview, then per step: press keys (tuple) or wait for text (str)."""

    async def run(pilot: Pilot[Any]) -> None:
        await wait_for_text(pilot, "db-backup")
        for step in steps:
            if isinstance(step, tuple):
                await pilot.press(*step)
            else:
                await wait_for_text(pilot, step)
        await pilot.pause()

    return run


def test_overview_jobs(workspace: Workspace, snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=_after())


def test_overview_clusters_read_only(workspace: Workspace, snap_compare: SnapCompare) -> None:
    app = make_app(workspace, read_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_after(("2",), "REACHABILITY"))


def test_overview_filtered(workspace: Workspace, snap_compare: SnapCompare) -> None:
    run_before = _after(("slash", *"worker-2"), "5/6 jobs")
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=run_before)


def test_help(workspace: Workspace, snap_compare: SnapCompare) -> None:
    run_before = _after(("question_mark",), "COMMANDS")
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=run_before)


def test_describe_job(workspace: Workspace, snap_compare: SnapCompare) -> None:
    run_before = _after(("j", "d"), "Health  Degraded")
    assert snap_compare(make_app(workspace), terminal_size=(80, 24), run_before=run_before)
