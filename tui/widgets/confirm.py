"""ConfirmScreen: the one explicit confirmation every destructive action goes through.

``ConfirmScreen(title, body, confirm_word=None)`` is a modal that dismisses with True only
on an explicit yes. Focus starts on Cancel, so a stray Enter never confirms. Without
``confirm_word``, ``y`` or the Confirm button confirms; with it (protected clusters,
``recreate`` restores) the user must type the word exactly, and Confirm stays disabled until
they have. ``n`` / Esc / Cancel dismiss with False. Text is shown as typed, never as markup.

Usage from a screen::

    def action_apply(self) -> None:
        def done(confirmed: bool | None) -> None:
            if confirmed:
                ...
        self.app.push_screen(ConfirmScreen("Apply 3 actions?", body, "worker-2"), done)
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask for an explicit yes; dismisses with True (confirmed) or False."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "No", show=False),
        Binding("y", "confirm_key", "Yes", show=False),
    ]

    def __init__(self, title: str, body: str, confirm_word: str | None = None) -> None:
        super().__init__(classes="confirm")
        self.title_text = title
        self.body = body
        self.confirm_word = confirm_word or None

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self.title_text, id="confirm-title", markup=False)
            yield Static(self.body, id="confirm-body", markup=False)
            if self.confirm_word is not None:
                yield Static(
                    f"Type {self.confirm_word} to confirm:", id="confirm-prompt", markup=False
                )
                yield Input(placeholder=self.confirm_word, id="confirm-input")
            with Horizontal(id="confirm-buttons"):
                yield Button(
                    "Confirm",
                    variant="error",
                    id="confirm",
                    disabled=self.confirm_word is not None,
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.confirm_word is not None:
            self.query_one("#confirm-input", Input).focus()
        else:
            self.query_one("#cancel", Button).focus()

    @property
    def word_matches(self) -> bool:
        if self.confirm_word is None:
            return True
        return self.query_one("#confirm-input", Input).value == self.confirm_word

    @on(Input.Changed, "#confirm-input")
    def _typed(self) -> None:
        self.query_one("#confirm", Button).disabled = not self.word_matches

    @on(Input.Submitted, "#confirm-input")
    def _submitted(self) -> None:
        if self.word_matches:
            self.dismiss(True)
        else:
            self.notify(f"type {self.confirm_word} exactly to confirm", severity="warning")

    @on(Button.Pressed, "#confirm")
    def _confirm_pressed(self) -> None:
        if self.word_matches:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(False)

    def action_confirm_key(self) -> None:
        # with a confirm word, "y" is just a letter typed into the input (handled there)
        if self.confirm_word is None:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
