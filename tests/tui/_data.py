"""A small inventory and a ledger filled through the real Ledger API, at fixed times.

``scenario(tmp_path, monkeypatch)`` writes ``kubeferry.yaml`` and a ledger in which each job
shows one status a person must be able to tell apart:

==========  ==========  ===========  =====================================================
job         Sync        Health       why
==========  ==========  ===========  =====================================================
web         Synced      Healthy      replicated 10 minutes before NOW, no schedule
db-backup   OutOfSync   Healthy      hourly backup, last success 3 hours ago: due
api         OutOfSync   Missing      in the inventory, never applied
batch       Synced      Degraded     applied, its newest run Failed
cache       Synced      Progressing  applied, a run InProgress (this process: alive)
old-job     OutOfSync   Healthy      in the ledger only: removed from the inventory
==========  ==========  ===========  =====================================================

The ledger's clock (``state._ledger.utcnow``) is frozen while filling it, so every time
shown on screen is stable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.inventory import load_inventory
from reconciler.reconcile import Workspace
from reconciler.reconcile._views import desired_job
from state import Availability, IssueSeverity, Ledger, Reachability, RunKind, RunPhase
from tests._inventory import (
    cluster,
    filesystem_repository,
    inventory,
    job,
    replication_slice,
    s3_repository,
)

NOW = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)

INVENTORY = inventory(
    cluster("controller", role="controller"),
    cluster("worker-1"),
    cluster("worker-2", protected=True),
    filesystem_repository("local", passphrase_file="./repository.passphrase"),
    s3_repository(
        "offsite",
        bucket="dr-backups",
        prefix="kubeferry/",
        endpoint="http://127.0.0.1:9000",
        access_key_var="DR_ACCESS_KEY",
        secret_key_var="DR_SECRET_KEY",
    ),
    replication_slice("w1-to-w2", "worker-1", "worker-2", "local"),
    replication_slice("w1-backup", "worker-1", "worker-1", "offsite"),
    job("web", "w1-to-w2", "shop", targetNamespace="shop-dr"),
    job("db-backup", "w1-backup", "db", backupFrequency="0 * * * *"),
    job("api", "w1-to-w2", "api"),
    job("batch", "w1-to-w2", "batch"),
    job("cache", "w1-to-w2", "cache"),
)


class Clock:
    """The ledger's clock while a test fills it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_inventory(directory: Path, text: str = INVENTORY) -> Path:
    path = directory / "kubeferry.yaml"
    path.write_text(text)
    return path


