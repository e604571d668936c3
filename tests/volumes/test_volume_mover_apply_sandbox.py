"""`volumeMover: {type: job}` on a destination Cluster, through `apply` and DR drills
(sandbox, worker-1 -> worker-2): the drill's restore and its volume check run as Jobs.

worker-1 declares no volumeMover (the host-path mover reads its claim's directory here);
worker-2 declares the job mover, so the restore writes the data with one Kubernetes Job per
claim. The sandbox has no scheduler or kubelet: ``FakeKubelet`` (tests/volumes/_fake_kubelet.py)
runs the mover pod's command on this machine against the real Job controller. The repository
is encrypted S3 on the sandbox's moto server (a pod cannot read a filesystem repository's
``/repository`` through the fake kubelet's path mapping).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console

from reconciler.kube import KubeClient
from reconciler.plan import Plan, render_plan
from reconciler.reconcile import Connections, Workspace, apply, backup_job
from reconciler.reconcile._drill import DrillOptions, run_drill
from reconciler.volumes._jobmover import LABEL_MANAGED_BY
from state import Ledger, RunKind, RunPhase
from tests._environment import cheap_scrypt
from tests._inventory import cluster, job, replication_slice, write_inventory
from tests._inventory import document as inventory_document
from tests._kube_objects import hostpath_claim, volume_dir
from tests._kube_objects import namespace as kube_namespace
from tests._trees import describe_tree, fill_sample_tree, hardlink_groups
from tests.volumes._fake_kubelet import FakeKubelet

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

PASSPHRASE_VAR = "KF_MOVER_APPLY_PASSPHRASE"
PASSPHRASE = "volume mover through apply passphrase"
ACCESS_VAR, SECRET_VAR = "KF_MOVER_APPLY_ACCESS_KEY", "KF_MOVER_APPLY_SECRET_KEY"


@dataclass
class Source:
    namespace: str
    data_dir: Path
    expected: dict[str, tuple[Any, ...]]
    hardlinks: list[list[str]]


@pytest.fixture
def source(sandbox: SandboxInfo) -> Iterator[Source]:
    """worker-1: a namespace whose claim ``data`` holds a sample tree; its name on worker-2
    (and the drill's scratch namespace there) are deleted afterwards too."""
    name = f"kf-mover-{uuid.uuid4().hex[:8]}"
    with sandbox.client("worker-1") as client:
        client.create(kube_namespace(name))
        try:
            client.create(hostpath_claim("data", name, size="64Mi"))
            data_dir = volume_dir(client, name, "data")
            fill_sample_tree(data_dir, seed=11)
            yield Source(name, data_dir, describe_tree(data_dir), hardlink_groups(data_dir))
        finally:
            client.delete("v1", "Namespace", name)
            with sandbox.client("worker-2") as destination:
                for target in (name, f"{name}-drill"):
                    destination.delete("v1", "Namespace", target)


def _workspace(sandbox: SandboxInfo, directory: Path, namespace: str) -> Workspace:
    keys = sandbox.s3.credentials()
    kubeconfig = str(sandbox.kubeconfig)
    repository = inventory_document(
        "ReplicationRepository",
        "vault",
        {
            "s3": {
                "bucket": sandbox.s3.bucket,
                "prefix": f"mover-apply-{uuid.uuid4().hex[:8]}",
                "endpoint": sandbox.s3.endpoint_url,
                "region": keys.region,
                "forcePathStyle": True,
            },
            "credentialsFrom": {
                "env": {"accessKeyIdVar": ACCESS_VAR, "secretAccessKeyVar": SECRET_VAR}
            },
            "encryption": {"passphraseFrom": {"env": {"var": PASSPHRASE_VAR}}},
        },
    )
    return Workspace.resolve(
        write_inventory(
            directory,
            cluster("worker-1", kubeconfig=kubeconfig),
            cluster(
                "worker-2",
                kubeconfig=kubeconfig,
                volumeMover={"type": "job", "image": "kubeferry:e2e", "timeout": "3m"},
            ),
            repository,
            replication_slice("w1-to-w2", "worker-1", "worker-2", "vault"),
            job("copy", "w1-to-w2", namespace),
        )
    )


@pytest.fixture
def workspace(
    sandbox: SandboxInfo, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    keys = sandbox.s3.credentials()
    cheap_scrypt(monkeypatch)
    monkeypatch.setenv(PASSPHRASE_VAR, PASSPHRASE)
    monkeypatch.setenv(ACCESS_VAR, keys.access_key_id)
    monkeypatch.setenv(SECRET_VAR, keys.secret_access_key)
    return _workspace(sandbox, tmp_path, source.namespace)


def _no_mover_objects_left(client: KubeClient, namespace: str) -> None:
    selector = f"{LABEL_MANAGED_BY}=kubeferry"
    assert client.list_objects("v1", "Secret", namespace, label_selector=selector) == []
    for found in client.list_objects("batch/v1", "Job", namespace, label_selector=selector):
        client.wait_for_deletion(
            "batch/v1", "Job", found["metadata"]["name"], namespace, timeout=30
        )


def test_apply_restores_through_the_destination_job_mover(
    sandbox: SandboxInfo, source: Source, workspace: Workspace
) -> None:
    namespace = source.namespace
    planned: list[Plan] = []
    with sandbox.client("worker-2") as own, FakeKubelet(own, namespace) as kubelet:
        plan, result = apply(workspace, on_plan=planned.append)
    assert result is not None, plan.actions
    assert result.ok, [(r.address, r.outcome, r.detail) for r in result.results]

    # the plan said which mover does what, and that a pod cannot reach a loopback endpoint
    (action,) = [a for a in planned[0].actions if a.address == "ReplicationJob/copy"]
    assert action.details["volumeMovers"] == {
        "backup": "hostPath mover on worker-1",
        "restore": "job mover on worker-2",
    }
    (note,) = action.details["notes"]
    assert "endpoint 127.0.0.1 is a loopback address" in note
    console = Console(record=True, width=250)
    render_plan(planned[0], console)
    text = console.export_text()
    assert "volume data: backup by the hostPath mover on worker-1, restore by the job" in text

    # exactly one mover pod ran, on worker-2: a restore of the claim, and it succeeded
    (run,) = kubelet.runs
    assert run.exit_code == 0, run.output
    assert run.command[:3] == ["kubeferry", "mover", "restore"]
    assert run.labels["kubeferry.io/job"] == "copy"
    assert run.labels["kubeferry.io/pvc"] == "data"
    assert PASSPHRASE not in run.output

    # the data arrived byte for byte, in a new PV of worker-2
    with sandbox.client("worker-2") as client:
        target = volume_dir(client, namespace, "data")
        assert target != source.data_dir
        assert describe_tree(target) == source.expected
        assert hardlink_groups(target) == source.hardlinks
        _no_mover_objects_left(client, namespace)

    # the ledger: the backup by the host-path mover, the restore by the job mover
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        runs = {r.kind: r for r in ledger.runs(job="copy")}
        assert {kind: r.phase for kind, r in runs.items()} == {
            RunKind.BACKUP: RunPhase.COMPLETED,
            RunKind.RESTORE: RunPhase.COMPLETED,
        }
        assert runs[RunKind.BACKUP].details["volumes"]["mover"] == "hostpath"
        restored = runs[RunKind.RESTORE].details["volumes"]
        assert (restored["mover"], restored["backupMover"], restored["count"]) == (
            "job",
            "hostpath",
            1,
        )
        assert restored["restoredBytes"] == restored["bytes"] > 0
        events = [e for e in ledger.events(job="copy") if e.kind == "volume.mover"]
        assert [(e.run_id, e.data["operation"], e.data["cluster"]) for e in events] == [
            (runs[RunKind.RESTORE].id, "restore", "worker-2")
        ]
        snapshot_id = runs[RunKind.BACKUP].snapshot_id
    assert snapshot_id is not None

    # a DR drill restores with worker-2's job mover too, and verifies the data where it is,
    # with a read-only verify Job (on a real cluster the PV is on a node, not here)
    scratch = f"{namespace}-drill"
    with sandbox.client("worker-2") as own, FakeKubelet(own, scratch) as kubelet:
        report = run_drill(
            workspace, "copy", options=DrillOptions(snapshot=snapshot_id, into_namespace=scratch)
        )
    assert report.passed, report.reasons()
    restore_run, verify_run = kubelet.runs
    assert restore_run.command[:3] == ["kubeferry", "mover", "restore"]
    assert verify_run.command[:3] == ["kubeferry", "mover", "verify"]
    for run in kubelet.runs:
        assert run.exit_code == 0, run.output
    assert verify_run.mount("/data").read_only
    (checked,) = report.volumes
    assert (checked.claim, checked.verified, checked.mismatches) == ("data", True, ())
    assert checked.files == len([v for v in source.expected.values() if v[0] == "file"])
    with sandbox.client("worker-2") as client:
        assert client.get("v1", "Namespace", scratch) is None  # cleaned up

    # a planted difference in the restored volume: the verify Job finds it, the drill fails
    def plant(client: KubeClient, namespace: str) -> None:
        restored = volume_dir(client, namespace, "data")
        victim = next(p for p in sorted(restored.rglob("*")) if p.is_file() and p.stat().st_size)
        content = bytearray(victim.read_bytes())
        content[0] ^= 0xFF
        victim.write_bytes(bytes(content))
        planted.append(str(victim.relative_to(restored)))

    planted: list[str] = []
    with sandbox.client("worker-2") as own, FakeKubelet(own, scratch) as kubelet:
        failed = run_drill(
            workspace,
            "copy",
            options=DrillOptions(snapshot=snapshot_id, into_namespace=scratch),
            before_verify=plant,
        )
    assert not failed.passed
    assert [r.command[2] for r in kubelet.runs] == ["restore", "verify"]
    (checked,) = failed.volumes
    assert checked.verified
    assert [(m.item, m.path, m.problem) for m in checked.mismatches] == [
        ("data", planted[0], "content differs (BLAKE3 chunk digests)")
    ]


def test_the_backup_set_names_the_source_mover(
    sandbox: SandboxInfo, source: Source, workspace: Workspace
) -> None:
    """The reverse check: worker-1 (no volumeMover) backs up with the host-path mover even
    though the destination declares the job mover: no mover pod runs for a backup."""
    connections = Connections(workspace.load_inventory())
    connections.repository("vault").initialize("mover-apply", passphrase=PASSPHRASE)
    with sandbox.client("worker-1") as own, FakeKubelet(own, source.namespace) as kubelet:
        outcome = backup_job(workspace, "copy")
    assert kubelet.runs == []
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        (backup,) = ledger.runs(job="copy")
        assert backup.details["volumes"]["mover"] == "hostpath"
        assert [e for e in ledger.events(job="copy") if e.kind == "volume.mover"] == []
    assert outcome.snapshot_id == backup.snapshot_id
