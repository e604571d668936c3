"""Plan and run screens: the tree, confirmation, live progress, cancel; and the whole flow
plan -> confirm -> run -> done against the real sandbox clusters.

The screen-level tests swap ``make_plan`` / ``apply`` (as the screens import them) for fakes
that publish the same typed events, so they run without clusters; the sandbox test at the
end uses the real ones.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, RichLog, Static

from reconciler._events import (
    ActionFinished,
    ActionStarted,
    EventBus,
    ItemWarning,
    Progress,
    RunFinished,
    RunStarted,
)
from reconciler.apply import ActionResult, ApplyResult, Interrupted
from reconciler.plan import Action, ActionType, Plan, PlanProblem
from reconciler.reconcile import Cancellation, Workspace
from tests._inventory import job, replication_slice
from tests._kube_objects import delete_namespace
from tests.tui._data import NOW, scenario
from tests.tui._navigation import wait_for_screen
from tests.tui._pilot import wait_for
from tests.tui._sandbox import workspace_on_sandbox
from tui.app import KubeferryApp
from tui.screens.plan import APPLY_WORD, PlanScreen
from tui.screens.run import RunScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.plan_tree import PlanTree, action_detail, affected_clusters
from tui.widgets.progress import RateMeter, eta_seconds, progress_text

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.anyio


def _replicate(name: str, destination: str = "worker-2", **extra: Any) -> Action:
    return Action(
        address=f"ReplicationJob/{name}",
        type=ActionType.REPLICATE,
        reasons=["new job"],
        details={
            "mode": "replicate",
            "source": f"worker-1/{name}",
            "destination": f"{destination}/{name}",
            "repository": "local",
            "precheck": {
                "overallCompatibility": "warning",
                "compatibilityChecks": [
                    {"name": "quota", "status": "warning", "message": "near the limit"},
                    {"name": "crds", "status": "compatible", "message": "none needed"},
                ],
            },
        },
        depends_on=["ReplicationSlice/w1-to-w2"],
        **extra,
    )


def fake_plan(*, destination: str = "worker-2") -> Plan:
    return Plan(
        created_at=datetime(2026, 3, 14, 12, 0, tzinfo=UTC),
        inventory_path="kubeferry.yaml",
        inventory_digest="0" * 64,
        ledger_serial=3,
        actions=[
            Action(
                address="Cluster/worker-1", type=ActionType.CREATE, reasons=["new in inventory"]
            ),
            Action(
                address="ReplicationSlice/w1-to-w2",
                type=ActionType.UPDATE,
                reasons=["spec changed"],
            ),
            _replicate("web", destination),
            _replicate("db", destination, blocked="cluster worker-3 unreachable"),
            Action(
                address="ReplicationJob/old",
                type=ActionType.FORGET,
                reasons=["removed from inventory; snapshots kept per retention"],
            ),
        ],
        problems=[PlanProblem(address="ReplicationJob/db", message="cluster worker-3 unreachable")],
    )


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return scenario(tmp_path, monkeypatch)  # worker-2 is protected in this inventory


def _app(workspace: Workspace, **extra: Any) -> KubeferryApp:
    return KubeferryApp(workspace, poll_interval=0, clock=lambda: NOW, **extra)


def _serve_plan(monkeypatch: pytest.MonkeyPatch, plan: Plan | Exception) -> list[Workspace]:
    calls: list[Workspace] = []

    def make_plan(workspace: Workspace, **_: Any) -> Plan:
        calls.append(workspace)
        if isinstance(plan, Exception):
            raise plan
        return plan

    monkeypatch.setattr("tui.screens.plan.make_plan", make_plan)
    return calls


async def _planned(app: KubeferryApp, pilot: Pilot[None]) -> PlanScreen:
    """The plan screen, pushed, once it shows a plan."""
    screen = PlanScreen()
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.plan is not None)
    return screen


# -- pure helpers ------------------------------------------------------------------------------


def test_rate_eta_and_progress_text() -> None:
    meter = RateMeter(window=10)
    assert meter.rates() == (None, None)
    meter.add(100.0, 0, 0)
    meter.add(102.0, 10, 4096)
    items, size = meter.rates()
    assert items == pytest.approx(5.0)
    assert size == pytest.approx(2048.0)
    assert eta_seconds(10, 40, 5.0) == pytest.approx(6.0)
    assert eta_seconds(10, None, 5.0) is None
    assert eta_seconds(10, 40, None) is None
    assert progress_text(10, 40, 4096, None, 5.0, 2048.0) == (
        "10/40 items · 4.0 KiB · 5.0/s · 2.0 KiB/s · ETA 6s"
    )
    assert progress_text(3, None, 0, None, None, None) == "3 items"


def test_affected_clusters_and_detail() -> None:
    plan = fake_plan()
    # registrations write only the ledger; the blocked db job will not run
    assert affected_clusters(plan) == {"worker-1", "worker-2"}
    detail = action_detail(plan.actions[2], frozenset({"worker-2"})).plain
    assert detail.startswith("  » ReplicationJob/web  replicate  worker-1/web -> worker-2/web")
    assert "Why:\n  new job" in detail
    assert "Destination: worker-2/web  PROTECTED" in detail
    assert "Pre-checks: warning" in detail
    assert "  warning        quota: near the limit" in detail
    assert "  compatible     crds: none needed" in detail
    assert "After: ReplicationSlice/w1-to-w2" in detail
    blocked = action_detail(plan.actions[3]).plain
    assert "Blocked: cluster worker-3 unreachable" in blocked


# -- the plan screen ---------------------------------------------------------------------------


def _labels(tree: PlanTree) -> list[str]:
    found: list[str] = []

    def walk(node: Any, depth: int) -> None:
        found.append("  " * depth + str(node.label))
        for child in node.children:
            walk(child, depth + 1)

    for group in tree.root.children:  # the root is hidden: the groups are the top level
        walk(group, 0)
    return found


async def test_plan_tree_groups_actions_by_kind_with_symbols(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _serve_plan(monkeypatch, fake_plan())
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.run_command("plan")
        screen = await wait_for_screen(pilot, PlanScreen)
        await wait_for(pilot, lambda: screen.plan is not None)
        assert calls == [workspace]
        status = str(screen.query_one("#plan-status", Static).render())
        assert status.startswith(
            "Plan: 1 to add, 1 to change, 1 to destroy, 2 to replicate. 1 blocked.  a: apply"
        )
        labels = _labels(screen.query_one(PlanTree))
        groups = [label for label in labels if not label.startswith(" ")]
        assert groups[:4] == [
            "Cluster (1)",
            "ReplicationSlice (1)",
            "ReplicationJob (3)",
            "x Problems (1)",
        ]
        text = "\n".join(labels)
        assert "  + Cluster/worker-1  create" in text
        assert "  ~ ReplicationSlice/w1-to-w2  update" in text
        assert "  » ReplicationJob/web  replicate  worker-1/web -> worker-2/web via local" in text
        assert "  - ReplicationJob/old  forget" in text
        assert "! » ReplicationJob/db  replicate  blocked  worker-1/db -> worker-2/db" in text
        assert "x ReplicationJob/db: cluster worker-3 unreachable" in text

        # the detail follows the highlighted node
        tree = screen.query_one(PlanTree)
        tree.focus()

        def on_web() -> bool:
            node = tree.cursor_node
            action = None if node is None or node.data is None else node.data.action
            return action is not None and action.address == "ReplicationJob/web"

        for _ in range(12):
            if on_web():
                break
            await pilot.press("down")
        assert on_web()
        detail = str(screen.query_one("#plan-detail", Static).render())
        assert "Destination: worker-2/web  PROTECTED" in detail
        assert "quota: near the limit" in detail


async def test_apply_needs_the_typed_word_on_a_protected_cluster(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _serve_plan(monkeypatch, fake_plan())
    started: list[Plan] = []

    def fake_apply(workspace: Workspace, **kwargs: Any) -> tuple[Plan, ApplyResult]:
        started.append(kwargs["saved_plan"])
        return kwargs["saved_plan"], ApplyResult([ActionResult("Cluster/worker-1", "done")])

    monkeypatch.setattr("tui.screens.run.apply", fake_apply)
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _planned(app, pilot)

        # first: declined
        await pilot.press("a")
        confirm = await wait_for_screen(pilot, ConfirmScreen)
        assert confirm.confirm_word == APPLY_WORD
        assert "PROTECTED clusters affected: worker-2" in confirm.body
        assert "1 blocked action(s) will not run." in confirm.body
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        assert started == []

        # then: a wrong word does not confirm, the right one does
        planned = screen.plan
        await pilot.press("a")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press(*"yes", "enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        app.screen.query_one("#confirm-input", Input).value = ""
        await pilot.press(*APPLY_WORD, "enter")
        run = await wait_for_screen(pilot, RunScreen)
        await wait_for(pilot, lambda: run.finished)
        assert started == [planned]  # exactly the plan that was shown and confirmed
        assert run.ok is True
        assert run.summary_lines == ["Apply complete: 1 done."]
        assert len(calls) == 1  # not planned again while the run screen is up
        # back on the plan screen, the spent plan is replaced by a fresh one
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await wait_for(pilot, lambda: len(calls) == 2 and screen.plan is not None)


async def test_no_typed_word_without_protected_clusters(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve_plan(monkeypatch, fake_plan(destination="worker-1"))
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _planned(app, pilot)
        await pilot.press("a")
        confirm = await wait_for_screen(pilot, ConfirmScreen)
        assert confirm.confirm_word is None
        assert "PROTECTED" not in confirm.body
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)


async def test_read_only_hides_and_refuses_apply(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve_plan(monkeypatch, fake_plan())
    app = _app(workspace, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _planned(app, pilot)
        assert screen.check_action("apply", ()) is False
        # not in the footer, and the key does nothing
        assert "apply" not in {b.binding.action for b in screen.active_bindings.values()}
        assert "replan" in {b.binding.action for b in screen.active_bindings.values()}
        await pilot.press("a")
        await pilot.pause(0.2)
        assert app.screen is screen  # no confirmation, no run
        screen.action_apply()  # even when called directly
        await pilot.pause(0.1)
        assert app.screen is screen
        assert "[read-only]" in str(screen.query_one("#plan-status", Static).render())


async def test_a_failed_plan_is_shown_and_can_be_retried(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.errors import KubeferryError

    calls = _serve_plan(
        monkeypatch, KubeferryError("ledger is locked", hint="wait for the other run")
    )
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = PlanScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.error is not None)
        status = str(screen.query_one("#plan-status", Static).render())
        assert "Plan failed: ledger is locked (wait for the other run)" in status
        await pilot.press("a")
        await pilot.pause(0.1)
        assert app.screen is screen
        _serve_plan(monkeypatch, fake_plan())
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.plan is not None)
        assert len(calls) == 1


# -- the run screen ----------------------------------------------------------------------------


class ScriptedApply:
    """Stands in for ``reconciler.reconcile.apply``: publishes a replicate action's events,
    then waits for the screen's cancellation (as engines check it between items)."""

    def __init__(self) -> None:
        self.cancellation: Cancellation | None = None
        self.waiting = threading.Event()

    def __call__(self, workspace: Workspace, **kwargs: Any) -> tuple[Plan, ApplyResult]:
        plan: Plan = kwargs["saved_plan"]
        bus: EventBus = kwargs["bus"]
        cancellation: Cancellation = kwargs["cancellation"]
        self.cancellation = cancellation
        address = "ReplicationJob/web"
        bus.publish(ActionStarted(address=address, symbol="»", action="replicate"))
        bus.publish(RunStarted(address=address, run_id=7, operation="backup"))
        for done in range(0, 31):
            bus.publish(
                Progress(
                    address=address,
                    run_id=7,
                    items_done=done,
                    total_items=60,
                    bytes_done=done * 1024,
                )
            )
        bus.publish(ItemWarning(address=address, run_id=7, text="skipped", item="pods/x"))
        self.waiting.set()
        deadline = time.monotonic() + 120  # generous: a loaded CI machine runs the UI slowly
        try:
            while time.monotonic() < deadline:
                cancellation.check()
                time.sleep(0.02)
            raise AssertionError("never cancelled")
        except Interrupted as error:
            bus.publish(
                RunFinished(
                    address=address,
                    run_id=7,
                    operation="backup",
                    phase="Interrupted",
                    detail=str(error),
                )
            )
            bus.publish(
                ActionFinished(
                    address=address,
                    symbol="»",
                    action="replicate",
                    outcome="interrupted",
                    detail=str(error),
                )
            )
        return plan, ApplyResult(
            [ActionResult(address, "interrupted", "cancelled by the user")], interrupted=True
        )


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedApply:
    """The run screen's ``apply``, scripted."""
    scripted = ScriptedApply()
    monkeypatch.setattr("tui.screens.run.apply", scripted)
    return scripted


