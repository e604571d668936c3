"""`kubeferry ledger status|history|unlock`, through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main
from state import EventLevel, Ledger, RunKind, RunPhase, head_revision


@pytest.fixture(autouse=True)
def _wide_plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # tables on one line each, easy to assert on
    monkeypatch.delenv("KUBEFERRY_LEDGER", raising=False)
    monkeypatch.delenv("KUBEFERRY_INVENTORY", raising=False)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def filled(ledger_path: Path) -> Path:
    """A ledger with two jobs' runs and events."""
    with Ledger.open(ledger_path) as ledger:
        ledger.upsert_cluster("east")
        ledger.upsert_repository("s3")
        ledger.upsert_slice("p", source_cluster="east", destination_cluster="east", repository="s3")
        ledger.upsert_job("shop", slice="p", namespace="shop")
        ledger.upsert_job("cart", slice="p", namespace="cart")
        shop = ledger.start_run(RunKind.BACKUP, "shop", total_items=12)
        assert shop.id is not None
        ledger.update_run_progress(shop.id, items_done=12, bytes_done=5 * 1024 * 1024)
        ledger.finish_run(shop.id, RunPhase.COMPLETED, snapshot_id="shop-snap-1")
        cart = ledger.start_run(RunKind.RESTORE, "cart")
        assert cart.id is not None
        ledger.finish_run(cart.id, RunPhase.FAILED, message="no space")
        ledger.record_event("run.finished", "shop backed up", job="shop", run_id=shop.id)
        ledger.record_event("run.failed", "cart restore failed", job="cart", level=EventLevel.ERROR)
    return ledger_path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err  # one line, no traceback
    return lines[0]


# -- status ----------------------------------------------------------------------------------


def test_status_reports_path_serial_schema_lock_and_counts(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "status", "--ledger", str(filled)]) == 0
    out = capsys.readouterr().out
    assert str(filled.resolve()) in out
    assert "Serial  12" in out
    assert f"Schema  {head_revision()}" in out
    assert "Lock    free" in out
    assert "clusters 1, repositories 1, slices 1, jobs 2, runs 2" in out


def test_status_shows_a_live_holder_and_a_stale_one(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Ledger.open(filled) as ledger:
        handle = ledger.acquire_lock("apply")
        assert main(["ledger", "status", "--ledger", str(filled)]) == 0
        out = capsys.readouterr().out
        assert "'apply'" in out
        assert handle.lock_id in out
        assert "stale" not in out

        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        with ledger._engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE lock SET pid = {dead.pid}")
        assert main(["ledger", "status", "--ledger", str(filled), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["lock"]["lock_id"] == handle.lock_id
        assert report["lock"]["stale"] is True
        assert main(["ledger", "status", "--ledger", str(filled)]) == 0
        assert f"kubeferry ledger unlock {handle.lock_id}" in capsys.readouterr().out


def test_status_json(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "status", "--ledger", str(filled), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["serial"] == 12
    assert report["schema_revision"] == report["newest_schema_revision"] == head_revision()
    assert report["lock"] is None
    assert report["counts"]["runs"] == 2
    assert report["counts"]["events"] == 2


def test_a_missing_ledger_is_one_line_exit_1_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none" / "ledger.sqlite"
    for command in ("status", "history"):
        assert main(["ledger", command, "--ledger", str(missing)]) == 1
        line = _error_line(capsys)
        assert f"no ledger at {missing}" in line
    assert main(["ledger", "unlock", "some-id", "--ledger", str(missing)]) == 1
    assert "no ledger at" in _error_line(capsys)
    assert not missing.parent.exists()


def test_the_ledger_is_found_next_to_the_inventory_or_through_the_environment(
    tmp_path: Path,
    filled: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = tmp_path / "site" / "kubeferry.yaml"
    inventory.parent.mkdir()
    inventory.write_text("clusters: {}\n")
    beside = inventory.parent / ".kubeferry" / "ledger.sqlite"
    beside.parent.mkdir()
    beside.write_bytes(filled.read_bytes())  # the WAL was checkpointed when it was closed
    assert main(["ledger", "status", "-f", str(inventory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(beside.resolve())

    monkeypatch.setenv("KUBEFERRY_LEDGER", str(filled))
    assert main(["ledger", "status", "-f", str(inventory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(filled.resolve())


def test_a_file_that_is_not_a_ledger_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "ledger.sqlite"
    bogus.write_text("not sqlite\n" * 200)
    assert main(["ledger", "status", "--ledger", str(bogus)]) == 1
    assert "cannot open the ledger" in _error_line(capsys)


# -- history ---------------------------------------------------------------------------------


def test_history_lists_runs_and_events_newest_first(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "history", "--ledger", str(filled)]) == 0
    out = capsys.readouterr().out
    assert out.index("restore") < out.index("backup")  # run 2 before run 1
    assert "Completed" in out
    assert "Failed" in out
    assert "12/12" in out
    assert "5.0 MiB" in out
    assert "shop-snap-1" in out
    assert out.index("cart restore failed") < out.index("shop backed up")


def test_history_filters_by_job_and_limits(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "history", "--ledger", str(filled), "--job", "shop", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [run["job"] for run in document["runs"]] == ["shop"]
    assert document["runs"][0]["phase"] == "Completed"
    assert document["runs"][0]["snapshot_id"] == "shop-snap-1"
    assert [event["message"] for event in document["events"]] == ["shop backed up"]

    assert main(["ledger", "history", "--ledger", str(filled), "--limit", "1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [run["job"] for run in document["runs"]] == ["cart"]
    assert [event["kind"] for event in document["events"]] == ["run.failed"]


def test_history_of_an_empty_ledger_says_so(
    ledger_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Ledger.open(ledger_path).close()
    assert main(["ledger", "history", "--ledger", str(ledger_path)]) == 0
    out = capsys.readouterr().out
    assert "No runs yet." in out
    assert "No events yet." in out


# -- unlock ----------------------------------------------------------------------------------


def test_unlock_releases_the_named_lock(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Ledger.open(filled) as ledger:
        handle = ledger.acquire_lock("apply")
    assert main(["ledger", "unlock", handle.lock_id, "--ledger", str(filled)]) == 0
    assert f"Released lock {handle.lock_id}" in capsys.readouterr().out
    with Ledger.open(filled) as ledger:
        assert ledger.lock_status() is None
        assert ledger.events(newest_first=True)[0].kind == "lock.unlocked"


def test_unlock_with_an_unknown_id_is_one_line_exit_1_and_keeps_the_lock(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Ledger.open(filled) as ledger:
        handle = ledger.acquire_lock("apply")
    assert main(["ledger", "unlock", "not-the-id", "--ledger", str(filled)]) == 1
    assert "no lock 'not-the-id'" in _error_line(capsys)
    with Ledger.open(filled) as ledger:
        holder = ledger.lock_status()
        assert holder is not None
        assert holder.lock_id == handle.lock_id


def test_unlock_when_nothing_is_locked(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "unlock", "some-id", "--ledger", str(filled)]) == 1
    assert "the ledger is not locked" in _error_line(capsys)
