"""The CLI's progress display: items, and volume bytes with a rate when data moves."""

from __future__ import annotations

import io

from rich.console import Console

from reconciler._events import Progress
from reconciler.cli._workflow import _BytesColumn, _ProgressDisplay


def _display() -> tuple[_ProgressDisplay, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False, color_system=None)
    return _ProgressDisplay(console), out


def test_bytes_and_rate_are_shown_once_data_moves() -> None:
    display, _ = _display()
    address = "ReplicationJob/web"
    display(Progress(address=address, run_id=1, items_done=0, total_items=3))
    task = display.progress.tasks[0]
    assert str(_BytesColumn().render(task)) == ""  # objects only so far: no byte column

    display(
        Progress(
            address=address,
            run_id=1,
            items_done=1,
            total_items=3,
            bytes_done=250_000_000,
            bytes_total=1_000_000_000,
        )
    )
    task = display.progress.tasks[0]
    assert task.completed == 1
    assert task.total == 3
    assert str(_BytesColumn().render(task)).startswith("250.0 MB / 1.0 GB")


def test_rate_is_the_average_since_the_job_started() -> None:
    display, _ = _display()
    display(Progress(address="ReplicationJob/db", run_id=2, items_done=0, total_items=1))
    task = display.progress.tasks[0]
    task.start_time = task.get_time() - 10.0  # the job started ten seconds ago
    display(
        Progress(
            address="ReplicationJob/db",
            run_id=2,
            items_done=0,
            total_items=1,
            bytes_done=500_000_000,
            bytes_total=0,
        )
    )
    rendered = str(_BytesColumn().render(display.progress.tasks[0]))
    assert rendered.startswith("500.0 MB ")
    assert rendered.endswith("/s")
    assert "50.0 MB/s" in rendered


def test_each_run_of_a_job_has_its_own_labelled_bar() -> None:
    from reconciler._events import RunStarted

    display, _ = _display()
    address = "ReplicationJob/web"
    display(RunStarted(address=address, run_id=1, operation="backup"))
    display(Progress(address=address, run_id=1, items_done=3, total_items=3))
    display(RunStarted(address=address, run_id=2, operation="restore"))
    display(Progress(address=address, run_id=2, items_done=1, total_items=3))
    labels = [task.description for task in display.progress.tasks]
    assert labels == ["ReplicationJob/web backup", "ReplicationJob/web restore"]
