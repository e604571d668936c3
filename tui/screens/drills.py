"""The drills screen (`:drills [JOB]`): DR drill runs from the ledger; start one; its report.

The list is ``list_runs(kind="drill")`` (read in a thread worker, reloaded when the ledger
serial moves): job, pass/fail, RPO and RTO from the run's recorded summary, snapshot,
started. Enter opens the run (History's ``RunDetailScreen``). ``r`` asks (``ConfirmScreen``)
and then runs ``run_drill`` for the selected row's job (or the screen's JOB) in a thread
worker, showing its events as progress and the verdict at the end; hidden and refused with
``--read-only``. ``o`` opens the report as Markdown: the full report of a drill started
here, else the summary the ledger recorded.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Markdown, Static

from reconciler._events import Event, EventBus
from reconciler.errors import KubeferryError
from reconciler.reconcile import (
    DrillReport,
    RunRow,
    ledger_serial,
    list_runs,
    render_markdown,
    run_drill,
)
from tui._messages import LedgerChanged
from tui.screens.history import RunDetailScreen
from tui.widgets.banner import Banner
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.data_table import SettledDataTable
from tui.widgets.host import (
    full_time,
    human_duration,
    is_read_only,
    poll_interval_of,
    short_time,
    workspace_of,
)

_COLUMNS = ("ID", "Job", "Result", "RPO", "RTO", "Snapshot", "Started")
_RESULT_STYLES = {"pass": "green", "fail": "red", "running": "cyan", "interrupted": "yellow"}


def _error_line(error: BaseException) -> str:
    if isinstance(error, KubeferryError):
        hint = getattr(error, "hint", None)
        return f"{error} ({hint})" if hint else str(error)
    return f"{type(error).__name__}: {error}"


def drill_result(run: RunRow) -> str:
    """``pass`` / ``fail`` (the recorded verdict, else the run's phase), ``running``..."""
    if run.phase in ("New", "InProgress"):
        return "running"
    if run.phase == "Interrupted":
        return "interrupted"
    passed = (run.drill or {}).get("passed")
    if passed is None:
        return "pass" if run.phase == "Completed" else "fail"
    return "pass" if passed else "fail"


def _seconds(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    return human_duration(float(value)) if isinstance(value, int | float) else ""


def drill_cells(run: RunRow) -> tuple[str | Text, ...]:
    summary = run.drill or {}
    result = drill_result(run)
    return (
        str(run.id),
        run.job,
        Text(result, style=_RESULT_STYLES.get(result, "")),
        _seconds(summary, "rpoSeconds"),
        _seconds(summary, "rtoSeconds"),
        run.snapshot_id or "",
        short_time(run.started_at),
    )


def summary_markdown(run: RunRow) -> str:
    """A drill run's report from what the ledger recorded (the full report is a file)."""
    summary = run.drill or {}
    lines = [
        f"# DR drill of job `{run.job}`: {drill_result(run)}",
        "",
        "| | |",
        "|---|---|",
        f"| run | {run.id} ({run.phase}) |",
        f"| snapshot | `{run.snapshot_id or summary.get('snapshot') or '-'}` |",
        f"| restored to | {summary.get('cluster', '-')}/{summary.get('namespace', '-')} |",
        f"| RPO | {_seconds(summary, 'rpoSeconds') or '-'} |",
        f"| RTO | {_seconds(summary, 'rtoSeconds') or '-'} |",
        f"| objects | {summary.get('objectsChecked', '-')} checked, "
        f"{summary.get('objectMismatches', '-')} mismatch(es) |",
        f"| volumes | {summary.get('volumesChecked', '-')} checked, "
        f"{summary.get('volumeMismatches', '-')} mismatch(es) |",
        f"| started | {full_time(run.started_at)} |",
    ]
    reasons = summary.get("reasons") or ([run.message] if run.message else [])
    if reasons:
        lines += ["", "## Why it failed", ""] + [f"- {reason}" for reason in reasons]
    lines += ["", "_Summary from the ledger; `kubeferry drill --report FILE` writes it all._"]
    return "\n".join(lines)


class DrillsLoaded(Message):
    def __init__(self, runs: list[RunRow], serial: int | None, error: str | None) -> None:
        super().__init__()
        self.runs = runs
        self.serial = serial
        self.error = error


class DrillProgress(Message):
    def __init__(self, text: str, style: str = "") -> None:
        super().__init__()
        self.text = text
        self.style = style


class DrillDone(Message):
    def __init__(self, job: str, report: DrillReport | None, error: str | None) -> None:
        super().__init__()
        self.job = job
        self.report = report
        self.error = error


class DrillReportScreen(Screen[None]):
    """A drill report as Markdown, scrollable."""

    AUTO_FOCUS = "#drill-report-box"
    BINDINGS = [Binding("escape,o", "back", "Back")]

    def __init__(self, title: str, markdown: str) -> None:
        super().__init__()
        self.report_title = title
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        yield Banner()
        with VerticalScroll(id="drill-report-box"):
            yield Markdown(self.markdown, id="drill-report")
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.report_title

    def action_back(self) -> None:
        self.dismiss(None)


class DrillsScreen(Screen[None]):
    """Drill runs, newest first; enter opens one, r starts a drill, o shows a report."""

    AUTO_FOCUS = "#drills-table"
    BINDINGS = [
        Binding("enter", "open_run", "Open run", show=False),
        Binding("r", "drill", "Run drill"),
        Binding("o", "report", "Report"),
        Binding("escape", "back", "Back"),
    ]

    LIMIT = 500

    def __init__(self, *, job: str | None = None) -> None:
        super().__init__()
        self.job = job
        self.runs: list[RunRow] = []
        self.serial: int | None = None
        self.running: str | None = None
        self.reports: dict[int, DrillReport] = {}
        self._focus_run: int | None = None  # a drill started here: selected once listed

    def compose(self) -> ComposeResult:
        yield Banner()
        table: DataTable[Any] = SettledDataTable(
            id="drills-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("", id="drills-progress", markup=False)
        yield Static("Loading drills...", id="drills-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Drills of {self.job}" if self.job else "Drills"
        table = self.query_one("#drills-table", DataTable)
        table.add_columns(*_COLUMNS)
        table.focus()
        self._load(check_serial=False)
        self.set_interval(poll_interval_of(self), self._poll)

    # -- loading ------------------------------------------------------------------------

    def _poll(self) -> None:
        self._load(check_serial=True)

    @work(thread=True, group="drills")
    def _load(self, check_serial: bool) -> None:
        workspace = workspace_of(self)
        try:
            serial = ledger_serial(workspace)
            if check_serial and serial == self.serial:
                return
            runs = list_runs(workspace, job=self.job, kind="drill", limit=self.LIMIT)
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(DrillsLoaded([], None, _error_line(error)))
            return
        self.post_message(DrillsLoaded(runs, serial, None))

    @on(DrillsLoaded)
    def _loaded(self, message: DrillsLoaded) -> None:
        status = self.query_one("#drills-status", Static)
        if message.error:
            status.update(Text(message.error, style="red"))
            return
        selected = self.selected
        wanted = self._focus_run if self._focus_run is not None else None
        if wanted is None and selected is not None:
            wanted = selected.id
        self.serial = message.serial
        self.runs = message.runs
        table = self.query_one("#drills-table", DataTable)
        table.clear()
        for run in message.runs:
            table.add_row(*drill_cells(run), key=str(run.id))
        if wanted is not None and any(r.id == wanted for r in message.runs):
            table.move_cursor(row=table.get_row_index(str(wanted)))
            self._focus_run = None
        keys = "enter: details  o: report" + ("" if is_read_only(self) else "  r: run a drill")
        status.update(f"{len(message.runs)} drill(s)  {keys}")

    @on(LedgerChanged)
    def _ledger_changed(self) -> None:
        self._poll()

    # -- selection ----------------------------------------------------------------------

    @property
    def selected(self) -> RunRow | None:
        table = self.query_one("#drills-table", DataTable)
        if table.row_count == 0:
            return None
        row = table.cursor_coordinate.row
        return self.runs[row] if 0 <= row < len(self.runs) else None

    @property
    def target_job(self) -> str | None:
        """The job `r` drills: the selected row's, else the one the screen was opened for."""
        run = self.selected
        return run.job if run is not None else self.job

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "drill":
            return not is_read_only(self)
        return True

    @on(DataTable.RowSelected, "#drills-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(RunDetailScreen(int(event.row_key.value)))

    def action_open_run(self) -> None:
        run = self.selected
        if run is not None:
            self.app.push_screen(RunDetailScreen(run.id))

    def action_report(self) -> None:
        run = self.selected
        if run is None:
            self.notify("no drill selected", severity="warning")
            return
        report = self.reports.get(run.id)
        markdown = render_markdown(report) if report is not None else summary_markdown(run)
        self.app.push_screen(DrillReportScreen(f"Drill report: run {run.id}", markdown))

    # -- running a drill ----------------------------------------------------------------

    def action_drill(self) -> None:
        if is_read_only(self):
            self.notify("read-only: drills are disabled", severity="warning")
            return
        if self.running is not None:
            self.notify(f"a drill of {self.running} is running", severity="warning")
            return
        job = self.target_job
        if job is None:
            self.notify("no job: open :drills JOB to run its first drill", severity="warning")
            return
        body = (
            f"Back up job {job} (a fresh snapshot), restore it into a scratch namespace on "
            "its destination cluster, verify it, then delete the scratch namespace."
        )

        def confirmed(answer: bool | None) -> None:
            if answer and not is_read_only(self) and self.running is None:
                self.running = job
                self._show_progress(f"drill of {job}: starting...", "cyan")
                self._drill(job)

        self.app.push_screen(ConfirmScreen(f"Run a DR drill of {job}?", body), confirmed)

    @work(thread=True, exclusive=True, group="drill")
    def _drill(self, job: str) -> None:
        bus = EventBus()

        def forward(event: Event) -> None:
            self.post_message(DrillProgress(f"drill of {job}: {event.message}", "cyan"))

        bus.subscribe(forward)
        try:
            report = run_drill(workspace_of(self), job, bus=bus)
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(DrillDone(job, None, _error_line(error)))
            return
        self.post_message(DrillDone(job, report, None))

    def _show_progress(self, text: str, style: str = "") -> None:
        self.query_one("#drills-progress", Static).update(Text(text, style=style))

    @on(DrillProgress)
    def _progress(self, message: DrillProgress) -> None:
        if self.running is not None:
            self._show_progress(message.text, message.style)

    @on(DrillDone)
    def _done(self, message: DrillDone) -> None:
        self.running = None
        if message.report is None:
            self._show_progress(f"drill of {message.job} did not run: {message.error}", "red")
            self.notify(f"drill of {message.job} did not run", severity="error")
        else:
            report = message.report
            if report.run_id is not None:
                self.reports[report.run_id] = report
                self._focus_run = report.run_id
            if report.passed:
                self._show_progress(f"drill of {message.job}: {report.verdict}", "green")
            else:
                reasons = "; ".join(report.reasons()[:3])
                self._show_progress(f"drill of {message.job}: {report.verdict}: {reasons}", "red")
        self._load(check_serial=False)

    def action_back(self) -> None:
        self.dismiss(None)