async def _started(app: KubeferryApp, pilot: Pilot[None], scripted: ScriptedApply) -> RunScreen:
    """A run screen of ``fake_plan()``, its scripted apply waiting for cancellation."""
    screen = RunScreen(plan=fake_plan())
    await app.push_screen(screen)
    await wait_for(pilot, scripted.waiting.is_set)
    return screen


async def test_run_shows_progress_and_cancels_after_confirmation(
    workspace: Workspace, scripted: ScriptedApply
) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _started(app, pilot, scripted)
        await wait_for(pilot, lambda: screen.rows["ReplicationJob/web"].items_done == 30)
        # the warning is published after the last progress event: wait for it too
        await wait_for(pilot, lambda: any("skipped (pods/x)" in line for line in screen.log_lines))
        row = screen.rows["ReplicationJob/web"]
        assert row.state == "running"
        assert row.operation == "backup"
        assert row.total_items == 60
        assert row.bytes_done == 30 * 1024
        assert row.stats_text.startswith("30/60 items · 30.0 KiB")
        # the blocked job has a row too, saying why it will not run
        blocked = screen.rows["ReplicationJob/db"]
        assert (blocked.state, blocked.detail) == ("blocked", "cluster worker-3 unreachable")
        log = "\n".join(screen.log_lines)
        assert "» ReplicationJob/web: replicate started" in log
        assert "ReplicationJob/web: skipped (pods/x)" in log
        assert screen.query_one("#run-log", RichLog).lines

        # Esc does not abandon a running apply
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is screen

        # c asks first; "no" keeps it running
        await pilot.press("c")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)
        assert scripted.cancellation is not None
        assert not scripted.cancellation.cancelled

        await pilot.press("c")
        await wait_for_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.finished, timeout=20)
        assert scripted.cancellation.cancelled
        assert screen.ok is False
        assert screen.summary_lines[0] == "Apply interrupted: 0 done, 1 interrupted."
        assert row.state == "interrupted"
        summary = str(screen.query_one("#run-summary", Static).render())
        assert "Apply interrupted" in summary
        assert screen.check_action("cancel_run", ()) is False  # nothing left to cancel
        assert "cancel_run" not in {b.binding.action for b in screen.active_bindings.values()}
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is not screen)


