"""Schedules and retention without clusters: missed runs recorded, volume garbage collected
after retention (docs/architecture.md, issue 7 "Schedules and retention").

The backup itself is faked (it needs a cluster); the repository, its volume store, the
ledger and ActionRunner._replicate's retention and collection run for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import Cancellation
from reconciler.engines import BackupResult, RestoreResult
from reconciler.errors import KubeferryError
from reconciler.plan import Action, ActionType
from reconciler.reconcile import Workspace, _actions
from reconciler.reconcile._actions import ActionRunner
from reconciler.reconcile._runner import locked_runner
from reconciler.repository import FilesystemBackend, Repository
from reconciler.volumes import VolumeStore, backup_tree
from state import Ledger, RunKind, RunPhase
from tests._environment import PASSPHRASE_VAR, encrypted_repository_environment, encrypted_site
from tests._inventory import cluster, filesystem_repository, job, replication_slice
from tests._snapshots import random_tree, write_object_snapshot

PASSPHRASE = "correct horse battery staple"

_INVENTORY = (
    cluster("east"),
    filesystem_repository("vault", "./vault", passphrase_var=PASSPHRASE_VAR),
    replication_slice("keep", "east", "east", "vault"),
    cluster("west"),
    replication_slice("dr", "east", "west", "vault"),
    job("web", "dr", "web", restoreFrequency="0 2 * * *"),
    job("shop", "keep", "shop", backupFrequency="0 * * * *", retention={"keepLast": 1}),
)

_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    encrypted_repository_environment(monkeypatch, PASSPHRASE, wide=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return encrypted_site(tmp_path, *_INVENTORY, passphrase=PASSPHRASE)


def _unlocked(site: Path) -> Repository:
    return Repository(FilesystemBackend(site.parent / "vault")).unlock(PASSPHRASE)


@pytest.fixture
def runner(site: Path) -> Iterator[ActionRunner]:
    with locked_runner(Workspace.resolve(site), "test", bus=None, engine=None, lock_timeout=0) as r:
        for address in (
            "Cluster/east",
            "Cluster/west",
            "ReplicationRepository/vault",
            "ReplicationSlice/keep",
            "ReplicationSlice/dr",
        ):
            r(Action(address=address, type=ActionType.CREATE), Cancellation())
        yield r


def _fake_backup(runner: ActionRunner, site: Path, at: datetime) -> list[int]:
    """run_backup writes a snapshot at ``at`` and records a completed backup run."""
    runs: list[int] = []

    def run_backup(name: str, cancellation: Cancellation, **_: Any) -> tuple[int, BackupResult]:
        run = runner.ledger.start_run(RunKind.BACKUP, name)
        assert run.id is not None
        snapshot_id = write_object_snapshot(_unlocked(site), name, at)
        runner.ledger.finish_run(run.id, RunPhase.COMPLETED, snapshot_id=snapshot_id)
        runs.append(run.id)
        return run.id, BackupResult(snapshot_id, 1, 10, "fp")

    runner.run_backup = run_backup  # type: ignore[method-assign]
    return runs


def _fake_restore(runner: ActionRunner) -> list[str]:
    """run_restore records which snapshot it restored (and a completed restore run)."""
    restored: list[str] = []

    def run_restore(
        name: str, snapshot_id: str, cancellation: Cancellation, **_: Any
    ) -> tuple[int, RestoreResult]:
        run = runner.ledger.start_run(RunKind.RESTORE, name)
        assert run.id is not None
        runner.ledger.finish_run(run.id, RunPhase.COMPLETED, snapshot_id=snapshot_id)
        restored.append(snapshot_id)
        return run.id, RestoreResult(1, f"dst-{snapshot_id}")

    runner.run_restore = run_restore  # type: ignore[method-assign]
    return restored


def _replicate(runner: ActionRunner, job: str = "shop", **details: Any) -> str:
    action = Action(address=f"ReplicationJob/{job}", type=ActionType.REPLICATE, details=details)
    return runner._replicate(action, Cancellation())


def _orphan_volume_data(site: Path) -> int:
    """Volume data of a snapshot retention deleted: its volume snapshot is gone, the chunks
    stay until collected. Returns the store's raw bytes."""
    store = VolumeStore(_unlocked(site))
    first = backup_tree(store, random_tree(site.parent / "one", 1), workers=1)
    backup_tree(store, random_tree(site.parent / "two", 2), workers=1)
    store.delete_snapshot(first.snapshot_id)
    return store.stats().raw_bytes


