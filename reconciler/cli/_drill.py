"""`kubeferry drill`: restore a snapshot into a scratch namespace and prove it restores.

The work lives in ``reconciler.reconcile`` (``run_drill``); this module parses options,
shows progress and renders the report (docs/drills.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reconciler.apply import Cancellation, Interrupted
from reconciler.cli._snapshots import _LOCK_TIMEOUT, _bus, _run
from reconciler.cli._workflow import _FILE_OPTION, _LEDGER_OPTION
from reconciler.reconcile import (
    DRILL_FAILED_EXIT_CODE,
    DrillOptions,
    DrillReport,
    ScheduledDrill,
    Workspace,
    run_drill,
    write_report,
)


def register(root: typer.Typer) -> None:
    """Add this module's top-level commands to the root app."""
    root.command("drill")(drill)


def drill(
    job: Annotated[str, typer.Argument(metavar="JOB", help="The ReplicationJob to drill.")],
    file: Path | None = _FILE_OPTION,
    ledger: Path | None = _LEDGER_OPTION,
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            help="Drill this snapshot id, or 'latest' for the job's newest; "
            "default: take a fresh backup first.",
        ),
    ] = None,
    into_namespace: Annotated[
        str | None,
        typer.Option(
            "--into-namespace",
            help="Scratch namespace to restore into (must not exist); "
            "default: <targetNamespace>-drill-<random>.",
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the scratch namespace afterwards.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write the report: FILE.md (Markdown) or FILE.json (JSON); any other name "
            "writes both FILE.md and FILE.json.",
        ),
    ] = None,
    json_logs: bool = typer.Option(
        False, "--json-logs", help="One JSON object per event on stdout."
    ),
    lock_timeout: float = _LOCK_TIMEOUT,
) -> None:
    """Back up JOB (or take --snapshot), restore it into a scratch namespace on the job's
    destination, verify objects, workloads and volume data, then delete the namespace.

    Exit codes: 0 the drill passed, 4 it failed (mismatches, pre-checks stopped it), 1 an
    error kept it from running, 3 the ledger is locked, 130 interrupted.
    """
    workspace = Workspace.resolve(file, ledger)
    console = Console(highlight=False, soft_wrap=True)
    bus, display = _bus(console, json_logs)
    cancellation = Cancellation()
    options = DrillOptions(snapshot=snapshot, into_namespace=into_namespace, keep=keep)

    def work() -> DrillReport:
        return run_drill(
            workspace,
            job,
            options=options,
            bus=bus,
            cancellation=cancellation,
            lock_timeout=lock_timeout,
        )

    try:
        outcome = _run(work, cancellation, display)
    except Interrupted:
        typer.secho("kubeferry: drill interrupted", err=True)
        raise typer.Exit(130) from None
    written = write_report(outcome, report) if report is not None else []
    if json_logs:
        line = {"event": "drill.finished", **outcome.summary(), "runId": outcome.run_id}
        print(json.dumps(line), flush=True)  # noqa: T201 - the log stream
    else:
        print_drill(console, outcome)
        for path in written:
            console.print(f"Report written to {path}.")
    if not outcome.passed:
        raise typer.Exit(DRILL_FAILED_EXIT_CODE)


def print_drill(console: Console, report: DrillReport) -> None:
    """The terminal summary of one drill."""
    style = "green" if report.passed else "red"
    source = "fresh backup" if report.fresh_backup else "existing snapshot"
    console.print(
        f"Drill of job {report.job}: [{style}]{report.verdict}[/{style}] "
        f"(snapshot {report.snapshot_id}, {source}; run {report.run_id})."
    )
    console.print(
        f"Restored to {report.cluster}/{report.namespace}: RPO {report.rpo_seconds:.1f}s, "
        f"RTO {report.rto_seconds:.1f}s; pre-checks {report.precheck or 'not run'}."
    )
    files = sum(v.files for v in report.volumes)
    console.print(
        f"Checked {report.objects_checked} objects ({len(report.object_mismatches)} "
        f"mismatches), {len(report.workloads)} workloads, {len(report.volumes)} volumes "
        f"({files} files, {sum(len(v.mismatches) for v in report.volumes)} mismatches)."
    )
    for mismatch in report.object_mismatches[:20]:
        where = f" {mismatch.path}" if mismatch.path else ""
        console.print(f"  [red]{mismatch.item}{where}: {mismatch.problem}[/]")
    for volume in report.volumes:
        for mismatch in volume.mismatches[:20]:
            console.print(f"  [red]volume {volume.claim}: {mismatch.path}: {mismatch.problem}[/]")
    for reason in report.reasons():
        console.print(f"[red]- {reason}[/]")
    console.print(f"Scratch namespace: {report.cleanup or 'not created'}.")
    if report.notification:
        console.print(f"Webhook notification: {report.notification}.")


def print_scheduled(console: Console, drills: list[ScheduledDrill]) -> None:
    """What `kubeferry reconcile` prints about the drills it ran."""
    for done in drills:
        if done.report is None:
            console.print(f"Drill of job {done.job}: FAILED to run: {done.error}")
        else:
            print_drill(console, done.report)


def scheduled_json(drills: list[ScheduledDrill]) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for done in drills:
        if done.report is None:
            lines.append(
                {"event": "drill.finished", "job": done.job, "passed": False, "error": done.error}
            )
        else:
            lines.append({"event": "drill.finished", **done.report.summary()})
    return lines