async def test_run_reports_an_apply_that_fails_to_start(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.reconcile import StalePlanError

    def stale(workspace: Workspace, **_: Any) -> tuple[Plan, ApplyResult]:
        raise StalePlanError(
            "saved plan is stale: the inventory changed since it was made",
            hint="run `kubeferry plan --out FILE` again",
        )

    monkeypatch.setattr("tui.screens.run.apply", stale)
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = RunScreen(plan=fake_plan())
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.finished)
        assert screen.ok is False
        assert "Apply failed: saved plan is stale" in screen.summary_lines[0]


async def test_leaving_the_app_cancels_our_run(
    workspace: Workspace, scripted: ScriptedApply
) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await _started(app, pilot, scripted)
    assert scripted.cancellation is not None
    assert scripted.cancellation.cancelled


# -- the whole flow on the sandbox -------------------------------------------------------------


@pytest.fixture
def sandbox_workspace(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, str]]:
    namespace = f"tui-{uuid.uuid4().hex[:8]}"
    yield (
        workspace_on_sandbox(
            sandbox,
            tmp_path,
            monkeypatch,
            namespace,
            replication_slice("w1-to-w2", "worker-1", "worker-2", "local"),
            job("copy", "w1-to-w2", namespace),
        ),
        namespace,
    )
    delete_namespace(sandbox, namespace)


