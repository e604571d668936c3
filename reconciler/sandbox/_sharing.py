"""Shared use of one sandbox by several concurrent users (e.g. parallel pytest sessions).

Each user holds a lease file named after its process (PID + start time, so a crashed user's
lease is recognised as stale). A sandbox that a shared user *started* is stopped by the last
shared user to leave; one that somebody started with `kubeferry sandbox up` is left running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from reconciler.sandbox._models import SandboxInfo, UpResult
from reconciler.sandbox._processes import ProcessRecord, is_running, process_start_time
from reconciler.sandbox._state import sandbox_lock

_STARTED_BY_SHARED_USE = "started-by-shared-use"


def _lease_name(record: ProcessRecord) -> str:
    # unique per use: one process may hold several (nested) leases
    return f"{record.pid}-{record.start_time}-{uuid.uuid4().hex[:12]}.lease"


def _lease_owner(path: Path) -> ProcessRecord | None:
    pid, start_time, *_ = [*path.stem.split("-"), "", ""]
    if not (pid.isdigit() and start_time.isdigit()):
        return None
    return ProcessRecord(name="user", pid=int(pid), start_time=int(start_time))


def _this_process() -> ProcessRecord:
    start_time = process_start_time(os.getpid())
    assert start_time is not None  # we are running
    return ProcessRecord(name="user", pid=os.getpid(), start_time=start_time)


def keep_running_after_shared_use(users_dir: Path) -> None:
    """Somebody asked for the sandbox explicitly: shared users must not stop it."""
    (users_dir / _STARTED_BY_SHARED_USE).unlink(missing_ok=True)


@contextmanager
def shared_use(
    users_dir: Path,
    up: Callable[[], UpResult],
    down: Callable[[], object],
) -> Iterator[SandboxInfo]:
    """Run ``up`` under a lease; on exit, the last lease holder runs ``down`` if shared use
    started the sandbox."""
    users_dir.mkdir(parents=True, exist_ok=True)
    lock = users_dir / ".lock"
    lease = users_dir / _lease_name(_this_process())
    with sandbox_lock(lock):
        lease.touch()
    try:
        result = up()
        if result.action == "started":
            with sandbox_lock(lock):
                (users_dir / _STARTED_BY_SHARED_USE).touch()
        yield result.info
    finally:
        with sandbox_lock(lock):
            lease.unlink(missing_ok=True)
            if not _other_live_users(users_dir) and (users_dir / _STARTED_BY_SHARED_USE).exists():
                down()
                (users_dir / _STARTED_BY_SHARED_USE).unlink(missing_ok=True)


def _other_live_users(users_dir: Path) -> Sequence[Path]:
    live = []
    for path in users_dir.glob("*.lease"):
        owner = _lease_owner(path)
        if owner is not None and is_running(owner):
            live.append(path)
        else:
            path.unlink(missing_ok=True)  # its user crashed
    return live
