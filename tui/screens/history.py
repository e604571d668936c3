"""The history screen: runs from the ledger, filtered by job / cluster / phase; a run's detail.

The ledger is read in thread workers (``list_runs``, ``run_detail``); the list reloads when
a filter changes (debounced) and when the ledger serial moves, so runs of a cron
``reconcile`` appear while the screen is open. Enter opens ``RunDetailScreen``: the run, its
per-item warnings and errors, its events and recorded details (pre-checks, outcomes). ``d``
describes the selected run's job.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static

from reconciler.errors import KubeferryError
from reconciler.plan import precheck_lines
from reconciler.reconcile import RunDetail, RunRow, ledger_serial, list_runs, run_detail
from tui._messages import LedgerChanged
from tui.screens.run import RunScreen
from tui.widgets.banner import Banner
from tui.widgets.data_table import SettledDataTable
from tui.widgets.host import (
    full_time,
    human_bytes,
    human_duration,
    poll_interval_of,
    short_time,
    workspace_of,
)

PHASE_STYLES = {
    "Completed": "green",
    "PartiallyFailed": "yellow",
    "Failed": "red",
    "Interrupted": "yellow",
    "InProgress": "cyan",
    "New": "dim",
}
_COLUMNS = ("ID", "Kind", "Job", "Phase", "Started", "Took", "Items", "W/E")


def _error_line(error: BaseException) -> str:
    if isinstance(error, KubeferryError):
        hint = getattr(error, "hint", None)
        return f"{error} ({hint})" if hint else str(error)
    return f"{type(error).__name__}: {error}"


def normalize_phase(text: str | None) -> str | None:
    """``completed`` / ``comp`` -> ``Completed``: case-insensitive, a unique prefix is enough;
    anything else is passed on as typed (``list_runs`` then names the known phases)."""
    if not text:
        return None
    wanted = text.strip().lower()
    exact = [p for p in PHASE_STYLES if p.lower() == wanted]
    if exact:
        return exact[0]
    prefixed = [p for p in PHASE_STYLES if p.lower().startswith(wanted)]
    return prefixed[0] if len(prefixed) == 1 else text.strip()


def _took(run: RunRow) -> str:
    if run.finished_at is None:
        return ""
    return human_duration((run.finished_at - run.started_at).total_seconds())


def _items(run: RunRow) -> str:
    return f"{run.items_done}/{run.total_items}" if run.total_items else str(run.items_done)


def run_cells(run: RunRow) -> tuple[str | Text, ...]:
    return (
        str(run.id),
        run.kind,
        run.job,
        Text(run.phase, style=PHASE_STYLES.get(run.phase, "")),
        short_time(run.started_at),
        _took(run),
        _items(run),
        Text(
            f"{run.warning_count}/{run.error_count}",
            style="red" if run.error_count else "yellow" if run.warning_count else "",
        ),
    )


class RunsLoaded(Message):
    def __init__(
        self, generation: int, runs: list[RunRow], serial: int | None, error: str | None
    ) -> None:
        super().__init__()
        self.generation = generation
        self.runs = runs
        self.serial = serial
        self.error = error


class HistoryScreen(Screen[None]):
    """Runs, newest first; filters for job, cluster and phase; enter opens a run."""

    AUTO_FOCUS = "#history-table"
    BINDINGS = [
        Binding("/", "focus_filter", "Filter"),
        Binding("enter", "open_run", "Open run", show=False),
        Binding("d", "describe", "Describe job"),
        Binding("f", "follow", "Follow run"),
        Binding("escape", "back", "Back"),
    ]

    DEBOUNCE = 0.25
    LIMIT = 500

    def __init__(
        self, *, job: str | None = None, cluster: str | None = None, phase: str | None = None
    ) -> None:
        super().__init__()
        self.initial = {"job": job or "", "cluster": cluster or "", "phase": phase or ""}
        self.runs: list[RunRow] = []
        self.serial: int | None = None
        self._debounce: Timer | None = None
        self._generation = 0

    def compose(self) -> ComposeResult:
        yield Banner()
        with Horizontal(id="history-filters"):
            for name in ("job", "cluster", "phase"):
                yield Input(
                    self.initial[name],
                    placeholder=name,
                    id=f"history-{name}",
                    compact=True,
                )
        table: DataTable[Any] = SettledDataTable(
            id="history-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("Loading runs...", id="history-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "History"
        table = self.query_one("#history-table", DataTable)
        table.add_columns(*_COLUMNS)
        table.focus()
        self.reload()
        self.set_interval(poll_interval_of(self), self._poll)

    # -- loading ------------------------------------------------------------------------

    @property
    def filters(self) -> dict[str, str | None]:
        return {
            name: self.query_one(f"#history-{name}", Input).value.strip() or None
            for name in ("job", "cluster", "phase")
        }

    def reload(self) -> None:
        self._generation += 1
        self._load(self._generation, self.filters, check_serial=False)

    def _poll(self) -> None:
        self._load(self._generation, self.filters, check_serial=True)

    @work(thread=True, group="history")
    def _load(self, generation: int, filters: dict[str, str | None], check_serial: bool) -> None:
        workspace = workspace_of(self)
        try:
            serial = ledger_serial(workspace)
            if check_serial and serial == self.serial:
                return
            runs = list_runs(
                workspace,
                job=filters["job"],
                cluster=filters["cluster"],
                phase=normalize_phase(filters["phase"]),
                limit=self.LIMIT,
            )
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(RunsLoaded(generation, [], None, _error_line(error)))
            return
        self.post_message(RunsLoaded(generation, runs, serial, None))

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        if message.generation != self._generation:
            return  # a filter changed since this load started
        status = self.query_one("#history-status", Static)
        if message.error:
            status.update(Text(message.error, style="red"))
            return
        self.serial = message.serial
        self.runs = message.runs
        table = self.query_one("#history-table", DataTable)
        selected = self.selected_run_id
        table.clear()
        for run in message.runs:
            table.add_row(*run_cells(run), key=str(run.id))
        if selected is not None and str(selected) in {str(r.id) for r in message.runs}:
            table.move_cursor(row=table.get_row_index(str(selected)))
        active = [f for f, v in self.filters.items() if v]
        where = f" matching {', '.join(active)}" if active else ""
        more = f" (newest {self.LIMIT})" if len(message.runs) >= self.LIMIT else ""
        status.update(
            f"{len(message.runs)} run(s){where}{more}  enter: details  f: follow  d: describe"
        )

    @on(LedgerChanged)
    def _ledger_changed(self) -> None:
        self._poll()

    @on(Input.Changed)
    def _filter_changed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(self.DEBOUNCE, self.reload)

    @on(Input.Submitted)
    def _filter_submitted(self) -> None:
        self.query_one("#history-table", DataTable).focus()

    # -- selection ----------------------------------------------------------------------

    @property
    def selected_run_id(self) -> int | None:
        table = self.query_one("#history-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    @on(DataTable.RowSelected, "#history-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(RunDetailScreen(int(event.row_key.value)))

    def action_open_run(self) -> None:
        run_id = self.selected_run_id
        if run_id is not None:
            self.app.push_screen(RunDetailScreen(run_id))

    def action_follow(self) -> None:
        run_id = self.selected_run_id
        if run_id is not None:
            self.app.push_screen(RunScreen(run_id=run_id))

    def action_describe(self) -> None:
        """``d``: describe the selected run's job (spec, observed state, its runs)."""
        run_id = self.selected_run_id
        run = next((r for r in self.runs if r.id == run_id), None)
        describe = getattr(self.app, "describe", None)
        if run is None or describe is None:
            self.notify("no run selected", severity="warning")
            return
        describe(f"ReplicationJob/{run.job}")

    def action_focus_filter(self) -> None:
        self.query_one("#history-job", Input).focus()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#history-table", DataTable).focus()
            return
        self.dismiss(None)


