"""Detached daemons, recognised by PID *and* start time, stopped only by those.

A PID alone is not an identity: after a reboot or a long time it may belong to an unrelated
process. Each record keeps the start time from /proc/PID/stat (field 22, clock ticks since
boot); a process only counts as ours when both match, so `down` never kills a stranger.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from reconciler.errors import KubeferryError

PROC = Path("/proc")

# Runs in a throw-away interpreter: it starts the daemon in a new session and exits, so the
# daemon is re-parented to init and never is a child (or zombie) of the calling process.
_LAUNCHER = """
import subprocess, sys
log = open(sys.argv[1], "ab")
child = subprocess.Popen(
    sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    start_new_session=True,
)
print(child.pid)
"""


class ProcessRecord(BaseModel):
    """One daemon we started, as kept in the state file."""

    model_config = ConfigDict(frozen=True)

    name: str
    pid: int
    start_time: int


def _stat_fields(pid: int, proc: Path = PROC) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the parenthesised command, which may hold spaces)."""
    try:
        text = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def process_start_time(pid: int, proc: Path = PROC) -> int | None:
    """Start time of a live (non-zombie) process, or None when there is none."""
    fields = _stat_fields(pid, proc)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 overall; fields[0] is field 3


def is_running(record: ProcessRecord | None, proc: Path = PROC) -> bool:
    """True only for the very process we started: same PID and same start time, not a zombie."""
    return record is not None and process_start_time(record.pid, proc) == record.start_time


def spawn_daemon(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> ProcessRecord:
    """Start ``command`` detached (own session, stdin /dev/null, output appended to ``log``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    launched = subprocess.run(
        [sys.executable, "-I", "-c", _LAUNCHER, str(log), *command],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if launched.returncode != 0:
        last_line = (launched.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise KubeferryError(f"cannot start {name} ({command[0]}): {last_line}")
    pid = int(launched.stdout.strip())
    start_time = process_start_time(pid)
    if start_time is None:
        raise KubeferryError(f"{name} exited right after starting", hint=f"see {log}")
    return ProcessRecord(name=name, pid=pid, start_time=start_time)


def stop_processes(
    records: Iterable[ProcessRecord | None], *, grace_seconds: float = 10.0
) -> list[ProcessRecord]:
    """SIGTERM the records still running, wait, SIGKILL what is left; returns those signalled."""
    ours = [record for record in records if record is not None and is_running(record)]
    for record in ours:
        _signal(record, signal.SIGTERM)
    if not _wait_gone(ours, grace_seconds):
        for record in ours:
            if is_running(record):
                _signal(record, signal.SIGKILL)
        if not _wait_gone(ours, 5.0):
            survivors = ", ".join(f"{r.name} (PID {r.pid})" for r in ours if is_running(r))
            raise KubeferryError(f"could not stop {survivors}", hint="check them with `ps`")
    return ours


def _signal(record: ProcessRecord, signum: signal.Signals) -> None:
    # re-check identity right before signalling: never signal a PID that was reused
    if not is_running(record):
        return
    try:
        os.kill(record.pid, signum)
    except ProcessLookupError:
        return
    except PermissionError as error:
        raise KubeferryError(
            f"not allowed to stop {record.name} (PID {record.pid})",
            hint="run `kubeferry sandbox down` as the user who started the sandbox",
        ) from error


def _wait_gone(records: Sequence[ProcessRecord], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(is_running(record) for record in records):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (all held open while choosing)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.bind(("127.0.0.1", 0))
            sockets.append(held)
        return [held.getsockname()[1] for held in sockets]
    finally:
        for held in sockets:
            held.close()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # like the daemons (Go, werkzeug) do: lingering TIME_WAIT connections do not block
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
