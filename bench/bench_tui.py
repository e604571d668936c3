"""TUI responsiveness on a 5,000-job inventory (issue 6): first frame and filter keystrokes.

Setup (not timed): the synthetic inventory of ``bench_plan.py`` with N ReplicationJobs
(10 clusters, 5 slices, 1 repository), and a ledger filled through the Ledger API as if it
had been applied: every cluster, repository, slice and job registered, and one backup run
per job (a tenth of them Failed, so the Health column is not uniform).

Measured, in this order:

  first frame, in-process     ``KubeferryApp(workspace)`` constructed and run headless
                              (``App.run_test``, 80x24) until its first screen is composed
                              and painted: the banner and the "reading…" line, before the
                              worker has read the inventory. Textual and kubeferry already
                              imported (the cold figures below include imports).
  first frame, cold, app only a fresh interpreter that imports ``tui.app`` and does the
                              same; wall time from spawn to the first painted frame.
  first frame, cold, via CLI  the same, after importing what ``kubeferry tui`` imports
                              first (``reconciler.cli`` and its plugins, ``Workspace.resolve``).
  data on screen              from the first frame until the jobs table shows all N jobs
                              (the worker parses the inventory and reads the ledger; the
                              read model's inventory cache is emptied first).
  reload after a ledger write a ledger write, then ``reload_overview`` until the new serial
                              is on screen (what a cron run causes; inventory cached).
  filter keystroke -> frame   with the data shown, ``/`` then typing a query character by
                              character and deleting it again, 50 ms apart: from the key
                              event sent to the first frame painted after the filter ran
                              (frames are also encoded for a terminal, as over SSH).
  filter handler + repaint    ``OverviewScreen.set_filter`` + a full repaint of the screen.

The peer of the filter figures is Textual's own DataTable refilled with the same rows on
each keystroke (``clear`` + ``add_rows``, fixed column widths), the approach the overview
does not use.

    .venv/bin/python bench/bench_tui.py [--jobs 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_plan import CLUSTERS, REPOSITORY, SLICES, write_inventory

from reconciler.inventory import load_inventory
from reconciler.reconcile import Workspace
from reconciler.reconcile._views import desired_job
from state import Availability, Ledger, Reachability, RunKind, RunPhase

QUERIES = ("job-01", "degraded", "cluster-09")


# -- setup ---------------------------------------------------------------------------------


def fill_ledger(workspace: Workspace) -> None:
    inventory = load_inventory(workspace.inventory_path)
    now = datetime.now(UTC)
    with Ledger.open(workspace.ledger_path) as ledger:
        for name in CLUSTERS:
            ledger.upsert_cluster(
                name,
                spec_digest=inventory.clusters[name].spec_digest,
                observed_version="v1.30.2",
                reachability=Reachability.REACHABLE,
                permissions={"create namespaces": True},
                last_refresh=now,
            )
        ledger.upsert_repository(
            REPOSITORY,
            spec_digest=inventory.repositories[REPOSITORY].spec_digest,
            availability=Availability.AVAILABLE,
        )
        for name, source, destination in SLICES:
            ledger.upsert_slice(
                name,
                source_cluster=source,
                destination_cluster=destination,
                repository=REPOSITORY,
                spec_digest=inventory.slices[name].spec_digest,
            )
        for index, (name, job) in enumerate(sorted(inventory.jobs.items())):
            wanted = desired_job(inventory, job)
            ledger.upsert_job(
                name,
                slice=wanted.slice,
                namespace=wanted.namespace,
                spec_digest=wanted.spec_digest,
                content_digest=wanted.content_digest,
                mode=wanted.mode,
                source_cluster=wanted.source_cluster,
                destination_cluster=wanted.destination_cluster,
                target_namespace=wanted.target_namespace,
                last_success_at=now - timedelta(minutes=10),
            )
            run = ledger.start_run(RunKind.BACKUP, name)
            assert run.id is not None
            phase = RunPhase.FAILED if index % 10 == 0 else RunPhase.COMPLETED
            ledger.finish_run(run.id, phase, message="bench" if phase == RunPhase.FAILED else None)


def make_workspace(directory: Path, jobs: int) -> Workspace:
    path = write_inventory(directory, jobs)
    workspace = Workspace(path, directory / ".kubeferry" / "ledger.sqlite")
    started = time.perf_counter()
    fill_ledger(workspace)
    print(f"setup: {jobs} jobs, ledger filled in {time.perf_counter() - started:.1f} s")
    return workspace


# -- helpers -------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return seconds * 1000


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered):7.1f}  p95 {p95:7.1f}  "
        f"min {ordered[0]:7.1f}  max {ordered[-1]:7.1f}  (n={len(ordered)})"
    )


@contextmanager
def timer(into: list[float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into.append(_ms(time.perf_counter() - started))


def _screen_text(app: object) -> str:
    strips = app.screen._compositor.render_strips()  # type: ignore[attr-defined]
    return "\n".join("".join(s.text for s in strip) for strip in strips)


async def _wait(predicate: Callable[[], bool], pilot: object, timeout: float = 120) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the screen never showed what was expected")
        await pilot.pause(0.01)  # type: ignore[attr-defined]


# -- measurements --------------------------------------------------------------------------


async def first_frame_and_data(workspace: Workspace, jobs: int) -> tuple[float, float, float]:
    """(first frame, data shown after it, a reload after a ledger write), in ms.

    The read model's inventory cache is emptied first, as at the start of a new process.
    """
    from reconciler.reconcile import _overview
    from tui.app import KubeferryApp

    _overview._cache.clear()
    started = time.perf_counter()
    app = KubeferryApp(workspace, poll_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait(lambda: "kubeferry" in _screen_text(app), pilot)
        first = time.perf_counter() - started
        await _wait(lambda: f"{jobs} jobs" in _screen_text(app), pilot)
        data = time.perf_counter() - started - first
        # what a cron run causes: the ledger moves, the overview is read again (the
        # inventory is unchanged, so it comes from the cache) and repainted
        with Ledger.open(workspace.ledger_path) as ledger:
            ledger.record_event("bench.poke", "serial bump")
            serial = ledger.serial
        reload_started = time.perf_counter()
        app.reload_overview()
        await _wait(lambda: f"serial {serial}" in _screen_text(app), pilot)
        reload = time.perf_counter() - reload_started
    return _ms(first), _ms(data), _ms(reload)


COLD_APP = """
import sys, asyncio
from dataclasses import dataclass
from pathlib import Path
from tui.app import KubeferryApp
@dataclass(frozen=True)
class Workspace:  # what the app reads of reconciler.reconcile.Workspace before its workers run
    inventory_path: Path
    ledger_path: Path
