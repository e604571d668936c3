"""`kubeferry backup`, `snapshots` and `restore` without a cluster, and retention rules.

A filesystem repository needs no cluster, so listing, retention and "no such snapshot" run
here for real; what needs a cluster lives in tests/workflow/test_ondemand.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.inventory import Retention
from reconciler.reconcile import SnapshotInfo, Workspace, apply_retention, expired_snapshots
from reconciler.repository import FilesystemBackend, Repository
from state import Ledger
from tests._environment import cli_environment
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory

_INVENTORY = (
    cluster("east"),
    filesystem_repository("local"),
    replication_slice("keep", "east", "east", "local"),
    job("shop", "keep", "shop", retention={"keepLast": 2}),
    job("shop-eu", "keep", "shop-eu"),
)

_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _wide_plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    cli_environment(monkeypatch)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An inventory with an initialized filesystem repository; returns the inventory file."""
    inventory = write_inventory(tmp_path, *_INVENTORY)
    Repository(FilesystemBackend(tmp_path / "repository")).initialize("test-repo")
    return inventory


def _snapshot(site: Path, job: str, at: datetime, items: int = 2) -> str:
    """Publish a snapshot as an engine would (metadata last)."""
    snapshot_id = f"{job}-{at:%Y%m%d%H%M%S}-abcdef"
    repository = Repository(FilesystemBackend(site.parent / "repository"))
    document = {
        "snapshotId": snapshot_id,
        "job": job,
        "namespace": job,
        "sourceCluster": "east",
        "counts": {"configmaps": items},
        "startedAt": at.isoformat(),
    }
    repository.write_snapshot(
        snapshot_id, {"objects.json": b"[]" * 10}, json.dumps(document).encode()
    )
    return snapshot_id


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err  # one line, no traceback
    assert captured.out == ""  # not even the blank line of a progress display
    return lines[0]


# -- help and bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["backup", "snapshots", "restore"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: kubeferry" in out
    assert command in out


def test_backup_of_an_unknown_job_is_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "nope", "-f", str(site)]) == 1
    line = _error_line(capsys)
    assert "no ReplicationJob 'nope' in the inventory" in line
    assert "shop" in line  # the known jobs are listed


def test_drill_of_an_unknown_job_is_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "nope", "-f", str(site)]) == 1
    line = _error_line(capsys)
    assert "no ReplicationJob 'nope' in the inventory" in line


def test_backup_without_an_applied_repository_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = write_inventory(tmp_path, *_INVENTORY)  # the repository was never initialized
    assert main(["backup", "shop", "-f", str(inventory)]) == 1
    assert "repository local is not initialized" in _error_line(capsys)


