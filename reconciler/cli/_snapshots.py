"""`kubeferry backup`, `snapshots` and `restore`: on-demand work outside the plan.

The work lives in ``reconciler.reconcile`` (``backup_job``, ``list_snapshots``,
``restore_snapshot``); this module parses options and renders results.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from reconciler._events import Event, EventBus, ItemWarning
from reconciler.apply import Cancellation, Interrupted
from reconciler.cli._ledger import _bytes, _time
from reconciler.cli._workflow import _FILE_OPTION, _LEDGER_OPTION, _json_logger, _ProgressDisplay
from reconciler.engines import PrecheckReport
from reconciler.reconcile import (
    BackupOutcome,
    RestoreOutcome,
    Workspace,
    backup_job,
    list_snapshots,
    restore_snapshot,
)

_Outcome = TypeVar("_Outcome")
_OUTCOMES = ("created", "updated", "recreated", "exists-identical", "exists-differs", "failed")
_CHECK_STYLE = {"compatible": "green", "warning": "yellow", "not_compatible": "red"}


class Policy(StrEnum):
    none = "none"
    update = "update"
    recreate = "recreate"


def register(root: typer.Typer) -> None:
    """Add this module's top-level commands to the root app."""
    root.command("backup")(backup)
    root.command("snapshots")(snapshots)
    root.command("restore")(restore)


_LOCK_TIMEOUT = typer.Option(
    0.0, "--lock-timeout", min=0, help="Seconds to wait for the ledger lock."
)


@contextlib.contextmanager
def _cancel_on_signals(cancellation: Cancellation) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM) stops the run at its next safe point; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancellation.cancelled:
            raise KeyboardInterrupt
        cancellation.cancel()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run(
    work: Callable[[], _Outcome], cancellation: Cancellation, display: _ProgressDisplay | None
) -> _Outcome:
    with _cancel_on_signals(cancellation):
        if display is None:
            return work()
        with display:
            return work()


def _bus(console: Console, json_logs: bool) -> tuple[EventBus, _ProgressDisplay | None]:
    bus = EventBus()
    if json_logs:
        bus.subscribe(_json_logger)
        return bus, None
    display = _ProgressDisplay(console)
    bus.subscribe(display)

    def notes(event: Event) -> None:
        if isinstance(event, ItemWarning):
            display.progress.console.print(f"[yellow]{event.message()}[/]", highlight=False)

    bus.subscribe(notes)
    return bus, display


def backup(
    job: Annotated[str, typer.Argument(metavar="JOB", help="The ReplicationJob to back up.")],
    file: Path | None = _FILE_OPTION,
    ledger: Path | None = _LEDGER_OPTION,
    json_logs: bool = typer.Option(
        False, "--json-logs", help="One JSON object per event on stdout."
    ),
    lock_timeout: float = _LOCK_TIMEOUT,
) -> None:
    """Back up JOB's source namespace now, then apply the job's retention.

    Prints the new snapshot id. Exit codes: 0 done, 1 an error, 3 another kubeferry run
    holds the ledger lock, 130 interrupted.
    """
    workspace = Workspace.resolve(file, ledger)
    console = Console(highlight=False, soft_wrap=True)
    bus, display = _bus(console, json_logs)
    cancellation = Cancellation()

    def work() -> BackupOutcome:
        return backup_job(
            workspace, job, bus=bus, cancellation=cancellation, lock_timeout=lock_timeout
        )

    try:
        outcome = _run(work, cancellation, display)
    except Interrupted:
        typer.secho("kubeferry: backup interrupted; no snapshot was published", err=True)
        raise typer.Exit(130) from None
    if json_logs:
        print(json.dumps(_backup_json(outcome)), flush=True)  # noqa: T201 - the log stream
        return
    _print_backup(console, outcome)


def _backup_json(outcome: BackupOutcome) -> dict[str, object]:
    return {
        "event": "backup.finished",
        "job": outcome.job,
        "snapshot": outcome.snapshot_id,
        "repository": outcome.repository,
        "runId": outcome.run_id,
        "phase": outcome.phase,
        "items": outcome.items,
        "sizeBytes": outcome.size_bytes,
        "retention": {
            "rules": outcome.retention.rules,
            "deleted": outcome.retention.deleted,
            "kept": outcome.retention.kept,
            "errors": outcome.retention.errors,
        },
    }


def _print_backup(console: Console, outcome: BackupOutcome) -> None:
    console.print(
        f"Snapshot {outcome.snapshot_id} of job {outcome.job}: {outcome.items} items, "
        f"{_bytes(outcome.size_bytes)}, {outcome.phase} (run {outcome.run_id}, "
        f"repository {outcome.repository})."
    )
    retention = outcome.retention
    if not retention.rules:
        console.print("Retention: none set, every snapshot is kept.")
        return
    deleted = ", ".join(retention.deleted) if retention.deleted else "none"
    console.print(
        f"Retention ({retention.rules}): kept {len(retention.kept)}, deleted "
        f"{len(retention.deleted)}: {deleted}."
    )
    for error in retention.errors:
        console.print(f"[yellow]retention: {error}[/]")