def test_retention_then_volume_garbage_collected_and_freed_bytes_recorded(
    site: Path, runner: ActionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_actions, "VOLUME_GC_GRACE", timedelta(0))
    old = write_object_snapshot(_unlocked(site), "shop", _T0)
    raw_before = _orphan_volume_data(site)
    runs = _fake_backup(runner, site, _T0 + timedelta(hours=1))

    summary = _replicate(runner)

    assert "retention deleted 1" in summary
    assert old not in _unlocked(site).list_snapshots()
    fresh = VolumeStore(_unlocked(site))
    assert fresh.stats().raw_bytes < raw_before
    assert fresh.check(read_data=True) == []
    gc = runner.ledger.run(runs[0]).details["volumeGc"]
    assert gc["repository"] == "vault"
    assert gc["freedBytes"] > 0
    assert gc["removedChunks"] >= 1
    kinds = [e.kind for e in runner.ledger.events(job="shop")]
    assert "volume.gc" in kinds


def test_grace_period_keeps_young_packs(site: Path, runner: ActionRunner) -> None:
    write_object_snapshot(_unlocked(site), "shop", _T0)
    raw_before = _orphan_volume_data(site)
    runs = _fake_backup(runner, site, _T0 + timedelta(hours=1))
    _replicate(runner)
    # packs written just now are younger than the default grace: a backup may still use them
    assert VolumeStore(_unlocked(site)).stats().raw_bytes == raw_before
    assert runner.ledger.run(runs[0]).details["volumeGc"]["freedBytes"] == 0


def test_no_collection_when_retention_deleted_nothing(
    site: Path, runner: ActionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_actions, "VOLUME_GC_GRACE", timedelta(0))
    raw_before = _orphan_volume_data(site)
    runs = _fake_backup(runner, site, _T0)  # the only snapshot: keepLast 1 keeps it
    summary = _replicate(runner)
    assert "retention deleted" not in summary
    assert VolumeStore(_unlocked(site)).stats().raw_bytes == raw_before
    assert "volumeGc" not in (runner.ledger.run(runs[0]).details or {})


def test_collection_refused_by_a_concurrent_backup_is_a_warning(
    site: Path, runner: ActionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_actions, "VOLUME_GC_GRACE", timedelta(0))
    write_object_snapshot(_unlocked(site), "shop", _T0)
    raw_before = _orphan_volume_data(site)
    runs = _fake_backup(runner, site, _T0 + timedelta(hours=1))
    other = VolumeStore(_unlocked(site))  # another process backing up: a shared lock
    with other.lock("shared"):
        summary = _replicate(runner)  # does not raise: the backup succeeded
    assert "retention deleted 1" in summary
    assert VolumeStore(_unlocked(site)).stats().raw_bytes == raw_before  # nothing removed
    assert runner.ledger.run(runs[0]).phase is RunPhase.COMPLETED
    assert "volumeGc" not in (runner.ledger.run(runs[0]).details or {})
    (failed,) = [e for e in runner.ledger.events(job="shop") if e.kind == "volume.gc_failed"]
    assert failed.level.value == "warning"
    assert failed.run_id == runs[0]


def test_missed_runs_become_a_ledger_event(site: Path, runner: ActionRunner) -> None:
    _fake_backup(runner, site, _T0)
    _replicate(runner, missedRuns=3, dueSince="2026-03-01T09:00:00+00:00")
    (missed,) = [e for e in runner.ledger.events(job="shop") if e.kind == "schedule.missed"]
    assert "3 scheduled backups missed" in missed.message
    assert missed.data == {"missedRuns": 3, "dueSince": "2026-03-01T09:00:00+00:00"}


