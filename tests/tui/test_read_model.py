"""The TUI's read model (reconciler.reconcile._overview) over a real ledger and inventory.

No cluster or repository is contacted: every figure comes from the inventory file and the
ledger the tests fill through the Ledger API (see _data.py for the scenario).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.plan import Action, ActionType, DesiredJob, Plan
from reconciler.reconcile import (
    Cancellation,
    Workspace,
    apply,
    describe,
    events_since,
    inventory_stamp,
    job_health,
    job_sync,
    ledger_serial,
    list_runs,
    load_overview,
    run_detail,
)
from state import Job, Ledger, Run, RunKind, RunPhase

from ._data import INVENTORY, NOW, scenario, write_inventory


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return scenario(tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("job", "sync", "health", "reason"),
    [
        ("web", "Synced", "Healthy", ""),
        ("db-backup", "OutOfSync", "Healthy", "backup due since 2026-03-14 10:00Z"),
        ("api", "OutOfSync", "Missing", "never applied; never replicated"),
        ("batch", "Synced", "Degraded", "restore run 7 Failed: namespace batch is terminating"),
        ("cache", "Synced", "Progressing", "backup run 10 in progress"),
        ("old-job", "OutOfSync", "Healthy", "removed from the inventory"),
    ],
)
def test_each_job_gets_its_sync_and_health(
    workspace: Workspace, job: str, sync: str, health: str, reason: str
) -> None:
    rows = {row.name: row for row in load_overview(workspace, now=NOW).jobs}
    row = rows[job]
    assert (row.sync, row.health) == (sync, health)
    assert row.message.startswith(reason)


def test_jobs_carry_last_run_next_due_and_rpo(workspace: Workspace) -> None:
    overview = load_overview(workspace, now=NOW)
    rows = {row.name: row for row in overview.jobs}
    assert [row.name for row in overview.jobs] == sorted(rows)
    web = rows["web"]
    assert (web.source_cluster, web.destination_cluster) == ("worker-1", "worker-2")
    assert (web.namespace, web.target_namespace, web.repository) == ("shop", "shop-dr", "local")
    assert web.last_run_phase == "Completed"
    assert web.last_run_at == NOW - timedelta(minutes=10)
    assert web.next_due is None  # no backupFrequency: on demand
    assert web.last_good_snapshot_at == NOW - timedelta(minutes=11)  # the snapshot's time
    assert web.rpo_seconds == 660
    backup = rows["db-backup"]
    assert backup.mode == "backup"
    assert backup.next_due == NOW.replace(hour=10)  # hourly after the 09:00 success
    assert rows["api"].last_run_phase is None
    assert rows["api"].rpo_seconds is None
    assert rows["old-job"].in_inventory is False
    assert rows["old-job"].repository == "local"  # from the ledger's slice


def test_a_backup_not_due_yet_is_synced(workspace: Workspace) -> None:
    before = NOW.replace(hour=9, minute=30)
    rows = {row.name: row for row in load_overview(workspace, now=before).jobs}
    assert rows["db-backup"].sync == "Synced"
    assert rows["db-backup"].next_due == NOW.replace(hour=10)


def test_editing_the_inventory_makes_the_job_out_of_sync(workspace: Workspace) -> None:
    assert {r.name: r.sync for r in load_overview(workspace, now=NOW).jobs}["web"] == "Synced"
    stamp = inventory_stamp(workspace)
    write_inventory(
        workspace.inventory_path.parent,
        INVENTORY.replace("namespace: shop, targetNamespace: shop-dr", "namespace: shop2"),
    )
    assert inventory_stamp(workspace) != stamp
    web = {r.name: r for r in load_overview(workspace, now=NOW).jobs}["web"]
    assert (web.sync, web.message) == ("OutOfSync", "spec changed since the last apply")
    assert web.namespace == "shop2"


def test_a_broken_inventory_shows_its_issues_and_ledger_jobs_as_unknown(
    workspace: Workspace,
) -> None:
    workspace.inventory_path.write_text(INVENTORY.replace("role: worker}", "role: wrker}", 1))
    overview = load_overview(workspace, now=NOW)
    assert overview.inventory_loaded is False
    assert overview.problems
    assert overview.problems[0].startswith(f"inventory: {workspace.inventory_path}:")
    assert "Cluster/worker-1.spec.role" in overview.problems[0]
    rows = {row.name: row for row in overview.jobs}
    assert set(rows) == {"web", "db-backup", "batch", "cache", "old-job"}  # the ledger's
    assert {row.sync for row in overview.jobs} == {"Unknown"}
    assert rows["batch"].health == "Degraded"  # health still comes from the runs
    assert overview.clusters
    assert all(not c.role for c in overview.clusters)


def test_without_a_ledger_nothing_is_created_and_everything_is_missing(tmp_path: Path) -> None:
    workspace = Workspace(write_inventory(tmp_path), tmp_path / ".kubeferry" / "ledger.sqlite")
    overview = load_overview(workspace, now=NOW)
    assert not workspace.ledger_path.exists()
    assert overview.ledger_exists is False
    assert overview.ledger_serial == 0
    assert ledger_serial(workspace) == 0
    assert {(row.sync, row.health) for row in overview.jobs} == {("OutOfSync", "Missing")}
    assert any("no ledger yet" in problem for problem in overview.problems)
    assert {c.reachability for c in overview.clusters} == {"Unknown"}
    assert list_runs(workspace) == []
    assert events_since(workspace, 0) == []
    assert not workspace.ledger_path.exists()


def test_clusters_show_role_protection_reachability_and_permissions(
    workspace: Workspace,
) -> None:
    with Ledger.open(workspace.ledger_path) as ledger:
        ledger.upsert_cluster(
            "worker-1",
            permissions={"create namespaces": True, "list secrets": False},
            message="missing: list secrets",
        )
        ledger.upsert_cluster("controller", reachability="Unreachable")
    overview = load_overview(workspace, now=NOW)
    clusters = {row.name: row for row in overview.clusters}
    assert overview.protected_clusters == ("worker-2",)
    assert clusters["worker-2"].protected is True
    assert clusters["controller"].role == "controller"
    assert clusters["controller"].reachability == "Unreachable"
    assert clusters["worker-1"].permissions_ok is False
    assert clusters["worker-1"].message == "missing: list secrets"
    assert clusters["worker-2"].permissions_ok is True
    assert clusters["worker-2"].version == "v1.31.2"
    assert clusters["worker-2"].last_refresh == NOW - timedelta(minutes=10)


def test_repositories_show_location_without_credentials_and_catalogued_size(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DR_SECRET_KEY", "s3cr3t-value-never-shown")
    repositories = {row.name: row for row in load_overview(workspace, now=NOW).repositories}
    offsite = repositories["offsite"]
    assert (offsite.kind, offsite.location) == ("s3", "s3://dr-backups/kubeferry")
    assert offsite.availability == "Unavailable"
    assert "refused" in offsite.message
    assert (offsite.size_bytes, offsite.snapshot_count) == (512 * 1024, 1)
    local = repositories["local"]
    assert local.kind == "filesystem"
    assert local.location == str(workspace.inventory_path.parent / "repository")
    assert (local.availability, local.encrypted, local.size_bytes) == (
        "Available",
        True,
        3 * 1024 * 1024,
    )
    description = describe(workspace, "ReplicationRepository/offsite", now=NOW)
    assert "secretAccessKeyVar: DR_SECRET_KEY" in description.spec_yaml
    assert "s3cr3t-value-never-shown" not in repr(description)


def test_a_due_restore_frequency_refresh_makes_a_replication_out_of_sync() -> None:
    desired = DesiredJob(
        name="web",
        slice="s",
        source_cluster="a",
        destination_cluster="b",
        repository="r",
        namespace="web",
        target_namespace="web",
        spec_digest="d",
        content_digest="c",
        restore_frequency="0 3 * * *",
    )
    record = Job(name="web", slice="s", namespace="web", spec_digest="d", last_success_at=NOW)
    assert job_sync(desired, record, NOW) == (
        "OutOfSync",
        "destination never restored (restoreFrequency)",
    )
    restored = NOW.replace(hour=3, minute=30) - timedelta(days=1)
    record.last_restore_at = restored
    due = restored.replace(hour=3, minute=0) + timedelta(days=1)
    assert job_sync(desired, record, due - timedelta(minutes=1)) == ("Synced", "")
    assert job_sync(desired, record, due) == (
        "OutOfSync",
        f"restore due since {due:%Y-%m-%d %H:%M}Z",
    )
    # a backup job (same place) has no destination refresh to wait for
    same_place = DesiredJob(**{**desired.__dict__, "destination_cluster": "a"})
    record.last_restore_at = None
    assert job_sync(same_place, record, NOW) == ("Synced", "")


def test_health_degraded_when_the_process_of_a_running_run_is_gone() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    run = Run(
        id=3,
        kind=RunKind.BACKUP,
        job="web",
        phase=RunPhase.IN_PROGRESS,
        host=socket.gethostname(),
        pid=dead.pid,
    )
    record = Job(name="web", slice="s", namespace="web", last_success_at=NOW)
    health, reason = job_health("replicate", record, run)
    assert health == "Degraded"
    assert f"its process {dead.pid} is gone" in reason
    elsewhere = run.model_copy(update={"host": "another-host"})
    assert job_health("replicate", record, elsewhere)[0] == "Progressing"


def test_ledger_serial_moves_with_every_write(workspace: Workspace) -> None:
    before = ledger_serial(workspace)
    assert before == load_overview(workspace, now=NOW).ledger_serial
    with Ledger.open(workspace.ledger_path) as ledger:
        ledger.record_event("test.poke", "poked")
    assert ledger_serial(workspace) == before + 1


def test_list_runs_newest_first_with_filters(workspace: Workspace) -> None:
    runs = list_runs(workspace)
    assert [run.id for run in runs] == sorted((run.id for run in runs), reverse=True)
    assert len(runs) == 12  # web 2, db-backup 1, batch 4, cache 3, old-job 2
    batch = list_runs(workspace, job="batch")
    assert [(run.kind, run.phase) for run in batch] == [
        ("restore", "Failed"),
        ("backup", "Completed"),
        ("restore", "Completed"),
        ("backup", "Completed"),
    ]
    assert batch[0].error_count == 1
    assert (batch[0].source_cluster, batch[0].destination_cluster) == ("worker-1", "worker-2")
    failed = list_runs(workspace, phase="Failed")
    assert [run.job for run in failed] == ["batch"]
    backups_only = list_runs(workspace, cluster="worker-2")
    assert "db-backup" not in {run.job for run in backups_only}
    assert {run.job for run in list_runs(workspace, cluster="worker-1")} >= {"db-backup", "web"}
    assert len(list_runs(workspace, limit=3)) == 3
    with pytest.raises(KubeferryError, match="unknown run phase 'Broken'"):
        list_runs(workspace, phase="Broken")


def test_run_detail_has_issues_events_and_details(workspace: Workspace) -> None:
    failed = list_runs(workspace, phase="Failed")[0]
    with Ledger.open(workspace.ledger_path) as ledger:
        ledger.record_event("restore.note", "looked at it", run_id=failed.id, job="batch")
        last_event = ledger.events()[-1].id
        assert last_event is not None
    detail = run_detail(workspace, failed.id)
    assert detail.run.message == "namespace batch is terminating on worker-2"
    assert [(issue.severity, issue.message) for issue in detail.issues] == [
        ("error", "restore refused")
    ]
    assert [event.kind for event in detail.events] == ["restore.note"]
    with pytest.raises(KubeferryError, match="no run 999"):
        run_detail(workspace, 999)
    with Ledger.open(workspace.ledger_path) as ledger:
        ledger.record_event("later", "after")
    later = events_since(workspace, last_event)
    assert [event.kind for event in later] == ["later"]
    assert events_since(workspace, last_event, run_id=failed.id) == []


def test_describe_a_job_shows_spec_status_and_its_runs(workspace: Workspace) -> None:
    description = describe(workspace, "job/batch", now=NOW)
    assert description.address == "ReplicationJob/batch"
    assert "replicationSliceName: w1-to-w2" in description.spec_yaml
    assert description.spec_yaml.startswith(f"# {workspace.inventory_path}:")
    assert description.observed["status"]["health"] == "Degraded"
    assert description.observed["slice"] == "w1-to-w2"
    assert "created_at" not in description.observed
    assert [run.job for run in description.runs] == ["batch"] * 4


def test_describe_a_cluster_lists_runs_of_the_jobs_using_it(workspace: Workspace) -> None:
    description = describe(workspace, "Cluster/worker-2", now=NOW)
    assert "protected: true" in description.spec_yaml
    assert description.observed["reachability"] == "Reachable"
    assert {run.job for run in description.runs} == {"web", "batch", "cache", "old-job"}


def test_describe_objects_outside_the_inventory(workspace: Workspace) -> None:
    gone = describe(workspace, "ReplicationJob/old-job", now=NOW)
    assert gone.spec_yaml == "# not in the inventory\n"
    assert gone.observed["status"]["syncReason"] == "removed from the inventory"
    snapshot = describe(workspace, "Snapshot/web-20260314115000-aa11", now=NOW)
    assert snapshot.observed["repository"] == "local"
    with pytest.raises(KubeferryError, match="neither in the inventory nor in the ledger"):
        describe(workspace, "Cluster/nowhere")
    with pytest.raises(KubeferryError, match="use Kind/name"):
        describe(workspace, "web")


def test_apply_stops_at_once_when_the_cancellation_is_set(workspace: Workspace) -> None:
    from reconciler.inventory import load_inventory

    inventory = load_inventory(workspace.inventory_path)
    with Ledger.open(workspace.ledger_path) as ledger:
        # no run left InProgress: Ledger.mark_interrupted_runs (called under the lock) writes,
        # and so bumps the serial, whenever a run is unfinished, making a saved plan stale
        for run in ledger.runs(phase=RunPhase.IN_PROGRESS):
            assert run.id is not None
            ledger.finish_run(run.id, RunPhase.COMPLETED)

    def plan() -> Plan:
        return Plan(
            created_at=NOW,
            inventory_path=str(workspace.inventory_path),
            inventory_digest=inventory.digest(),
            ledger_serial=ledger_serial(workspace),
            actions=[Action(address="ReplicationJob/old-job", type=ActionType.FORGET)],
        )

    def ledger_jobs() -> set[str]:
        with Ledger.open(workspace.ledger_path) as ledger:
            return {job.name for job in ledger.jobs()}

    cancellation = Cancellation()
    cancellation.cancel()
    _, result = apply(workspace, saved_plan=plan(), cancellation=cancellation)
    assert result is not None
    assert result.interrupted
    assert [(r.address, r.outcome) for r in result.results] == [
        ("ReplicationJob/old-job", "interrupted")
    ]
    assert "old-job" in ledger_jobs()
    # the same plan without a cancelled flag does the work
    _, result = apply(workspace, saved_plan=plan(), cancellation=Cancellation())
    assert result is not None
    assert [(r.address, r.outcome) for r in result.results] == [("ReplicationJob/old-job", "done")]
    assert "old-job" not in ledger_jobs()
