"""The snapshots screen: the repository catalog per job / namespace; restore one.

``list_snapshots`` reads the repositories (the truth: only complete snapshots), so it runs
in a thread worker. ``r`` on a snapshot opens the restore form (cluster, namespace, policy,
ignore pre-checks), then runs the restore's pre-checks without restoring
(``precheck_restore``) and shows their report; only then comes the confirmation (typing a
word for ``recreate`` or a protected cluster) and the restore itself, on the run screen.

``x`` deletes the selected snapshot after the word ``delete`` is typed (``delete_snapshot``
in a worker, then the catalog reloads); the confirmation says when it is its job's newest
snapshot, which retention never deletes. ``d`` describes it. Restore and delete are hidden
and refused with ``--read-only``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from reconciler.errors import KubeferryError
from reconciler.plan import COMPATIBILITY_STYLES
from reconciler.reconcile import (
    POLICIES,
    DeletedSnapshot,
    RestorePrecheck,
    SnapshotInfo,
    delete_snapshot,
    list_snapshots,
    precheck_restore,
)
from tui.screens.run import RestoreRequest, RunScreen
from tui.widgets.banner import Banner
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.data_table import SettledDataTable
from tui.widgets.host import full_time, human_bytes, is_read_only, short_time, workspace_of

Policy = Literal["none", "update", "recreate"]
_COLUMNS = ("Job", "Namespace", "Created", "Items", "Size", "Phase", "Snapshot")
_PHASE_STYLES = {"Completed": "green", "PartiallyFailed": "yellow"}
_NAMESPACE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def _error_line(error: BaseException) -> str:
    if isinstance(error, KubeferryError):
        hint = getattr(error, "hint", None)
        return f"{error} ({hint})" if hint else str(error)
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class RestoreDefaults:
    """Where a job's snapshots restore to unless told otherwise (from the inventory)."""

    cluster: str
    namespace: str
    policy: Policy


@dataclass(frozen=True)
class Catalog:
    snapshots: list[SnapshotInfo]
    clusters: list[str]
    protected: frozenset[str]
    defaults: dict[str, RestoreDefaults] = field(default_factory=dict)


def load_catalog(workspace: Any, job: str | None = None) -> Catalog:
    """Snapshots (newest first), the inventory's clusters and each job's restore defaults."""
    inventory = workspace.load_inventory()
    defaults: dict[str, RestoreDefaults] = {}
    for name, declared in inventory.jobs.items():
        replication_slice = inventory.slice_of(declared)
        defaults[name] = RestoreDefaults(
            cluster=replication_slice.spec.destination_cluster,
            namespace=declared.spec.destination_namespace,
            policy=declared.spec.existing_resource_policy,
        )
    return Catalog(
        snapshots=list_snapshots(workspace, job=job),
        clusters=sorted(inventory.clusters),
        protected=frozenset(n for n, c in inventory.clusters.items() if c.spec.protected),
        defaults=defaults,
    )


def snapshot_matches(snapshot: SnapshotInfo, text: str) -> bool:
    """The filter: every word occurs in the job, namespace, id, repository or source."""
    haystack = " ".join(
        (
            snapshot.job,
            snapshot.namespace,
            snapshot.id,
            snapshot.repository,
            snapshot.source_cluster,
        )
    ).lower()
    return all(word in haystack for word in text.lower().split())


def restore_word(policy: str, cluster: str, protected: frozenset[str]) -> str | None:
    """What the user must type: ``recreate`` for that policy, ``restore`` onto a protected
    cluster, nothing otherwise (Confirm / y is enough)."""
    if policy == "recreate":
        return "recreate"
    if cluster in protected:
        return "restore"
    return None


class CatalogLoaded(Message):
    def __init__(self, catalog: Catalog | None, error: str | None) -> None:
        super().__init__()
        self.catalog = catalog
        self.error = error


