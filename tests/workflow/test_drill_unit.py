"""DR drills without clusters: comparison, volume verification, reports, notification,
schedules and the inventory fields (docs/drills.md)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter

from reconciler.cli import _workflow
from reconciler.inventory import InventoryError, load_inventory
from reconciler.reconcile import _drill
from reconciler.reconcile._drill import ScheduledDrill, scratch_namespace
from reconciler.reconcile._drill_report import (
    DrillReport,
    Mismatch,
    VolumeCheck,
    WorkloadCheck,
    render_markdown,
    write_report,
)
from reconciler.reconcile._drill_schedule import drill_due, due_drills, notify_webhook, webhook_url
from reconciler.reconcile._drill_verify import (
    compare_object,
    field_differences,
    verify_tree,
    workload_checks,
)
from reconciler.volumes import VolumeManifest, backup_tree
from state import Ledger, RunKind, RunPhase
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory
from tests.volumes._fake_store import FakeStore

# -- objects -----------------------------------------------------------------------------------


def _archived_config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "shop",
            "uid": "source-uid",
            "resourceVersion": "12",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "old-uid"}
            ],
        },
        "data": {"mode": "production", "threads": "4", "flags": "a,b"},
    }


def _restored(archived: dict[str, Any], namespace: str) -> dict[str, Any]:
    """What a faithful restore leaves on the server: new uid, our labels, server fields."""
    live = json.loads(json.dumps(archived))
    live["metadata"].update(
        namespace=namespace,
        uid="new-uid",
        resourceVersion="99",
        creationTimestamp="2026-02-02T00:00:00Z",
        managedFields=[{"manager": "kubeferry"}],
    )
    live["metadata"]["labels"].update(
        {"kubeferry.io/snapshot": "shop-20260101000000-abcdef", "kubeferry.io/job": "shop"}
    )
    for ref in live["metadata"].get("ownerReferences", []):
        ref["uid"] = "relinked-uid"
    return live


def _compare(archived: dict[str, Any], live: dict[str, Any] | None) -> list[Mismatch]:
    return compare_object(
        archived,
        live,
        source_namespace="shop",
        target_namespace="shop-drill-1",
        storage_class_mapping={"fast": "standard"},
        snapshot_id="shop-20260101000000-abcdef",
        job="shop",
    )


def test_a_faithful_restore_has_no_mismatch() -> None:
    archived = _archived_config_map()
    assert _compare(archived, _restored(archived, "shop-drill-1")) == []


def test_sanitised_fields_are_ignored() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "x"},
        },
        "spec": {
            "clusterIP": "10.0.0.7",
            "clusterIPs": ["10.0.0.7"],
            "type": "NodePort",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            "selector": {"app": "web"},
        },
        "status": {"loadBalancer": {}},
    }
    live = json.loads(json.dumps(service))
    live["metadata"]["namespace"] = "shop-drill-1"
    live["metadata"]["annotations"] = {}
    live["spec"].update(clusterIP="10.9.9.9", clusterIPs=["10.9.9.9"])
    live["spec"]["ports"][0]["nodePort"] = 31999
    assert _compare(service, live) == []

    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "data",
            "namespace": "shop",
            "annotations": {"pv.kubernetes.io/bind-completed": "yes"},
        },
        "spec": {"storageClassName": "fast", "volumeName": "pvc-source"},
    }
    restored_claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "shop-drill-1"},
        "spec": {"storageClassName": "standard", "volumeName": "pvc-new"},
    }
    assert _compare(claim, restored_claim) == []
    # the storage class mapping is part of the expectation: the unmapped class is a mismatch
    restored_claim["spec"]["storageClassName"] = "fast"
    assert [(m.path, m.problem) for m in _compare(claim, restored_claim)] == [
        ("spec.storageClassName", 'differs: expected "standard", found "fast"')
    ]


def test_planted_differences_are_each_reported_with_their_path() -> None:
    archived = _archived_config_map()
    live = _restored(archived, "shop-drill-1")
    live["data"]["threads"] = "64"
    del live["data"]["flags"]
    live["metadata"]["labels"]["app"] = "other"
    found = {(m.item, m.path, m.problem) for m in _compare(archived, live)}
    assert found == {
        ("ConfigMap/settings", "data.threads", 'differs: expected "4", found "64"'),
        ("ConfigMap/settings", "data.flags", "missing"),
        ("ConfigMap/settings", "metadata.labels.app", 'differs: expected "web", found "other"'),
    }
    assert [m.problem for m in _compare(archived, None)] == ["missing from the scratch namespace"]


def test_field_paths_lists_and_types() -> None:
    desired = {
        "spec": {
            "containers": [{"name": "a", "image": "x:1"}],
            "paused": True,
            "labels": {"app.kubernetes.io/name": "web"},
            "empty": {},
        }
    }
    existing = {
        "spec": {
            "containers": [{"name": "a", "image": "x:2", "extra": 1}],
            "paused": 1,
            "labels": {"app.kubernetes.io/name": "web"},
        }
    }
    assert list(field_differences(desired, existing)) == [
        ("spec.containers[0].image", 'differs: expected "x:1", found "x:2"'),
        ("spec.paused", "differs: expected true, found 1"),
    ]
    assert list(field_differences({"a": [1, 2]}, {"a": [1]})) == [("a", "1 item(s), expected 2")]
    assert list(field_differences({"m": {"k.io/x": "1"}}, {"m": {"k.io/x": "2"}})) == [
        ('m["k.io/x"]', 'differs: expected "1", found "2"')
    ]


def test_secret_values_are_never_quoted() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "data": {"password": "c2VjcmV0LW9uZQ=="},
    }
    live = json.loads(json.dumps(secret))
    live["metadata"]["namespace"] = "shop-drill-1"
    live["data"]["password"] = "b3RoZXI="
    (mismatch,) = _compare(secret, live)
    assert mismatch.path == "data.password"
    assert mismatch.problem == "differs (value not shown)"
    assert "c2VjcmV0" not in mismatch.problem
    assert "b3RoZXI" not in mismatch.problem


def test_workload_specs() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    mismatches = [
        Mismatch("Deployment/web", "spec.replicas", "differs"),
        Mismatch("CronJob/nightly", "metadata.labels.x", "differs"),
    ]
    assert workload_checks([deployment, cron, config], mismatches) == [
        WorkloadCheck("CronJob/nightly", True),
        WorkloadCheck("Deployment/web", False),
    ]


# -- volume data -------------------------------------------------------------------------------


def _tree(root: Path) -> None:
    (root / "nested").mkdir(parents=True)
    (root / "small.txt").write_text("hello\n")
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "nested" / "wal.log").write_text("committed\n" * 5000)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("nested/wal.log")
    os.link(root / "small.txt", root / "hard.txt")


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[FakeStore, VolumeManifest, Path]:
    source = tmp_path / "source"
    _tree(source)
    store = FakeStore()
    tree = backup_tree(store, source, avg_chunk=16_384)
    manifest = VolumeManifest.from_bytes(store.load_manifest(tree.snapshot_id))
    restored = tmp_path / "restored"
    shutil.copytree(source, restored, symlinks=True)
    os.unlink(restored / "hard.txt")
    os.link(restored / "small.txt", restored / "hard.txt")
    return store, manifest, restored


def test_an_identical_tree_verifies(snapshot: tuple[FakeStore, VolumeManifest, Path]) -> None:
    store, manifest, restored = snapshot
    (restored / "lost+found").mkdir()  # made by mkfs on real volumes: ignored
    found, files, size = verify_tree(manifest, restored, store.chunk_id, item="data")
    assert found == []
    assert files == 5  # small, big, wal.log, run.sh and the hardlink
    assert size == 6 + 300_000 + len("committed\n") * 5000 + len("#!/bin/sh\n")


def test_planted_file_differences_are_found(
    snapshot: tuple[FakeStore, VolumeManifest, Path],
) -> None:
    store, manifest, restored = snapshot
    big = bytearray((restored / "big.bin").read_bytes())
    big[150_000] ^= 0xFF  # same size, one byte flipped
    (restored / "big.bin").write_bytes(bytes(big))
    (restored / "run.sh").chmod(0o644)
    (restored / "nested" / "wal.log").write_text("short")
    (restored / "link").unlink()
    (restored / "link").symlink_to("small.txt")
    (restored / "small.txt").unlink()
    (restored / "small.txt").write_text("hello\n")  # same content, no longer the hardlink's inode
    (restored / "extra").write_text("stray")
    found, _, _ = verify_tree(manifest, restored, store.chunk_id, item="data")
    assert sorted((m.path, m.problem) for m in found) == [
        ("big.bin", "content differs (BLAKE3 chunk digests)"),
        ("extra", "not in the snapshot"),
        ("link", "symlink target differs"),
        ("nested/wal.log", "size 5, expected 50000"),
        ("run.sh", "mode 0644, expected 0755"),
        # the manifest records the first path of an inode (sorted) as the file
        ("small.txt", "not a hardlink of hard.txt"),
    ]
    assert {m.item for m in found} == {"data"}


def test_missing_and_retyped_entries(snapshot: tuple[FakeStore, VolumeManifest, Path]) -> None:
    store, manifest, restored = snapshot
    shutil.rmtree(restored / "nested")
    (restored / "nested").write_text("a file where a directory was")
    found, _, _ = verify_tree(manifest, restored, store.chunk_id, item="data")
    # what the directory held is not looked for again
    assert [(m.path, m.problem) for m in found] == [("nested", "is a file, expected a dir")]
    shutil.rmtree(restored)
    restored.mkdir()
    (restored / "nested").mkdir()
    found, files, _ = verify_tree(manifest, restored, store.chunk_id, item="data")
    assert files == 0
    assert sorted(m.path for m in found if m.problem == "missing") == [
        "big.bin",
        "hard.txt",
        "link",
        "nested/wal.log",
        "run.sh",
        "small.txt",
    ]


# -- reports -----------------------------------------------------------------------------------

_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _report(**changes: Any) -> DrillReport:
    base = DrillReport(
        job="shop",
        snapshot_id="shop-20260301115500-abcdef",
        repository="vault",
        snapshot_created=_T0 - timedelta(minutes=5),
        fresh_backup=False,
        source_cluster="worker-1",
        source_namespace="shop",
        cluster="worker-2",
        namespace="shop-drill-abc123",
        started_at=_T0,
        finished_at=_T0 + timedelta(seconds=40),
        rpo_seconds=300.0,
        rto_seconds=12.5,
        run_id=7,
        precheck="compatible",
        outcomes={"created": 6},
        objects_checked=6,
        workloads=(WorkloadCheck("Deployment/web", True),),
        volumes=(VolumeCheck("data", True, files=3, bytes=1024),),
        cleanup="deleted",
    )
    return replace(base, **changes)


def test_a_passing_report() -> None:
    report = _report()
    assert report.passed
    assert report.reasons() == []
    text = render_markdown(report)
    assert text.startswith("# DR drill of job `shop`: PASSED\n")
    assert "| RPO | 5m00s (snapshot age when the restore started) |" in text
    assert "| RTO | 12.5s (restore duration) |" in text
    assert "| volumes | 1 checked (3 files, 1024 bytes), 0 mismatch(es) |" in text
    assert "Why it failed" not in text
    document = report.to_dict()
    assert document["format"] == "kubeferry.drill-report/v1"
    assert document["passed"] is True
    assert document["restoredTo"] == {"cluster": "worker-2", "namespace": "shop-drill-abc123"}
    assert document["volumes"][0]["verified"] is True


def test_a_failing_report_lists_every_reason() -> None:
    report = _report(
        outcomes={"created": 5, "failed": 1},
        object_mismatches=(Mismatch("ConfigMap/a|b", "data.x", "differs: expected 1"),),
        workloads=(WorkloadCheck("Deployment/web", False),),
        volumes=(
            VolumeCheck("data", True, files=3, mismatches=(Mismatch("data", "f", "missing"),)),
            VolumeCheck("logs", False, note="its directory is not on this machine"),
        ),
    )
    assert not report.passed
    assert report.reasons() == [
        "1 object(s) failed to restore",
        "1 object field mismatch(es)",
        "workload spec differs: Deployment/web",
        "volume data: 1 file mismatch(es)",
        "volume logs not verified: its directory is not on this machine",
    ]
    text = render_markdown(report)
    assert text.startswith("# DR drill of job `shop`: FAILED\n")
    assert "| ConfigMap/a\\|b | `data.x` | differs: expected 1 |" in text  # pipes escaped
    assert "| Deployment/web | DIFFERS |" in text
    assert "| logs | 0 | 0 | not verified: its directory is not on this machine |" in text
    summary = report.summary()
    assert summary["passed"] is False
    assert summary["objectMismatches"] == 1
    assert summary["volumeMismatches"] == 1
    # each kind of problem alone fails a drill
    assert not _report(errors=("the pre-checks stopped the restore",)).passed
    assert not _report(volumes=(VolumeCheck("x", False),)).passed


def test_report_files_follow_the_suffix(tmp_path: Path) -> None:
    report = _report()
    assert write_report(report, tmp_path / "a.md") == [tmp_path / "a.md"]
    assert (tmp_path / "a.md").read_text().startswith("# DR drill")
    assert write_report(report, tmp_path / "b.json") == [tmp_path / "b.json"]
    assert json.loads((tmp_path / "b.json").read_text())["job"] == "shop"
    both = write_report(report, tmp_path / "sub" / "drill-2026")
    assert both == [tmp_path / "sub" / "drill-2026.md", tmp_path / "sub" / "drill-2026.json"]
    assert json.loads(both[1].read_text()) == report.to_dict()
    assert both[0].read_text() == render_markdown(report)


def test_scratch_namespace_names() -> None:
    assert scratch_namespace("shop", "abc123") == "shop-drill-abc123"
    long = scratch_namespace("a" * 60 + "-x", "abc123")
    assert len(long) <= 63
    assert long.endswith("-drill-abc123")
    assert not long.startswith("-")


# -- notification ------------------------------------------------------------------------------


@dataclass
class _Server:
    url: str
    statuses: list[int]
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[_Server]:
    found = _Server(url="", statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            found.bodies.append(json.loads(self.rfile.read(length)))
            status = found.statuses.pop(0) if found.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    found.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook/secret-token-42"
    try:
        yield found
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_gets_the_summary(server: _Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    payload = {"event": "kubeferry.drill.failed", "job": "shop", "passed": False}
    assert notify_webhook(server.url, payload) == "sent"
    assert server.bodies == [payload]
    assert "secret-token-42" not in caplog.text


def test_webhook_is_retried_once_then_reported(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.statuses = [503, 200]
    assert notify_webhook(server.url, {"job": "shop"}) == "sent"
    assert len(server.bodies) == 2
    server.statuses = [500, 500, 500]
    outcome = notify_webhook(server.url, {"job": "shop"})
    assert outcome == "not sent: the webhook answered HTTP 500"
    assert len(server.bodies) == 4  # two more attempts, not three
    assert "secret-token-42" not in caplog.text


def test_unreachable_webhook_is_a_warning_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # a port nothing listens on: bind one, then close it
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    url = f"http://127.0.0.1:{port}/hook/secret-token-42"
    outcome = notify_webhook(url, {"job": "shop"}, timeout=2)
    assert outcome.startswith("not sent: ConnectError")
    assert "secret-token-42" not in outcome
    assert "secret-token-42" not in caplog.text


# -- inventory fields, schedules ---------------------------------------------------------------


def _inventory(tmp_path: Path, **shop: Any) -> Path:
    """worker-1 -> worker-2; job shop with the extra spec fields ``shop``, job plain without."""
    return write_inventory(
        tmp_path,
        cluster("worker-1"),
        cluster("worker-2"),
        filesystem_repository("repo"),
        replication_slice("s12", "worker-1", "worker-2", "repo"),
        job("shop", "s12", "shop", **shop),
        job("plain", "s12", "plain"),
    )


def test_drill_fields_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hook-url").write_text("https://hooks.example/T0/secret\n")
    inventory = load_inventory(
        _inventory(
            tmp_path,
            drillFrequency="30 3 * * 0",
            notify={"webhook": {"urlFrom": {"file": {"path": "./hook-url"}}}},
        )
    )
    spec = inventory.jobs["shop"].spec
    assert spec.drill_frequency == "30 3 * * 0"
    assert webhook_url(inventory, "shop") == "https://hooks.example/T0/secret"
    assert webhook_url(inventory, "plain") is None

    inventory = load_inventory(
        _inventory(tmp_path, notify={"webhook": {"urlFrom": {"env": {"var": "KF_HOOK"}}}})
    )
    monkeypatch.setenv("KF_HOOK", "https://hooks.example/env")
    assert webhook_url(inventory, "shop") == "https://hooks.example/env"
    monkeypatch.delenv("KF_HOOK")
    with pytest.raises(Exception, match="KF_HOOK"):
        webhook_url(inventory, "shop")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"drillFrequency": "every day"}, "expected a cron expression"),
        ({"drillFrequency": "0 0 * * * *"}, "expected a cron expression"),
        (
            {"notify": {"webhook": {"urlFrom": {"env": {"var": "A"}, "file": {"path": "./x"}}}}},
            "expected exactly one of env or file, got env and file",
        ),
        ({"notify": {"webhook": {"urlFrom": {}}}}, "expected exactly one of env or file, got none"),
        ({"notify": {"webhook": {"url": "https://hooks.example/T0/secret"}}}, "url"),
    ],
)
def test_bad_drill_fields(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError) as raised:
        load_inventory(_inventory(tmp_path, **extra))
    text = "\n".join(str(issue) for issue in raised.value.issues)
    assert message in text
    assert "hooks.example/T0/secret" not in text


def test_drill_due_with_a_fake_clock() -> None:
    last = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert drill_due("0 * * * *", None, last)  # never drilled: due at once
    assert not drill_due("0 * * * *", last, last + timedelta(minutes=59, seconds=59))
    assert drill_due("0 * * * *", last, last + timedelta(hours=1))
    assert drill_due("0 * * * *", last, last + timedelta(days=3))  # missed runs: one drill
    assert not drill_due("30 3 * * 0", last, datetime(2026, 3, 8, 3, 29, tzinfo=UTC))
    assert drill_due("30 3 * * 0", last, datetime(2026, 3, 8, 3, 30, tzinfo=UTC))


def test_due_drills_reads_the_ledger(tmp_path: Path) -> None:
    inventory = load_inventory(_inventory(tmp_path, drillFrequency="0 0 1 1 *"))
    with Ledger.open(tmp_path / "ledger.sqlite") as ledger:
        ledger.upsert_cluster("worker-1")
        ledger.upsert_cluster("worker-2")
        ledger.upsert_repository("repo")
        ledger.upsert_slice(
            "s12", source_cluster="worker-1", destination_cluster="worker-2", repository="repo"
        )
        now = datetime.now(UTC)
        ledger.upsert_job("shop", slice="s12", namespace="shop")
        assert due_drills(inventory, ledger, now) == []  # never succeeded: nothing to drill
        ledger.upsert_job("shop", last_success_at=now)
        ledger.upsert_job("plain", slice="s12", namespace="plain", last_success_at=now)
        assert due_drills(inventory, ledger, now) == ["shop"]  # plain has no drillFrequency

        run = ledger.start_run(RunKind.DRILL, "shop")
        assert run.id is not None
        ledger.finish_run(run.id, RunPhase.FAILED, message="drill failed")
        started = ledger.run(run.id).started_at.replace(tzinfo=UTC)
        next_time: datetime = croniter("0 0 1 1 *", started).get_next(datetime)
        # a failed drill waits for its next scheduled time too
        assert due_drills(inventory, ledger, next_time - timedelta(seconds=1)) == []
        assert due_drills(inventory, ledger, next_time) == ["shop"]


def test_reconcile_exit_code_for_failed_drills(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from reconciler._events import EventBus

    failed = ScheduledDrill("shop", _report(errors=("boom",)))
    passed = ScheduledDrill("web", _report())
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    outcomes: list[list[ScheduledDrill]] = [[passed], [passed, failed], [failed], []]

    def fake(*args: Any, **kwargs: Any) -> list[ScheduledDrill]:
        return outcomes.pop(0)

    monkeypatch.setattr(_drill, "run_due_drills", fake)
    monkeypatch.setattr("reconciler.reconcile.run_due_drills", fake)
    workspace: Any = None
    assert _workflow._drills(workspace, EventBus(), console, False, 0.0, 0) == 0
    assert _workflow._drills(workspace, EventBus(), console, False, 0.0, 0) == 4
    assert _workflow._drills(workspace, EventBus(), console, True, 0.0, 1) == 1  # apply failed
    assert _workflow._drills(workspace, EventBus(), console, False, 0.0, 0) == 0
