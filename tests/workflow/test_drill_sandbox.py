"""DR drills against the real sandbox: worker-1 -> worker-2, with a PVC holding data.

The source namespace on worker-1 holds a ConfigMap, a Secret, a Deployment mounting a PVC,
a Service and the PVC (storage class ``hostpath``, its directory filled on this machine).
A ReplicationJob replicates it to worker-2 through an encrypted filesystem repository.

* ``kubeferry drill`` (a subprocess): a fresh backup, restored into a scratch namespace on
  worker-2, verified, reported (Markdown and JSON), the namespace deleted: PASSED, exit 0;
* ``run_drill`` with a planted difference (one ConfigMap value and one file changed in the
  scratch namespace before verification): FAILED, both differences reported, the scratch
  namespace deleted all the same, a webhook (a real local HTTP server) told.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.kube import KubeClient, Manifest
from reconciler.reconcile import DrillOptions, Workspace, apply, run_drill
from state import Ledger, RunKind, RunPhase
from tests._environment import cheap_scrypt, kubeferry, subprocess_env
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory
from tests._kube_objects import hostpath_claim, volume_dir
from tests._kube_objects import namespace as kube_namespace

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

PASSPHRASE_VAR = "KF_DRILL_TEST_PASSPHRASE"
WEBHOOK_VAR = "KF_DRILL_TEST_WEBHOOK"
SECRET_VALUE = "drill-secret-value-7f3a"
WEBHOOK_TOKEN = "tok-9c1e5d"


def _inventory(directory: Path, kubeconfig: str, source: Source, **shop: Any) -> Path:
    """worker-1 -> worker-2 through an encrypted repository; job shop (extra spec ``shop``)
    tells a webhook."""
    return write_inventory(
        directory,
        cluster("worker-1", kubeconfig=kubeconfig),
        cluster("worker-2", kubeconfig=kubeconfig),
        filesystem_repository("vault", passphrase_var=PASSPHRASE_VAR),
        replication_slice("w1-to-w2", "worker-1", "worker-2", "vault"),
        job(
            "shop",
            "w1-to-w2",
            source.namespace,
            targetNamespace=source.target,
            notify={"webhook": {"urlFrom": {"env": {"var": WEBHOOK_VAR}}}},
            **shop,
        ),
    )


def _objects(namespace: str) -> list[Manifest]:
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace},
            "data": {"mode": "production", "threads": "4"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "credentials", "namespace": namespace},
            "type": "Opaque",
            "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
        },
        hostpath_claim("data", namespace),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "busybox:1.36",
                                "envFrom": [{"configMapRef": {"name": "settings"}}],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
                        ],
                    },
                },
            },
        },
    ]


@dataclass
class Source:
    namespace: str
    target: str
    data_dir: Path


@pytest.fixture(scope="module")
def source(sandbox: SandboxInfo) -> Iterator[Source]:
    namespace = f"kf-drill-{uuid.uuid4().hex[:8]}"
    with sandbox.client("worker-1") as client:
        client.create(kube_namespace(namespace))
        try:
            for obj in _objects(namespace):
                client.create(obj)
            data_dir = volume_dir(client, namespace, "data")
            (data_dir / "orders.db").write_bytes(bytes(range(256)) * 2048)
            (data_dir / "nested").mkdir()
            (data_dir / "nested" / "wal.log").write_text("committed\n" * 500)
            (data_dir / "current").symlink_to("nested/wal.log")
            yield Source(namespace, f"{namespace}-copy", data_dir)
        finally:
            client.delete("v1", "Namespace", namespace)
            with sandbox.client("worker-2") as destination:
                destination.delete("v1", "Namespace", f"{namespace}-copy")


@dataclass
class Hook:
    """A local HTTP server standing in for a chat webhook."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Hook]:
    hook = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            hook.bodies.append(json.loads(self.rfile.read(length)))
            hook.paths.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{WEBHOOK_TOKEN}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def _workspace(
    sandbox: SandboxInfo,
    source: Source,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook_url: str,
    *,
    applied: bool = True,
    **shop: Any,
) -> Workspace:
    cheap_scrypt(monkeypatch)
    monkeypatch.setenv(PASSPHRASE_VAR, "drill test passphrase")
    monkeypatch.setenv(WEBHOOK_VAR, webhook_url)
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    inventory = _inventory(directory, str(sandbox.kubeconfig), source, **shop)
    workspace = Workspace.resolve(inventory)
    if not applied:
        return workspace
    plan, result = apply(workspace)
    assert result is not None, plan.actions
    assert result.ok, [(r.address, r.outcome, r.detail) for r in result.results]
    return workspace


