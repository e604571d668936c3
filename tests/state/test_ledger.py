"""The Ledger API in one process: opening, serial, inventory mirror, runs, snapshots, events."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from state import (
    Availability,
    EventLevel,
    InUseError,
    IssueSeverity,
    Ledger,
    LedgerError,
    LedgerNotFoundError,
    LedgerSchemaError,
    NotFoundError,
    Reachability,
    RunKind,
    RunPhase,
    RunStateError,
    head_revision,
)

# -- opening ---------------------------------------------------------------------------------


def test_open_creates_parent_directory_and_migrates_to_head(ledger_path: Path) -> None:
    assert not ledger_path.parent.exists()
    with Ledger.open(ledger_path) as ledger:
        assert ledger_path.is_file()
        assert ledger.schema_revision == head_revision()
        assert ledger.serial == 0
        assert set(ledger.counts().values()) == {0}


def test_reopening_keeps_data_and_schema(ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as ledger:
        ledger.upsert_cluster("east")
    with Ledger.open(ledger_path) as again:
        assert [cluster.name for cluster in again.clusters()] == ["east"]
        assert again.serial == 1
        assert again.schema_revision == head_revision()


def test_open_without_create_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ledger.sqlite"
    with pytest.raises(LedgerNotFoundError, match="no ledger at"):
        Ledger.open(missing, create=False)
    assert not missing.parent.exists()


def test_open_a_file_that_is_not_sqlite_is_a_one_line_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ledger.sqlite"
    bogus.write_text("this is not a database\n" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger") as caught:
        Ledger.open(bogus)
    assert "\n" not in str(caught.value)


def test_a_ledger_from_a_newer_kubeferry_is_refused(ledger_path: Path) -> None:
    Ledger.open(ledger_path).close()
    with sqlite3.connect(ledger_path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(LedgerSchemaError, match="newer than this kubeferry knows"):
        Ledger.open(ledger_path)


def test_every_connection_has_wal_busy_timeout_and_foreign_keys(ledger: Ledger) -> None:
    # several connections at once, so the check is not about one lucky pooled connection
    engine = ledger._engine
    connections = [engine.raw_connection() for _ in range(3)]
    try:
        for connection in connections:
            cursor = connection.cursor()
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    finally:
        for connection in connections:
            connection.close()


# -- serial ----------------------------------------------------------------------------------


def test_every_write_bumps_the_serial_once_and_reads_do_not(ledger: Ledger) -> None:
    assert ledger.serial == 0
    ledger.upsert_cluster("east")
    assert ledger.serial == 1
    ledger.upsert_cluster("east", observed_version="v1.31.0")
    ledger.record_event("test.event", "hello")
    assert ledger.serial == 3
    ledger.clusters()
    ledger.events()
    ledger.counts()
    ledger.lock_status()
    assert ledger.serial == 3


def test_a_refused_write_rolls_back_with_its_serial_bump(ledger: Ledger) -> None:
    with pytest.raises(NotFoundError):
        ledger.upsert_slice("prod", source_cluster="nope", destination_cluster="x", repository="r")
    assert ledger.serial == 0
    assert ledger.slices() == []


# -- the inventory mirror --------------------------------------------------------------------


def test_upsert_updates_only_the_fields_given(ledger: Ledger) -> None:
    refreshed = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ledger.upsert_cluster("east", spec_digest="sha256:a")
    ledger.upsert_cluster(
        "east",
        observed_version="v1.31.2",
        reachability=Reachability.REACHABLE,
        permissions={"namespaces": {"create": True}},
        last_refresh=refreshed,
        message="ok",
    )
    (cluster,) = ledger.clusters()
    assert cluster.spec_digest == "sha256:a"  # kept: not given the second time
    assert cluster.observed_version == "v1.31.2"
    assert cluster.reachability is Reachability.REACHABLE
    assert cluster.permissions == {"namespaces": {"create": True}}
    assert cluster.last_refresh == refreshed
    assert cluster.updated_at >= cluster.created_at


def test_plain_strings_are_accepted_for_enums(ledger: Ledger) -> None:
    repository = ledger.upsert_repository("s3", availability="Unavailable")  # type: ignore[arg-type]
    assert repository.availability is Availability.UNAVAILABLE
    with pytest.raises(ValueError, match="Maybe"):
        ledger.upsert_repository("s3", availability="Maybe")  # type: ignore[arg-type]


def test_times_come_back_timezone_aware_and_naive_times_are_refused(ledger: Ledger) -> None:
    local = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    ledger.upsert_repository("s3", last_validation=local)
    (repository,) = ledger.repositories()
    assert repository.last_validation == local
    assert repository.last_validation is not None
    assert repository.last_validation.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.upsert_repository("s3", last_validation=datetime(2025, 1, 1))


def test_a_new_row_needs_its_required_fields(ledger: Ledger) -> None:
    ledger.upsert_cluster("east")
    ledger.upsert_repository("s3")
    with pytest.raises(LedgerError, match="new slice 'prod' needs destination_cluster"):
        ledger.upsert_slice("prod", source_cluster="east", repository="s3")


def test_references_must_exist(with_job: Ledger) -> None:
    with pytest.raises(NotFoundError, match="job 'cart' refers to slice 'staging'"):
        with_job.upsert_job("cart", slice="staging", namespace="cart")
    with pytest.raises(NotFoundError, match="refers to repository 'gcs'"):
        with_job.upsert_slice("prod", repository="gcs")


def test_rows_in_use_cannot_be_deleted_until_their_users_are(with_job: Ledger) -> None:
    with pytest.raises(InUseError, match="cluster 'east' is still used by slices prod"):
        with_job.delete_cluster("east")
    with pytest.raises(InUseError, match="repository 's3' is still used by slices prod"):
        with_job.delete_repository("s3")
    with pytest.raises(InUseError, match="slice 'prod' is still used by jobs shop"):
        with_job.delete_slice("prod")
    with_job.delete_job("shop")
    with_job.delete_slice("prod")
    with_job.delete_cluster("east")
    with_job.delete_repository("s3")
    assert [cluster.name for cluster in with_job.clusters()] == ["west"]
    with pytest.raises(NotFoundError, match="no job 'shop'"):
        with_job.delete_job("shop")


def test_jobs_can_be_listed_by_slice(with_job: Ledger) -> None:
    with_job.upsert_slice("dr", source_cluster="west", destination_cluster="east", repository="s3")
    with_job.upsert_job("cart", slice="dr", namespace="cart")
    assert [job.name for job in with_job.jobs()] == ["cart", "shop"]
    assert [job.name for job in with_job.jobs(slice="prod")] == ["shop"]


def test_the_database_itself_enforces_foreign_keys(with_job: Ledger) -> None:
    # bypass the API's friendly checks: the constraint must still hold
    connection = with_job._engine.raw_connection()  # a pooled one: PRAGMAs set on connect
    try:
        cursor = connection.cursor()
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            cursor.execute("DELETE FROM clusters WHERE name = 'east'")
    finally:
        connection.close()


# -- runs ------------------------------------------------------------------------------------


def test_a_backup_run_from_start_to_finish(with_job: Ledger) -> None:
    run = with_job.start_run(RunKind.BACKUP, "shop", total_items=10, bytes_total=4096)
    assert run.id is not None
    assert run.phase is RunPhase.IN_PROGRESS
    assert run.finished_at is None

    with_job.update_run_progress(run.id, items_done=4, bytes_done=1024)
    with_job.add_run_issue(run.id, IssueSeverity.WARNING, "skipped", item="v1 Pod shop/x")
    with_job.add_run_issue(run.id, IssueSeverity.ERROR, "forbidden", item="v1 Secret shop/y")
    with_job.add_run_issue(run.id, IssueSeverity.WARNING, "slow")
    finished = with_job.finish_run(run.id, RunPhase.PARTIALLY_FAILED, snapshot_id="shop-1")

    stored = with_job.run(run.id)
    assert (stored.items_done, stored.bytes_done, stored.total_items) == (4, 1024, 10)
    assert (stored.warning_count, stored.error_count) == (2, 1)
    assert stored.phase is RunPhase.PARTIALLY_FAILED
    assert stored.snapshot_id == "shop-1"
    assert stored.finished_at == finished.finished_at
    assert stored.duration_seconds is not None
    assert stored.duration_seconds >= 0
    issues = with_job.run_issues(run.id)
    assert [(issue.severity, issue.item) for issue in issues] == [
        (IssueSeverity.WARNING, "v1 Pod shop/x"),
        (IssueSeverity.ERROR, "v1 Secret shop/y"),
        (IssueSeverity.WARNING, None),
    ]
    (job,) = with_job.jobs()
    assert job.last_snapshot_id == "shop-1"
    assert job.last_backup_at == stored.finished_at


def test_a_failed_run_does_not_count_as_the_jobs_last_result(with_job: Ledger) -> None:
    run = with_job.start_run(RunKind.RESTORE, "shop")
    assert run.id is not None
    with_job.finish_run(run.id, RunPhase.FAILED, message="destination unreachable")
    (job,) = with_job.jobs()
    assert job.last_restore_at is None
    assert with_job.run(run.id).message == "destination unreachable"

    drill = with_job.start_run(RunKind.DRILL, "shop")
    assert drill.id is not None
    with_job.finish_run(drill.id, RunPhase.COMPLETED)
    (job,) = with_job.jobs()
    assert job.last_drill_at is not None
    assert job.last_restore_at is None


def test_finished_runs_cannot_change(with_job: Ledger) -> None:
    run = with_job.start_run(RunKind.BACKUP, "shop")
    assert run.id is not None
    with pytest.raises(RunStateError, match="not a final phase"):
        with_job.finish_run(run.id, RunPhase.IN_PROGRESS)
    with_job.finish_run(run.id, RunPhase.COMPLETED)
    with pytest.raises(RunStateError, match="already ended Completed"):
        with_job.finish_run(run.id, RunPhase.FAILED)
    with pytest.raises(RunStateError):
        with_job.update_run_progress(run.id, items_done=1)
    with pytest.raises(RunStateError):
        with_job.add_run_issue(run.id, IssueSeverity.ERROR, "late")
    with pytest.raises(NotFoundError, match="no run 999"):
        with_job.finish_run(999, RunPhase.COMPLETED)


def test_runs_outlive_their_job_and_filter_newest_first(with_job: Ledger) -> None:
    ids = []
    for kind in (RunKind.BACKUP, RunKind.RESTORE, RunKind.BACKUP):
        run = with_job.start_run(kind, "shop")
        assert run.id is not None
        ids.append(run.id)
    with_job.start_run(RunKind.BACKUP, "cart")  # a job the ledger does not know: allowed
    with_job.finish_run(ids[0], RunPhase.COMPLETED)
    with_job.delete_job("shop")

    assert [run.id for run in with_job.runs(job="shop")] == ids[::-1]
    assert [run.id for run in with_job.runs(job="shop", limit=2)] == ids[:0:-1]
    assert [run.id for run in with_job.runs(kind=RunKind.RESTORE)] == [ids[1]]
    assert [run.id for run in with_job.runs(phase=RunPhase.COMPLETED)] == [ids[0]]
    assert len(with_job.runs()) == 4


def test_interrupted_runs_of_live_processes_are_left_alone(with_job: Ledger) -> None:
    mine = with_job.start_run(RunKind.BACKUP, "shop")  # this process: alive
    assert with_job.mark_interrupted_runs() == []
    assert mine.id is not None
    assert with_job.run(mine.id).phase is RunPhase.IN_PROGRESS


# -- snapshots -------------------------------------------------------------------------------


def test_snapshot_catalog_upsert_filter_and_delete(ledger: Ledger) -> None:
    base = datetime(2025, 3, 1, tzinfo=UTC)
    for index, job in enumerate(("shop", "cart", "shop")):
        ledger.upsert_snapshot(
            f"{job}-{index}",
            job=job,
            repository="s3",
            namespace=job,
            source_cluster="east",
            created_at=base + timedelta(hours=index),
        )
    ledger.upsert_snapshot(
        "shop-0",
        job="shop",
        repository="s3",
        namespace="shop",
        source_cluster="east",
        created_at=base,
        size_bytes=2048,
        total_items=7,
        items_backed_up=7,
        complete=True,
    )
    assert [snapshot.id for snapshot in ledger.snapshots()] == ["shop-2", "cart-1", "shop-0"]
    shop = ledger.snapshots(job="shop")
    assert [snapshot.id for snapshot in shop] == ["shop-2", "shop-0"]
    assert (shop[1].size_bytes, shop[1].items_backed_up, shop[1].complete) == (2048, 7, True)
    assert ledger.snapshots(repository="gcs") == []
    ledger.delete_snapshot("cart-1")
    assert ledger.counts()["snapshots"] == 2


# -- events ----------------------------------------------------------------------------------


def test_events_tail_from_an_id_and_filter(with_job: Ledger) -> None:
    run = with_job.start_run(RunKind.BACKUP, "shop")
    first = with_job.record_event("plan.created", "3 changes")
    second = with_job.record_event(
        "run.started", "backing up", run_id=run.id, job="shop", level=EventLevel.DEBUG
    )
    third = with_job.record_event("run.failed", "boom", job="shop", level=EventLevel.ERROR)
    assert first.id is not None
    assert second.id is not None
    assert [event.id for event in with_job.events()] == [first.id, second.id, third.id]
    assert [event.id for event in with_job.events(since_id=first.id)] == [second.id, third.id]
    assert with_job.events(since_id=third.id) == []
    assert [event.id for event in with_job.events(job="shop", newest_first=True)] == [
        third.id,
        second.id,
    ]
    assert [event.id for event in with_job.events(run_id=run.id)] == [second.id]
    assert [event.id for event in with_job.events(limit=1, newest_first=True)] == [third.id]
    assert with_job.events()[1].level is EventLevel.DEBUG


def test_an_event_about_an_unknown_run_is_refused(ledger: Ledger) -> None:
    with pytest.raises(NotFoundError, match="refers to run 42"):
        ledger.record_event("run.started", "x", run_id=42)


def test_the_event_log_is_append_only_in_the_database(ledger: Ledger) -> None:
    ledger.record_event("a", "first")
    with sqlite3.connect(ledger.path) as raw:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET message = 'rewritten'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM events")
    assert [event.message for event in ledger.events()] == ["first"]


def test_credentials_in_json_data_are_redacted_before_storage(ledger: Ledger) -> None:
    ledger.record_event(
        "repository.validated",
        "ok",
        data={
            "endpoint": "http://minio:9000",
            "secretAccessKey": "abc123",
            "nested": [{"password": "hunter2", "user": "admin"}],
        },
    )
    ledger.upsert_cluster(
        "east",
        permissions={"secrets": {"get": True}, "serviceaccounts/token": {"create": True}},
    )
    (event,) = ledger.events()
    assert event.data == {
        "endpoint": "http://minio:9000",
        "secretAccessKey": "<redacted>",
        "nested": [{"password": "<redacted>", "user": "admin"}],
    }
    (cluster,) = ledger.clusters()
    assert cluster.permissions == {
        "secrets": {"get": True},
        "serviceaccounts/token": {"create": True},
    }
    assert b"abc123" not in ledger.path.read_bytes() + _wal_bytes(ledger.path)
    assert b"hunter2" not in ledger.path.read_bytes() + _wal_bytes(ledger.path)


def _wal_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""