async def test_plan_confirm_run_done_on_the_sandbox(
    sandbox_workspace: tuple[Workspace, str], sandbox: SandboxInfo
) -> None:
    workspace, namespace = sandbox_workspace
    app = KubeferryApp(workspace, poll_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.run_command("plan")
        plan_screen = await wait_for_screen(pilot, PlanScreen)
        await wait_for(pilot, lambda: plan_screen.plan is not None, timeout=120)
        assert plan_screen.error is None
        plan = plan_screen.plan
        assert plan is not None
        assert plan.summary() == "Plan: 4 to add, 0 to change, 0 to destroy, 1 to replicate."
        text = "\n".join(_labels(plan_screen.query_one(PlanTree)))
        assert "+ Cluster/worker-2  create" in text
        assert "+ ReplicationRepository/local  create" in text
        assert f"» ReplicationJob/copy  replicate  worker-1/{namespace} -> worker-2/" in text
        assert "pre-checks: compatible" in text or "pre-checks: warning" in text

        await pilot.press("a")
        confirm = await wait_for_screen(pilot, ConfirmScreen)
        assert confirm.confirm_word == APPLY_WORD  # worker-2 is protected
        await pilot.press(*APPLY_WORD, "enter")
        run = await wait_for_screen(pilot, RunScreen)
        await wait_for(pilot, lambda: run.finished, timeout=180)
        assert run.ok, run.summary_lines
        assert run.summary_lines == ["Apply complete: 5 done."]
        row = run.rows["ReplicationJob/copy"]
        assert row.state == "done"
        assert row.operation == "restore"  # the backup run, then the restore run
        assert row.items_done >= 3
        log = "\n".join(run.log_lines)
        assert "ReplicationJob/copy: backup Completed" in log
        assert "ReplicationJob/copy: restore Completed" in log
        assert "» ReplicationJob/copy: replicate done: snapshot copy-" in log

        # back on the plan screen: planned again, nothing left to do
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is plan_screen)
        await wait_for(
            pilot,
            lambda: plan_screen.plan is not None and plan_screen.plan is not plan,
            timeout=120,
        )
        assert plan_screen.plan is not None
        assert not plan_screen.plan.actions, plan_screen.plan.summary()
        assert plan_screen.check_action("apply", ()) is None

    with sandbox.client("worker-2") as client:
        for n in range(3):
            copied = client.get("v1", "ConfigMap", f"settings-{n}", namespace)
            assert copied is not None
            assert copied["data"] == {"value": str(n)}


