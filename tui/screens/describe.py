"""DescribeScreen (`d`): the inventory spec, the ledger's observed state, the last runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from tui import _format
from tui._messages import DescriptionFailed, DescriptionLoaded, LedgerChanged
from tui.widgets.banner import Banner

if TYPE_CHECKING:
    from reconciler.reconcile import Description, RunRow
    from tui.app import KubeferryApp


_MAX_RUNS = 10
_STATUS_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "Cluster": (
        ("reachability", "Reachability"),
        ("observed_version", "Version"),
        ("last_refresh", "Refreshed"),
        ("message", "Message"),
    ),
    "ReplicationRepository": (
        ("availability", "Availability"),
        ("snapshots", "Snapshots"),
        ("sizeBytes", "Size"),
        ("last_validation", "Validated"),
        ("message", "Message"),
    ),
    "ReplicationSlice": (("last_applied", "Applied"), ("message", "Message")),
    "ApplicationSlice": (("last_applied", "Applied"),),
    "Snapshot": (
        ("job", "Job"),
        ("created_at", "Created"),
        ("size_bytes", "Size"),
        ("complete", "Complete"),
    ),
}


def runs_text(runs: tuple[RunRow, ...], now: Any) -> str:
    if not runs:
        return "  no runs recorded"
    lines = [f"  {'ID':>5} {'KIND':<8} {'JOB':<18} {'PHASE':<15} {'AGE':<6} ITEMS  ISSUES"]
    for run in runs[:_MAX_RUNS]:
        items = f"{run.items_done}/{run.total_items}" if run.total_items else str(run.items_done)
        issues = f"{run.warning_count}w {run.error_count}e"
        lines.append(
            f"  {run.id:>5} {run.kind:<8} {run.job[:18]:<18} {run.phase:<15} "
            f"{_format.duration((now - run.started_at).total_seconds()):<6} {items:<6} {issues}"
        )
        if run.message:
            lines.append(f"        {run.message}")
    if len(runs) > _MAX_RUNS:
        lines.append(f"  … {len(runs) - _MAX_RUNS} older (:history)")
    return "\n".join(lines)


def _value(key: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if key in ("sizeBytes", "size_bytes") and isinstance(value, int):
        return _format.size(value)
    return str(value)


def status_text(description: Description) -> str:
    """The one-glance lines on top: Sync and Health with reasons (jobs), else key facts."""
    observed = description.observed
    status = observed.get("status")
    if isinstance(status, dict):
        lines = [
            f"Sync    {status.get('sync')}  {status.get('syncReason') or ''}".rstrip(),
            f"Health  {status.get('health')}  {status.get('healthReason') or ''}".rstrip(),
        ]
        if status.get("nextDue"):
            lines.append(f"Due     {status['nextDue']}")
        if status.get("lastGoodSnapshotAt"):
            lines.append(f"Last good snapshot  {status['lastGoodSnapshotAt']}")
        return "\n".join(lines)
    if not observed:
        return "not in the ledger yet (never applied)"
    kind = description.address.partition("/")[0]
    keys = _STATUS_KEYS.get(kind, ())
    return "\n".join(f"{label:<13} {_value(key, observed.get(key))}" for key, label in keys)


def spec_text(spec_yaml: str) -> tuple[str, str]:
    """(where it is declared, the YAML indented): the source comment becomes a line of its own."""
    lines = spec_yaml.rstrip().splitlines()
    where = ""
    if lines and lines[0].startswith("# ") and not lines[0].startswith("# not"):
        where = lines.pop(0)[2:]
    return where, "\n".join(f"  {line}" for line in lines)


def observed_text(observed: dict[str, Any]) -> str:
    observed = {key: value for key, value in observed.items() if key != "status"}
    if not observed:
        return "  not in the ledger (never applied)"
    text = yaml.safe_dump(observed, sort_keys=True, default_flow_style=False)
    return "\n".join(f"  {line}" for line in text.splitlines())


def _display(where: str) -> str:
    """A source location relative to the working directory when it is below it."""
    cwd = f"{Path.cwd()}/"
    return where[len(cwd) :] if where.startswith(cwd) else where


class DescribeScreen(Screen[None]):
    """Everything about one object; reloads when the ledger changes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload"),
        Binding("s", "snapshots", "Snapshots"),
    ]

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.description: Description | None = None

    @property
    def kubeferry(self) -> KubeferryApp:
        from tui.app import KubeferryApp

        assert isinstance(self.app, KubeferryApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static(self.address, id="describe-title", markup=False)
        with VerticalScroll(id="describe-body"):
            yield Static("loading…", id="describe-status", markup=False)
            yield Static(
                "SPEC (inventory)", classes="section", id="describe-spec-title", markup=False
            )
            yield Static("", id="describe-spec", markup=False)
            yield Static("LAST RUNS", classes="section")
            yield Static("", id="describe-runs", markup=False)
            yield Static("OBSERVED (ledger)", classes="section")
            yield Static("", id="describe-observed", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#describe-body").focus()
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load(self) -> None:
        from reconciler.reconcile import describe

        app = self.kubeferry
        try:
            description = describe(app.workspace, self.address, now=app.now())
        except Exception as error:  # noqa: BLE001 - shown on the screen
            self.post_message(DescriptionFailed(self.address, str(error)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(DescriptionLoaded(description))

    def on_description_loaded(self, message: DescriptionLoaded) -> None:
        description = message.description
        self.description = description
        self.query_one("#describe-title", Static).update(description.address)
        self.query_one("#describe-status", Static).update(status_text(description))
        where, spec = spec_text(description.spec_yaml)
        title = f"SPEC (inventory: {_display(where)})" if where else "SPEC (inventory)"
        self.query_one("#describe-spec-title", Static).update(title)
        self.query_one("#describe-spec", Static).update(spec)
        self.query_one("#describe-observed", Static).update(observed_text(description.observed))
        self.query_one("#describe-runs", Static).update(
            runs_text(description.runs, self.kubeferry.now())
        )

    def on_description_failed(self, message: DescriptionFailed) -> None:
        status = self.query_one("#describe-status", Static)
        status.display = True
        status.update(f"cannot describe: {message.error}")

    def on_ledger_changed(self, message: LedgerChanged) -> None:
        self.action_reload()

    def action_snapshots(self) -> None:
        kind, _, name = self.address.partition("/")
        if kind == "ReplicationJob":
            self.kubeferry.open_view("snapshots", name)
        else:
            self.kubeferry.open_view("snapshots")
