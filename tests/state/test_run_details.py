"""Run details (a restore's pre-check report, outcomes), snapshot deletion marks, migration 0002."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command

from state import Ledger, NotFoundError, RunKind, RunPhase, RunStateError
from state._engine import writer
from state._migrate import _config


def test_details_are_merged_kept_after_finish_and_redacted(with_job: Ledger) -> None:
    run = with_job.start_run(RunKind.RESTORE, "shop")
    assert run.id is not None
    assert run.details == {}
    report = {"overallCompatibility": "warning", "compatibilityChecks": []}
    with_job.update_run_details(run.id, {"precheck": report, "token": "s3cr3t"})
    finished = with_job.finish_run(
        run.id, RunPhase.COMPLETED, details={"outcomes": {"created": 3, "exists-identical": 1}}
    )
    assert finished.details["precheck"] == report
    assert finished.details["outcomes"] == {"created": 3, "exists-identical": 1}
    assert finished.details["token"] == "<redacted>"
    assert with_job.run(run.id).details == finished.details
    with pytest.raises(RunStateError):
        with_job.update_run_details(run.id, {"late": True})


def test_snapshot_deletion_is_marked_and_hidden_by_default(with_job: Ledger) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for n in (1, 2):
        with_job.upsert_snapshot(
            f"shop-{n}",
            job="shop",
            repository="s3",
            namespace="shop",
            source_cluster="east",
            created_at=at.replace(day=n),
            complete=True,
        )
    marked = with_job.mark_snapshot_deleted("shop-1", reason="retention: keepLast 1")
    assert marked.deleted_at is not None
    assert [s.id for s in with_job.snapshots(job="shop")] == ["shop-2"]
    everything = with_job.snapshots(job="shop", include_deleted=True)
    assert [s.id for s in everything] == ["shop-2", "shop-1"]
    gone = with_job.snapshot("shop-1")
    assert gone is not None
    assert gone.deletion_reason == "retention: keepLast 1"
    assert with_job.snapshot("nope") is None
    with pytest.raises(NotFoundError):
        with_job.mark_snapshot_deleted("nope", reason="x")
    # the repository lists it again (e.g. restored from a copy): present again
    with_job.upsert_snapshot(
        "shop-1",
        job="shop",
        repository="s3",
        namespace="shop",
        source_cluster="east",
        created_at=at,
        complete=True,
    )
    again = with_job.snapshot("shop-1")
    assert again is not None
    assert again.deleted_at is None


def test_a_0001_ledger_with_runs_upgrades_to_0002(ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as ledger:
        ledger.upsert_cluster("east")
        run = ledger.start_run(RunKind.BACKUP, "shop")
        assert run.id is not None
        ledger.finish_run(run.id, RunPhase.COMPLETED)
        with writer(ledger._engine).connect() as connection, connection.begin():
            command.downgrade(_config(connection), "0001")
        with ledger._engine.connect() as connection:
            columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(runs)")]
        assert "details" not in columns
    with Ledger.open(ledger_path) as again:
        assert again.schema_revision == "0002"
        (old,) = again.runs()
        assert old.details == {}
        assert old.phase == RunPhase.COMPLETED
