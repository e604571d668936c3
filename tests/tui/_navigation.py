"""Waiting for the app to show a screen, typed, in Pilot tests."""

from __future__ import annotations

from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.screen import Screen

from ._pilot import wait_for

S = TypeVar("S", bound=Screen[Any])


async def wait_for_screen(pilot: Pilot[None], kind: type[S], timeout: float = 10) -> S:
    """Wait until the app shows a screen of ``kind``; returns that screen."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), timeout, kind.__name__)
    screen = pilot.app.screen
    assert isinstance(screen, kind)
    return screen
