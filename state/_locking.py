"""Who holds the ledger lock, and whether that holder is still alive.

Policy on stale locks: the ledger never breaks a lock by itself. A lock whose process is
gone (same host, pid not running) is reported as stale, by ``LockInfo.stale`` and in the
``LockHeldError`` raised when acquiring, and the user releases it with
``kubeferry ledger unlock <lock id>``. Guessing wrong would let two applies run at once
(e.g. another container with the same host name), which costs more than one command.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

    from state._ledger import Ledger


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    except OSError as error:
        return error.errno != errno.ESRCH
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # a killed child that its parent has not reaped yet still answers kill(pid, 0)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no procfs (macOS): trust kill()
    state_field = stat.rpartition(")")[2].split()
    return bool(state_field) and state_field[0] in ("Z", "X")


@dataclass(frozen=True)
class LockInfo:
    """The holder of the ledger lock."""

    lock_id: str
    operation: str
    user: str
    host: str
    pid: int
    created_at: datetime

    @property
    def stale(self) -> bool:
        """True when the holder ran on this host and its process is gone.

        A holder on another host is never called stale: its pid means nothing here.
        """
        return self.host == this_host() and not pid_alive(self.pid)

    def describe(self) -> str:
        since = self.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.operation!r} ({self.user}@{self.host}, pid {self.pid}, since {since})"


class LockHandle:
    """A held ledger lock; release it with ``release()`` or by leaving the ``with`` block."""

    def __init__(self, ledger: Ledger, info: LockInfo) -> None:
        self._ledger = ledger
        self.info = info
        self.released = False

    @property
    def lock_id(self) -> str:
        return self.info.lock_id

    def release(self) -> None:
        """Give the lock back; raises UnknownLockError if someone unlocked it meanwhile."""
        if self.released:
            return
        self.released = True
        self._ledger._release_lock(self.info.lock_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"<LockHandle {self.lock_id} {state}: {self.info.describe()}>"