def test_backup_needs_a_job(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup"]) == 2
    assert "Missing argument 'JOB'" in _error_line(capsys)


def test_restore_of_an_unknown_snapshot_is_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", "shop-20260101000000-abcdef", "-f", str(site)]) == 1
    line = _error_line(capsys)
    assert "no snapshot 'shop-20260101000000-abcdef' in the inventory's repositories" in line
    assert "kubeferry snapshots" in line


def test_restore_rejects_bad_input_in_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot_id = _snapshot(site, "shop", _T0)
    assert main(["restore", snapshot_id, "-f", str(site), "--policy", "merge"]) == 2
    assert "'merge' is not one of" in _error_line(capsys)
    assert main(["restore", snapshot_id, "-f", str(site), "--to-namespace", "Bad_NS"]) == 1
    assert "--to-namespace 'Bad_NS': not a valid namespace name" in _error_line(capsys)
    assert main(["restore", snapshot_id, "-f", str(site), "--cluster", "mars"]) == 1
    assert "no Cluster 'mars' in the inventory" in _error_line(capsys)
    assert main(["restore", "../etc", "-f", str(site)]) == 1
    assert "invalid snapshot id" in _error_line(capsys)


# -- snapshots -------------------------------------------------------------------------------


def test_snapshots_lists_the_repository_newest_first(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = _snapshot(site, "shop", _T0)
    newer = _snapshot(site, "shop", _T0 + timedelta(hours=1), items=5)
    other = _snapshot(site, "shop-eu", _T0 + timedelta(minutes=30))
    # parts without metadata: an interrupted backup, never listed
    (site.parent / "repository" / "snapshots" / "shop-20990101000000-abcdef").mkdir(parents=True)

    assert main(["snapshots", "-f", str(site), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["snapshots"]
    assert [s["id"] for s in listed] == [newer, other, older]
    first = listed[0]
    assert first["job"] == "shop"
    assert first["namespace"] == "shop"
    assert first["sourceCluster"] == "east"
    assert first["items"] == 5
    assert first["sizeBytes"] > 0
    assert first["complete"] is True
    assert first["phase"] == "Completed"

    # "shop" must not match "shop-eu" although its ids start with "shop-"
    assert main(["snapshots", "-f", str(site), "--job", "shop", "--json"]) == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)["snapshots"]] == [newer, older]

    assert main(["snapshots", "-f", str(site)]) == 0
    out = capsys.readouterr().out
    assert newer in out
    assert "shop-eu" in out
    assert "2026-03-01 13:00" in out
    assert not (site.parent / ".kubeferry").exists()  # listing creates no ledger


def test_snapshots_of_an_unknown_job_or_repository_is_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snapshots", "-f", str(site), "--job", "nope"]) == 1
    assert "no job 'nope' in the inventory" in _error_line(capsys)
    assert main(["snapshots", "-f", str(site), "--repository", "s3"]) == 1
    assert "no ReplicationRepository 's3' in the inventory" in _error_line(capsys)


def test_snapshots_when_there_are_none(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshots", "-f", str(site), "--job", "shop"]) == 0
    assert "No snapshots of job 'shop'." in capsys.readouterr().out


# -- retention -------------------------------------------------------------------------------


def _infos(*ages_hours: float) -> list[SnapshotInfo]:
    now = _T0
    return [
        SnapshotInfo(
            id=f"s{n}",
            job="shop",
            repository="local",
            namespace="shop",
            source_cluster="east",
            created_at=now - timedelta(hours=age),
        )
        for n, age in enumerate(ages_hours)
    ]


def test_retention_keep_last() -> None:
    snapshots = _infos(0, 1, 2, 3)
    rule = Retention.model_validate({"keepLast": 2})
    assert expired_snapshots(snapshots, rule, _T0) == ["s2", "s3"]


def test_retention_keep_daily_keeps_the_newest_of_each_recent_day() -> None:
    # _T0 is 12:00: ages 0, 1 are today; 13, 14 yesterday; 40 the day before
    snapshots = _infos(0, 1, 13, 14, 40)
    rule = Retention.model_validate({"keepDaily": 2})
    assert expired_snapshots(snapshots, rule, _T0) == ["s1", "s3", "s4"]


def test_retention_ttl_and_any_rule_keeps() -> None:
    snapshots = _infos(1, 30, 50, 100)
    ttl = Retention.model_validate({"ttl": "48h"})
    assert expired_snapshots(snapshots, ttl, _T0) == ["s2", "s3"]
    both = Retention.model_validate({"ttl": "48h", "keepLast": 3})
    assert expired_snapshots(snapshots, both, _T0) == ["s3"]


def test_retention_never_deletes_the_newest_and_none_keeps_all() -> None:
    old = _infos(500, 600)
    assert expired_snapshots(old, Retention.model_validate({"ttl": "1h"}), _T0) == ["s1"]
    assert expired_snapshots(old, None, _T0) == []
    assert expired_snapshots([], Retention.model_validate({"keepLast": 1}), _T0) == []


def test_apply_retention_deletes_from_the_repository_and_marks_the_ledger(site: Path) -> None:
    ids = [_snapshot(site, "shop", _T0 + timedelta(hours=n)) for n in range(4)]
    untouched = _snapshot(site, "shop-eu", _T0)  # another job: never considered
    workspace = Workspace.resolve(site, None)
    result = apply_retention(workspace, "shop")
    assert result.rules == "keepLast 2"
    assert sorted(result.deleted) == ids[:2]
    assert sorted(result.kept) == ids[2:]
    assert result.errors == []
    remaining = Repository(FilesystemBackend(site.parent / "repository")).list_snapshots()
    assert remaining == sorted([*ids[2:], untouched])
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        marked = ledger.snapshots(job="shop", include_deleted=True)
        assert {s.id for s in marked if s.deleted_at is not None} == set(ids[:2])
        assert all(s.deletion_reason == "retention: keepLast 2" for s in marked)
        assert ledger.snapshots(job="shop") == []  # the kept ones were never catalogued here
        assert [e.kind for e in ledger.events(job="shop")] == ["snapshot.deleted"] * 2
        assert ledger.lock_status() is None
    # a job without retention keeps everything
    assert apply_retention(workspace, "shop-eu").deleted == []


def test_history_shows_a_restore_runs_prechecks_and_outcomes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from state import RunKind, RunPhase

    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        run = ledger.start_run(RunKind.RESTORE, "shop")
        assert run.id is not None
        ledger.finish_run(
            run.id,
            RunPhase.COMPLETED,
            details={
                "precheck": {"overallCompatibility": "warning", "compatibilityChecks": []},
                "outcomes": {"created": 3, "exists-identical": 1},
            },
        )
    assert main(["ledger", "history", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pre-checks warning; 3 created, 1 exists-identical" in out
