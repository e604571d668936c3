"""Snapshots screen: the catalog, the restore form, the pre-check report, confirmation and the
restore itself — screen-level with the catalog and pre-checks faked, then end to end on the
real sandbox clusters (``precheck_restore`` included: it must write nothing).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from textual.widgets import Button, Checkbox, DataTable, Input, RadioSet, Select, Static

from reconciler.engines import PrecheckReport, PrecheckResult
from reconciler.reconcile import (
    RestoreOutcome,
    RestorePrecheck,
    SnapshotInfo,
    Workspace,
    apply,
    list_runs,
    list_snapshots,
    precheck_restore,
)
from tests._inventory import job, replication_slice
from tests._kube_objects import delete_namespace
from tests.tui._data import NOW, scenario
from tests.tui._navigation import wait_for_screen
from tests.tui._pilot import wait_for
from tests.tui._sandbox import workspace_on_sandbox
from tui.app import KubeferryApp
from tui.screens.run import RunScreen
from tui.screens.snapshots import (
    PrecheckScreen,
    RestoreFormScreen,
    SnapshotsScreen,
    restore_word,
    snapshot_matches,
)
from tui.widgets.confirm import ConfirmScreen

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.anyio


def _snapshot(job: str, namespace: str, minute: int) -> SnapshotInfo:
    return SnapshotInfo(
        id=f"{job}-202603141{minute:03d}00-abc123",
        job=job,
        repository="local",
        namespace=namespace,
        source_cluster="worker-1",
        created_at=datetime(2026, 3, 14, 10, minute, tzinfo=UTC),
        items=40,
        size_bytes=3 * 1024 * 1024,
    )


CATALOG = [
    _snapshot("web", "shop", 50),
    _snapshot("batch", "batch", 40),
    _snapshot("web", "shop", 30),
]


def _report(*statuses: tuple[str, str, str]) -> PrecheckReport:
    return PrecheckReport(tuple(PrecheckResult(n, s, m) for n, s, m in statuses))  # type: ignore[arg-type]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    found = scenario(tmp_path, monkeypatch)  # worker-2 is protected; web -> worker-2/shop-dr
    monkeypatch.setattr(
        "tui.screens.snapshots.list_snapshots", lambda workspace, job=None: list(CATALOG)
    )
    return found


def _app(workspace: Workspace, **extra: Any) -> KubeferryApp:
    return KubeferryApp(workspace, poll_interval=0, clock=lambda: NOW, **extra)


def _rows(screen: SnapshotsScreen) -> list[str]:
    table = screen.query_one("#snapshots-table", DataTable)
    return [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]


def test_filter_and_confirm_word() -> None:
    web = CATALOG[0]
    assert snapshot_matches(web, "web")
    assert snapshot_matches(web, "SHOP web")
    assert not snapshot_matches(web, "batch")
    assert restore_word("recreate", "worker-1", frozenset()) == "recreate"
    assert restore_word("update", "worker-2", frozenset({"worker-2"})) == "restore"
    assert restore_word("none", "worker-1", frozenset({"worker-2"})) is None


async def test_lists_snapshots_and_filters_by_job_or_namespace(workspace: Workspace) -> None:
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.run_command("snapshots web")
        screen = await wait_for_screen(pilot, SnapshotsScreen)
        await wait_for(pilot, lambda: screen.catalog is not None)
        # opened for job web: prefilled filter
        assert _rows(screen) == [CATALOG[0].id, CATALOG[2].id]
        table = screen.query_one("#snapshots-table", DataTable)
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first[:6] == ["web", "shop", "03-14 10:50", "40", "3.0 MiB", "Completed"]
        assert "2 of 3 snapshot(s)" in str(screen.query_one("#snapshots-status").render())
        selected = str(screen.query_one("#snapshots-selected", Static).render())
        assert "worker-1/shop in local, 2026-03-14 10:50:00Z" in selected

        await pilot.press("/")
        filter_input = screen.query_one("#snapshots-filter", Input)
        assert screen.focused is filter_input
        filter_input.value = ""
        await pilot.press(*"batch", "enter")
        assert _rows(screen) == [CATALOG[1].id]
        assert isinstance(screen.focused, DataTable)


async def test_restore_form_precheck_confirm_run(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, Any]] = []

    def fake_precheck(workspace: Workspace, snapshot_id: str, **kwargs: Any) -> RestorePrecheck:
        asked.append({"snapshot_id": snapshot_id, **kwargs})
        return RestorePrecheck(
            snapshot_id=snapshot_id,
            job="web",
            repository="local",
            cluster=kwargs["cluster"],
            namespace=kwargs["to_namespace"],
            policy=kwargs["policy"],
            pre_check_flag="stopOnPrecheck",
            report=_report(
                ("destination-access", "compatible", "can create objects"),
                ("quota", "warning", "near the limit"),
            ),
        )

    restored: list[dict[str, Any]] = []

    def fake_restore(workspace: Workspace, snapshot_id: str, **kwargs: Any) -> RestoreOutcome:
        restored.append({"snapshot_id": snapshot_id, **kwargs})
        return RestoreOutcome(
            snapshot_id=snapshot_id,
            job="web",
            run_id=42,
            cluster=kwargs["cluster"],
            namespace=kwargs["to_namespace"],
            policy=kwargs["policy"],
            items=40,
            phase="Completed",
            outcomes={"created": 38, "recreated": 2},
        )

    monkeypatch.setattr("tui.screens.snapshots.precheck_restore", fake_precheck)
    monkeypatch.setattr("tui.screens.run.restore_snapshot", fake_restore)
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = SnapshotsScreen(job="web")
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.catalog is not None)
        await pilot.press("r")
        await pilot.pause(0.5)
        print(
            "DEBUG",
            app.screen_stack,
            screen.focused,
            screen.selected,
            screen.check_action("restore", ()),
        )
        form = await wait_for_screen(pilot, RestoreFormScreen)
        # the job's defaults: its destination cluster, targetNamespace, policy
        assert form.query_one("#restore-cluster", Select).value == "worker-2"
        assert form.query_one("#restore-namespace", Input).value == "shop-dr"
        assert form.policy == "none"

        # keyboard only: cluster (kept) -> namespace -> policy -> ignore -> Pre-check
        assert isinstance(form.focused, Select)
        await pilot.press("tab")
        namespace = form.query_one("#restore-namespace", Input)
        assert form.focused is namespace
        await pilot.press("end")
        await pilot.press(*"-2", "!", "X")  # invalid characters are refused as typed
        assert namespace.value == "shop-dr-2"
        await pilot.press("tab")
        assert isinstance(form.focused, RadioSet)
        await pilot.press("down", "down", "enter")
        assert form.policy == "recreate"
        await pilot.press("tab")
        assert isinstance(form.focused, Checkbox)
        await pilot.press("tab")
        assert form.focused is form.query_one("#restore-next", Button)
        await pilot.press("enter")

        report_screen = await wait_for_screen(pilot, PrecheckScreen)
        await wait_for(pilot, lambda: report_screen.result is not None)
        assert asked == [
            {
                "snapshot_id": CATALOG[0].id,
                "cluster": "worker-2",
                "to_namespace": "shop-dr-2",
                "policy": "recreate",
                "ignore_prechecks": False,
            }
        ]
        report = str(report_screen.query_one("#precheck-report", Static).render())
        assert "Pre-checks: warning" in report
        assert "destination-access: can create objects" in report
        assert "quota: near the limit" in report
        restore_button = report_screen.query_one("#precheck-restore", Button)
        assert not restore_button.disabled
        assert report_screen.focused is restore_button
        await pilot.press("enter")

        confirm = await wait_for_screen(pilot, ConfirmScreen)
        assert confirm.confirm_word == "recreate"
        assert "worker-2 is PROTECTED" in confirm.body
        assert "onto worker-2/shop-dr-2 with policy recreate" in confirm.body
        assert restored == []
        await pilot.press(*"recreate", "enter")

        run = await wait_for_screen(pilot, RunScreen)
        assert run.mode == "restore"
        await wait_for(pilot, lambda: run.finished)
        assert restored[0]["cluster"] == "worker-2"
        assert restored[0]["to_namespace"] == "shop-dr-2"
        assert restored[0]["policy"] == "recreate"
        assert restored[0]["ignore_prechecks"] is False
        assert run.ok
        assert run.summary_lines[0] == (
            f"Restored snapshot {CATALOG[0].id} to worker-2/shop-dr-2 (policy recreate): "
            "40 items, Completed (run 42)."
        )
        assert "Outcomes: 38 created, 0 updated, 2 recreated" in run.summary_lines[1]


async def test_precheck_that_would_stop_the_restore_blocks_it(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop(workspace: Workspace, snapshot_id: str, **kwargs: Any) -> RestorePrecheck:
        return RestorePrecheck(
            snapshot_id=snapshot_id,
            job="web",
            repository="local",
            cluster=kwargs["cluster"],
            namespace=kwargs["to_namespace"],
            policy=kwargs["policy"],
            pre_check_flag="ignorePrechecks" if kwargs["ignore_prechecks"] else "stopOnPrecheck",
            report=_report(("storage-classes", "not_compatible", "no class fast-ssd")),
        )

    monkeypatch.setattr("tui.screens.snapshots.precheck_restore", stop)
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = SnapshotsScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.catalog is not None)
        await pilot.press("r")
        await wait_for_screen(pilot, RestoreFormScreen)
        await pilot.press("tab", "enter")  # namespace input: enter submits the form
        checks = await wait_for_screen(pilot, PrecheckScreen)
        await wait_for(pilot, lambda: checks.result is not None)
        assert checks.result is not None
        assert checks.result.would_stop
        assert checks.query_one("#precheck-restore", Button).disabled
        report = str(checks.query_one("#precheck-report", Static).render())
        assert "storage-classes: no class fast-ssd" in report
        assert "would stop this restore" in report
        await pilot.press("enter")  # focus is on Cancel
        await wait_for(pilot, lambda: app.screen is screen)

        # again, asking to ignore the pre-checks: the restore may go ahead
        await pilot.press("r")
        form = await wait_for_screen(pilot, RestoreFormScreen)
        form.query_one("#restore-ignore", Checkbox).value = True
        form.query_one("#restore-next", Button).press()
        again = await wait_for_screen(pilot, PrecheckScreen)
        await wait_for(pilot, lambda: again.result is not None)
        assert not again.query_one("#precheck-restore", Button).disabled
        assert "ignored as asked" in str(again.query_one("#precheck-report", Static).render())


async def test_read_only_hides_and_refuses_restore(workspace: Workspace) -> None:
    app = _app(workspace, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = SnapshotsScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.catalog is not None)
        assert "restore" not in {b.binding.action for b in screen.active_bindings.values()}
        await pilot.press("r")
        await pilot.pause(0.2)
        assert app.screen is screen
        screen.action_restore()
        await pilot.pause(0.1)
        assert app.screen is screen
        assert "r: restore" not in str(screen.query_one("#snapshots-status").render())


async def test_an_unreadable_repository_is_reported(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.errors import KubeferryError

    def broken(workspace: Workspace, job: str | None = None) -> list[SnapshotInfo]:
        raise KubeferryError("repository offsite: endpoint refused the connection")

    monkeypatch.setattr("tui.screens.snapshots.list_snapshots", broken)
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = SnapshotsScreen()
        await app.push_screen(screen)
        await wait_for(
            pilot, lambda: "refused" in str(screen.query_one("#snapshots-status").render())
        )
        assert screen.catalog is None
        await pilot.press("r")
        await pilot.pause(0.1)
        assert app.screen is screen


# -- on the sandbox ----------------------------------------------------------------------------


@pytest.fixture
def backed_up(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, str]]:
    """A namespace on worker-1 with three ConfigMaps, backed up once by apply."""
    namespace = f"tuis-{uuid.uuid4().hex[:8]}"
    workspace = workspace_on_sandbox(
        sandbox,
        tmp_path,
        monkeypatch,
        namespace,
        replication_slice("w1-backup", "worker-1", "worker-1", "local"),
        job("keep", "w1-backup", namespace, existingResourcePolicy="update"),
    )
    _, result = apply(workspace)
    assert result is not None
    assert result.ok, result
    yield workspace, namespace
    delete_namespace(sandbox, namespace, ["worker-1"])
    delete_namespace(sandbox, f"{namespace}-dr", ["worker-2"])


def test_precheck_restore_reports_and_writes_nothing(
    backed_up: tuple[Workspace, str], sandbox: SandboxInfo
) -> None:
    workspace, namespace = backed_up
    (snapshot,) = list_snapshots(workspace)
    runs_before = list_runs(workspace)
    result = precheck_restore(
        workspace, snapshot.id, cluster="worker-2", to_namespace=f"{namespace}-dr"
    )
    assert result.job == "keep"
    assert result.cluster == "worker-2"
    assert result.namespace == f"{namespace}-dr"
    assert result.policy == "update"  # the job's existingResourcePolicy
    assert result.pre_check_flag == "stopOnPrecheck"
    names = {check.name for check in result.report.checks}
    assert {"destination-access", "api-resources", "namespace"} <= names
    assert result.report.overall in ("compatible", "warning")
    assert not result.would_stop
    # read-only: no run recorded, nothing created on the destination
    assert list_runs(workspace) == runs_before
    with sandbox.client("worker-2") as client:
        assert client.get("v1", "Namespace", f"{namespace}-dr") is None


async def test_restore_a_snapshot_to_another_cluster_on_the_sandbox(
    backed_up: tuple[Workspace, str], sandbox: SandboxInfo
) -> None:
    workspace, namespace = backed_up
    target = f"{namespace}-dr"
    app = KubeferryApp(workspace, poll_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = SnapshotsScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.catalog is not None, timeout=60)
        (snapshot_id,) = _rows(screen)
        assert snapshot_id.startswith("keep-")
        await pilot.press("r")
        form = await wait_for_screen(pilot, RestoreFormScreen)
        assert form.query_one("#restore-cluster", Select).value == "worker-1"
        assert form.query_one("#restore-namespace", Input).value == namespace
        assert form.policy == "update"
        form.query_one("#restore-cluster", Select).value = "worker-2"
        form.query_one("#restore-namespace", Input).value = target
        form.query_one("#restore-next", Button).press()

        checks = await wait_for_screen(pilot, PrecheckScreen)
        await wait_for(pilot, lambda: checks.result is not None, timeout=60)
        report = str(checks.query_one("#precheck-report", Static).render())
        assert "Pre-checks: " in report
        assert "destination-access" in report
        assert not checks.query_one("#precheck-restore", Button).disabled
        await pilot.press("enter")

        confirm = await wait_for_screen(pilot, ConfirmScreen)
        assert confirm.confirm_word == "restore"  # worker-2 is protected
        await pilot.press(*"restore", "enter")
        run = await wait_for_screen(pilot, RunScreen)
        await wait_for(pilot, lambda: run.finished, timeout=180)
        assert run.ok, run.summary_lines
        assert any(
            line.startswith(f"Restored snapshot {snapshot_id} to worker-2/{target} (policy update)")
            for line in run.summary_lines
        )
        row = run.rows["ReplicationJob/keep"]
        assert row.operation == "restore"
        assert row.state == "Completed"
        assert row.items_done >= 3
        assert "ReplicationJob/keep: restore Completed" in "\n".join(run.log_lines)

    with sandbox.client("worker-2") as client:
        for n in range(3):
            copied = client.get("v1", "ConfigMap", f"settings-{n}", target)
            assert copied is not None
            assert copied["data"] == {"value": str(n)}
    (restore_run,) = [r for r in list_runs(workspace) if r.kind == "restore"]
    assert restore_run.phase == "Completed"
