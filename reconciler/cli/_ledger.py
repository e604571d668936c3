"""`kubeferry ledger`: look into the ledger (status, history) and release a stale lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from reconciler._paths import resolve_inventory_path, resolve_ledger_path
from reconciler.errors import KubeferryError
from state import (
    Event,
    Ledger,
    LedgerError,
    LedgerNotFoundError,
    LockInfo,
    Run,
    RunPhase,
    head_revision,
)

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add this module's top-level commands to the root app (none: all live under `ledger`)."""


InventoryOption = Annotated[
    Path | None,
    typer.Option("-f", "--file", help="Inventory file or directory (the ledger lives next to it)."),
]
LedgerOption = Annotated[
    Path | None,
    typer.Option(
        "--ledger",
        help="Ledger file (default: $KUBEFERRY_LEDGER, else .kubeferry/ledger.sqlite "
        "next to the inventory).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

_PHASE_STYLE = {
    RunPhase.NEW: "dim",
    RunPhase.IN_PROGRESS: "cyan",
    RunPhase.COMPLETED: "green",
    RunPhase.PARTIALLY_FAILED: "yellow",
    RunPhase.FAILED: "red",
    RunPhase.INTERRUPTED: "magenta",
}
_LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "red"}


@contextmanager
def _existing_ledger(file: Path | None, ledger: Path | None) -> Iterator[Ledger]:
    """Open the ledger for a command that must not create one; ledger errors -> one line."""
    path = resolve_ledger_path(ledger, resolve_inventory_path(file))
    try:
        opened = Ledger.open(path, create=False)  # a read must not leave an empty ledger behind
    except LedgerNotFoundError as error:
        raise KubeferryError(
            str(error), hint="nothing was applied with this inventory yet, or pass --ledger PATH"
        ) from None
    except LedgerError as error:
        raise KubeferryError(str(error)) from None
    try:
        with opened:
            yield opened
    except LedgerError as error:
        raise KubeferryError(str(error)) from None


@app.command()
def status(
    file: InventoryOption = None, ledger: LedgerOption = None, as_json: JsonOption = False
) -> None:
    """Where the ledger is, its serial and schema, who holds the lock, and what it holds."""
    with _existing_ledger(file, ledger) as opened:
        holder = opened.lock_status()
        report: dict[str, Any] = {
            "path": str(opened.path.resolve()),
            "serial": opened.serial,
            "schema_revision": opened.schema_revision,
            "newest_schema_revision": head_revision(),
            "lock": None if holder is None else _lock_json(holder),
            "counts": opened.counts(),
        }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Ledger", report["path"])
    grid.add_row("Serial", str(report["serial"]))
    grid.add_row("Schema", str(report["schema_revision"]))
    grid.add_row("Lock", "free" if holder is None else _lock_text(holder))
    counts = report["counts"]
    grid.add_row("Rows", ", ".join(f"{name} {count}" for name, count in counts.items()))
    console.print(grid)


@app.command()
def history(
    file: InventoryOption = None,
    ledger: LedgerOption = None,
    job: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many runs and events.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent runs and events, newest first."""
    with _existing_ledger(file, ledger) as opened:
        runs = opened.runs(job=job, limit=limit)
        events = opened.events(job=job, limit=limit, newest_first=True)
    if as_json:
        document = {
            "runs": [run.model_dump(mode="json") for run in runs],
            "events": [event.model_dump(mode="json") for event in events],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    what = f" of job {job!r}" if job else ""
    if runs:
        console.print(_runs_table(runs, f"Runs{what}"))
    else:
        console.print(f"No runs{what} yet.")
    if events:
        console.print(_events_table(events, f"Events{what}"))
    else:
        console.print(f"No events{what} yet.")


@app.command()
def unlock(
    lock_id: Annotated[str, typer.Argument(metavar="ID", help="The lock id `status` shows.")],
    file: InventoryOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Release the ledger lock ID (e.g. left by a process that died); only that lock."""
    with _existing_ledger(file, ledger) as opened:
        released = opened.unlock(lock_id)
    typer.echo(f"Released lock {released.lock_id} of {released.describe()}.")


def _lock_json(holder: LockInfo) -> dict[str, Any]:
    return {
        "lock_id": holder.lock_id,
        "operation": holder.operation,
        "user": holder.user,
        "host": holder.host,
        "pid": holder.pid,
        "created_at": holder.created_at.isoformat(),
        "stale": holder.stale,
    }


def _lock_text(holder: LockInfo) -> str:
    text = f"held by {holder.describe()}, lock id {holder.lock_id}"
    if holder.stale:
        text += (
            "\n[yellow]stale: that process no longer runs; if nothing else uses this ledger, "
            f"run `kubeferry ledger unlock {holder.lock_id}`[/yellow]"
        )
    return text


def _runs_table(runs: list[Run], title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    table.add_column("Run", no_wrap=True, justify="right")
    table.add_column("Kind", no_wrap=True)
    table.add_column("Job", min_width=8, overflow="fold")
    table.add_column("Phase", no_wrap=True)
    table.add_column("Progress", min_width=8, justify="right", overflow="fold")
    table.add_column("W/E", no_wrap=True, justify="right")
    table.add_column("Started (UTC)", min_width=10, overflow="fold")
    table.add_column("Took", no_wrap=True, justify="right")
    table.add_column("Snapshot", min_width=10, overflow="fold")
    results = {run.id: _run_result(run) for run in runs}
    if any(results.values()):
        table.add_column("Result", min_width=10, overflow="fold")
    for run in runs:
        style = _PHASE_STYLE.get(run.phase, "")
        items = f"{run.items_done}/{run.total_items}" if run.total_items else str(run.items_done)
        table.add_row(
            str(run.id),
            str(run.kind),
            run.job,
            f"[{style}]{run.phase}[/{style}]" if style else str(run.phase),
            f"{items} {_bytes(run.bytes_done)}",
            f"{run.warning_count}/{run.error_count}",
            _time(run.started_at),
            _duration(run.duration_seconds),
            run.snapshot_id or "",
            *([results[run.id]] if any(results.values()) else []),
        )
    return table


def _run_result(run: Run) -> str:
    """A restore's pre-check verdict and outcome counts, e.g. "compatible; 3 created"."""
    details = run.details or {}
    parts = []
    precheck = details.get("precheck")
    if isinstance(precheck, dict) and precheck.get("overallCompatibility"):
        parts.append(f"pre-checks {precheck['overallCompatibility']}")
    outcomes = details.get("outcomes")
    if isinstance(outcomes, dict) and outcomes:
        parts.append(", ".join(f"{count} {name}" for name, count in sorted(outcomes.items())))
    return "; ".join(parts)


def _events_table(events: list[Event], title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    table.add_column("Event", no_wrap=True, justify="right")
    table.add_column("Time (UTC)", no_wrap=True)
    table.add_column("Level", no_wrap=True)
    table.add_column("Kind", overflow="fold")
    table.add_column("Job", min_width=8, overflow="fold")
    table.add_column("Run", no_wrap=True, justify="right")
    table.add_column("Message", min_width=20)
    for event in events:
        style = _LEVEL_STYLE.get(str(event.level), "")
        table.add_row(
            str(event.id),
            _time(event.at),
            f"[{style}]{event.level}[/{style}]" if style else str(event.level),
            event.kind,
            event.job or "",
            "" if event.run_id is None else str(event.run_id),
            event.message,
        )
    return table


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"