def test_no_missed_event_when_on_time(site: Path, runner: ActionRunner) -> None:
    _fake_backup(runner, site, _T0)
    _replicate(runner, missedRuns=0, dueSince="2026-03-01T12:00:00+00:00")
    assert "schedule.missed" not in [e.kind for e in runner.ledger.events(job="shop")]


# -- restoreFrequency: the steps the plan chose ----------------------------------------------


def test_backup_step_only_leaves_the_destination_alone(site: Path, runner: ActionRunner) -> None:
    _fake_backup(runner, site, _T0)
    restored = _fake_restore(runner)
    summary = _replicate(runner, "web", steps=["backup"])
    assert restored == []
    assert "waits for restoreFrequency" in summary
    (job,) = [j for j in runner.ledger.jobs() if j.name == "web"]
    assert job.last_success_at is not None


def test_restore_step_only_restores_the_newest_snapshot(site: Path, runner: ActionRunner) -> None:
    backups = _fake_backup(runner, site, _T0)
    restored = _fake_restore(runner)
    write_object_snapshot(_unlocked(site), "web", _T0 - timedelta(days=1))
    newest = write_object_snapshot(_unlocked(site), "web", _T0)
    summary = _replicate(runner, "web", steps=["restore"])
    assert backups == []  # no backup ran
    assert restored == [newest]
    assert summary == f"restored snapshot {newest} to west/web (restoreFrequency)"
    (job,) = [j for j in runner.ledger.jobs() if j.name == "web"]
    assert job.destination_fingerprint == f"dst-{newest}"
    assert job.last_success_at is None  # a restore does not reset the backup schedule
    assert job.last_restore_at is not None


def test_restore_step_without_a_snapshot_fails(site: Path, runner: ActionRunner) -> None:
    _fake_restore(runner)
    with pytest.raises(KubeferryError, match="no snapshot in repository vault to restore"):
        _replicate(runner, "web", steps=["restore"])


def test_without_steps_a_replication_restores_after_every_backup(
    site: Path, runner: ActionRunner
) -> None:
    _fake_backup(runner, site, _T0)
    restored = _fake_restore(runner)
    summary = _replicate(runner, "web")
    assert restored == [f"web-{_T0:%Y%m%d%H%M%S}-abcdef"]
    assert "restored to west/web" in summary

    _fake_backup(runner, site, _T0 + timedelta(hours=1))
    _replicate(runner, "web", steps=["backup", "restore"])
    assert restored[1] == f"web-{_T0 + timedelta(hours=1):%Y%m%d%H%M%S}-abcdef"


def test_kubeferry_backup_collects_volume_garbage_after_retention(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.reconcile import backup_job

    monkeypatch.setattr(_actions, "VOLUME_GC_GRACE", timedelta(0))
    old = write_object_snapshot(_unlocked(site), "shop", _T0)
    raw_before = _orphan_volume_data(site)

    def run_backup(
        self: ActionRunner, name: str, cancellation: Cancellation, **_: Any
    ) -> tuple[int, BackupResult]:
        run = self.ledger.start_run(RunKind.BACKUP, name)
        assert run.id is not None
        snapshot_id = write_object_snapshot(_unlocked(site), name, _T0 + timedelta(hours=1))
        self.ledger.finish_run(run.id, RunPhase.COMPLETED, snapshot_id=snapshot_id)
        return run.id, BackupResult(snapshot_id, 1, 10, "fp")

    monkeypatch.setattr(ActionRunner, "run_backup", run_backup)
    outcome = backup_job(Workspace.resolve(site), "shop")
    assert old not in _unlocked(site).list_snapshots()
    assert VolumeStore(_unlocked(site)).stats().raw_bytes < raw_before
    with Ledger.open(Workspace.resolve(site).ledger_path, create=False) as ledger:
        assert ledger.run(outcome.run_id).details["volumeGc"]["freedBytes"] > 0