# -- runs of another process (cron) ------------------------------------------------------------


async def test_tails_a_run_recorded_by_another_process(workspace: Workspace) -> None:
    from state import EventLevel, IssueSeverity, Ledger, RunKind, RunPhase

    with Ledger.open(workspace.ledger_path) as ledger:
        run = ledger.start_run(RunKind.BACKUP, "web", total_items=100)
        assert run.id is not None
        run_id = run.id
        ledger.record_event("RunStarted", "ReplicationJob/web: backup run started", run_id=run_id)
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.run_command(f"runs {run_id}")
        screen = await wait_for_screen(pilot, RunScreen)
        assert screen.mode == "tail"
        await wait_for(pilot, lambda: "ReplicationJob/web" in screen.rows)
        row = screen.rows["ReplicationJob/web"]
        assert (row.operation, row.state, row.total_items) == ("backup", "running", 100)
        assert any("backup run started" in line for line in screen.log_lines)
        assert screen.check_action("cancel_run", ()) is False  # not ours to cancel

        with Ledger.open(workspace.ledger_path) as ledger:
            ledger.update_run_progress(run_id, items_done=60, bytes_done=5 * 1024 * 1024)
            ledger.add_run_issue(run_id, IssueSeverity.WARNING, "skipped", item="pods/x")
            ledger.record_event(
                "ItemWarning",
                "ReplicationJob/web: skipped (pods/x)",
                level=EventLevel.WARNING,
                run_id=run_id,
            )
        await wait_for(pilot, lambda: row.items_done == 60, timeout=10)
        assert row.bytes_done == 5 * 1024 * 1024
        await wait_for(pilot, lambda: any("skipped (pods/x)" in x for x in screen.log_lines))

        with Ledger.open(workspace.ledger_path) as ledger:
            ledger.update_run_progress(run_id, items_done=100)
            ledger.finish_run(run_id, RunPhase.PARTIALLY_FAILED, message="1 warning")
        await wait_for(pilot, lambda: screen.finished, timeout=10)
        assert screen.ok is False
        assert row.state == "PartiallyFailed"
        assert screen.summary_lines[0].startswith(f"Run {run_id} (backup of web) PartiallyFailed")
        assert screen.summary_lines[0].endswith(": 1 warning")


