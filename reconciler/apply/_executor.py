"""Run plan actions in dependency order with bounded parallelism, cancellable with Ctrl-C.

Actions are blocking calls (the Kubernetes client and boto3 are synchronous), so each runs in
a worker thread; anyio task groups give structured concurrency and a CapacityLimiter bounds
it. Cancellation is cooperative: a ``threading.Event`` that engines check between items, so a
thread is never abandoned half-way through a write.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.to_thread

from reconciler._events import ActionFinished, ActionStarted, EventBus
from reconciler.errors import KubeferryError
from reconciler.plan import Action

Outcome = Literal["done", "failed", "blocked", "interrupted"]


class Interrupted(Exception):
    """Raised inside an action when the user cancelled; the action stops at a safe point."""


@dataclass
class Cancellation:
    """Shared by all actions of one apply; engines call ``check()`` between items."""

    event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted("cancelled by the user")


@dataclass(frozen=True)
class ActionResult:
    address: str
    outcome: Outcome
    detail: str = ""


@dataclass
class ApplyResult:
    results: list[ActionResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.outcome == "done" for r in self.results)

    def summary(self) -> str:
        parts = [f"{self.count('done')} done"]
        outcome: Outcome
        for outcome in ("failed", "blocked", "interrupted"):
            n = self.count(outcome)
            if n:
                parts.append(f"{n} {outcome}")
        prefix = "Apply interrupted" if self.interrupted else "Apply complete"
        return f"{prefix}: {', '.join(parts)}."


ActionRunner = Callable[[Action, Cancellation], str]
"""Performs one action (in a worker thread); returns a short detail for the log."""


async def _execute(
    actions: list[Action],
    run_action: ActionRunner,
    bus: EventBus,
    parallelism: int,
    cancellation: Cancellation,
    handle_signals: bool,
) -> ApplyResult:
    limiter = anyio.CapacityLimiter(max(1, parallelism))
    finished = {action.address: anyio.Event() for action in actions}
    outcomes: dict[str, ActionResult] = {}

    def record(action: Action, outcome: Outcome, detail: str = "") -> None:
        outcomes[action.address] = ActionResult(action.address, outcome, detail)
        bus.publish(
            ActionFinished(
                address=action.address,
                symbol=action.symbol,
                action=action.type.value,
                outcome=outcome,
                detail=detail,
            )
        )

    async def perform(action: Action) -> None:
        try:
            for dependency in action.depends_on:
                if dependency in finished:
                    await finished[dependency].wait()
            failed_deps = [
                d for d in action.depends_on if d in outcomes and outcomes[d].outcome != "done"
            ]
            if action.blocked is not None:
                record(action, "blocked", action.blocked)
            elif failed_deps:
                record(action, "blocked", f"dependency {failed_deps[0]} did not complete")
            elif cancellation.cancelled:
                record(action, "interrupted", "not started")
            else:
                async with limiter:
                    if cancellation.cancelled:
                        record(action, "interrupted", "not started")
                        return
                    bus.publish(
                        ActionStarted(
                            address=action.address, symbol=action.symbol, action=action.type.value
                        )
                    )
                    try:
                        detail = await anyio.to_thread.run_sync(run_action, action, cancellation)
                    except Interrupted as error:
                        record(action, "interrupted", str(error))
                    except KubeferryError as error:
                        record(action, "failed", str(error))
                    except Exception as error:  # noqa: BLE001 - one action's bug must not stop the others
                        record(action, "failed", f"{type(error).__name__}: {error}")
                    else:
                        record(action, "done", detail)
        finally:
            finished[action.address].set()

    async def watch_signals(scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                cancellation.cancel()
                scope.cancel()
                return

    async with anyio.create_task_group() as outer:
        if handle_signals:
            signal_scope = anyio.CancelScope()

            async def guard() -> None:
                with signal_scope:
                    await watch_signals(signal_scope)

            outer.start_soon(guard)
        async with anyio.create_task_group() as group:
            for action in actions:
                group.start_soon(perform, action)
        if handle_signals:
            signal_scope.cancel()

    return ApplyResult(
        results=[outcomes[a.address] for a in actions if a.address in outcomes],
        interrupted=cancellation.cancelled,
    )


def execute_actions(
    actions: list[Action],
    run_action: ActionRunner,
    *,
    bus: EventBus,
    parallelism: int = 4,
    cancellation: Cancellation | None = None,
    handle_signals: bool = True,
) -> ApplyResult:
    """Run ``actions`` honouring ``depends_on``; SIGINT/SIGTERM cancel cooperatively."""
    cancel = cancellation or Cancellation()
    on_main_thread = threading.current_thread() is threading.main_thread()
    return anyio.run(
        _execute, actions, run_action, bus, parallelism, cancel, handle_signals and on_main_thread
    )
