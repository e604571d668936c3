"""HelpScreen (`?`): keys and `:` commands."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.widgets.banner import Banner

KEYS: tuple[tuple[str, str], ...] = (
    (":", "command line (Tab completes), e.g. :jobs :plan :history"),
    ("ctrl+p", "command palette (the same commands, searchable)"),
    ("?", "this help"),
    ("Esc", "back (close this screen, clear the filter)"),
    ("q", "quit"),
    ("/", "filter the jobs (name, namespace, cluster, sync, health)"),
    ("1 2 3", "overview: jobs, clusters, repositories"),
    ("d, Enter", "describe the selected row (history, snapshots: d)"),
    ("j k, arrows", "move; PgUp/PgDn, g/G first/last; left/right scroll"),
    ("p h s", "plan, history, snapshots of the selected job"),
    ("r", "reload (inventory and ledger; no network)"),
    ("x", "snapshots: delete the selected snapshot (type delete)"),
)
SAFETY: tuple[str, ...] = (
    "apply, restore and cancel always ask first; touching a protected cluster",
    "needs the word typed (apply, restore), so does policy recreate. Deleting",
    "a snapshot needs delete typed, :unlock needs unlock (it says whether the",
    "holder is alive). None is bound to ctrl+d or ctrl+k. With --read-only",
    "they are hidden and refused.",
)
STATUS: tuple[str, ...] = (
    "Sync     Synced | OutOfSync: never applied, spec changed, backup due,",
    "         no success yet, removed | Unknown: the inventory did not load",
    "Health   Healthy | Progressing: a run is in progress | Degraded: the last",
    "         run failed, partially failed or was interrupted | Missing: never",
    "         replicated, nothing restored at the destination",
    "RPO      age of the newest good snapshot",
    "Live     the overview follows the ledger: a cron `kubeferry reconcile`",
    "         shows up within seconds",
)


def help_text(commands: list[tuple[str, str]]) -> str:
    lines = ["KEYS"]
    lines += [f"  {key:<12} {what}" for key, what in KEYS]
    lines += ["", "COMMANDS"]
    lines += [f"  :{name:<20} {what}" for name, what in commands]
    lines += ["", "STATUS", *(f"  {line}" for line in STATUS)]
    lines += ["", "SAFETY", *(f"  {line}" for line in SAFETY)]
    return "\n".join(lines)


class HelpScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "close", "Close", key_display="Esc"),
    ]

    def compose(self) -> ComposeResult:
        from tui.app import COMMANDS

        commands = [(f"{c.name} {c.argument}".strip(), c.help) for c in COMMANDS]
        yield Banner()
        with VerticalScroll(id="help-body"):
            yield Static(help_text(commands), id="help-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss()
