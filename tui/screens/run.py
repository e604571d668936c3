"""The run screen: live progress per job, the event log, cancel with confirmation.

Three ways in:

- ``RunScreen(plan=plan)`` applies that plan (``reconciler.reconcile.apply`` with it as the
  saved plan) in a thread worker;
- ``RunScreen(restore=RestoreRequest(...))`` restores a snapshot (``restore_snapshot``);
- ``RunScreen(run_id=N)`` tails a run started elsewhere (a cron ``reconcile``, another
  terminal) from the ledger; ``RunScreen()`` tails every run that starts while it is open.

Own runs publish typed events on an ``EventBus``; the subscriber (called in engine threads)
forwards milestones as ``BusEvent`` messages and coalesces the frequent ``Progress`` events
into one ``ProgressTick`` at a time, so a namespace of 50,000 objects never floods the UI.
Tailing polls ``events_since`` / ``list_runs`` / ``run_detail`` in a worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, RichLog, Static

from reconciler._events import (
    ActionFinished,
    ActionStarted,
    Event,
    EventBus,
    ItemDone,
    Progress,
    RunFinished,
    RunStarted,
)
from reconciler.errors import KubeferryError
from reconciler.plan import ActionType, Plan
from reconciler.reconcile import (
    Cancellation,
    EventRow,
    RunRow,
    apply,
    events_since,
    list_runs,
    restore_snapshot,
    run_detail,
)
from tui.widgets.banner import Banner
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.host import (
    full_time,
    human_duration,
    poll_interval_of,
    short_time,
    workspace_of,
)
from tui.widgets.progress import JobProgress

Mode = Literal["apply", "restore", "tail", "watch"]
_OUTCOMES = ("created", "updated", "recreated", "exists-identical", "exists-differs", "failed")
_LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "red"}
_FINISHED_PHASES = ("Completed", "PartiallyFailed", "Failed", "Interrupted")


@dataclass(frozen=True)
class RestoreRequest:
    """A restore as the snapshots screen's form asked for it (None: the job's default)."""

    snapshot_id: str
    job: str
    cluster: str | None = None
    namespace: str | None = None
    policy: Literal["none", "update", "recreate"] | None = None
    ignore_prechecks: bool = False


# -- messages from workers and engine threads -------------------------------------------------


class BusEvent(Message):
    """A milestone event of our own run (started, finished, warning...)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ProgressTick(Message):
    """Progress events are waiting in the screen's buffer (one tick at a time)."""


class RunDone(Message):
    """Our own apply or restore ended: ``ok`` and the summary lines to show."""

    def __init__(self, ok: bool, lines: list[str], *, interrupted: bool = False) -> None:
        super().__init__()
        self.ok = ok
        self.lines = lines
        self.interrupted = interrupted


class TailUpdate(Message):
    """What the ledger says now about the runs being tailed."""

    def __init__(self, runs: list[RunRow], events: list[EventRow], error: str | None) -> None:
        super().__init__()
        self.runs = runs
        self.events = events
        self.error = error


def _error_line(error: BaseException) -> str:
    if isinstance(error, KubeferryError):
        hint = getattr(error, "hint", None)
        return f"{error} ({hint})" if hint else str(error)
    return f"{type(error).__name__}: {error}"


def _run_address(run: RunRow) -> str:
    return f"ReplicationJob/{run.job}" if run.job else f"run/{run.id}"


