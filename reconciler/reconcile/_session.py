"""plan / apply / reconcile: the Terraform-style workflow over inventory, ledger and clusters."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from reconciler._events import Event, EventBus, ItemDone, Progress
from reconciler.apply import ApplyResult, Cancellation, execute_actions
from reconciler.engines import ObjectEngine, ObjectReplicator, VolumeMover
from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.kubeslice import mirror_interrupted_runs, observe_status_targets
from reconciler.plan import Plan, RecordedState, compute_plan
from reconciler.reconcile._actions import ActionRunner
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._movers import FROM_INVENTORY
from reconciler.reconcile._onboard import observe_onboardings
from reconciler.reconcile._refresh import observed_summary, refresh
from reconciler.reconcile._views import desired_state, recorded_state
from reconciler.workspace import Workspace
from state import (
    EventLevel,
    Ledger,
    LedgerError,
    LockHandle,
    LockHeldError,
    Run,
)


class LockBusyError(KubeferryError):
    """Another live kubeferry run holds the ledger lock (reconcile exits 3 on it)."""

    exit_code = 3


class StalePlanError(KubeferryError):
    """A saved plan no longer matches the ledger or the inventory."""


def default_engine() -> ObjectReplicator:
    return ObjectEngine()


def _read_recorded(ledger_path: Path) -> RecordedState:
    """The ledger's view; a new ledger is created (empty) so saved plans carry its serial."""
    try:
        with Ledger.open(ledger_path) as ledger:
            return recorded_state(ledger)
    except LedgerError as error:
        raise KubeferryError(f"ledger {ledger_path}: {error}") from None


def make_plan(
    workspace: Workspace,
    *,
    targets: Iterable[str] | None = None,
    refresh_only: bool = False,
    parallelism: int = 8,
    engine: ObjectReplicator | None = None,
    inventory: Inventory | None = None,
    now: datetime | None = None,
) -> Plan:
    """Refresh and diff. Reads the ledger (creating an empty one), changes nothing."""
    inventory = inventory or workspace.load_inventory()
    engine = engine or default_engine()
    targets = list(targets) if targets is not None else None
    if targets:
        known = {obj.ref for obj in inventory.objects()}
        unknown = [t for t in targets if t not in known]
        if unknown:
            raise KubeferryError(
                f"--target {unknown[0]}: no such object in the inventory",
                hint="use Kind/name, e.g. ReplicationJob/web",
            )
    recorded = _read_recorded(workspace.ledger_path)
    connections = Connections(inventory)
    desired = desired_state(inventory)
    try:
        observed = refresh(inventory, connections, engine, parallelism=parallelism)
        onboardings = [*desired.onboardings.values(), *recorded.onboardings.values()]
        observed = dataclasses.replace(
            observed,
            onboardings=observe_onboardings(inventory, connections, onboardings),
            status_targets=observe_status_targets(inventory, connections.client),
        )
    finally:
        connections.close()
    return compute_plan(
        desired,
        recorded,
        observed,
        now=now or datetime.now(UTC),
        targets=targets,
        refresh_only=refresh_only,
        observed_summary=observed_summary(observed),
    )


@contextlib.contextmanager
def ledger_lock(
    ledger: Ledger, operation: str, timeout: float, *, inventory: Inventory | None = None
) -> Iterator[LockHandle]:
    """Take the lock; a holder that died on this host (SIGKILL, power loss) is broken.

    Breaking is safe only when the holder's pid is gone on this same host, which is what
    ``stale`` means; the break is recorded in the event log, and runs the dead process left
    InProgress are marked Interrupted so their jobs are planned again (and, with the
    ``inventory``, their KubeSlice status says so when their slice has statusWriteBack).
    """
    for _attempt in range(3):
        try:
            handle = ledger.acquire_lock(operation, timeout)
            break
        except LockHeldError as error:
            if not error.holder.stale:
                raise LockBusyError(str(error)) from None
            with contextlib.suppress(LedgerError):
                ledger.unlock(error.holder.lock_id)
                ledger.record_event(
                    "lock.broken",
                    f"broke the stale lock of {error.holder.describe()}",
                    level=EventLevel.WARNING,
                    data={"lock_id": error.holder.lock_id, "operation": error.holder.operation},
                )
    else:
        raise LockBusyError("could not take the ledger lock")
    try:
        interrupted = ledger.mark_interrupted_runs()
        if interrupted and inventory is not None:
            _mirror_interrupted(ledger, inventory, interrupted)
        yield handle
    finally:
        handle.release()