def is_newest_of_job(snapshot: SnapshotInfo, snapshots: list[SnapshotInfo]) -> bool:
    """Whether no snapshot of the same job in the same repository is newer."""
    siblings = [
        s for s in snapshots if s.job == snapshot.job and s.repository == snapshot.repository
    ]
    newest = max(siblings, key=lambda s: (s.created_at, s.id), default=None)
    return newest is not None and newest.id == snapshot.id


def delete_body(snapshot: SnapshotInfo, newest: bool) -> str:
    body = (
        f"Delete snapshot {snapshot.id} (job {snapshot.job})\n"
        f"from repository {snapshot.repository}. It cannot be restored afterwards;\n"
        "its volume data is freed by `kubeferry repo prune`."
    )
    if newest:
        body += (
            f"\n\nThis is the NEWEST snapshot of job {snapshot.job}: retention never deletes "
            "it. Without it the job's last restore point is an older snapshot, or none."
        )
    return body


class SnapshotDeleted(Message):
    def __init__(self, deleted: DeletedSnapshot | None, error: str | None) -> None:
        super().__init__()
        self.deleted = deleted
        self.error = error


class SnapshotsScreen(Screen[None]):
    """Complete snapshots, newest first, filtered by job / namespace; ``r`` restores one,
    ``x`` deletes one (typing ``delete``), ``d`` describes one."""

    AUTO_FOCUS = "#snapshots-table"
    BINDINGS = [
        Binding("r", "restore", "Restore"),
        Binding("x", "delete", "Delete"),
        Binding("d", "describe", "Describe"),
        Binding("/", "focus_filter", "Filter"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, job: str | None = None) -> None:
        super().__init__()
        self.job = job
        self.catalog: Catalog | None = None
        self.shown: list[SnapshotInfo] = []

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Input(
            self.job or "",
            placeholder="filter: job, namespace, id...",
            id="snapshots-filter",
            compact=True,
        )
        table: DataTable[Any] = SettledDataTable(
            id="snapshots-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("", id="snapshots-selected", markup=False)
        yield Static("Reading the repositories...", id="snapshots-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Snapshots"
        table = self.query_one("#snapshots-table", DataTable)
        table.add_columns(*_COLUMNS)
        table.focus()
        self.action_reload()

    # -- loading ------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.query_one("#snapshots-table", DataTable).loading = True
        self._load()

    @work(thread=True, exclusive=True, group="snapshots")
    def _load(self) -> None:
        try:
            catalog = load_catalog(workspace_of(self))
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(CatalogLoaded(None, _error_line(error)))
            return
        self.post_message(CatalogLoaded(catalog, None))

    @on(CatalogLoaded)
    def _loaded(self, message: CatalogLoaded) -> None:
        table = self.query_one("#snapshots-table", DataTable)
        table.loading = False
        if message.catalog is None:
            self.query_one("#snapshots-status", Static).update(
                Text(f"Snapshots: {message.error}", style="red")
            )
            return
        self.catalog = message.catalog
        self._fill()

    def _fill(self) -> None:
        if self.catalog is None:
            return
        text = self.query_one("#snapshots-filter", Input).value
        self.shown = [s for s in self.catalog.snapshots if snapshot_matches(s, text)]
        table = self.query_one("#snapshots-table", DataTable)
        table.clear()
        for snapshot in self.shown:
            table.add_row(
                snapshot.job,
                snapshot.namespace,
                short_time(snapshot.created_at),
                "" if snapshot.items is None else str(snapshot.items),
                human_bytes(snapshot.size_bytes),
                Text(snapshot.phase, style=_PHASE_STYLES.get(snapshot.phase, "yellow")),
                snapshot.id,
                key=snapshot.id,
            )
        total = len(self.catalog.snapshots)
        shown = f"{len(self.shown)} of {total}" if text.strip() else f"{total}"
        hint = "  d: describe" if is_read_only(self) else "  r: restore  x: delete  d: describe"
        self.query_one("#snapshots-status", Static).update(f"{shown} snapshot(s){hint}")
        self._show_selected()

    @on(Input.Changed, "#snapshots-filter")
    def _filter_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#snapshots-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#snapshots-table", DataTable).focus()

    @on(DataTable.RowHighlighted, "#snapshots-table")
    def _highlighted(self) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        snapshot = self.selected
        line = self.query_one("#snapshots-selected", Static)
        if snapshot is None:
            line.update("")
            return
        line.update(
            f"{snapshot.id}  {snapshot.source_cluster}/{snapshot.namespace} "
            f"in {snapshot.repository}, {full_time(snapshot.created_at)}"
        )

    @property
    def selected(self) -> SnapshotInfo | None:
        table = self.query_one("#snapshots-table", DataTable)
        if table.row_count == 0 or not self.shown:
            return None
        row = table.cursor_coordinate.row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    # -- restore ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("restore", "delete"):
            if is_read_only(self):
                return False
            return True if self.selected is not None else None
        if action == "describe":
            return True if self.selected is not None else None
        return True

    # -- describe and delete ----------------------------------------------------------------

    def action_describe(self) -> None:
        snapshot = self.selected
        describe = getattr(self.app, "describe", None)
        if snapshot is None or describe is None:
            self.notify("no snapshot selected", severity="warning")
            return
        describe(f"Snapshot/{snapshot.id}")

    def action_delete(self) -> None:
        if is_read_only(self):
            self.notify("read-only: delete is disabled", severity="warning")
            return
        snapshot, catalog = self.selected, self.catalog
        if snapshot is None or catalog is None:
            self.notify("no snapshot selected", severity="warning")
            return
        newest = is_newest_of_job(snapshot, catalog.snapshots)

        def confirmed(answer: bool | None) -> None:
            if answer and not is_read_only(self):
                self._delete(snapshot.id, newest)

        self.app.push_screen(
            ConfirmScreen("Delete this snapshot?", delete_body(snapshot, newest), "delete"),
            confirmed,
        )

    @work(thread=True, exclusive=True, group="snapshot-delete")
    def _delete(self, snapshot_id: str, force: bool) -> None:
        try:
            deleted = delete_snapshot(
                workspace_of(self), snapshot_id, force=force, origin="the TUI"
            )
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(SnapshotDeleted(None, _error_line(error)))
            return
        self.post_message(SnapshotDeleted(deleted, None))

    @on(SnapshotDeleted)
    def _deleted(self, message: SnapshotDeleted) -> None:
        if message.deleted is None:
            self.notify(message.error or "delete failed", title="Not deleted", severity="error")
            return
        self.notify(
            f"Deleted snapshot {message.deleted.snapshot_id} from {message.deleted.repository}"
            " (free its volume data with `kubeferry repo prune`)"
        )
        self.action_reload()

    def action_restore(self) -> None:
        if is_read_only(self):
            self.notify("read-only: restore is disabled", severity="warning")
            return
        snapshot, catalog = self.selected, self.catalog
        if snapshot is None or catalog is None:
            self.notify("no snapshot selected", severity="warning")
            return
        defaults = catalog.defaults.get(snapshot.job) or RestoreDefaults(
            cluster=snapshot.source_cluster, namespace=snapshot.namespace, policy="none"
        )

        def formed(request: RestoreRequest | None) -> None:
            if request is not None:
                self.app.push_screen(PrecheckScreen(request), checked)

        def checked(result: RestorePrecheck | None) -> None:
            if result is None:
                return
            request = RestoreRequest(
                snapshot_id=result.snapshot_id,
                job=result.job,
                cluster=result.cluster,
                namespace=result.namespace,
                policy=cast(Policy, result.policy),
                ignore_prechecks=result.pre_check_flag == "ignorePrechecks",
            )
            word = restore_word(result.policy, result.cluster, catalog.protected)
            body = (
                f"Restore snapshot {result.snapshot_id} (job {result.job})\n"
                f"onto {result.cluster}/{result.namespace} with policy {result.policy}.\n"
                f"Pre-checks: {result.report.overall}."
            )
            if result.cluster in catalog.protected:
                body += f"\n\n{result.cluster} is PROTECTED (production)."
            if result.policy == "recreate":
                body += "\nrecreate deletes objects that exist there and creates them again."

            def confirmed(answer: bool | None) -> None:
                if answer:
                    self.app.push_screen(RunScreen(restore=request))

            self.app.push_screen(ConfirmScreen("Restore this snapshot?", body, word), confirmed)

        self.app.push_screen(
            RestoreFormScreen(snapshot, catalog.clusters, catalog.protected, defaults), formed
        )

    def action_focus_filter(self) -> None:
        self.query_one("#snapshots-filter", Input).focus()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#snapshots-table", DataTable).focus()
            return
        self.dismiss(None)


# -- the restore form -------------------------------------------------------------------------


class RestoreFormScreen(ModalScreen[RestoreRequest | None]):
    """Cluster, namespace, policy and "ignore pre-checks" for one snapshot's restore."""

    AUTO_FOCUS = "#restore-cluster"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        snapshot: SnapshotInfo,
        clusters: list[str],
        protected: frozenset[str],
        defaults: RestoreDefaults,
    ) -> None:
        super().__init__(classes="restore-form")
        self.snapshot = snapshot
        self.clusters = clusters
        self.protected = protected
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        options = [
            (f"{name}  PROTECTED" if name in self.protected else name, name)
            for name in self.clusters
        ]
        cluster = self.defaults.cluster if self.defaults.cluster in self.clusters else Select.NULL
        with Vertical(id="restore-dialog"):
            yield Static(f"Restore {self.snapshot.id}", id="restore-title", markup=False)
            yield Static(
                f"job {self.snapshot.job}, from {self.snapshot.source_cluster}/"
                f"{self.snapshot.namespace}",
                id="restore-source",
                markup=False,
            )
            with Horizontal(classes="restore-field"):
                yield Label("Cluster   ")
                yield Select(
                    options, value=cluster, allow_blank=False, id="restore-cluster", compact=True
                )
            with Horizontal(classes="restore-field"):
                yield Label("Namespace ")
                yield Input(
                    self.defaults.namespace,
                    id="restore-namespace",
                    restrict=f"[{_NAMESPACE_CHARS}]*",
                    max_length=63,
                    compact=True,
                )
            with Horizontal(classes="restore-field restore-policy"):
                yield Label("Policy    ")
                with RadioSet(id="restore-policy", compact=True):
                    for policy in POLICIES:
                        yield RadioButton(
                            policy,
                            value=policy == self.defaults.policy,
                            id=f"policy-{policy}",
                            compact=True,
                        )
            yield Checkbox("Ignore pre-checks", id="restore-ignore", compact=True)
            yield Static("", id="restore-error", markup=False)
            with Horizontal(id="restore-buttons"):
                yield Button("Pre-check", variant="primary", id="restore-next", compact=True)
                yield Button("Cancel", id="restore-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#restore-cluster", Select).focus()

    @property
    def policy(self) -> Policy:
        pressed = self.query_one("#restore-policy", RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return self.defaults.policy
        return cast(Policy, pressed.id.removeprefix("policy-"))

    def request(self) -> RestoreRequest | None:
        cluster = self.query_one("#restore-cluster", Select).value
        namespace = self.query_one("#restore-namespace", Input).value.strip()
        error = self.query_one("#restore-error", Static)
        if not isinstance(cluster, str):
            error.update(Text("choose a cluster", style="red"))
            return None
        if not namespace or namespace.startswith("-") or namespace.endswith("-"):
            error.update(Text("not a valid namespace name", style="red"))
            return None
        return RestoreRequest(
            snapshot_id=self.snapshot.id,
            job=self.snapshot.job,
            cluster=cluster,
            namespace=namespace,
            policy=self.policy,
            ignore_prechecks=self.query_one("#restore-ignore", Checkbox).value,
        )

    @on(Button.Pressed, "#restore-next")
    @on(Input.Submitted, "#restore-namespace")
    def _next(self) -> None:
        request = self.request()
        if request is not None:
            self.dismiss(request)

    @on(Button.Pressed, "#restore-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- the pre-check report ---------------------------------------------------------------------


class PrecheckDone(Message):
    def __init__(self, result: RestorePrecheck | None, error: str | None) -> None:
        super().__init__()
        self.result = result
        self.error = error


def render_precheck(result: RestorePrecheck) -> Text:
    text = Text()
    text.append("Pre-checks: ", style="bold")
    overall = result.report.overall
    text.append(overall + "\n", style=COMPATIBILITY_STYLES.get(overall, ""))
    text.append(
        f"snapshot {result.snapshot_id} -> {result.cluster}/{result.namespace}, "
        f"policy {result.policy}, {result.pre_check_flag}\n\n",
        style="dim",
    )
    for check in result.report.checks:
        text.append(f"{check.status:<15}", style=COMPATIBILITY_STYLES.get(check.status, ""))
        text.append(f"{check.name}: ", style="bold")
        text.append(f"{check.message}\n")
    if result.would_stop:
        text.append(
            "\nThe pre-checks would stop this restore (not_compatible). Fix the destination, "
            "or go back and tick 'Ignore pre-checks' to restore anyway.",
            style="bold red",
        )
    elif overall == "not_compatible":
        text.append("\nnot_compatible, ignored as asked: the restore will proceed.", style="yellow")
    return text


class PrecheckScreen(ModalScreen[RestorePrecheck | None]):
    """Runs the restore's pre-checks (nothing is written) and shows the report."""

    AUTO_FOCUS = "#precheck-cancel"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, request: RestoreRequest) -> None:
        super().__init__(classes="precheck")
        self.request = request
        self.result: RestorePrecheck | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="precheck-dialog"):
            yield Static(
                f"Pre-checks for {self.request.snapshot_id}", id="precheck-title", markup=False
            )
            with VerticalScroll(id="precheck-box"):
                yield Static("Running the pre-checks...", id="precheck-report", markup=False)
            with Horizontal(id="precheck-buttons"):
                yield Button(
                    "Restore...",
                    variant="error",
                    id="precheck-restore",
                    disabled=True,
                    compact=True,
                )
                yield Button("Cancel", id="precheck-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#precheck-box", VerticalScroll).loading = True
        self.query_one("#precheck-cancel", Button).focus()
        self._run()

    @work(thread=True, exclusive=True, group="precheck")
    def _run(self) -> None:
        request = self.request
        try:
            result = precheck_restore(
                workspace_of(self),
                request.snapshot_id,
                cluster=request.cluster,
                to_namespace=request.namespace,
                policy=request.policy,
                ignore_prechecks=request.ignore_prechecks,
            )
        except Exception as error:  # noqa: BLE001 - shown on screen
            self.post_message(PrecheckDone(None, _error_line(error)))
            return
        self.post_message(PrecheckDone(result, None))

    @on(PrecheckDone)
    def _done(self, message: PrecheckDone) -> None:
        self.query_one("#precheck-box", VerticalScroll).loading = False
        report = self.query_one("#precheck-report", Static)
        if message.result is None:
            report.update(Text(f"Pre-checks failed to run: {message.error}", style="red"))
            return
        self.result = message.result
        report.update(render_precheck(message.result))
        button = self.query_one("#precheck-restore", Button)
        button.disabled = message.result.would_stop
        if not button.disabled:
            button.focus()

    @on(Button.Pressed, "#precheck-restore")
    def _restore(self) -> None:
        if self.result is not None and not self.result.would_stop:
            self.dismiss(self.result)

    @on(Button.Pressed, "#precheck-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