def _gone(sandbox: SandboxInfo, namespace: str) -> bool:
    with sandbox.client("worker-2") as client:
        return client.get("v1", "Namespace", namespace) is None


def test_drill_passes_reports_and_cleans_up(
    sandbox: SandboxInfo,
    source: Source,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Hook,
) -> None:
    workspace = _workspace(sandbox, source, tmp_path, monkeypatch, webhook.url)
    report_base = tmp_path / "reports" / "drill"
    result = kubeferry(
        "drill",
        "shop",
        "-f",
        str(workspace.inventory_path),
        "--report",
        str(report_base),
        env=subprocess_env(wide=True),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Drill of job shop: PASSED" in result.stdout
    assert "Scratch namespace: deleted." in result.stdout

    document = json.loads((tmp_path / "reports" / "drill.json").read_text())
    markdown = (tmp_path / "reports" / "drill.md").read_text()
    assert document["passed"] is True, document["reasons"]
    assert document["snapshot"]["freshBackup"] is True
    scratch = document["restoredTo"]["namespace"]
    assert document["restoredTo"]["cluster"] == "worker-2"
    assert scratch.startswith(f"{source.target}-drill-")
    # Namespace, ConfigMap, Secret, PVC, Service, Deployment, ServiceAccount default
    assert document["objects"]["checked"] >= 6
    assert document["objects"]["mismatches"] == []
    assert document["workloads"] == [{"item": "Deployment/web", "specEqual": True}]
    (volume,) = document["volumes"]
    assert volume["claim"] == "data"
    assert volume["verified"] is True
    assert volume["files"] == 2
    assert volume["bytes"] == 256 * 2048 + len("committed\n") * 500
    assert volume["mismatches"] == []
    assert document["rpoSeconds"] >= 0
    assert document["rtoSeconds"] > 0
    assert document["cleanup"] == "deleted"
    assert document["notification"] == ""
    assert "# DR drill of job `shop`: PASSED" in markdown
    assert "| RTO |" in markdown
    for text in (markdown, json.dumps(document), result.stdout):
        assert SECRET_VALUE not in text
        assert WEBHOOK_TOKEN not in text
    assert _gone(sandbox, scratch)
    assert webhook.bodies == []  # a passed drill tells nobody

    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        (drill,) = ledger.runs(job="shop", kind=RunKind.DRILL)
        assert drill.phase == RunPhase.COMPLETED
        assert drill.details["drill"]["passed"] is True
        assert drill.details["namespace"] == scratch
        assert drill.details["cleanup"] == "deleted"
        assert drill.snapshot_id == document["snapshot"]["id"]
        (job,) = [j for j in ledger.jobs() if j.name == "shop"]
        assert job.last_drill_at is not None
        # the drill's fresh backup is a backup run of its own; the restore is the drill's
        assert len(ledger.runs(job="shop", kind=RunKind.BACKUP)) == 2
        assert len(ledger.runs(job="shop", kind=RunKind.RESTORE)) == 1


def test_drill_catches_a_planted_mismatch_and_notifies(
    sandbox: SandboxInfo,
    source: Source,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Hook,
) -> None:
    workspace = _workspace(sandbox, source, tmp_path, monkeypatch, webhook.url)
    scratch = f"{source.namespace}-drill-planted"
    planted: list[str] = []

    def plant(client: KubeClient, namespace: str) -> None:
        settings = client.get("v1", "ConfigMap", "settings", namespace)
        assert settings is not None
        settings["data"]["threads"] = "64"
        client.replace(settings)
        restored_dir = volume_dir(client, namespace, "data")
        assert restored_dir != source.data_dir
        assert (restored_dir / "nested" / "wal.log").read_text() == "committed\n" * 500
        (restored_dir / "nested" / "wal.log").write_text("committed\n" * 499 + "corrupted\n")
        (restored_dir / "stray.tmp").write_text("left behind")
        planted.append(namespace)

    report = run_drill(
        workspace,
        "shop",
        options=DrillOptions(into_namespace=scratch),
        before_verify=plant,
    )
    assert planted == [scratch]
    assert not report.passed
    assert report.verdict == "FAILED"
    assert report.namespace == scratch
    assert [(m.item, m.path) for m in report.object_mismatches] == [
        ("ConfigMap/settings", "data.threads")
    ]
    assert 'expected "4", found "64"' in report.object_mismatches[0].problem
    assert report.workloads[0].spec_equal  # the Deployment was not touched
    (volume,) = report.volumes
    assert volume.verified
    assert sorted((m.path, m.problem) for m in volume.mismatches) == [
        ("nested/wal.log", "content differs (BLAKE3 chunk digests)"),
        ("stray.tmp", "not in the snapshot"),
    ]
    reasons = report.reasons()
    assert "1 object field mismatch(es)" in reasons
    assert "volume data: 2 file mismatch(es)" in reasons
    assert report.cleanup == "deleted"
    assert _gone(sandbox, scratch)

    # the webhook got a short summary; its URL (with the token) is nowhere in the records
    assert report.notification == "sent"
    (body,) = webhook.bodies
    assert webhook.paths == [f"/hooks/{WEBHOOK_TOKEN}"]
    assert body["event"] == "kubeferry.drill.failed"
    assert body["job"] == "shop"
    assert body["passed"] is False
    assert body["objectMismatches"] == 1
    assert body["volumeMismatches"] == 2
    assert WEBHOOK_TOKEN not in json.dumps(report.to_dict())

    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        (drill,) = ledger.runs(job="shop", kind=RunKind.DRILL)
        assert drill.phase == RunPhase.FAILED
        assert drill.message.startswith("drill failed: ")
        assert drill.details["drill"]["passed"] is False
        assert drill.details["drill"]["objectMismatches"] == 1
        assert WEBHOOK_TOKEN not in json.dumps(drill.details)
        assert all(WEBHOOK_TOKEN not in e.message for e in ledger.events())
        (job,) = [j for j in ledger.jobs() if j.name == "shop"]
        assert job.last_drill_at is None  # only a passed drill counts


def test_reconcile_runs_a_due_drill_once(
    sandbox: SandboxInfo,
    source: Source,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Hook,
) -> None:
    # yearly: due at once (never drilled), then not again this year
    workspace = _workspace(
        sandbox,
        source,
        tmp_path,
        monkeypatch,
        webhook.url,
        applied=False,
        drillFrequency="0 0 1 1 *",
    )
    env = subprocess_env(wide=True)
    command = ("reconcile", "-f", str(workspace.inventory_path), "--json-logs")
    first = kubeferry(*command, env=env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    (drilled,) = [line for line in lines if line.get("event") == "drill.finished"]
    assert drilled["job"] == "shop"
    assert drilled["passed"] is True, drilled["reasons"]
    assert drilled["volumesChecked"] == 1
    assert _gone(sandbox, drilled["namespace"])

    second = kubeferry(*command, env=env, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert '"drill.finished"' not in second.stdout
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        (drill,) = ledger.runs(job="shop", kind=RunKind.DRILL)
        assert drill.phase == RunPhase.COMPLETED
        (job,) = [j for j in ledger.jobs() if j.name == "shop"]
        assert job.last_drill_at is not None
