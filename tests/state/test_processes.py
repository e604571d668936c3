"""The ledger shared by real processes: lock exclusion, serial under contention, SIGKILL."""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from state import Ledger, LockHeldError, RunPhase

# "spawn": children start clean, without the parent's open connections
SPAWN = multiprocessing.get_context("spawn")
PROCESSES = 4


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The child processes' code, importable by name (spawn children inherit sys.path)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("_ledger_workers")


def _run_all(target: Any, args_per_process: list[tuple[Any, ...]]) -> None:
    processes = [SPAWN.Process(target=target, args=args) for args in args_per_process]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert [process.exitcode for process in processes] == [0] * len(processes)


def _drain(results: Any, count: int) -> list[Any]:
    return [results.get(timeout=30) for _ in range(count)]


def test_processes_racing_for_the_lock_never_both_get_it(
    ledger_path: Path, workers: ModuleType
) -> None:
    Ledger.open(ledger_path).close()  # migrate once, so the race is about the lock only
    for _round in range(2):
        barrier = SPAWN.Barrier(PROCESSES)
        results = SPAWN.Queue()
        _run_all(workers.race_for_the_lock, [(str(ledger_path), barrier, results)] * PROCESSES)
        outcomes = _drain(results, PROCESSES)
        assert outcomes.count("won") == 1, outcomes
        assert outcomes.count("lost") == PROCESSES - 1
    with Ledger.open(ledger_path) as ledger:
        assert ledger.lock_status() is None


def test_processes_waiting_for_the_lock_hold_it_one_at_a_time(
    ledger_path: Path, workers: ModuleType
) -> None:
    barrier = SPAWN.Barrier(PROCESSES)
    results = SPAWN.Queue()
    # no migration first: the processes also race to create and migrate the ledger
    _run_all(workers.take_turns, [(str(ledger_path), barrier, results)] * PROCESSES)
    turns = sorted(_drain(results, PROCESSES))
    for (_, previous_end), (next_start, _) in itertools.pairwise(turns):
        assert next_start >= previous_end, turns


def test_concurrent_writers_bump_the_serial_exactly_once_each(
    ledger_path: Path, workers: ModuleType
) -> None:
    writes = 25
    with Ledger.open(ledger_path) as ledger:
        before = ledger.serial
    barrier = SPAWN.Barrier(PROCESSES)
    results = SPAWN.Queue()
    _run_all(workers.write_many, [(str(ledger_path), barrier, writes, results)] * PROCESSES)
    assert _drain(results, PROCESSES) == ["done"] * PROCESSES
    with Ledger.open(ledger_path) as ledger:
        assert ledger.serial == before + PROCESSES * writes
        assert ledger.counts()["events"] == PROCESSES * writes


def test_a_sigkilled_holder_leaves_a_stale_lock_and_an_interrupted_run(
    ledger_path: Path, workers: ModuleType
) -> None:
    with Ledger.open(ledger_path) as ledger:
        ledger.upsert_cluster("east")
        ledger.upsert_repository("s3")
        ledger.upsert_slice("p", source_cluster="east", destination_cluster="east", repository="s3")
        ledger.upsert_job("shop", slice="p", namespace="shop")
    ready = SPAWN.Queue()
    holder = SPAWN.Process(target=workers.hold_lock_and_run_forever, args=(str(ledger_path), ready))
    holder.start()
    try:
        lock_id, run_id = ready.get(timeout=60)
        with Ledger.open(ledger_path) as ledger:
            alive = ledger.lock_status()
            assert alive is not None
            assert alive.pid == holder.pid
            assert not alive.stale
            serial = ledger.serial
            assert ledger.mark_interrupted_runs() == []  # its process still runs
            assert ledger.serial == serial  # and looking wrote nothing (saved plans stay valid)
            with pytest.raises(LockHeldError) as caught:
                ledger.acquire_lock("apply", timeout=0.2)
            assert "stale" not in str(caught.value)
    finally:
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=30)
    assert holder.exitcode == -signal.SIGKILL

    with Ledger.open(ledger_path) as ledger:
        stale = ledger.lock_status()
        assert stale is not None
        assert stale.lock_id == lock_id
        assert stale.stale
        with pytest.raises(LockHeldError, match="stale lock") as caught:
            ledger.acquire_lock("apply", timeout=10)
        assert caught.value.holder.stale

        (interrupted,) = ledger.mark_interrupted_runs()
        assert interrupted.id == run_id
        assert ledger.run(run_id).phase is RunPhase.INTERRUPTED
        assert [event.kind for event in ledger.events(run_id=run_id)] == ["run.interrupted"]

        ledger.unlock(lock_id)
        with ledger.acquire_lock("apply") as handle:
            assert handle.info.pid == os.getpid()