def _mirror_interrupted(ledger: Ledger, inventory: Inventory, runs: list[Run]) -> None:
    def report(run: Run, event: str, text: str) -> None:
        ledger.record_event(event, text, level=EventLevel.WARNING, run_id=run.id, job=run.job)

    connections = Connections(inventory)
    try:
        mirror_interrupted_runs(inventory, runs, client_of=connections.client, report=report)
    finally:
        connections.close()


def _ledger_event_sink(ledger: Ledger) -> Callable[[Event], None]:
    def record(event: Event) -> None:
        if isinstance(event, Progress | ItemDone):
            return  # counters live in the run row; the log keeps the milestones
        ledger.record_event(
            event.kind,
            event.message(),
            level=EventLevel(event.level),
            run_id=event.run_id,
            job=event.address.split("/", 1)[1]
            if event.address.startswith("ReplicationJob/")
            else None,
            data={k: v for k, v in event.data().items() if isinstance(v, str | int | float | bool)},
        )

    return record


def open_ledger(workspace: Workspace) -> Ledger:
    try:
        return Ledger.open(workspace.ledger_path)
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None


def check_saved_plan(plan: Plan, ledger: Ledger, inventory: Inventory) -> None:
    if plan.ledger_serial != ledger.serial:
        raise StalePlanError(
            f"saved plan is stale: it was made at ledger serial {plan.ledger_serial}, "
            f"the ledger is now at {ledger.serial}",
            hint="run `kubeferry plan --out FILE` again",
        )
    if plan.inventory_digest != inventory.digest():
        raise StalePlanError(
            "saved plan is stale: the inventory changed since it was made",
            hint="run `kubeferry plan --out FILE` again",
        )


def apply(
    workspace: Workspace,
    *,
    saved_plan: Plan | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    parallelism: int = 4,
    lock_timeout: float = 0.0,
    bus: EventBus | None = None,
    engine: ObjectReplicator | None = None,
    operation: str = "apply",
    on_plan: Callable[[Plan], None] | None = None,
    mover: VolumeMover | None = None,
    cancellation: Cancellation | None = None,
) -> tuple[Plan, ApplyResult | None]:
    """Plan (or take a saved plan) and execute it under the ledger lock.

    Returns the plan and the result; the result is None when there was nothing to do or the
    confirmation was declined. ``mover`` copies volume data on every cluster (default: each
    cluster's ``spec.volumeMover``, the host-path mover unless it says ``job``).
    ``cancellation`` lets a caller on another thread (the TUI) stop the run cooperatively:
    ``cancellation.cancel()`` ends it as Interrupted, as SIGINT does for the CLI.
    """
    bus = bus or EventBus()
    engine = engine or default_engine()
    inventory = workspace.load_inventory()
    ledger = open_ledger(workspace)
    try:
        with ledger_lock(ledger, operation, lock_timeout, inventory=inventory):
            if saved_plan is not None:
                check_saved_plan(saved_plan, ledger, inventory)
                plan = saved_plan
            else:
                plan = make_plan(workspace, engine=engine, inventory=inventory)
            if on_plan is not None:
                on_plan(plan)
            if not plan.actions:
                return plan, None
            if confirm is not None and not confirm(plan):
                return plan, None
            unsubscribe = bus.subscribe(_ledger_event_sink(ledger))
            connections = Connections(inventory)
            runner = ActionRunner(
                inventory,
                connections,
                ledger,
                engine,
                bus,
                plan.observed,
                mover=FROM_INVENTORY if mover is None else mover,
            )
            try:
                result = execute_actions(
                    plan.actions,
                    runner,
                    bus=bus,
                    parallelism=parallelism,
                    cancellation=cancellation,
                )
            finally:
                unsubscribe()
                connections.close()
            return plan, result
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    finally:
        ledger.close()