def snapshots(
    file: Path | None = _FILE_OPTION,
    ledger: Path | None = _LEDGER_OPTION,
    job: Annotated[str | None, typer.Option("--job", help="Only this job's snapshots.")] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", help="Only this repository.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Complete snapshots in the inventory's repositories (joined with the ledger), newest first."""
    found = list_snapshots(Workspace.resolve(file, ledger), job=job, repository=repository)
    if as_json:
        typer.echo(json.dumps({"snapshots": [s.to_dict() for s in found]}, indent=2))
        return
    # piped output gets whole lines (scripts grep snapshot ids); a terminal gets its width
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    if not found:
        what = f" of job {job!r}" if job else ""
        console.print(f"No snapshots{what}.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    for column, justify in (
        ("Snapshot", "left"),
        ("Job", "left"),
        ("Namespace", "left"),
        ("Source", "left"),
        ("Repository", "left"),
        ("Created (UTC)", "left"),
        ("Items", "right"),
        ("Size", "right"),
        ("Phase", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    # an id is copied into `kubeferry restore`: never fold it, squeeze the other columns
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max(len(s.id) for s in found)
    for snapshot in found:
        style = "green" if snapshot.phase == "Completed" else "yellow"
        table.add_row(
            snapshot.id,
            snapshot.job,
            snapshot.namespace,
            snapshot.source_cluster,
            snapshot.repository,
            _time(snapshot.created_at),
            "" if snapshot.items is None else str(snapshot.items),
            "" if snapshot.size_bytes is None else _bytes(snapshot.size_bytes),
            f"[{style}]{snapshot.phase}[/{style}]",
        )
    console.print(table)


def restore(
    snapshot: Annotated[
        str, typer.Argument(metavar="SNAPSHOT", help="A snapshot id (see `kubeferry snapshots`).")
    ],
    file: Path | None = _FILE_OPTION,
    ledger: Path | None = _LEDGER_OPTION,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="Destination cluster (default: the job's destination)."),
    ] = None,
    to_namespace: Annotated[
        str | None,
        typer.Option(
            "--to-namespace", help="Namespace to restore into (default: the job's targetNamespace)."
        ),
    ] = None,
    policy: Annotated[
        Policy | None,
        typer.Option(
            "--policy",
            case_sensitive=False,
            help="Objects that already exist: keep (none), patch (update) or delete and create "
            "(recreate). Default: the job's existingResourcePolicy.",
        ),
    ] = None,
    ignore_prechecks: Annotated[
        bool,
        typer.Option("--ignore-prechecks", help="Restore even when pre-checks fail."),
    ] = False,
    json_logs: bool = typer.Option(
        False, "--json-logs", help="One JSON object per event on stdout."
    ),
    lock_timeout: float = _LOCK_TIMEOUT,
) -> None:
    """Restore SNAPSHOT onto a cluster: pre-checks first, then the objects.

    Stops when the pre-checks find the destination not compatible, unless --ignore-prechecks
    or the job's preCheckFlag is ignorePrechecks. Exit codes: 0 restored, 1 an error, a
    stop by the pre-checks or objects that failed, 3 the ledger is locked, 130 interrupted.
    """
    workspace = Workspace.resolve(file, ledger)
    console = Console(highlight=False, soft_wrap=True)
    bus, display = _bus(console, json_logs)
    cancellation = Cancellation()

    def work() -> RestoreOutcome:
        return restore_snapshot(
            workspace,
            snapshot,
            cluster=cluster,
            to_namespace=to_namespace,
            policy=None if policy is None else policy.value,
            ignore_prechecks=ignore_prechecks,
            bus=bus,
            cancellation=cancellation,
            lock_timeout=lock_timeout,
        )

    try:
        outcome = _run(work, cancellation, display)
    except Interrupted:
        typer.secho("kubeferry: restore interrupted", err=True)
        raise typer.Exit(130) from None
    if json_logs:
        print(json.dumps(_restore_json(outcome)), flush=True)  # noqa: T201 - the log stream
    else:
        _print_restore(console, outcome)
    if not outcome.ok:
        raise typer.Exit(1)


def _restore_json(outcome: RestoreOutcome) -> dict[str, object]:
    return {
        "event": "restore.finished",
        "snapshot": outcome.snapshot_id,
        "job": outcome.job,
        "runId": outcome.run_id,
        "cluster": outcome.cluster,
        "namespace": outcome.namespace,
        "policy": outcome.policy,
        "phase": outcome.phase,
        "items": outcome.items,
        "outcomes": outcome.outcomes,
        "precheck": None if outcome.precheck is None else outcome.precheck.to_dict(),
        "warnings": outcome.warnings,
    }


def _print_precheck(console: Console, report: PrecheckReport | None) -> None:
    if report is None:
        return
    style = _CHECK_STYLE[report.overall]
    console.print(f"Pre-checks: [{style}]{report.overall}[/{style}]")
    for check in report.checks:
        mark = _CHECK_STYLE[check.status]
        console.print(f"  [{mark}]{check.status:<14}[/{mark}] {check.name}: {check.message}")


def _print_restore(console: Console, outcome: RestoreOutcome) -> None:
    _print_precheck(console, outcome.precheck)
    counts = ", ".join(f"{outcome.outcomes.get(name, 0)} {name}" for name in _OUTCOMES)
    extra = sorted(set(outcome.outcomes) - set(_OUTCOMES))
    if extra:
        counts += ", " + ", ".join(f"{outcome.outcomes[name]} {name}" for name in extra)
    console.print(
        f"Restored snapshot {outcome.snapshot_id} to {outcome.cluster}/{outcome.namespace} "
        f"(policy {outcome.policy}): {outcome.items} items, {outcome.phase} "
        f"(run {outcome.run_id})."
    )
    console.print(f"Outcomes: {counts}.")
    for warning in outcome.warnings:
        console.print(f"[yellow]warning: {warning}[/]")