workspace = Workspace(Path(sys.argv[1]), Path(sys.argv[2]))
"""
COLD_CLI = """
import sys, asyncio
from pathlib import Path
import reconciler.cli  # what the `kubeferry` console script imports before any command,
reconciler.cli._load_plugins()  # then the plugins (the tui command)
from reconciler.workspace import Workspace  # and what `kubeferry tui` itself imports
from tui.app import KubeferryApp
workspace = Workspace.resolve(Path(sys.argv[1]), Path(sys.argv[2]))
"""
COLD_RUN = """
async def main():
    app = KubeferryApp(workspace, poll_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        while "kubeferry" not in "".join(
            s.text for strip in app.screen._compositor.render_strips() for s in strip
        ):
            await pilot.pause(0.01)
        print("first-frame", flush=True)
        app.exit()
asyncio.run(main())
"""


def cold_first_frame(workspace: Workspace, preamble: str) -> float:
    started = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            preamble + COLD_RUN,
            str(workspace.inventory_path),
            str(workspace.ledger_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("first-frame"):
            elapsed = time.perf_counter() - started
            break
    else:
        raise RuntimeError("the child never painted a frame")
    child.wait(timeout=60)
    return _ms(elapsed)


class DisplayClock:
    """Timestamps every frame the app sends to its (headless) terminal driver.

    Headless apps build each frame (``CompositorUpdate``) but skip encoding it for the
    terminal; the clock encodes it too (``render_segments``), so a frame costs what it would
    over SSH, short of the network.
    """

    def __init__(self, app: Any) -> None:
        self.frames: list[float] = []
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                if hasattr(renderable, "render_segments"):
                    renderable.render_segments(app.console)
                self.frames.append(time.perf_counter())
            original(screen, renderable)

        app._display = display

    def first_after(self, moment: float) -> float | None:
        return next((t for t in self.frames if t >= moment), None)


async def _latency(
    app: Any, clock: DisplayClock, act: Callable[[], Any], applied: list[float]
) -> float:
    """From the input (key event sent) to the first frame painted after the filter ran."""
    applied.clear()
    started = time.perf_counter()
    result = act()
    if asyncio.iscoroutine(result):
        await result
    deadline = started + 30
    while True:
        frame = clock.first_after(applied[-1]) if applied else None
        if frame is not None:
            return _ms(frame - started)
        if time.perf_counter() > deadline:
            raise TimeoutError("no frame after the filter ran")
        await asyncio.sleep(0.001)


async def filter_keystrokes(workspace: Workspace, jobs: int) -> tuple[list[float], list[float]]:
    from tui.app import KubeferryApp
    from tui.screens.overview import OverviewScreen

    app = KubeferryApp(workspace, poll_interval=0)
    keystrokes: list[float] = []
    handler: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait(lambda: f"{jobs} jobs" in _screen_text(app), pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        clock = DisplayClock(app)
        applied: list[float] = []
        apply_filter = screen._apply_filter

        def timed_apply() -> None:
            apply_filter()
            applied.append(time.perf_counter())

        screen._apply_filter = timed_apply  # type: ignore[method-assign]
        await pilot.press("slash")
        for query in QUERIES:
            steps = [(char, query[: i + 1]) for i, char in enumerate(query)]
            steps += [("backspace", query[:i]) for i in range(len(query) - 1, -1, -1)]
            for key, expected in steps:
                keystrokes.append(
                    await _latency(app, clock, lambda key=key: app._press_keys([key]), applied)
                )
                assert screen.filter_text == expected, (screen.filter_text, expected)
                await asyncio.sleep(0.05)  # a fast typist: 20 keys a second
        for query in QUERIES:
            for count in range(len(query) + 1):
                with timer(handler):
                    screen.set_filter(query[:count])
                    app.screen._compositor.render_update(full=True).render_segments(app.console)
    return keystrokes, handler


async def datatable_peer(workspace: Workspace) -> list[float]:
    """The same keystrokes against Textual's DataTable, refilled per keystroke."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from reconciler.reconcile import load_overview
    from tui.screens.overview import JOB_COLUMNS, job_cells, job_haystack

    overview = load_overview(workspace)
    now = overview.generated_at
    rows = [job_cells(job, now) for job in overview.jobs]
    hays = [job_haystack(job) for job in overview.jobs]

    class Peer(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            for column in JOB_COLUMNS:
                table.add_column(column.label, width=column.width)

    times: list[float] = []
    app = Peer()
    async with app.run_test(size=(80, 24)):
        table = app.query_one(DataTable)
        clock = DisplayClock(app)
        applied: list[float] = []
        for query in QUERIES[:1]:
            for count in range(1, len(query) + 1):
                needle = query[:count]

                def refill(needle: str = needle) -> None:
                    table.clear()
                    table.add_rows([r for r, h in zip(rows, hays, strict=True) if needle in h])
                    applied.append(time.perf_counter())

                times.append(await _latency(app, clock, refill, applied))
                await asyncio.sleep(0.05)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="kubeferry-bench-tui-") as directory:
        workspace = make_workspace(Path(directory), args.jobs)
        asyncio.run(first_frame_and_data(workspace, args.jobs))  # warm-up, not counted
        firsts: list[float] = []
        datas: list[float] = []
        reloads: list[float] = []
        for _ in range(args.repeat):
            first, data, reload = asyncio.run(first_frame_and_data(workspace, args.jobs))
            firsts.append(first)
            datas.append(data)
            reloads.append(reload)
        cold_apps = [cold_first_frame(workspace, COLD_APP) for _ in range(args.repeat)]
        cold_clis = [cold_first_frame(workspace, COLD_CLI) for _ in range(args.repeat)]
        presses, handler = asyncio.run(filter_keystrokes(workspace, args.jobs))
        peer = asyncio.run(datatable_peer(workspace))
    print(f"jobs: {args.jobs}, terminal 80x24, ms")
    print(f"first frame, in-process       {summary(firsts)}")
    print(f"first frame, cold, app only   {summary(cold_apps)}")
    print(f"first frame, cold, via CLI    {summary(cold_clis)}")
    print(f"data on screen after it       {summary(datas)}")
    print(f"reload after a ledger write   {summary(reloads)}")
    print(f"filter keystroke -> frame     {summary(presses)}")
    print(f"filter handler + repaint      {summary(handler)}")
    print(f"peer: DataTable refill        {summary(peer)}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
