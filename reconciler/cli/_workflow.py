"""`kubeferry plan`, `apply` and `reconcile`: the Terraform-style workflow."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from reconciler._events import ActionFinished, Event, EventBus, RunStarted
from reconciler._events import Progress as ProgressEvent
from reconciler.apply import ApplyResult
from reconciler.errors import KubeferryError
from reconciler.plan import Plan, load_plan, plan_to_json, render_plan, save_plan
from reconciler.reconcile import LockBusyError, Workspace, apply, make_plan

_FILE_OPTION = typer.Option(
    None, "-f", "--file", help="Inventory file or directory (default: ./kubeferry.yaml)."
)
_LEDGER_OPTION = typer.Option(
    None,
    "--ledger",
    help="Ledger path (default: .kubeferry/ledger.sqlite beside the inventory; env KUBEFERRY_LEDGER).",
)


def _console() -> Console:
    return Console(stderr=False, highlight=False, soft_wrap=True)


class _BytesColumn(ProgressColumn):
    """Volume data moved so far, of how much when known, and the average rate."""

    def render(self, task: Task) -> Text:
        done = int(task.fields.get("bytes_done") or 0)
        if not done:
            return Text("")
        total = int(task.fields.get("bytes_total") or 0)
        amount = f"{decimal(done)} / {decimal(total)}" if total >= done else decimal(done)
        elapsed = task.elapsed or 0.0
        rate = f" {decimal(int(done / elapsed))}/s" if elapsed > 0.5 else ""
        return Text(f"{amount}{rate}", style="progress.data.speed")


class _ProgressDisplay:
    """Rich progress bars fed by the event bus: one bar per running job."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _BytesColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        # a replication is a backup run then a restore run: label each bar with its run's
        # operation so the two bars of one job tell themselves apart
        self.operations: dict[str, str] = {}
        # the live display starts with the first bar: a command that fails before any work
        # (an unknown job) must print its one error line and nothing else
        self._started = False
        self._lock = threading.Lock()

    def __enter__(self) -> _ProgressDisplay:
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            if self._started:
                self.progress.stop()
                self._started = False

    def _add_task(self, label: str, total: int | None) -> TaskID:
        with self._lock:
            if not self._started:
                self.progress.start()
                self._started = True
        return self.progress.add_task(label, total=total)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.operations[f"{event.address}#{event.run_id}"] = event.operation
        elif isinstance(event, ProgressEvent):
            key = f"{event.address}#{event.run_id}"
            if key not in self.tasks:
                operation = self.operations.get(key)
                label = f"{event.address} {operation}" if operation else event.address
                self.tasks[key] = self._add_task(label, event.total_items or None)
            self.progress.update(
                self.tasks[key],
                completed=event.items_done,
                total=event.total_items or None,
                bytes_done=event.bytes_done,
                bytes_total=event.bytes_total,
            )
        elif isinstance(event, ActionFinished):
            style = "green" if event.outcome == "done" else "red"
            self.progress.console.print(f"[{style}]{event.message()}[/]", highlight=False)


def _json_logger(event: Event) -> None:
    record = {"at": event.at.isoformat(), "event": event.kind, "level": event.level}
    record |= {k: v for k, v in event.data().items() if v not in (None, "")}
    record["message"] = event.message()
    print(json.dumps(record, default=str), flush=True)  # noqa: T201 - the log stream itself


