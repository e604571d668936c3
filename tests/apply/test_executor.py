"""Dependency order, bounded parallelism, failure isolation and Ctrl-C for apply."""

from __future__ import annotations

import os
import signal
import threading
import time

from reconciler._events import ActionFinished, Event, EventBus
from reconciler.apply._executor import Cancellation, execute_actions
from reconciler.errors import KubeferryError
from reconciler.plan import Action, ActionType


def _action(address: str, *deps: str, blocked: str | None = None) -> Action:
    return Action(
        address=address, type=ActionType.REPLICATE, depends_on=list(deps), blocked=blocked
    )


def test_dependencies_finish_first_and_parallelism_is_bounded() -> None:
    order: list[str] = []
    running = 0
    peak = 0
    lock = threading.Lock()

    def run(action: Action, _: Cancellation) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
            order.append(action.address)
        return "ok"

    actions = [_action(f"ReplicationJob/j{i}", "Cluster/a") for i in range(6)] + [
        _action("Cluster/a")
    ]
    result = execute_actions(actions, run, bus=EventBus(), parallelism=2)
    assert result.ok
    assert order[0] == "Cluster/a"
    assert peak == 2
    assert result.summary() == "Apply complete: 7 done."


def test_failure_blocks_dependents_but_not_others() -> None:
    def run(action: Action, _: Cancellation) -> str:
        if action.address == "Cluster/bad":
            raise KubeferryError("cluster bad: connection refused")
        return "ok"

    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    actions = [
        _action("Cluster/bad"),
        _action("Cluster/good"),
        _action("ReplicationJob/x", "Cluster/bad"),
        _action("ReplicationJob/y", "Cluster/good"),
        _action("ReplicationJob/z", blocked="cluster c unreachable"),
    ]
    result = execute_actions(actions, run, bus=bus, parallelism=3)
    outcomes = {r.address: (r.outcome, r.detail) for r in result.results}
    assert outcomes["Cluster/bad"] == ("failed", "cluster bad: connection refused")
    assert outcomes["ReplicationJob/x"] == ("blocked", "dependency Cluster/bad did not complete")
    assert outcomes["ReplicationJob/y"] == ("done", "ok")
    assert outcomes["ReplicationJob/z"] == ("blocked", "cluster c unreachable")
    assert not result.ok
    finished = [e for e in events if isinstance(e, ActionFinished)]
    assert len(finished) == 5


def test_unexpected_exception_is_contained() -> None:
    def run(action: Action, _: Cancellation) -> str:
        raise RuntimeError("bug")

    result = execute_actions([_action("Cluster/a")], run, bus=EventBus())
    assert result.results[0].outcome == "failed"
    assert "RuntimeError: bug" in result.results[0].detail


def test_sigint_cancels_cooperatively() -> None:
    started = threading.Event()

    def run(action: Action, cancellation: Cancellation) -> str:
        started.set()
        for _ in range(200):
            cancellation.check()
            time.sleep(0.01)
        return "finished without noticing"

    def interrupt() -> None:
        started.wait(5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt).start()
    actions = [
        _action("ReplicationJob/slow"),
        _action("ReplicationJob/next", "ReplicationJob/slow"),
    ]
    result = execute_actions(actions, run, bus=EventBus(), parallelism=1)
    assert result.interrupted
    outcomes = {r.address: r.outcome for r in result.results}
    assert outcomes["ReplicationJob/slow"] == "interrupted"
    assert outcomes["ReplicationJob/next"] == "blocked"
    assert result.summary().startswith("Apply interrupted")