# -- one run ---------------------------------------------------------------------------------


class DetailLoaded(Message):
    def __init__(self, detail: RunDetail | None, error: str | None) -> None:
        super().__init__()
        self.detail = detail
        self.error = error


def _detail_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def render_detail(detail: RunDetail) -> Text:
    """The run, its issues (per-item warnings and errors), recorded details, its events."""
    run = detail.run
    text = Text()
    text.append(f"Run {run.id}  ", style="bold")
    text.append(f"{run.kind} of {run.job}  ")
    text.append(run.phase + "\n", style=PHASE_STYLES.get(run.phase, ""))
    where = run.source_cluster
    if run.destination_cluster and run.destination_cluster != run.source_cluster:
        where = f"{run.source_cluster} -> {run.destination_cluster}"
    rows = [
        ("Clusters", where),
        ("Started", full_time(run.started_at)),
        ("Finished", full_time(run.finished_at) + (f" ({_took(run)})" if _took(run) else "")),
        (
            "Items",
            _items(run)
            + (
                f", {human_bytes(run.bytes_done)}"
                + (f" of {human_bytes(run.bytes_total)}" if run.bytes_total else "")
                if run.bytes_done or run.bytes_total
                else ""
            ),
        ),
        ("Snapshot", run.snapshot_id or ""),
        ("Message", run.message),
    ]
    for label, value in rows:
        if value:
            text.append(f"{label}: ", style="bold")
            text.append(f"{value}\n")
    text.append(
        f"\nIssues ({len(detail.issues)}: {run.warning_count} warnings, "
        f"{run.error_count} errors)\n",
        style="bold",
    )
    if not detail.issues:
        text.append("  none\n", style="dim")
    for issue in detail.issues:
        style = "red" if issue.severity == "error" else "yellow"
        text.append(f"  {issue.severity:<8}", style=style)
        if issue.item:
            text.append(f"{issue.item}: ", style="bold")
        text.append(f"{issue.message}\n")
    details = dict(detail.details)
    precheck = details.pop("precheck", None)
    if precheck is not None or details:
        text.append("\nDetails\n", style="bold")
    for line in precheck_lines(precheck):
        text.append("  ")
        text.append_text(line)
        text.append("\n")
    if isinstance(precheck, dict):
        for check in precheck.get("compatibilityChecks") or []:
            if check.get("status") == "compatible":
                text.append(f"    compatible: {check.get('name')}: {check.get('message')}\n")
    for key, value in details.items():
        text.append(f"  {key}: ", style="bold")
        text.append(f"{_detail_value(value)}\n")
    text.append(f"\nEvents ({len(detail.events)})\n", style="bold")
    if not detail.events:
        text.append("  none\n", style="dim")
    for event in detail.events:
        style = {"warning": "yellow", "error": "red"}.get(event.level, "")
        text.append(f"  {short_time(event.at)} ", style="dim")
        text.append(f"{event.message}\n", style=style)
    return text


