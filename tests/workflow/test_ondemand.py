"""`kubeferry backup`, `snapshots`, `restore` and retention against the real sandbox.

Assertions are on ConfigMaps, which every object engine copies, so these tests hold when
the default engine changes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reconciler.engines import (
    JobSpec,
    ObjectEngine,
    PrecheckFailed,
    PrecheckReport,
    PrecheckResult,
    RestoreRequirements,
)
from reconciler.kube import KubeClient
from reconciler.reconcile import Workspace, restore_snapshot
from reconciler.repository import FilesystemBackend, Repository
from state import Ledger, RunKind, RunPhase
from tests._environment import kubeferry, subprocess_env
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory
from tests._kube_objects import config_map, settings_namespace

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox


def _inventory(directory: Path, namespace: str) -> Path:
    return write_inventory(
        directory,
        cluster("worker-1"),
        cluster("worker-2"),
        filesystem_repository("local"),
        replication_slice("w1-backup", "worker-1", "worker-1", "local"),
        job("keep", "w1-backup", namespace, retention={"keepLast": 1}),
    )


@pytest.fixture
def workspace(sandbox: SandboxInfo, tmp_path: Path):  # type: ignore[no-untyped-def]
    namespace = f"od-{uuid.uuid4().hex[:8]}"
    mapped = f"{namespace}-copy"
    with sandbox.client("worker-1") as client:
        settings_namespace(client, namespace)
    inventory = _inventory(tmp_path, namespace)
    env = subprocess_env(sandbox.kubeconfig, wide=True)
    applied = kubeferry("apply", "-f", str(inventory), "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    yield {
        "inventory": str(inventory),
        "namespace": namespace,
        "mapped": mapped,
        "env": env,
        "dir": tmp_path,
    }
    with sandbox.client("worker-1") as client:
        for name in (namespace, mapped):
            client.delete("v1", "Namespace", name)


def _snapshot_id(stdout: str) -> str:
    first = stdout.split("Snapshot ", 1)[1]
    return first.split(" ", 1)[0]


def test_backup_retention_snapshots_and_restore(workspace, sandbox: SandboxInfo) -> None:  # type: ignore[no-untyped-def]
    inv, env, ns, mapped = (
        workspace["inventory"],
        workspace["env"],
        workspace["namespace"],
        workspace["mapped"],
    )
    ledger_path = workspace["dir"] / ".kubeferry" / "ledger.sqlite"
    repository = Repository(FilesystemBackend(workspace["dir"] / "repository"))
    with Ledger.open(ledger_path, create=False) as ledger:
        (applied,) = ledger.snapshots(job="keep")  # apply's backup

    first = kubeferry("backup", "keep", "-f", inv, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    first_id = _snapshot_id(first.stdout)
    assert "Retention (keepLast 1): kept 1, deleted 1" in first.stdout
    second = kubeferry("backup", "keep", "-f", inv, "--json-logs", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    second_id = summary["snapshot"]
    assert summary["event"] == "backup.finished"
    assert summary["retention"]["deleted"] == [first_id]
    assert summary["items"] >= 3

    # keepLast 1: the repository holds only the newest; the ledger marks the others
    assert repository.list_snapshots() == [second_id]
    with Ledger.open(ledger_path, create=False) as ledger:
        assert [s.id for s in ledger.snapshots(job="keep")] == [second_id]
        everything = {s.id: s for s in ledger.snapshots(job="keep", include_deleted=True)}
        assert set(everything) == {applied.id, first_id, second_id}
        for gone in (applied.id, first_id):
            assert everything[gone].deleted_at is not None
            assert everything[gone].deletion_reason == "retention: keepLast 1"
        backups = ledger.runs(job="keep", kind=RunKind.BACKUP)
        assert [r.phase for r in backups] == [RunPhase.COMPLETED] * 3
        assert ledger.lock_status() is None

    listed = kubeferry("snapshots", "-f", inv, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (only,) = json.loads(listed.stdout)["snapshots"]
    assert only["id"] == second_id
    assert only["job"] == "keep"
    assert only["namespace"] == ns
    assert only["sourceCluster"] == "worker-1"
    assert only["complete"] is True
    assert only["phase"] == "Completed"
    table = kubeferry("snapshots", "-f", inv, "--job", "keep", env=env)
    assert second_id in table.stdout

    # restore into another namespace; then drift there and restore again with --policy update
    restored = kubeferry("restore", second_id, "-f", inv, "--to-namespace", mapped, env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"to worker-1/{mapped}" in restored.stdout
    assert "Pre-checks: " in restored.stdout
    assert "Outcomes: " in restored.stdout
    with sandbox.client("worker-1") as client:
        copied = client.get("v1", "ConfigMap", "settings-1", mapped)
        assert copied is not None
        assert copied["data"] == {"value": "1"}
        client.replace(config_map("settings-1", mapped, {"value": "drifted"}))

    kept = kubeferry(
        "restore", second_id, "-f", inv, "--to-namespace", mapped, "--policy", "none", env=env
    )
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "exists-differs" in kept.stdout
    with sandbox.client("worker-1") as client:
        drifted = client.get("v1", "ConfigMap", "settings-1", mapped)
        assert drifted is not None
        assert drifted["data"] == {"value": "drifted"}

    updated = kubeferry(
        "restore", second_id, "-f", inv, "--to-namespace", mapped, "--policy", "update", env=env
    )
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "(policy update)" in updated.stdout
    with sandbox.client("worker-1") as client:
        repaired = client.get("v1", "ConfigMap", "settings-1", mapped)
        assert repaired is not None
        assert repaired["data"] == {"value": "1"}
        source = client.get("v1", "ConfigMap", "settings-1", ns)
        assert source is not None
        assert source["data"] == {"value": "1"}  # the source namespace was never touched

    with Ledger.open(ledger_path, create=False) as ledger:
        restores = ledger.runs(job="keep", kind=RunKind.RESTORE)
        assert len(restores) == 3
        newest = restores[0]
        assert newest.snapshot_id == second_id
        assert newest.details["namespace"] == mapped
        assert newest.details["existingResourcePolicy"] == "update"
        assert "overallCompatibility" in newest.details["precheck"]
        assert sum(newest.details["outcomes"].values()) == newest.items_done

    history = kubeferry("ledger", "history", "-f", inv, "--job", "keep", env=env)
    assert history.returncode == 0, history.stderr
    assert "pre-checks compatible" in history.stdout or "pre-checks warning" in history.stdout


def test_restore_of_an_unknown_snapshot_is_one_line_exit_1(workspace) -> None:  # type: ignore[no-untyped-def]
    result = kubeferry(
        "restore", "keep-20000101000000-000000", "-f", workspace["inventory"], env=workspace["env"]
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no snapshot 'keep-20000101000000-000000'" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


class _StrictEngine(ObjectEngine):
    """The object engine with a destination check that always fails."""

    def precheck(
        self, client: KubeClient, job: JobSpec, requirements: RestoreRequirements
    ) -> PrecheckReport:
        return PrecheckReport(
            (PrecheckResult("storage-classes", "not_compatible", "storage class fast missing"),)
        )


def test_prechecks_stop_a_restore_unless_ignored(
    workspace, sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    site = Workspace.resolve(Path(workspace["inventory"]), None)
    with Ledger.open(site.ledger_path, create=False) as ledger:
        (snapshot,) = ledger.snapshots(job="keep")
    mapped = workspace["mapped"]
    with pytest.raises(PrecheckFailed, match="storage class fast missing"):
        restore_snapshot(site, snapshot.id, to_namespace=mapped, engine=_StrictEngine())
    with sandbox.client("worker-1") as client:
        assert client.get("v1", "Namespace", mapped) is None  # nothing was written
    with Ledger.open(site.ledger_path, create=False) as ledger:
        stopped = ledger.runs(job="keep", kind=RunKind.RESTORE)[0]
        assert stopped.phase == RunPhase.FAILED
        assert stopped.message.startswith("pre-checks failed")
        assert stopped.details["precheck"]["overallCompatibility"] == "not_compatible"
        assert "outcomes" not in stopped.details

    outcome = restore_snapshot(
        site, snapshot.id, to_namespace=mapped, ignore_prechecks=True, engine=_StrictEngine()
    )
    assert outcome.precheck is not None
    assert outcome.precheck.overall == "not_compatible"
    assert outcome.outcomes.get("created", 0) >= 3
    assert outcome.phase == "Completed"
    with sandbox.client("worker-1") as client:
        assert client.get("v1", "ConfigMap", "settings-0", mapped) is not None
