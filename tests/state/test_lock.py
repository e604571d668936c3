"""The ledger lock within one process: acquire, release, unlock, stale detection."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from state import Ledger, LockHeldError, UnknownLockError
from state._locking import pid_alive


def test_acquire_records_the_holder_and_release_frees_it(ledger: Ledger) -> None:
    assert ledger.lock_status() is None
    with ledger.acquire_lock("apply") as handle:
        holder = ledger.lock_status()
        assert holder is not None
        assert holder == handle.info
        assert holder.operation == "apply"
        assert holder.pid > 0
        assert holder.user
        assert holder.host
        assert not holder.stale
        assert len(holder.lock_id) == 36  # a uuid
    assert handle.released
    assert ledger.lock_status() is None


def test_a_second_acquire_fails_with_the_holder_described(ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as first, Ledger.open(ledger_path) as second:
        handle = first.acquire_lock("apply")
        with pytest.raises(LockHeldError) as caught:
            second.acquire_lock("plan")
        assert caught.value.holder.lock_id == handle.lock_id
        message = str(caught.value)
        assert "'apply'" in message
        assert handle.lock_id in message
        assert "stale" not in message
        handle.release()
        second.acquire_lock("plan").release()


def test_acquire_waits_for_the_timeout_then_gives_up(ledger: Ledger) -> None:
    with ledger.acquire_lock("apply"):
        started = time.monotonic()
        with pytest.raises(LockHeldError, match=r"waited 0\.\ds"):
            ledger.acquire_lock("plan", timeout=0.6, poll_interval=0.1)
        assert 0.5 <= time.monotonic() - started < 5


def test_acquire_gets_the_lock_released_while_it_waits(ledger: Ledger) -> None:
    handle = ledger.acquire_lock("apply")
    threading.Timer(0.3, handle.release).start()
    started = time.monotonic()
    with ledger.acquire_lock("plan", timeout=10, poll_interval=0.05) as second:
        assert second.info.operation == "plan"
    assert time.monotonic() - started < 5


def test_unlock_releases_only_the_named_lock(ledger: Ledger) -> None:
    handle = ledger.acquire_lock("apply")
    with pytest.raises(UnknownLockError, match="under another lock id"):
        ledger.unlock("00000000-0000-0000-0000-000000000000")
    holder = ledger.lock_status()
    assert holder is not None
    assert holder.lock_id == handle.lock_id  # still held

    released = ledger.unlock(handle.lock_id)
    assert released.lock_id == handle.lock_id
    assert ledger.lock_status() is None
    (event,) = ledger.events()
    assert event.kind == "lock.unlocked"
    assert event.data["lock_id"] == handle.lock_id
    with pytest.raises(UnknownLockError, match="not locked"):
        ledger.unlock(handle.lock_id)
    # the holder learns that its lock was taken away
    with pytest.raises(UnknownLockError):
        handle.release()


def test_a_failed_acquire_does_not_bump_the_serial(ledger: Ledger) -> None:
    with ledger.acquire_lock("apply"):
        serial = ledger.serial
        with pytest.raises(LockHeldError):
            ledger.acquire_lock("plan", timeout=0.3, poll_interval=0.05)
        assert ledger.serial == serial


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid is free again
    return child.pid


def test_a_lock_of_a_dead_process_on_this_host_is_stale(ledger: Ledger) -> None:
    handle = ledger.acquire_lock("apply")
    dead = _dead_pid()
    with ledger._engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE lock SET pid = {dead}")
    holder = ledger.lock_status()
    assert holder is not None
    assert holder.stale

    started = time.monotonic()
    with pytest.raises(LockHeldError) as caught:
        ledger.acquire_lock("plan", timeout=30)  # stale: fails at once, no 30 s wait
    assert time.monotonic() - started < 5
    assert caught.value.holder.stale
    assert f"kubeferry ledger unlock {handle.lock_id}" in str(caught.value)
    assert ledger.lock_status() is not None  # reported, never broken silently


def test_a_lock_held_on_another_host_is_never_called_stale(ledger: Ledger) -> None:
    ledger.acquire_lock("apply")
    with ledger._engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE lock SET host = 'elsewhere', pid = {_dead_pid()}")
    holder = ledger.lock_status()
    assert holder is not None
    assert not holder.stale


def test_pid_alive_sees_live_dead_and_zombie_processes() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(0)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while pid_alive(zombie.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # exited but not reaped: a zombie
        assert not pid_alive(zombie.pid)
    finally:
        zombie.wait()
