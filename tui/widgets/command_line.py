"""The `:` command line (k9s style): one input docked at the bottom of the screen."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input


class CommandLineScreen(ModalScreen[str | None]):
    """Dismisses with the command typed (without the ':'), or None on Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, commands: list[str]) -> None:
        super().__init__(classes="command-line")
        self.commands = commands

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder=":" + " :".join(self.commands),
            suggester=SuggestFromList(self.commands, case_sensitive=False),
            id="command-input",
        )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip().lstrip(":") or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
