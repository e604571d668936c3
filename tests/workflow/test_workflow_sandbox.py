"""plan / apply / reconcile end to end against the real sandbox clusters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from state import Ledger, RunPhase
from tests._environment import kubeferry, subprocess_env
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory
from tests._kube_objects import delete_namespace, settings_namespace

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox


def _inventory(directory: Path, namespace: str, worker_2: str = cluster("worker-2")) -> Path:
    return write_inventory(
        directory,
        cluster("worker-1"),
        worker_2,
        filesystem_repository("local"),
        replication_slice("w1-to-w2", "worker-1", "worker-2", "local"),
        replication_slice("w1-backup", "worker-1", "worker-1", "local"),
        job("copy", "w1-to-w2", namespace, existingResourcePolicy="update"),
        job("keep", "w1-backup", namespace, targetNamespace=namespace),
    )


@pytest.fixture
def workspace(sandbox: SandboxInfo, tmp_path: Path):  # type: ignore[no-untyped-def]
    namespace = f"wf-{uuid.uuid4().hex[:8]}"
    with sandbox.client("worker-1") as client:
        settings_namespace(client, namespace)
    inventory = _inventory(tmp_path, namespace)
    env = subprocess_env(sandbox.kubeconfig)
    yield {"inventory": inventory, "namespace": namespace, "env": env, "dir": tmp_path}
    delete_namespace(sandbox, namespace)


def test_plan_apply_converges_and_copies(workspace, sandbox: SandboxInfo) -> None:  # type: ignore[no-untyped-def]
    inv, env, ns = str(workspace["inventory"]), workspace["env"], workspace["namespace"]
    assert kubeferry("validate", "-f", inv, env=env).returncode == 0

    first = kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env)
    assert first.returncode == 2, first.stderr
    assert "» ReplicationJob/copy" in first.stdout
    assert "+ Cluster/worker-1" in first.stdout
    assert "Plan: 5 to add, 0 to change, 0 to destroy, 2 to replicate." in first.stdout

    applied = kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete: 7 done." in applied.stdout

    with sandbox.client("worker-2") as client:
        copied = client.get("v1", "ConfigMap", "settings-2", ns)
    assert copied is not None
    assert copied["data"] == {"value": "2"}

    again = kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout

    ledger_path = workspace["dir"] / ".kubeferry" / "ledger.sqlite"
    with Ledger.open(ledger_path, create=False) as ledger:
        runs = ledger.runs(job="copy")
        assert {(r.kind.value, r.phase) for r in runs} == {
            ("backup", RunPhase.COMPLETED),
            ("restore", RunPhase.COMPLETED),
        }
        # 3 ConfigMaps + the Namespace + its default ServiceAccount, backed up then restored
        assert [r.items_done for r in runs] == [5, 5]
        assert all(r.total_items == 5 for r in runs)
        restore_run = next(r for r in runs if r.kind.value == "restore")
        assert restore_run.details["precheck"]["overallCompatibility"] == "compatible"
        assert restore_run.details["outcomes"]["created"] >= 4
        assert len(ledger.snapshots(job="keep")) == 1
        assert ledger.lock_status() is None

    # a change in the source is planned as a replicate, then converges again
    with sandbox.client("worker-1") as client:
        client.ensure(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings-new", "namespace": ns},
                "data": {"value": "new"},
            }
        )
    changed = kubeferry("plan", "-f", inv, "--json", env=env)
    document = json.loads(changed.stdout)
    assert document["format_version"] == 1
    worker_1 = document["observed"]["clusters"]["worker-1"]
    assert worker_1["reachable"] is True
    assert worker_1["version"].startswith("v1.20")
    assert worker_1["apiGroups"]["apps"] == "v1"  # API discovery, preferred versions
    assert worker_1["permissions"]["create namespaces"] is True
    reasons = {a["address"]: a["reasons"] for a in document["actions"]}
    assert reasons["ReplicationJob/copy"] == ["source namespace changed since the last snapshot"]
    assert kubeferry("apply", "-f", inv, "--auto-approve", env=env).returncode == 0
    assert kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env).returncode == 0


def test_stale_saved_plan_is_refused(workspace) -> None:  # type: ignore[no-untyped-def]
    inv, env, tmp = str(workspace["inventory"]), workspace["env"], workspace["dir"]
    old = tmp / "old.plan"
    fresh = tmp / "fresh.plan"
    assert kubeferry("plan", "-f", inv, "--out", str(old), env=env).returncode == 0
    assert kubeferry("plan", "-f", inv, "--out", str(fresh), env=env).returncode == 0
    applied = kubeferry("apply", str(fresh), env=env)
    assert applied.returncode == 0, applied.stderr
    refused = kubeferry("apply", str(old), env=env)
    assert refused.returncode == 1
    assert refused.stderr.startswith("kubeferry: error: saved plan is stale")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_concurrent_reconciles_never_both_run(workspace) -> None:  # type: ignore[no-untyped-def]
    inv, env = str(workspace["inventory"]), workspace["env"]
    args = [sys.executable, "-m", "reconciler", "reconcile", "-f", inv, "--json-logs"]
    processes = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    results = [(p.wait(timeout=180), p.stdout.read() if p.stdout else "") for p in processes]
    codes = sorted(code for code, _ in results)
    # whoever got the lock did the work; the others skipped (3) or found nothing left (0)
    assert codes.count(3) + codes.count(0) == 3, results
    assert codes.count(3) >= 1 or all('"event": "finished"' in out for _, out in results)
    ledger_path = workspace["dir"] / ".kubeferry" / "ledger.sqlite"
    with Ledger.open(ledger_path, create=False) as ledger:
        backups = ledger.runs(job="copy", kind=None)
        assert len([r for r in backups if r.kind.value == "backup"]) == 1, "no duplicate runs"
    assert kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env).returncode == 0


def test_killed_apply_leaves_stale_lock_and_next_run_completes(workspace) -> None:  # type: ignore[no-untyped-def]
    inv, env, tmp = str(workspace["inventory"]), workspace["env"], workspace["dir"]
    ledger_path = tmp / ".kubeferry" / "ledger.sqlite"
    # hold the lock from a real process, then SIGKILL it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from state import Ledger; "
            "l = Ledger.open(sys.argv[1]); l.acquire_lock('apply'); print('locked', flush=True); "
            "time.sleep(600)",
            str(ledger_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    busy = kubeferry("reconcile", "-f", inv, env=env)
    assert busy.returncode == 3, busy.stderr
    assert "locked by" in busy.stderr
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    with Ledger.open(ledger_path, create=False) as ledger:
        lock = ledger.lock_status()
        assert lock is not None
        assert lock.stale
    done = kubeferry("reconcile", "-f", inv, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.lock_status() is None
        assert any(e.kind == "lock.broken" for e in ledger.events())
    assert kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env).returncode == 0


def test_unreachable_cluster_is_reported_while_the_rest_proceeds(
    workspace, sandbox: SandboxInfo
) -> None:  # type: ignore[no-untyped-def]
    dead = workspace["dir"] / "dead.kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: dead, user: {token: not-a-secret}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: dead}}]\n"
    )
    # the workspace's inventory again, worker-2 now behind a kubeconfig that reaches nothing
    inv_path = _inventory(
        workspace["dir"],
        workspace["namespace"],
        cluster("worker-2", context="dead", kubeconfig=str(dead)),
    )
    env = workspace["env"]
    started = time.monotonic()
    result = kubeferry("apply", "-f", str(inv_path), "--auto-approve", env=env)
    assert time.monotonic() - started < 120
    assert result.returncode == 1
    assert "Cluster/worker-2: unreachable" in result.stdout
    assert "blocked: cluster worker-2 unreachable" in result.stdout
    assert "» ReplicationJob/keep: replicate done" in result.stdout
    assert "Traceback" not in result.stderr
    with sandbox.client("worker-1") as client:
        assert client.get("v1", "Namespace", workspace["namespace"]) is not None
