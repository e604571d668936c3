"""Status write-back without a cluster: run -> ReplicationJobConfig status patch (pure), the
matching rule, the writer's throttling and failure handling (fake transport, fake clock), the
hook in ActionRunner._run, the inventory rule and the plan's view."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from reconciler._events import EventBus
from reconciler.apply import Cancellation
from reconciler.errors import KubeferryError
from reconciler.inventory import InventoryError, load_inventory
from reconciler.kube import KubeApiError, KubeConfigError, KubeUnreachableError, Manifest
from reconciler.kubeslice import (
    FAILED_EVENT,
    SKIPPED_EVENT,
    MirroredRun,
    StatusTarget,
    StatusWriteBack,
    find_target,
    observe_status_targets,
    rfc3339,
    status_patch,
)
from reconciler.kubeslice import _status as status_module
from reconciler.plan import (
    DesiredJob,
    DesiredState,
    ObservedState,
    RecordedState,
    StatusTargetObservation,
    compute_plan,
    render_plan,
)
from reconciler.reconcile import _actions, ledger_lock
from reconciler.reconcile._actions import ActionRunner
from reconciler.reconcile._connect import Connections
from state import Ledger, RunKind, RunPhase
from tests._inventory import cluster, filesystem_repository, inventory, job, replication_slice

STARTED = datetime(2026, 11, 25, 18, 0, 0, 123456, tzinfo=UTC)
FINISHED = STARTED + timedelta(seconds=42)


def _config(name: str, namespace: str, slice_name: str) -> Manifest:
    return {
        "apiVersion": "controller.kubeslice.io/v1alpha1",
        "kind": "ReplicationJobConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicationSliceName": slice_name},
    }


# -- the mapping ------------------------------------------------------------------------------


def test_rfc3339_is_utc_with_z_and_whole_seconds() -> None:
    assert rfc3339(STARTED) == "2026-11-25T18:00:00Z"
    eastern = STARTED.astimezone(ZoneInfo("America/New_York"))
    assert rfc3339(eastern) == "2026-11-25T18:00:00Z"
    assert rfc3339(STARTED.replace(tzinfo=None)) == "2026-11-25T18:00:00Z"  # ledger UTC


def test_running_backup_has_no_completion_and_resets_the_previous_run() -> None:
    run = MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED, total_items=None, items_done=0)
    backup = status_patch(run)["status"]["backup"]
    assert backup["phase"] == "InProgress"
    assert backup["startTimestamp"] == "2026-11-25T18:00:00Z"
    # explicit nulls: a merge patch removes what an earlier run (or writer) left there
    assert "completionTimestamp" in backup
    assert backup["completionTimestamp"] is None
    assert backup["failureReason"] is None
    assert backup["expiration"] is None
    for stale in ("validationErrors", "volumeSnapshotsAttempted", "version"):
        assert stale in backup
        assert backup[stale] is None
    assert backup["progress"] == {"totalItems": None, "itemsBackedUp": 0}
    assert backup["formatVersion"] == "1.1.0"
    assert backup["errors"] == 0
    assert backup["warnings"] == 0


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def test_a_new_run_leaves_nothing_of_the_previous_one() -> None:
    failed = MirroredRun(
        "backup", RunPhase.FAILED, STARTED, FINISHED, 9, 3, errors=1, message="boom"
    )
    earlier = _merge({"status": {"backup": {"volumeSnapshotsAttempted": 2}}}, status_patch(failed))
    assert earlier["status"]["backup"]["failureReason"] == "boom"
    later = MirroredRun("backup", RunPhase.IN_PROGRESS, FINISHED + timedelta(hours=1))
    status = _merge(earlier, status_patch(later))["status"]["backup"]
    assert status == {
        "phase": "InProgress",
        "startTimestamp": "2026-11-25T19:00:42Z",
        "errors": 0,
        "warnings": 0,
        "progress": {"itemsBackedUp": 0},
        "formatVersion": "1.1.0",
    }


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (RunPhase.NEW, "New"),
        (RunPhase.IN_PROGRESS, "InProgress"),
        (RunPhase.COMPLETED, "Completed"),
        (RunPhase.PARTIALLY_FAILED, "PartiallyFailed"),
        (RunPhase.FAILED, "Failed"),
        (RunPhase.INTERRUPTED, "Failed"),
    ],
)
@pytest.mark.parametrize("kind", ["backup", "restore"])
def test_each_phase_maps_to_velero(kind: str, phase: RunPhase, expected: str) -> None:
    finished = FINISHED if phase.finished else None
    run = MirroredRun(kind, phase, STARTED, finished, 5, 5, message="cancelled by the user")  # type: ignore[arg-type]
    section = status_patch(run)["status"][kind]
    assert section["phase"] == expected
    assert section["completionTimestamp"] == (rfc3339(FINISHED) if phase.finished else None)
    if phase is RunPhase.INTERRUPTED:
        assert section["failureReason"] == "interrupted: cancelled by the user"
    elif phase is RunPhase.FAILED:
        assert section["failureReason"] == "cancelled by the user"
    else:
        assert section["failureReason"] is None


def test_completed_backup_progress_counts_and_expiration_from_the_ttl() -> None:
    run = MirroredRun("backup", RunPhase.COMPLETED, STARTED, FINISHED, 12, 12, errors=0, warnings=2)
    backup = status_patch(run, ttl=timedelta(days=30))["status"]["backup"]
    assert backup["progress"] == {"totalItems": 12, "itemsBackedUp": 12}
    assert backup["expiration"] == "2026-12-25T18:00:00Z"
    assert backup["completionTimestamp"] == "2026-11-25T18:00:42Z"
    assert backup["warnings"] == 2
    assert status_patch(run)["status"]["backup"]["expiration"] is None  # no ttl: none
    failed = MirroredRun("backup", RunPhase.FAILED, STARTED, FINISHED, message="x")
    assert status_patch(failed, ttl=timedelta(days=1))["status"]["backup"]["expiration"] is None


def test_restore_status_carries_items_restored_and_the_precheck_report() -> None:
    running = MirroredRun("restore", RunPhase.IN_PROGRESS, STARTED, None, 7, 3)
    status = status_patch(running)["status"]
    assert status["restore"]["progress"] == {"totalItems": 7, "itemsRestored": 3}
    assert "formatVersion" not in status["restore"]  # not in the published restore status
    assert "expiration" not in status["restore"]
    assert status["overallCompatibility"] == "in_progress"
    assert status["compatibilityChecks"] is None
    assert "backup" not in status  # a restore leaves the backup's status alone

    report = {
        "overallCompatibility": "warning",
        "compatibilityChecks": [
            {"name": "storage-classes", "status": "warning", "message": "fast missing"},
            {"name": "crds", "status": "compatible", "message": ""},
        ],
    }
    done = MirroredRun("restore", RunPhase.COMPLETED, STARTED, FINISHED, 7, 7, precheck=report)
    status = status_patch(done)["status"]
    assert status["overallCompatibility"] == "warning"
    assert status["compatibilityChecks"] == [
        {"name": "storage-classes", "status": "warning", "description": "fast missing"},
        {"name": "crds", "status": "compatible", "description": ""},
    ]
    early = MirroredRun("restore", RunPhase.FAILED, STARTED, FINISHED, message="no repo")
    status = status_patch(early)["status"]
    assert status["overallCompatibility"] is None  # ended before its pre-checks
    assert status["compatibilityChecks"] is None


def test_only_published_fields_are_written() -> None:
    published = {
        "backup": {
            "backupItemOperationsAttempted",
            "backupItemOperationsCompleted",
            "backupItemOperationsFailed",
            "completionTimestamp",
            "csiVolumeSnapshotsAttempted",
            "csiVolumeSnapshotsCompleted",
            "errors",
            "expiration",
            "failureReason",
            "formatVersion",
            "phase",
            "progress",
            "startTimestamp",
            "validationErrors",
            "version",
            "volumeSnapshotsAttempted",
            "volumeSnapshotsCompleted",
            "warnings",
        },
        "restore": {
            "completionTimestamp",
            "errors",
            "failureReason",
            "phase",
            "progress",
            "restoreItemOperationsAttempted",
            "restoreItemOperationsCompleted",
            "restoreItemOperationsFailed",
            "startTimestamp",
            "validationErrors",
            "warnings",
        },
    }
    for kind in ("backup", "restore"):
        run = MirroredRun(kind, RunPhase.COMPLETED, STARTED, FINISHED, 1, 1)
        status = status_patch(run)["status"]
        assert set(status[kind]) <= published[kind]
        assert set(status) <= {"backup", "restore", "overallCompatibility", "compatibilityChecks"}


# -- matching -----------------------------------------------------------------------------


def test_the_job_config_is_matched_by_name_slice_and_project_namespace() -> None:
    listings = {
        "controller": [
            _config("web", "kubeslice-acme", "w1-to-w2"),
            _config("web", "kubeslice-acme", "other-slice"),  # another slice
            _config("web", "default", "w1-to-w2"),  # not a project namespace
            _config("api", "kubeslice-acme", "w1-to-w2"),
        ]
    }
    lookup = find_target(listings, "web", "w1-to-w2")
    assert lookup.target == StatusTarget("controller", "kubeslice-acme", "web")
    assert str(lookup.target) == "ReplicationJobConfig kubeslice-acme/web on controller"

    none = find_target(listings, "db", "w1-to-w2")
    assert none.target is None
    assert not none.failed
    assert none.problem == (
        "no ReplicationJobConfig db for slice w1-to-w2 in any kubeslice-* namespace on controller"
    )
    listings["controller"].append(_config("web", "kubeslice-other", "w1-to-w2"))
    several = find_target(listings, "web", "w1-to-w2")
    assert several.target is None
    assert "kubeslice-acme on controller, kubeslice-other on controller" in several.problem


def test_an_unlisted_controller_is_a_failure_and_a_missing_crd_says_so() -> None:
    down = find_target(
        {"controller": KubeUnreachableError("cannot reach the Kubernetes API at https://x")},
        "web",
        "s",
    )
    assert down.failed
    assert down.problem.startswith("cannot list ReplicationJobConfigs on controller: cannot reach")
    missing = find_target(
        {"controller": KubeApiError("does not serve kind", status=404)}, "web", "s"
    )
    assert missing.problem == (
        "controller does not serve ReplicationJobConfig (KubeSlice controller not installed?)"
    )


# -- the writer ---------------------------------------------------------------------------


@dataclass
class FakeTransport:
    configs: list[Manifest] = field(
        default_factory=lambda: [_config("web", "kubeslice-acme", "w1-to-w2")]
    )
    listing_error: KubeferryError | None = None
    errors: list[KubeferryError] = field(default_factory=list)
    """Raised by the next patch calls, in order."""
    patches: list[tuple[StatusTarget, Manifest]] = field(default_factory=list)
    lists: int = 0
    closed: bool = False

    def list_job_configs(self, cluster: str) -> list[Manifest] | KubeferryError:
        self.lists += 1
        return self.listing_error or self.configs

    def patch_status(self, target: StatusTarget, patch: Manifest) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.patches.append((target, patch))

    def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _writer(
    transport: FakeTransport, clock: FakeClock | None = None
) -> tuple[StatusWriteBack, list[tuple[str, str]]]:
    reports: list[tuple[str, str]] = []
    writer = StatusWriteBack(
        job="web",
        slice_name="w1-to-w2",
        controllers=["controller"],
        transport=transport,
        report=lambda event, text: reports.append((event, text)),
        clock=clock or FakeClock(),
    )
    return writer, reports


def _phases(transport: FakeTransport, kind: str = "backup") -> list[Any]:
    return [
        (p["status"][kind]["phase"], p["status"][kind]["progress"]) for _, p in transport.patches
    ]


def test_progress_is_throttled_to_one_write_per_two_seconds_and_the_end_always_goes() -> None:
    transport, clock = FakeTransport(), FakeClock()
    writer, reports = _writer(transport, clock)
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))
    writer.progressed(0, 10)  # same instant as the start write: skipped
    clock.now += 1.0
    writer.progressed(4, 10)  # 1 s after the last write: skipped
    clock.now += 1.0
    writer.progressed(6, 10)  # 2 s: written
    clock.now += 1.9
    writer.progressed(9, 10)  # skipped; the end carries it
    writer.finished(MirroredRun("backup", RunPhase.COMPLETED, STARTED, FINISHED, 10, 10))
    assert _phases(transport) == [
        ("InProgress", {"totalItems": None, "itemsBackedUp": 0}),
        ("InProgress", {"totalItems": 10, "itemsBackedUp": 6}),
        ("Completed", {"totalItems": 10, "itemsBackedUp": 10}),
    ]
    assert transport.lists == 1  # the ReplicationJobConfig is looked up once per run
    assert {target for target, _ in transport.patches} == {
        StatusTarget("controller", "kubeslice-acme", "web")
    }
    assert transport.closed
    assert reports == []
    writer.progressed(10, 10)  # after the end: nothing more
    assert len(transport.patches) == 3


def test_no_matching_config_writes_nothing_and_is_reported_once() -> None:
    transport = FakeTransport(configs=[])
    writer, reports = _writer(transport)
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))
    writer.progressed(5, 5)
    writer.finished(MirroredRun("backup", RunPhase.COMPLETED, STARTED, FINISHED, 5, 5))
    assert transport.patches == []
    assert reports == [
        (
            SKIPPED_EVENT,
            "status write-back skipped for job web: no ReplicationJobConfig web for slice "
            "w1-to-w2 in any kubeslice-* namespace on controller",
        )
    ]


def test_an_unreachable_controller_is_one_failure_and_no_more_calls() -> None:
    transport = FakeTransport(listing_error=KubeUnreachableError("cannot reach https://c"))
    writer, reports = _writer(transport)
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))
    writer.finished(MirroredRun("backup", RunPhase.FAILED, STARTED, FINISHED, message="x"))
    assert [event for event, _ in reports] == [FAILED_EVENT]
    assert transport.patches == []


def test_a_conflict_is_retried_once() -> None:
    transport = FakeTransport(errors=[KubeApiError("conflict", status=409)])
    writer, reports = _writer(transport)
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))
    assert len(transport.patches) == 1
    assert reports == []


def test_forbidden_is_reported_once_and_stops_the_writes() -> None:
    transport = FakeTransport(
        errors=[KubeApiError("https://c: patch ...: HTTP 403 forbidden", status=403)]
    )
    writer, reports = _writer(transport)
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))
    writer.finished(MirroredRun("backup", RunPhase.COMPLETED, STARTED, FINISHED, 1, 1))
    assert transport.patches == []
    assert reports == [
        (
            FAILED_EVENT,
            "status write-back failed for job web: ReplicationJobConfig kubeslice-acme/web on "
            "controller: https://c: patch ...: HTTP 403 forbidden",
        )
    ]


def test_a_passing_server_error_is_reported_once_and_the_end_still_written() -> None:
    transport = FakeTransport(
        errors=[KubeApiError("HTTP 500", status=500), KubeApiError("HTTP 500", status=500)]
    )
    clock = FakeClock()
    writer, reports = _writer(transport, clock)
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))
    clock.now += 5
    writer.progressed(1, 2)
    writer.finished(MirroredRun("backup", RunPhase.COMPLETED, STARTED, FINISHED, 2, 2))
    assert [event for event, _ in reports] == [FAILED_EVENT]
    assert _phases(transport) == [("Completed", {"totalItems": 2, "itemsBackedUp": 2})]


def test_an_unexpected_error_never_escapes() -> None:
    class Broken(FakeTransport):
        def list_job_configs(self, cluster: str) -> list[Manifest] | KubeferryError:
            raise RuntimeError("bug")

    writer, reports = _writer(Broken())
    writer.started(MirroredRun("backup", RunPhase.IN_PROGRESS, STARTED))  # does not raise
    writer.finished(MirroredRun("backup", RunPhase.COMPLETED, STARTED, FINISHED))
    assert reports == [
        (FAILED_EVENT, "status write-back failed for job web: unexpected error: RuntimeError: bug")
    ]


# -- the hook in ActionRunner._run --------------------------------------------------------


def _inventory(*, write_back: bool, controller: bool = True) -> str:
    extra = {"statusWriteBack": True} if write_back else {}
    controllers = [cluster("controller", role="controller")] if controller else []
    return inventory(
        *controllers,
        cluster("worker-1"),
        filesystem_repository("repo"),
        replication_slice("w1-to-w2", "worker-1", "worker-1", "repo", **extra),
        job("web", "w1-to-w2", "web", retention={"ttl": "2d"}),
    )


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    transports: list[FakeTransport] = []
    real = status_module.status_write_back

    def with_fake_transport(*args: Any, **kwargs: Any) -> StatusWriteBack | None:
        transport = FakeTransport()
        mirror = real(*args, **kwargs, transport=transport)
        if mirror is not None:
            transports.append(transport)
        return mirror

    monkeypatch.setattr(_actions, "status_write_back", with_fake_transport)
    ledger = Ledger.open(tmp_path / "ledger.sqlite", create=True)

    def make(write_back: bool = True) -> tuple[ActionRunner, list[FakeTransport]]:
        path = tmp_path / "kubeferry.yaml"
        path.write_text(_inventory(write_back=write_back))
        inventory = load_inventory(path)
        return (
            ActionRunner(inventory, Connections(inventory), ledger, None, EventBus(), {}),  # type: ignore[arg-type]
            transports,
        )

    yield make
    ledger.close()


def test_the_run_hook_mirrors_start_and_end_and_skips_drills(runner: Callable[..., Any]) -> None:
    action_runner, transports = runner()

    def work(reporter: Any, run_id: int) -> str:
        reporter.total(3)
        for n in range(3):
            reporter.item_done(f"configmaps/c{n}")
        return "done"

    run_id, _ = action_runner._run(
        RunKind.BACKUP, "web", "ReplicationJob/web", Cancellation(), work
    )
    [transport] = transports
    first, last = transport.patches[0][1], transport.patches[-1][1]
    assert first["status"]["backup"]["phase"] == "InProgress"
    backup = last["status"]["backup"]
    stored = action_runner.ledger.run(run_id)
    assert backup["phase"] == "Completed"
    assert backup["progress"] == {"totalItems": 3, "itemsBackedUp": 3}
    assert backup["startTimestamp"] == rfc3339(stored.started_at)
    assert backup["completionTimestamp"] == rfc3339(stored.finished_at)
    assert backup["expiration"] == rfc3339(stored.started_at + timedelta(days=2))

    action_runner._run(RunKind.DRILL, "web", "ReplicationJob/web", Cancellation(), work)
    assert len(transports) == 1  # a drill is not the job's restore: not mirrored


def test_a_failing_write_back_never_changes_the_run(runner: Callable[..., Any]) -> None:
    action_runner, transports = runner()
    real = FakeTransport.patch_status

    def refuse(self: FakeTransport, target: StatusTarget, patch: Manifest) -> None:
        raise KubeApiError("HTTP 403 forbidden", status=403)

    FakeTransport.patch_status = refuse  # type: ignore[method-assign]
    try:
        run_id, result = action_runner._run(
            RunKind.RESTORE, "web", "ReplicationJob/web", Cancellation(), lambda r, i: "ok"
        )
    finally:
        FakeTransport.patch_status = real  # type: ignore[method-assign]
    assert result == "ok"
    assert action_runner.ledger.run(run_id).phase is RunPhase.COMPLETED
    events = [e for e in action_runner.ledger.events(run_id=run_id) if e.kind.startswith("status")]
    assert [(e.kind, e.level.value) for e in events] == [(FAILED_EVENT, "warning")]
    assert "HTTP 403 forbidden" in events[0].message

    def fail(reporter: Any, run_id: int) -> str:
        raise KubeferryError("namespace web does not exist on worker-1")

    with pytest.raises(KubeferryError):
        action_runner._run(RunKind.BACKUP, "web", "ReplicationJob/web", Cancellation(), fail)
    backup = transports[-1].patches[-1][1]["status"]["backup"]
    assert backup["phase"] == "Failed"
    assert backup["failureReason"] == "namespace web does not exist on worker-1"
    assert backup["expiration"] is None


def test_without_status_write_back_nothing_is_mirrored(runner: Callable[..., Any]) -> None:
    action_runner, transports = runner(write_back=False)
    action_runner._run(RunKind.BACKUP, "web", "ReplicationJob/web", Cancellation(), lambda r, i: 1)
    assert transports == []


def test_a_run_whose_process_died_is_mirrored_failed_when_the_next_run_takes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transports: list[FakeTransport] = []
    real = status_module.status_write_back

    def with_fake_transport(*args: Any, **kwargs: Any) -> StatusWriteBack | None:
        transport = FakeTransport()
        mirror = real(*args, **{**kwargs, "transport": transport})
        if mirror is not None:
            transports.append(transport)
        return mirror

    monkeypatch.setattr(status_module, "status_write_back", with_fake_transport)
    path = tmp_path / "kubeferry.yaml"
    path.write_text(_inventory(write_back=True))
    inventory = load_inventory(path)
    ledger_path = tmp_path / "ledger.sqlite"
    with Ledger.open(ledger_path, create=True) as ledger:
        ledger.upsert_cluster("worker-1")
        ledger.upsert_repository("repo")
        ledger.upsert_slice(
            "w1-to-w2", source_cluster="worker-1", destination_cluster="worker-1", repository="repo"
        )
        ledger.upsert_job("web", slice="w1-to-w2", namespace="web")
        backup = ledger.start_run(RunKind.BACKUP, "web", total_items=7)
        drill = ledger.start_run(RunKind.DRILL, "web")
        ledger.update_run_progress(backup.id, items_done=3)
    gone = subprocess.Popen(["true"])  # a pid whose process has ended: the "killed" kubeferry
    gone.wait()
    with sqlite3.connect(ledger_path) as database:
        database.execute("UPDATE runs SET pid = ?", (gone.pid,))

    with Ledger.open(ledger_path) as ledger:
        with ledger_lock(ledger, "apply", 5, inventory=inventory):
            assert ledger.run(backup.id).phase is RunPhase.INTERRUPTED
            assert ledger.run(drill.id).phase is RunPhase.INTERRUPTED
        [transport] = transports  # the backup's; a drill is never mirrored
        [(target, patch)] = transport.patches
        assert target == StatusTarget("controller", "kubeslice-acme", "web")
        status = patch["status"]["backup"]
        assert status["phase"] == "Failed"
        assert status["failureReason"].startswith(f"interrupted: process {gone.pid} on ")
        assert status["completionTimestamp"] == rfc3339(ledger.run(backup.id).finished_at)
        assert status["progress"] == {"totalItems": 7, "itemsBackedUp": 3}
        assert transport.closed

        # a later lock has nothing left to mark, so nothing more is written
        with ledger_lock(ledger, "apply", 5, inventory=inventory):
            pass
        assert len(transports) == 1


# -- inventory rule and plan --------------------------------------------------------------


def test_status_write_back_needs_a_controller_cluster(tmp_path: Path) -> None:
    without_controller = _inventory(write_back=True, controller=False)
    [(line, text)] = [
        (number, text)
        for number, text in enumerate(without_controller.splitlines(), 1)
        if "statusWriteBack" in text
    ]
    column = text.index("statusWriteBack: ") + len("statusWriteBack: ") + 1  # at the value
    path = tmp_path / "kubeferry.yaml"
    path.write_text(without_controller)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    issues = [str(issue).replace(f"{tmp_path}/", "") for issue in caught.value.issues]
    assert issues == [
        f"kubeferry.yaml:{line}:{column}: ReplicationSlice/w1-to-w2.spec.statusWriteBack: "
        "statusWriteBack "
        "needs a Cluster with role controller in the inventory (the KubeSlice "
        "ReplicationJobConfigs live there)"
    ]
    path.write_text(_inventory(write_back=True))
    assert load_inventory(path).slices["w1-to-w2"].spec.status_write_back


def test_the_plan_shows_where_status_goes_or_why_it_cannot() -> None:
    job = DesiredJob(
        name="web",
        slice="w1-to-w2",
        source_cluster="worker-1",
        destination_cluster="worker-2",
        repository="repo",
        namespace="web",
        target_namespace="web",
        spec_digest="d",
        content_digest="c",
    )
    desired = DesiredState("inv.yaml", "x", jobs={"web": job, "api": replace(job, name="api")})
    target = "ReplicationJobConfig kubeslice-acme/web on controller"
    problem = "no ReplicationJobConfig api for slice w1-to-w2 in any kubeslice-* namespace on c"
    observed = ObservedState(
        status_targets={
            "web": StatusTargetObservation(target=target),
            "api": StatusTargetObservation(problem=problem),
        }
    )
    plan = compute_plan(desired, RecordedState(serial=0), observed, now=STARTED)
    [web] = [a for a in plan.actions if a.address == "ReplicationJob/web"]
    assert web.details["statusWriteBack"] == target
    assert [(p.address, p.message) for p in plan.problems] == [
        ("ReplicationJob/api", f"statusWriteBack: {problem}")
    ]
    out = StringIO()
    render_plan(plan, Console(file=out, width=200))
    assert f"status written back to {target}" in out.getvalue()
    assert f"x ReplicationJob/api: statusWriteBack: {problem}" in out.getvalue()


def test_plan_observation_asks_each_controller_once_and_only_with_status_write_back(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def broken_kubeconfig(cluster: str) -> Any:
        asked.append(cluster)
        raise KubeConfigError(f"cannot use kubeconfig /nowhere (context {cluster!r}): missing")

    path = tmp_path / "kubeferry.yaml"
    path.write_text(_inventory(write_back=False))
    assert observe_status_targets(load_inventory(path), broken_kubeconfig) == {}
    assert asked == []  # no slice has statusWriteBack: no call at all

    path.write_text(_inventory(write_back=True))
    observed = observe_status_targets(load_inventory(path), broken_kubeconfig)
    assert asked == ["controller"]
    assert observed == {
        "web": StatusTargetObservation(
            problem="cannot list ReplicationJobConfigs on controller: cannot use kubeconfig "
            "/nowhere (context 'controller'): missing"
        )
    }