def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, now: datetime = NOW) -> Workspace:
    inventory_path = write_inventory(tmp_path)
    workspace = Workspace(inventory_path, tmp_path / ".kubeferry" / "ledger.sqlite")
    clock = Clock(now - timedelta(hours=3))
    monkeypatch.setattr("state._ledger.utcnow", clock)
    inventory = load_inventory(inventory_path)
    with Ledger.open(workspace.ledger_path) as ledger:
        for name, cluster in inventory.clusters.items():
            ledger.upsert_cluster(
                name,
                spec_digest=cluster.spec_digest,
                observed_version="v1.31.2",
                reachability=Reachability.REACHABLE,
                permissions={"create namespaces": True, "list secrets": True},
                last_refresh=now - timedelta(minutes=10),
            )
        ledger.upsert_repository(
            "local",
            spec_digest=inventory.repositories["local"].spec_digest,
            availability=Availability.AVAILABLE,
            last_validation=now - timedelta(minutes=10),
        )
        ledger.upsert_repository(
            "offsite",
            spec_digest=inventory.repositories["offsite"].spec_digest,
            availability=Availability.UNAVAILABLE,
            message="endpoint http://127.0.0.1:9000 refused the connection",
            last_validation=now - timedelta(minutes=10),
        )
        for name, replication_slice in inventory.slices.items():
            ledger.upsert_slice(
                name,
                source_cluster=replication_slice.spec.source_cluster,
                destination_cluster=replication_slice.spec.destination_cluster,
                repository=replication_slice.spec.repository,
                spec_digest=replication_slice.spec_digest,
            )

        def register(name: str, **extra: object) -> None:
            wanted = desired_job(inventory, inventory.jobs[name])
            ledger.upsert_job(
                name,
                slice=wanted.slice,
                namespace=wanted.namespace,
                spec_digest=wanted.spec_digest,
                content_digest=wanted.content_digest,
                mode=wanted.mode,
                source_cluster=wanted.source_cluster,
                destination_cluster=wanted.destination_cluster,
                target_namespace=wanted.target_namespace,
                **extra,  # type: ignore[arg-type]
            )

        def run(job: str, kind: RunKind, at: datetime, phase: RunPhase, **extra: object) -> int:
            clock.now = at
            started = ledger.start_run(kind, job)
            assert started.id is not None
            ledger.update_run_progress(started.id, total_items=40, items_done=40)
            if phase.finished:
                clock.now = at + timedelta(minutes=1)
                if phase in (RunPhase.FAILED, RunPhase.PARTIALLY_FAILED):
                    ledger.add_run_issue(started.id, IssueSeverity.ERROR, "restore refused")
                ledger.finish_run(started.id, phase, **extra)  # type: ignore[arg-type]
            return started.id

        def snapshot(job: str, snapshot_id: str, repository: str, at: datetime, size: int) -> None:
            ledger.upsert_snapshot(
                snapshot_id,
                job=job,
                repository=repository,
                namespace=inventory.jobs[job].spec.namespace,
                source_cluster="worker-1",
                created_at=at,
                size_bytes=size,
                total_items=40,
                items_backed_up=40,
                complete=True,
            )

        # web: replicated 10 minutes ago
        ten = now - timedelta(minutes=11)
        register("web", last_success_at=ten + timedelta(minutes=1))
        snapshot("web", "web-20260314115000-aa11", "local", ten, 3 * 1024 * 1024)
        run("web", RunKind.BACKUP, ten, RunPhase.COMPLETED, snapshot_id="web-20260314115000-aa11")
        run("web", RunKind.RESTORE, ten, RunPhase.COMPLETED)

        # db-backup: hourly, last success 3 hours ago -> due
        three = now - timedelta(hours=3, minutes=1)
        register("db-backup", last_success_at=three + timedelta(minutes=1))
        snapshot("db-backup", "db-backup-20260314085900-bb22", "offsite", three, 512 * 1024)
        run(
            "db-backup",
            RunKind.BACKUP,
            three,
            RunPhase.COMPLETED,
            snapshot_id="db-backup-20260314085900-bb22",
        )

        # batch: replicated a day ago, then the newest restore failed
        day = now - timedelta(days=1)
        register("batch", last_success_at=day + timedelta(minutes=1))
        run("batch", RunKind.BACKUP, day, RunPhase.COMPLETED)
        run("batch", RunKind.RESTORE, day, RunPhase.COMPLETED)
        run("batch", RunKind.BACKUP, now - timedelta(minutes=30), RunPhase.COMPLETED)
        run(
            "batch",
            RunKind.RESTORE,
            now - timedelta(minutes=30),
            RunPhase.FAILED,
            message="namespace batch is terminating on worker-2",
        )

        # cache: applied, a backup in progress now
        register("cache", last_success_at=day)
        run("cache", RunKind.BACKUP, day - timedelta(minutes=1), RunPhase.COMPLETED)
        run("cache", RunKind.RESTORE, day - timedelta(minutes=1), RunPhase.COMPLETED)
        run("cache", RunKind.BACKUP, now - timedelta(minutes=2), RunPhase.IN_PROGRESS)

        # old-job: in the ledger, removed from the inventory
        ledger.upsert_job(
            "old-job",
            slice="w1-to-w2",
            namespace="legacy",
            spec_digest="0" * 64,
            content_digest="0" * 64,
            mode="replicate",
            source_cluster="worker-1",
            destination_cluster="worker-2",
            target_namespace="legacy",
            last_success_at=day,
        )
        run("old-job", RunKind.BACKUP, day - timedelta(minutes=1), RunPhase.COMPLETED)
        run("old-job", RunKind.RESTORE, day - timedelta(minutes=1), RunPhase.COMPLETED)
    clock.now = now
    return workspace
