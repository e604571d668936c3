"""OverviewScreen: jobs (Sync, Health, last run, next due, RPO), clusters, repositories.

The app loads the read model in a worker and calls ``show_overview``; this screen only
turns rows into text. ``/`` filters the jobs by substring over name, namespaces, clusters,
Sync and Health; the filter is a list comprehension over precomputed haystacks and the
table draws only visible lines, so a keystroke stays fast at 5,000 jobs. When the ledger
lock is held, a line under the summary names its holder, its age and whether it is stale,
and points at ``:unlock`` (not in read-only mode).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from tui import _format
from tui.widgets.banner import Banner
from tui.widgets.table import CellStyler, Column, VirtualTable

if TYPE_CHECKING:
    from reconciler.reconcile import ClusterRow, JobRow, LockView, Overview, RepositoryRow
    from tui.app import KubeferryApp

JOB_COLUMNS = (
    Column("NAME", 18),
    Column("SYNC", 9),
    Column("HEALTH", 11),
    Column("LAST RUN", 15),
    Column("NEXT DUE", 9),
    Column("RPO", 6),
    Column("NAMESPACE", 16),
    Column("SOURCE -> DESTINATION", 24),
    Column("MODE", 9),
    Column("REPOSITORY", 14),
    Column("MESSAGE", 60),
)
CLUSTER_COLUMNS = (
    Column("NAME", 14),
    Column("ROLE", 10),
    Column("REACHABILITY", 12),
    Column("VERSION", 9),
    Column("PERMS", 7),
    Column("PROTECTED", 9),
    Column("REFRESHED", 9),
    Column("CONTEXT", 16),
    Column("MESSAGE", 60),
)
REPOSITORY_COLUMNS = (
    Column("NAME", 14),
    Column("KIND", 10),
    Column("AVAILABILITY", 12),
    Column("SIZE", 10),
    Column("SNAPS", 5),
    Column("ENCRYPTED", 9),
    Column("LOCATION", 40),
    Column("MESSAGE", 60),
)
_STYLE = {
    "Synced": "good",
    "Healthy": "good",
    "Available": "good",
    "Reachable": "good",
    "ok": "good",
    "OutOfSync": "warn",
    "Progressing": "warn",
    "Unknown": "muted",
    "Missing": "warn",
    "Degraded": "bad",
    "Unavailable": "bad",
    "Unreachable": "bad",
    "MISSING": "bad",
    "yes": "bad",
}
_SHORT_PHASE = {
    "Completed": "ok",
    "PartiallyFailed": "partial",
    "Failed": "failed",
    "Interrupted": "interrupted",
    "InProgress": "running",
    "New": "new",
}
SECTIONS = ("jobs", "clusters", "repositories")


def _styler(columns: tuple[int, ...]) -> CellStyler:
    def style(index: int, text: str) -> str | None:
        if index not in columns:
            return None
        word = text.split(" ", 1)[0]
        return _STYLE.get(word)

    return style


def job_cells(job: JobRow, now: datetime) -> tuple[str, ...]:
    if job.last_run_phase is None:
        last = "never"
    else:
        phase = _SHORT_PHASE.get(job.last_run_phase, job.last_run_phase)
        age = _format.duration((now - job.last_run_at).total_seconds()) if job.last_run_at else ""
        last = f"{phase} {age}".strip()
    rpo = _format.duration(job.rpo_seconds) if job.rpo_seconds is not None else "-"
    due = _format.until(now, job.next_due) if job.backup_frequency else "on demand"
    namespace = (
        job.namespace
        if job.namespace == job.target_namespace
        else f"{job.namespace}->{job.target_namespace}"
    )
    return (
        job.name,
        job.sync,
        job.health,
        last,
        due,
        rpo,
        namespace,
        f"{job.source_cluster} -> {job.destination_cluster}",
        job.mode,
        job.repository,
        job.message,
    )


def lock_line(lock: LockView, now: datetime, *, read_only: bool) -> str:
    """One line for a held ledger lock: holder, age, stale or alive, what to do."""
    age = _format.duration(lock.age_seconds(now))
    if lock.stale:
        state = "STALE (process gone)"
    elif lock.on_this_host:
        state = "holder alive"
    else:
        state = "holder on another host"
    hint = "" if read_only else " · :unlock"
    holder = f"{lock.user}@{lock.host} pid {lock.pid}"
    return f"LOCKED: {lock.operation} by {holder}, {age} · {state}{hint}"


def job_haystack(job: JobRow) -> str:
    return "\x00".join(
        (
            job.name,
            job.namespace,
            job.target_namespace,
            job.source_cluster,
            job.destination_cluster,
            job.sync,
            job.health,
        )
    ).lower()


def cluster_cells(cluster: ClusterRow, now: datetime) -> tuple[str, ...]:
    perms = {True: "ok", False: "MISSING", None: "?"}[cluster.permissions_ok]
    refreshed = (
        _format.duration((now - cluster.last_refresh).total_seconds())
        if cluster.last_refresh
        else "never"
    )
    return (
        cluster.name,
        cluster.role or "-",
        cluster.reachability,
        cluster.version or "-",
        perms,
        "yes" if cluster.protected else "",
        refreshed,
        cluster.context or "-",
        cluster.message,
    )


def repository_cells(repository: RepositoryRow) -> tuple[str, ...]:
    return (
        repository.name,
        repository.kind or "-",
        repository.availability,
        _format.size(repository.size_bytes),
        str(repository.snapshot_count),
        "yes" if repository.encrypted else "no",
        repository.location or "-",
        repository.message,
    )


class OverviewScreen(Screen[None]):
    """The home screen: everything kubeferry knows, without touching the network."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("d", "describe", "Describe"),
        Binding("1", "section('jobs')", "Jobs"),
        Binding("2", "section('clusters')", "Clusters"),
        Binding("3", "section('repositories')", "Repos"),
        Binding("p", "open('plan')", "Plan"),
        Binding("h", "open('history')", "History"),
        Binding("s", "snapshots", "Snapshots"),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="overview")
        self.overview: Overview | None = None
        self.filter_text = ""
        self._job_rows: list[tuple[str, ...]] = []
        self._job_keys: list[str] = []
        self._haystacks: list[str] = []

    @property
    def kubeferry(self) -> KubeferryApp:
        from tui.app import KubeferryApp

        assert isinstance(self.app, KubeferryApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static("reading inventory and ledger…", id="overview-summary", markup=False)
        yield Static("", id="overview-lock", classes="-empty", markup=False)
        yield Static("", id="overview-problems", classes="-empty", markup=False)
        with TabbedContent(id="overview-tabs", initial="tab-jobs"):
            with TabPane("Jobs [1]", id="tab-jobs"):
                yield VirtualTable(
                    JOB_COLUMNS, styler=_styler((1, 2)), empty_text="loading…", id="jobs"
                )
            with TabPane("Clusters [2]", id="tab-clusters"):
                yield VirtualTable(
                    CLUSTER_COLUMNS,
                    styler=_styler((2, 4, 5)),
                    empty_text="loading…",
                    id="clusters",
                )
            with TabPane("Repositories [3]", id="tab-repositories"):
                yield VirtualTable(
                    REPOSITORY_COLUMNS,
                    styler=_styler((2,)),
                    empty_text="loading…",
                    id="repositories",
                )
        yield Input(
            placeholder="filter jobs: name, namespace, cluster, sync, health", id="jobs-filter"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#jobs", VirtualTable).focus()
        overview = self.kubeferry.overview
        if overview is not None:
            self.show_overview(overview)
        if self.kubeferry.overview_error is not None:  # it failed before this screen was up
            self.show_failure(self.kubeferry.overview_error)
        self.show_lock(self.kubeferry.lock)

    # -- data --------------------------------------------------------------------------------

    def show_overview(self, overview: Overview) -> None:
        """Render a fresh read model (called by the app on every reload)."""
        self.overview = overview
        now = overview.generated_at
        self._job_rows = [job_cells(job, now) for job in overview.jobs]
        self._job_keys = [job.name for job in overview.jobs]
        self._haystacks = [job_haystack(job) for job in overview.jobs]
        self._apply_filter()
        clusters = self.query_one("#clusters", VirtualTable)
        clusters.empty_text = "no clusters in the inventory"
        clusters.set_rows(
            [cluster_cells(c, now) for c in overview.clusters],
            [c.name for c in overview.clusters],
        )
        repositories = self.query_one("#repositories", VirtualTable)
        repositories.empty_text = "no repositories in the inventory"
        repositories.set_rows(
            [repository_cells(r) for r in overview.repositories],
            [r.name for r in overview.repositories],
        )
        problems = self.query_one("#overview-problems", Static)
        if overview.problems:
            shown = list(overview.problems[:2])
            if len(overview.problems) > 2:
                shown.append(f"… and {len(overview.problems) - 2} more (kubeferry validate)")
            problems.update("\n".join(f"! {p}" for p in shown))
            problems.remove_class("-empty")
        else:
            problems.update("")
            problems.add_class("-empty")

    def show_lock(self, lock: LockView | None) -> None:
        """Show (or hide) who holds the ledger lock."""
        line = self.query_one("#overview-lock", Static)
        if lock is None:
            line.update("")
            line.add_class("-empty")
            return
        line.update(lock_line(lock, self.kubeferry.now(), read_only=self.kubeferry.read_only))
        line.set_class(lock.stale, "-stale")
        line.remove_class("-empty")

    def show_failure(self, error: str) -> None:
        self.query_one("#overview-summary", Static).update(f"cannot read: {error}")

    def _summary(self, shown: int) -> str:
        overview = self.overview
        if overview is None:
            return "reading inventory and ledger…"
        sync = Counter(job.sync for job in overview.jobs)
        health = Counter(job.health for job in overview.jobs)
        total = len(overview.jobs)
        jobs = f"{total} jobs" if shown == total else f"{shown}/{total} jobs"
        parts = [jobs]
        parts += [f"{sync[k]} {k}" for k in ("OutOfSync", "Unknown") if sync[k]]
        parts += [f"{health[k]} {k}" for k in ("Degraded", "Progressing", "Missing") if health[k]]
        parts.append(f"serial {overview.ledger_serial}")
        parts.append(f"{overview.generated_at:%H:%M:%S}")
        if self.filter_text:
            parts.insert(1, f"filter '{self.filter_text}'")
        return " · ".join(parts)

    # -- filter ----------------------------------------------------------------------------

    def _apply_filter(self) -> None:
        needle = self.filter_text.lower()
        table = self.query_one("#jobs", VirtualTable)
        if needle:
            matches = [i for i, hay in enumerate(self._haystacks) if needle in hay]
            table.empty_text = f"no job matches '{self.filter_text}'"
            table.set_rows(
                [self._job_rows[i] for i in matches], [self._job_keys[i] for i in matches]
            )
        else:
            table.empty_text = "no jobs in the inventory or the ledger"
            table.set_rows(self._job_rows, self._job_keys)
        self.query_one("#overview-summary", Static).update(self._summary(table.row_count))

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._apply_filter()

    @on(Input.Changed, "#jobs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.set_filter(event.value)

    @on(Input.Submitted, "#jobs-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#jobs", VirtualTable).focus()
        if not self.filter_text:
            self.query_one("#jobs-filter", Input).remove_class("-visible")

    def action_filter(self) -> None:
        self.show_section("jobs")
        box = self.query_one("#jobs-filter", Input)
        box.add_class("-visible")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        if not box.has_class("-visible") and not self.filter_text:
            return
        box.value = ""
        box.remove_class("-visible")
        self.set_filter("")
        self.query_one("#jobs", VirtualTable).focus()

    # -- navigation --------------------------------------------------------------------------

    def show_section(self, section: str) -> None:
        if section not in SECTIONS:
            return
        self.query_one(TabbedContent).active = f"tab-{section}"
        self.query_one(f"#{section}", VirtualTable).focus()

    def action_section(self, section: str) -> None:
        self.show_section(section)

    @property
    def active_section(self) -> str:
        return self.query_one(TabbedContent).active.removeprefix("tab-")

    def selected_address(self) -> str | None:
        section = self.active_section
        key = self.query_one(f"#{section}", VirtualTable).cursor_key
        if key is None:
            return None
        kind = {
            "jobs": "ReplicationJob",
            "clusters": "Cluster",
            "repositories": "ReplicationRepository",
        }[section]
        return f"{kind}/{key}"

    def action_describe(self) -> None:
        address = self.selected_address()
        if address is None:
            self.notify("nothing selected", severity="warning")
            return
        self.kubeferry.describe(address)

    @on(VirtualTable.Selected)
    def _row_selected(self, event: VirtualTable.Selected) -> None:
        self.action_describe()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        section = (event.pane.id or "").removeprefix("tab-")
        if section in SECTIONS:
            self.query_one(f"#{section}", VirtualTable).focus()

    def action_open(self, view: str) -> None:
        self.kubeferry.run_command(view)

    def action_snapshots(self) -> None:
        job = self.query_one("#jobs", VirtualTable).cursor_key
        if self.active_section == "jobs" and job is not None:
            self.kubeferry.open_view("snapshots", job)
        else:
            self.kubeferry.open_view("snapshots")

    def action_reload(self) -> None:
        self.kubeferry.reload_overview()