def register(root: typer.Typer) -> None:
    @root.command("plan")
    def plan_command(
        file: Path | None = _FILE_OPTION,
        ledger: Path | None = _LEDGER_OPTION,
        out: Path | None = typer.Option(
            None, "--out", help="Save the plan for `kubeferry apply FILE`."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the plan as JSON (format_version 1)."
        ),
        detailed_exitcode: bool = typer.Option(
            False, "--detailed-exitcode", help="Exit 0 when there are no changes, 2 when there are."
        ),
        target: list[str] = typer.Option(
            [], "--target", help="Limit the plan to Kind/name (repeatable)."
        ),
        refresh_only: bool = typer.Option(
            False, "--refresh-only", help="Only show what changed in the clusters and repositories."
        ),
        parallelism: int = typer.Option(8, "--parallelism", min=1, help="Parallel refresh calls."),
    ) -> None:
        """Refresh, diff the inventory against the ledger and the clusters, show the plan.

        Exit codes: 0 success (with --detailed-exitcode: no changes), 1 error,
        2 changes present (with --detailed-exitcode).
        """
        workspace = Workspace.resolve(file, ledger)
        plan = make_plan(
            workspace, targets=target or None, refresh_only=refresh_only, parallelism=parallelism
        )
        if as_json:
            sys.stdout.write(plan_to_json(plan) + "\n")
        else:
            render_plan(plan, _console())
        if out is not None:
            save_plan(plan, out)
            if not as_json:
                _console().print(f"\nSaved the plan to {out}. Apply it with: kubeferry apply {out}")
        if detailed_exitcode and plan.has_changes:
            raise typer.Exit(2)

    @root.command("apply")
    def apply_command(
        plan_file: Path | None = typer.Argument(
            None, help="A plan saved with `kubeferry plan --out FILE` (applied without asking)."
        ),
        file: Path | None = _FILE_OPTION,
        ledger: Path | None = _LEDGER_OPTION,
        auto_approve: bool = typer.Option(
            False, "--auto-approve", help="Do not ask for confirmation."
        ),
        parallelism: int = typer.Option(4, "--parallelism", min=1, help="Actions run at once."),
        lock_timeout: float = typer.Option(
            0.0, "--lock-timeout", min=0, help="Seconds to wait for the ledger lock."
        ),
    ) -> None:
        """Carry out the plan: register objects, back up and restore namespaces.

        Exit codes: 0 all actions done (or nothing to do), 1 an error or a failed/blocked
        action, 3 another kubeferry run holds the ledger lock, 130 interrupted.
        """
        saved = load_plan(plan_file) if plan_file is not None else None
        if saved is not None and file is None:
            file = Path(saved.inventory_path)
        workspace = Workspace.resolve(file, ledger)
        console = _console()

        def confirm(plan: Plan) -> bool:
            if saved is not None or auto_approve:
                return True
            if not sys.stdin.isatty():
                raise KubeferryError(
                    "apply needs confirmation but stdin is not a terminal",
                    hint="pass --auto-approve or apply a saved plan",
                )
            return typer.confirm("\nDo you want to perform these actions?", default=False)

        display = _ProgressDisplay(console)
        bus = EventBus()
        bus.subscribe(display)
        with display:
            plan, result = apply(
                workspace,
                saved_plan=saved,
                confirm=confirm,
                parallelism=parallelism,
                lock_timeout=lock_timeout,
                bus=bus,
                on_plan=lambda p: render_plan(p, console) if saved is None else None,
            )
        raise typer.Exit(_finish(console, plan, result))

    @root.command("reconcile")
    def reconcile_command(
        file: Path | None = _FILE_OPTION,
        ledger: Path | None = _LEDGER_OPTION,
        json_logs: bool = typer.Option(
            False, "--json-logs", help="One JSON object per event on stdout."
        ),
        lock_timeout: float = typer.Option(
            0.0, "--lock-timeout", min=0, help="Seconds to wait for the ledger lock."
        ),
        parallelism: int = typer.Option(4, "--parallelism", min=1, help="Actions run at once."),
    ) -> None:
        """Headless refresh + plan + apply of what is due; safe to run from cron every minute.

        Exit codes: 0 converged (all due work done, or nothing due), 1 an error or a
        failed/blocked action, 3 skipped because another run holds the lock (no overlap),
        4 a DR drill (drillFrequency) failed while everything else succeeded.
        """
        workspace = Workspace.resolve(file, ledger)
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        bus = EventBus()
        if json_logs:
            bus.subscribe(_json_logger)
        else:
            bus.subscribe(
                lambda e: console.print(e.message()) if isinstance(e, ActionFinished) else None
            )
        try:
            plan, result = apply(
                workspace,
                confirm=None,
                parallelism=parallelism,
                lock_timeout=lock_timeout,
                bus=bus,
                operation="reconcile",
            )
        except LockBusyError as error:
            if json_logs:
                _json_logger_line("skipped", str(error))
            else:
                console.print(f"kubeferry: skipped: {error}")
            raise typer.Exit(3) from None
        if json_logs:
            _json_logger_line("finished", result.summary() if result else plan.summary())
            code = 0 if (result is None or result.ok) and not plan.problems else 1
        else:
            code = _finish(console, plan, result)
        if code in (0, 1):
            code = _drills(workspace, bus, console, json_logs, lock_timeout, code)
        raise typer.Exit(code)


def _drills(
    workspace: Workspace,
    bus: EventBus,
    console: Console,
    json_logs: bool,
    lock_timeout: float,
    code: int,
) -> int:
    """Run the due DR drills after reconcile's apply; 4 when one failed and code was 0."""
    from reconciler.cli._drill import print_scheduled, scheduled_json
    from reconciler.reconcile import DRILL_FAILED_EXIT_CODE, run_due_drills

    drills = run_due_drills(workspace, bus=bus, lock_timeout=lock_timeout)
    if json_logs:
        for line in scheduled_json(drills):
            print(json.dumps(line), flush=True)  # noqa: T201 - the log stream
    else:
        print_scheduled(console, drills)
    if code == 0 and any(not done.passed for done in drills):
        return DRILL_FAILED_EXIT_CODE
    return code


def _json_logger_line(event: str, message: str) -> None:
    print(json.dumps({"event": event, "message": message}), flush=True)  # noqa: T201


def _finish(console: Console, plan: Plan, result: ApplyResult | None) -> int:
    if result is None:
        if plan.actions:
            console.print("Apply cancelled.")
            return 1
        console.print(plan.summary())
        return 1 if plan.problems else 0
    console.print(result.summary())
    if result.interrupted:
        return 130
    return 0 if result.ok else 1