class RunDetailScreen(Screen[None]):
    """One run from the ledger; reloads while the run is in progress."""

    AUTO_FOCUS = "#run-detail-box"
    BINDINGS = [
        Binding("f", "follow", "Follow live"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail: RunDetail | None = None

    def compose(self) -> ComposeResult:
        yield Banner()
        with VerticalScroll(id="run-detail-box"):
            yield Static(f"Loading run {self.run_id}...", id="run-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Run {self.run_id}"
        self.query_one("#run-detail-box", VerticalScroll).focus()
        self.action_reload()
        self.set_interval(poll_interval_of(self), self._poll)

    def _poll(self) -> None:
        if self.detail is not None and self.detail.run.phase in ("New", "InProgress"):
            self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="run-detail")
    def _load(self) -> None:
        try:
            detail = run_detail(workspace_of(self), self.run_id)
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(DetailLoaded(None, _error_line(error)))
            return
        self.post_message(DetailLoaded(detail, None))

    @on(DetailLoaded)
    def _loaded(self, message: DetailLoaded) -> None:
        view = self.query_one("#run-detail", Static)
        if message.detail is None:
            view.update(Text(f"Run {self.run_id}: {message.error}", style="red"))
            return
        self.detail = message.detail
        view.update(render_detail(message.detail))

    def action_follow(self) -> None:
        self.app.push_screen(RunScreen(run_id=self.run_id))

    def action_back(self) -> None:
        self.dismiss(None)