async def test_watch_shows_runs_that_start_while_open(workspace: Workspace) -> None:
    from state import Ledger, RunKind, RunPhase

    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.run_command("runs")
        screen = await wait_for_screen(pilot, RunScreen)
        assert screen.mode == "watch"
        # the scenario's run in progress (cache) is shown; older events are not replayed
        await wait_for(pilot, lambda: "ReplicationJob/cache" in screen.rows)
        assert screen.log_lines == []

        with Ledger.open(workspace.ledger_path) as ledger:
            run = ledger.start_run(RunKind.BACKUP, "db-backup", total_items=10)
            assert run.id is not None
            ledger.record_event(
                "RunStarted", "ReplicationJob/db-backup: backup run started", run_id=run.id
            )
        await wait_for(pilot, lambda: "ReplicationJob/db-backup" in screen.rows, timeout=10)
        row = screen.rows["ReplicationJob/db-backup"]
        assert row.state == "running"
        await wait_for(
            pilot, lambda: any("db-backup: backup run started" in x for x in screen.log_lines)
        )
        with Ledger.open(workspace.ledger_path) as ledger:
            ledger.update_run_progress(run.id, items_done=10)
            ledger.finish_run(run.id, RunPhase.COMPLETED)
        await wait_for(pilot, lambda: row.state == "Completed", timeout=10)
        assert row.items_done == 10


async def test_switching_views_keeps_our_run_going(
    workspace: Workspace, scripted: ScriptedApply
) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _started(app, pilot, scripted)
        assert app.run_command("runs")  # replaces the run screen with the live view
        await wait_for(pilot, lambda: app.screen is not screen and not screen.is_attached)
        await pilot.pause(0.2)
        assert scripted.cancellation is not None
        assert not scripted.cancellation.cancelled
        scripted.cancellation.cancel()  # let the scripted apply end
