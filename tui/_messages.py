"""Typed messages that workers post to the UI (the UI never blocks on I/O).

Workers run in threads and call ``reconciler`` APIs; they hand their results to the UI
thread as these messages (``post_message`` is thread-safe). Screens of other modules may
define their own messages next to the screen that handles them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # imported by the workers, after the first frame
    from reconciler.reconcile import Description, LockView, Overview


class OverviewLoaded(Message):
    """A fresh read model of inventory + ledger (posted by the overview worker)."""

    def __init__(self, overview: Overview) -> None:
        super().__init__()
        self.overview = overview


class OverviewFailed(Message):
    """The overview could not be read (e.g. the ledger file is damaged); one line."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class LockChanged(Message):
    """The ledger lock was taken, released or went stale (None: the ledger is not locked)."""

    def __init__(self, lock: LockView | None) -> None:
        super().__init__()
        self.lock = lock


class LedgerChanged(Message, bubble=False):
    """The ledger serial moved (another process, e.g. a cron ``reconcile``, wrote to it).

    The app posts one to every screen on the stack; it does not bubble back to the app.
    """

    def __init__(self, serial: int) -> None:
        super().__init__()
        self.serial = serial


class DescriptionLoaded(Message):
    """The describe view of one inventory object is ready."""

    def __init__(self, description: Description) -> None:
        super().__init__()
        self.description = description


class DescriptionFailed(Message):
    def __init__(self, address: str, error: str) -> None:
        super().__init__()
        self.address = address
        self.error = error


class UnlockAsked(Message):
    """``:unlock``: the lock as it is now (None: not locked), read just before asking."""

    def __init__(self, lock: LockView | None, error: str | None = None) -> None:
        super().__init__()
        self.lock = lock
        self.error = error


class UnlockDone(Message):
    """The ledger lock was released (``released``) or could not be (``error``)."""

    def __init__(self, released: LockView | None, error: str | None = None) -> None:
        super().__init__()
        self.released = released
        self.error = error