class RunScreen(Screen[None]):
    """Live progress of an apply or restore of ours, or of runs recorded by another process."""

    AUTO_FOCUS = "#run-log"
    BINDINGS = [
        Binding("c", "cancel_run", "Cancel run"),
        Binding("escape", "back", "Back"),
    ]

    TAIL_EVENTS_PAGE = 500
    WATCH_BACKLOG_PAGES = 40

    def __init__(
        self,
        plan: Plan | None = None,
        run_id: int | None = None,
        *,
        restore: RestoreRequest | None = None,
    ) -> None:
        given = [x for x in (plan, run_id, restore) if x is not None]
        if len(given) > 1:
            raise ValueError("RunScreen takes one of plan, run_id or restore")
        super().__init__()
        self.plan = plan
        self.run_id = run_id
        self.restore = restore
        self.mode: Mode = (
            "apply"
            if plan is not None
            else "restore"
            if restore is not None
            else "tail"
            if run_id is not None
            else "watch"
        )
        self.cancellation = Cancellation()
        self.running = self.mode in ("apply", "restore")
        self.finished = False
        self.ok: bool | None = None
        self.summary_lines: list[str] = []
        self.log_lines: list[str] = []
        self.rows: dict[str, JobProgress] = {}
        self.actions_total = len(plan.actions) if plan is not None else 0
        self.actions_finished: dict[str, str] = {}
        self._progress_lock = threading.Lock()
        self._pending_progress: dict[tuple[str, int | None], Progress] = {}
        self._tick_posted = False
        self._last_event_id = 0
        self._backlog_read = self.mode == "tail"
        self._poll_timer: Timer | None = None
        self._tracked_runs: frozenset[int] = frozenset()
        self._polling = False
        self._started = time.monotonic()

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static(self._status_text(), id="run-status")
        yield VerticalScroll(id="run-jobs")
        yield RichLog(id="run-log", wrap=True, markup=False, highlight=False, max_lines=5000)
        yield Static("", id="run-summary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = {
            "apply": "Apply",
            "restore": "Restore",
            "tail": f"Run {self.run_id}",
            "watch": "Runs (live)",
        }[self.mode]
        if self.plan is not None:
            for action in self.plan.actions:
                if action.type is ActionType.REPLICATE or action.blocked:
                    row = self._row(action.address, action.symbol)
                    if action.blocked:
                        row.set_state("blocked", action.blocked)
            self._run_apply(self.plan)
        elif self.restore is not None:
            self._row(f"ReplicationJob/{self.restore.job}", "")
            self._run_restore(self.restore)
        else:
            self._poll()
            self._poll_timer = self.set_interval(min(poll_interval_of(self), 1.0), self._poll)
        self.set_interval(1.0, self._refresh_status)

    def on_unmount(self) -> None:
        if not self.running or self.mode not in ("apply", "restore"):
            return
        if not self.app.is_running:
            # leaving the app while our run is going: stop it at its next safe point, so
            # the ledger records Interrupted and the lock is released
            self.cancellation.cancel()
        else:
            # replaced by another view (e.g. `:runs`): the run goes on, recorded in the ledger
            self.app.notify(
                f"the {self.mode} goes on in the background; :runs shows it",
                severity="warning",
            )

    # -- rows and log -------------------------------------------------------------------

    def _row(self, address: str, symbol: str = "") -> JobProgress:
        row = self.rows.get(address)
        if row is None:
            row = JobProgress(address, symbol)
            self.rows[address] = row
            self.query_one("#run-jobs", VerticalScroll).mount(row)
        elif symbol and not row.symbol:
            row.symbol = symbol
        return row

    def log_line(self, text: str, level: str = "info") -> None:
        self.log_lines.append(text)
        self.query_one("#run-log", RichLog).write(Text(text, style=_LEVEL_STYLES.get(level, "")))

    def _status_text(self) -> Text:
        elapsed = human_duration(time.monotonic() - self._started)
        text = Text()
        if self.mode == "apply":
            done = len(self.actions_finished)
            failed = sum(1 for o in self.actions_finished.values() if o != "done")
            text.append(f"Apply: {done}/{self.actions_total} actions finished", style="bold")
            if failed:
                text.append(f", {failed} not done", style="red")
        elif self.mode == "restore" and self.restore is not None:
            text.append(f"Restore of {self.restore.snapshot_id}", style="bold")
        elif self.mode == "tail":
            text.append(f"Run {self.run_id} (recorded by another process)", style="bold")
        else:
            text.append("Watching the ledger for runs", style="bold")
        if self.running:
            text.append(f"  running {elapsed}", style="cyan")
            if self.cancellation.cancelled:
                text.append("  cancelling...", style="yellow")
        elif self.finished:
            style = "green" if self.ok else "red"
            text.append("  done" if self.ok else "  finished with problems", style=style)
        return text

    def _refresh_status(self) -> None:
        self.query_one("#run-status", Static).update(self._status_text())

    # -- our own runs: workers ----------------------------------------------------------

    def _forward(self, event: Event) -> None:
        """Bus subscriber; runs in engine threads."""
        if isinstance(event, ItemDone):
            return  # counted by Progress
        if isinstance(event, Progress):
            with self._progress_lock:
                self._pending_progress[(event.address, event.run_id)] = event
                if self._tick_posted:
                    return
                self._tick_posted = True
            self.post_message(ProgressTick())
            return
        self.post_message(BusEvent(event))

    @work(thread=True, exclusive=True, group="run")
    def _run_apply(self, plan: Plan) -> None:
        bus = EventBus()
        bus.subscribe(self._forward)
        try:
            _, result = apply(
                workspace_of(self),
                saved_plan=plan,
                bus=bus,
                cancellation=self.cancellation,
            )
        except Exception as error:  # noqa: BLE001 - reported on screen
            self.post_message(RunDone(False, [f"Apply failed: {_error_line(error)}"]))
            return
        if result is None:
            self.post_message(RunDone(True, [plan.summary()]))
            return
        lines = [result.summary()]
        lines += [
            f"{r.address}: {r.outcome}{': ' + r.detail if r.detail else ''}"
            for r in result.results
            if r.outcome != "done"
        ]
        self.post_message(RunDone(result.ok, lines, interrupted=result.interrupted))

    @work(thread=True, exclusive=True, group="run")
    def _run_restore(self, request: RestoreRequest) -> None:
        bus = EventBus()
        bus.subscribe(self._forward)
        try:
            outcome = restore_snapshot(
                workspace_of(self),
                request.snapshot_id,
                cluster=request.cluster,
                to_namespace=request.namespace,
                policy=request.policy,
                ignore_prechecks=request.ignore_prechecks,
                bus=bus,
                cancellation=self.cancellation,
            )
        except Exception as error:  # noqa: BLE001 - reported on screen
            interrupted = self.cancellation.cancelled
            what = "Restore interrupted" if interrupted else "Restore failed"
            self.post_message(
                RunDone(False, [f"{what}: {_error_line(error)}"], interrupted=interrupted)
            )
            return
        counts = ", ".join(f"{outcome.outcomes.get(name, 0)} {name}" for name in _OUTCOMES)
        extra = sorted(set(outcome.outcomes) - set(_OUTCOMES))
        if extra:
            counts += ", " + ", ".join(f"{outcome.outcomes[name]} {name}" for name in extra)
        lines = [
            f"Restored snapshot {outcome.snapshot_id} to {outcome.cluster}/{outcome.namespace} "
            f"(policy {outcome.policy}): {outcome.items} items, {outcome.phase} "
            f"(run {outcome.run_id}).",
            f"Outcomes: {counts}.",
        ]
        if outcome.precheck is not None:
            lines.insert(0, f"Pre-checks: {outcome.precheck.overall}")
        lines += [f"warning: {w}" for w in outcome.warnings]
        self.post_message(RunDone(outcome.ok, lines))

    # -- our own runs: messages on the UI thread ----------------------------------------

    @on(ProgressTick)
    def _progress(self) -> None:
        with self._progress_lock:
            pending, self._pending_progress = self._pending_progress, {}
            self._tick_posted = False
        for (address, run_id), event in pending.items():
            row = self._row(address)
            if row.run_id is not None and run_id != row.run_id:
                continue  # a late event of the job's previous run
            row.update_counts(
                event.items_done, event.total_items, event.bytes_done, event.bytes_total
            )

    @on(BusEvent)
    def _bus_event(self, message: BusEvent) -> None:
        event = message.event
        if isinstance(event, ActionStarted):
            row = self.rows.get(event.address)
            if row is not None:
                row.set_state("running")
        elif isinstance(event, RunStarted):
            self._row(event.address).start_run(event.operation, event.run_id)
        elif isinstance(event, RunFinished):
            row = self._row(event.address)
            if row.run_id in (None, event.run_id):
                row.set_state(event.phase, event.detail)
        elif isinstance(event, ActionFinished):
            self.actions_finished[event.address] = event.outcome
            row = self.rows.get(event.address)
            if row is not None:
                row.set_state(event.outcome, event.detail)
            self._refresh_status()
        self.log_line(f"{short_time(event.at)} {event.message()}", event.level)

    @on(RunDone)
    def _done(self, message: RunDone) -> None:
        self.running = False
        self.finished = True
        self.ok = message.ok
        self.summary_lines = message.lines
        self._progress()  # the last counts
        for row in self.rows.values():
            if row.state == "pending":
                row.set_state("not run")
        for line in message.lines:
            self.log_line(line, "info" if message.ok else "error")
        summary = Text("\n".join(message.lines), style="bold green" if message.ok else "bold red")
        summary.append("\nEsc: back", style="dim")
        self.query_one("#run-summary", Static).update(summary)
        self.set_class(True, "-finished")
        self.set_class(not message.ok, "-failed")
        self._refresh_status()
        self.refresh_bindings()

    # -- runs of other processes: polling -----------------------------------------------

    def _poll(self) -> None:
        # one poll at a time: the worker advances the event cursor
        if not self._polling:
            self._polling = True
            self._poll_worker()

    @work(thread=True, group="poll")
    def _poll_worker(self) -> None:
        workspace = workspace_of(self)
        try:
            if self.mode == "tail" and self.run_id is not None:
                runs = [run_detail(workspace, self.run_id).run]
            else:
                # runs going on now, and the end of those this screen has shown going
                tracked = set(self._tracked_runs)
                runs = [
                    run
                    for run in reversed(list_runs(workspace, limit=50))
                    if run.phase in ("New", "InProgress") or run.id in tracked
                ]
            events: list[EventRow] = []
            after = self._last_event_id
            pages = self.WATCH_BACKLOG_PAGES if not self._backlog_read else 4
            for _ in range(pages):
                page = events_since(
                    workspace, after, run_id=self.run_id, limit=self.TAIL_EVENTS_PAGE
                )
                events.extend(page)
                if len(page) < self.TAIL_EVENTS_PAGE:
                    break
                after = page[-1].id
            if not self._backlog_read:
                # watching from now: skip what happened before the screen opened
                self._backlog_read = True
                self._last_event_id = max((e.id for e in events), default=self._last_event_id)
                events = []
            elif events:
                self._last_event_id = max(e.id for e in events)
        except Exception as error:  # noqa: BLE001 - shown on screen, polling goes on
            self.post_message(TailUpdate([], [], _error_line(error)))
            return
        self.post_message(TailUpdate(runs, events, None))

    @on(TailUpdate)
    def _tail_update(self, message: TailUpdate) -> None:
        self._polling = False
        if message.error:
            self.query_one("#run-summary", Static).update(Text(message.error, style="red"))
            return
        for event in message.events:
            self.log_line(f"{short_time(event.at)} {event.message}", event.level)
        for run in message.runs:
            row = self._row(_run_address(run))
            if row.run_id != run.id:
                row.start_run(run.kind, run.id)
            row.update_counts(run.items_done, run.total_items, run.bytes_done, run.bytes_total)
            state = "running" if run.phase == "InProgress" else run.phase
            if state != row.state:
                row.set_state(state, run.message if state != "running" else "")
        self._tracked_runs = frozenset(r.run_id for r in self.rows.values() if r.run_id is not None)
        if self.mode == "tail" and message.runs:
            run = message.runs[0]
            self.running = run.phase in ("New", "InProgress")
            if run.phase in _FINISHED_PHASES and not self.finished:
                self.finished = True
                self.ok = run.phase == "Completed"
                took = (
                    human_duration((run.finished_at - run.started_at).total_seconds())
                    if run.finished_at
                    else ""
                )
                line = (
                    f"Run {run.id} ({run.kind} of {run.job}) {run.phase} at "
                    f"{full_time(run.finished_at)}{' after ' + took if took else ''}"
                    f"{': ' + run.message if run.message else ''}"
                )
                self.summary_lines = [line]
                self.query_one("#run-summary", Static).update(
                    Text(line, style="bold green" if self.ok else "bold red")
                )
                if self._poll_timer is not None:
                    self._poll_timer.stop()
        self._refresh_status()

    # -- keys ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            # shown only while there is something of ours to cancel
            return (
                self.mode in ("apply", "restore")
                and self.running
                and not self.cancellation.cancelled
            )
        return True

    def action_cancel_run(self) -> None:
        if self.mode in ("tail", "watch"):
            self.notify("this run belongs to another process; it cannot be cancelled here")
            return
        if not self.running:
            self.notify("nothing is running")
            return
        if self.cancellation.cancelled:
            return

        def confirmed(answer: bool | None) -> None:
            if answer and self.running:
                self.cancellation.cancel()
                self.log_line("cancelling: actions stop at their next safe point", "warning")
                self._refresh_status()
                self.refresh_bindings()

        what = "apply" if self.mode == "apply" else "restore"
        self.app.push_screen(
            ConfirmScreen(
                f"Cancel the {what}?",
                "Running actions stop at their next safe point; their runs are recorded as "
                "Interrupted and the ledger lock is released. Actions not started yet do "
                "not run.",
            ),
            confirmed,
        )

    def action_back(self) -> None:
        if self.running and self.mode in ("apply", "restore"):
            self.notify(
                "the run is still going: wait for it, or press c to cancel it",
                severity="warning",
            )
            return
        self.dismiss(None)
