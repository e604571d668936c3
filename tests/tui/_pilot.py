"""Helpers for Pilot tests of the kubeferry app (no network: inventory + ledger only)."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from reconciler.reconcile import Workspace
from tui.app import KubeferryApp

from ._data import NOW
from ._screen import screen_text


def make_app(workspace: Workspace, *, read_only: bool = False, poll: float = 0) -> KubeferryApp:
    return KubeferryApp(workspace, read_only=read_only, poll_interval=poll, clock=lambda: NOW)


async def wait_for(
    pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 10, what: str = ""
) -> None:
    waited = 0.0
    while not predicate():
        if waited > timeout:
            shown = screen_text(pilot.app)
            raise AssertionError(f"timed out waiting for {what or 'the screen'}:\n{shown}")
        await pilot.pause(0.05)
        waited += 0.05


async def wait_for_text(pilot: Pilot[None], text: str, timeout: float = 10) -> str:
    """Wait until ``text`` is on the terminal; returns the whole screen."""
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout, repr(text))
    return screen_text(pilot.app)
