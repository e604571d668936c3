"""Code run in child processes by test_processes.py (importable, so "spawn" can find it)."""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from state import Ledger, LockHeldError, RunKind


def race_for_the_lock(path: str, barrier: Barrier, results: Queue[Any]) -> None:
    """Try once, all at the same moment; report whether this process got the lock."""
    with Ledger.open(Path(path)) as ledger:
        barrier.wait(timeout=60)
        try:
            with ledger.acquire_lock("race"):
                results.put("won")
                time.sleep(1.0)  # hold it while the others try
        except LockHeldError:
            results.put("lost")


def take_turns(path: str, barrier: Barrier, results: Queue[Any]) -> None:
    """Wait for the lock, hold it briefly; report when this process held it."""
    with Ledger.open(Path(path)) as ledger:
        barrier.wait(timeout=60)
        with ledger.acquire_lock("turn", timeout=120, poll_interval=0.02):
            began = time.monotonic()
            time.sleep(0.2)
            ended = time.monotonic()
        results.put((began, ended))


def write_many(path: str, barrier: Barrier, writes: int, results: Queue[Any]) -> None:
    """Write concurrently with the other processes; every write must bump the serial."""
    with Ledger.open(Path(path)) as ledger:
        barrier.wait(timeout=60)
        for index in range(writes):
            ledger.record_event("test.write", f"write {index}")
        results.put("done")


def hold_lock_and_run_forever(path: str, ready: Queue[Any]) -> None:
    """Take the lock and start a run, then wait to be killed."""
    with Ledger.open(Path(path)) as ledger:
        handle = ledger.acquire_lock("apply")
        run = ledger.start_run(RunKind.BACKUP, "shop")
        ready.put((handle.lock_id, run.id))
        time.sleep(600)
