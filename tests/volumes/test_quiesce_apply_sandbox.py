"""`quiesce: true` through `apply`: writers at zero while the data is copied, and the copy on
the destination keeps the ORIGINAL replica counts (sandbox, worker-1 -> worker-2).

A namespace on worker-1 holds a Deployment mounting a hostpath PVC with data, a StatefulSet
with a volumeClaimTemplate, and an idle Deployment (0 replicas). A ReplicationJob with
``quiesce: true`` is applied in-process (``reconciler.reconcile.apply``) with a host-path
mover that records the source workloads at the moment their data is read.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.engines import BackupResult, JobSpec, ObjectEngine, Reporter
from reconciler.kube import KubeClient, Manifest
from reconciler.reconcile import Connections, Workspace, apply
from reconciler.repository import Repository
from reconciler.volumes import QUIESCED_ANNOTATION, HostPathMover, read_volume_set
from state import Ledger, RunKind, RunPhase
from tests._environment import cheap_scrypt
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory
from tests._kube_objects import hostpath_claim, hostpath_claim_spec, volume_dir
from tests._kube_objects import namespace as kube_namespace

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

PASSPHRASE_VAR = "KF_QUIESCE_APPLY_PASSPHRASE"
ORIGINAL = {"web": 2, "db": 3, "idle": 0}


def _pod_template(name: str, *, mount: bool, claim: str | None = None) -> Manifest:
    """Pods mounting ``data`` at /data: ``claim`` for a Deployment, a volumeClaimTemplate
    for a StatefulSet (``claim`` None)."""
    container: Manifest = {"name": "app", "image": "busybox"}
    spec: Manifest = {"containers": [container]}
    if mount:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    if claim is not None:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {"metadata": {"labels": {"app": name}}, "spec": spec}


def _deployment(name: str, namespace: str, replicas: int, claim: str | None) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": _pod_template(name, mount=claim is not None, claim=claim),
        },
    }


def _statefulset(name: str, namespace: str, replicas: int) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": _pod_template(name, mount=True),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": hostpath_claim_spec()}],
        },
    }


@dataclass(frozen=True)
class Seen:
    """A source workload as the mover saw it while copying."""

    replicas: int
    running: int
    annotation: str | None


def _workloads(client: KubeClient, namespace: str) -> dict[str, Manifest]:
    return {
        obj["metadata"]["name"]: obj
        for kind in ("Deployment", "StatefulSet")
        for obj in client.list_objects("apps/v1", kind, namespace)
    }


def _seen(obj: Manifest) -> Seen:
    return Seen(
        replicas=int(obj["spec"].get("replicas", 1)),
        running=int((obj.get("status") or {}).get("replicas") or 0),
        annotation=(obj["metadata"].get("annotations") or {}).get(QUIESCED_ANNOTATION),
    )


class RecordingMover(HostPathMover):
    """The host-path mover, noting the source workloads and pods when it reads the data."""

    def __init__(self) -> None:
        super().__init__(bind_timeout=90)
        self.at_copy: list[dict[str, Seen]] = []
        self.pods_at_copy: list[int] = []

    def backup_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        found = _workloads(client, job.namespace)
        self.at_copy.append({name: _seen(obj) for name, obj in found.items()})
        self.pods_at_copy.append(len(client.list_objects("v1", "Pod", job.namespace)))
        return super().backup_volumes(client, repository, job, snapshot_id, reporter)


def _running(replicas: int) -> Callable[[Manifest], bool]:
    """A workload whose controller made all its pods."""
    return lambda obj: bool((obj.get("status") or {}).get("replicas") == replicas)


@dataclass
class Source:
    namespace: str
    data_dir: Path
    targets: list[str]
    """Namespaces on worker-2 to delete afterwards (the source's name is one)."""


@pytest.fixture
def source(sandbox: SandboxInfo) -> Iterator[Source]:
    """worker-1: the namespace, its workloads (running), data in the Deployment's claim."""
    namespace = f"kf-qapply-{uuid.uuid4().hex[:8]}"
    with sandbox.client("worker-1") as client:
        client.create(kube_namespace(namespace))
        found = Source(namespace, Path(), [namespace])
        try:
            client.create(hostpath_claim("data", namespace))
            client.create(_deployment("web", namespace, ORIGINAL["web"], "data"))
            client.create(_statefulset("db", namespace, ORIGINAL["db"]))
            client.create(_deployment("idle", namespace, ORIGINAL["idle"], None))
            found.data_dir = volume_dir(client, namespace, "data")
            (found.data_dir / "orders.db").write_bytes(bytes(range(256)) * 4096)
            (found.data_dir / "nested").mkdir()
            (found.data_dir / "nested" / "wal.log").write_text("committed\n" * 1000)
            # the controllers made the pods (and the StatefulSet its claims): really running
            for kind, name in (("Deployment", "web"), ("StatefulSet", "db")):
                client.wait_for(
                    "apps/v1",
                    kind,
                    name,
                    namespace,
                    condition=_running(ORIGINAL[name]),
                    timeout=60,
                )
            yield found
        finally:
            client.delete("v1", "Namespace", namespace)
            with sandbox.client("worker-2") as destination:
                for target in found.targets:
                    destination.delete("v1", "Namespace", target)


def _workspace(
    sandbox: SandboxInfo,
    source: Source,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: dict[str, tuple[str, bool]],
) -> Workspace:
    """An inventory worker-1 -> worker-2 with ``jobs``: name -> (target namespace, quiesce)."""
    cheap_scrypt(monkeypatch)
    monkeypatch.setenv(PASSPHRASE_VAR, "quiesce through apply passphrase")
    kubeconfig = str(sandbox.kubeconfig)
    documents = [
        cluster("worker-1", kubeconfig=kubeconfig),
        cluster("worker-2", kubeconfig=kubeconfig),
        filesystem_repository("vault", passphrase_var=PASSPHRASE_VAR),
        replication_slice("w1-to-w2", "worker-1", "worker-2", "vault"),
    ]
    for name, (target, quiesce) in jobs.items():
        if target not in source.targets:
            source.targets.append(target)
        documents.append(
            job(name, "w1-to-w2", source.namespace, targetNamespace=target, quiesce=quiesce)
        )
    return Workspace.resolve(write_inventory(directory, *documents))


def _apply(workspace: Workspace, **kwargs: Any) -> None:
    plan, result = apply(workspace, **kwargs)
    assert result is not None, plan.actions
    assert result.ok, [(r.address, r.outcome, r.detail) for r in result.results]


def _source_state(client: KubeClient, namespace: str) -> dict[str, tuple[int, str | None]]:
    return {
        name: (s.replicas, s.annotation)
        for name, s in ((n, _seen(o)) for n, o in _workloads(client, namespace).items())
    }


def _replicas(client: KubeClient, namespace: str) -> dict[str, int]:
    copied = _workloads(client, namespace)
    for obj in copied.values():
        annotations = obj["metadata"].get("annotations") or {}
        assert QUIESCED_ANNOTATION not in annotations, obj["metadata"]["name"]
    return {name: int(obj["spec"]["replicas"]) for name, obj in copied.items()}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


UNTOUCHED = {name: (replicas, None) for name, replicas in ORIGINAL.items()}


def test_quiesce_through_apply_stops_writers_during_the_copy_and_keeps_replicas(
    sandbox: SandboxInfo, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = source.namespace
    workspace = _workspace(sandbox, source, tmp_path, monkeypatch, {"calm": (namespace, True)})
    mover = RecordingMover()

    _apply(workspace, mover=mover)

    # while the data was read: every writer at zero, its replicas recorded, its pods gone
    assert len(mover.at_copy) == 1, "one backup, one copy"
    assert mover.at_copy[0] == {
        "web": Seen(replicas=0, running=0, annotation="2"),
        "db": Seen(replicas=0, running=0, annotation="3"),
        "idle": Seen(replicas=0, running=0, annotation=None),  # never running: untouched
    }
    assert mover.pods_at_copy == [0]

    # the source is back to its original counts, the annotation gone
    with sandbox.client("worker-1") as client:
        assert _source_state(client, namespace) == UNTOUCHED

    # the copy has the ORIGINAL replica counts, and the data (written before the workloads)
    with sandbox.client("worker-2") as client:
        assert _replicas(client, namespace) == ORIGINAL
        restored_dir = volume_dir(client, namespace, "data")
        assert restored_dir != source.data_dir
        assert _digests(restored_dir) == _digests(source.data_dir)

    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        runs = ledger.runs(job="calm")
        assert {(r.kind, r.phase) for r in runs} == {
            (RunKind.BACKUP, RunPhase.COMPLETED),
            (RunKind.RESTORE, RunPhase.COMPLETED),
        }
        (snapshot,) = ledger.snapshots(job="calm")
    claims = _volume_set_claims(workspace, snapshot.id)
    # the Deployment's claim and the StatefulSet's per-pod claims
    assert sorted(claims) == ["data", "data-db-0", "data-db-1", "data-db-2"]
    assert claims["data"] == 2  # files


def test_a_backup_without_quiesce_repairs_what_a_killed_quiesced_run_left(
    sandbox: SandboxInfo, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/volume-data.md: "the next backup of the namespace first scales those workloads
    back up" - also one of a job without quiesce, else the copy gets 0 replicas."""
    namespace = source.namespace
    with sandbox.client("worker-1") as client:
        web = client.get("apps/v1", "Deployment", "web", namespace)
        assert web is not None
        web["metadata"].setdefault("annotations", {})[QUIESCED_ANNOTATION] = "2"
        web["spec"]["replicas"] = 0
        client.replace(web)
    workspace = _workspace(sandbox, source, tmp_path, monkeypatch, {"plain": (namespace, False)})
    mover = RecordingMover()

    _apply(workspace, mover=mover)

    web_at_copy = mover.at_copy[0]["web"]
    assert (web_at_copy.replicas, web_at_copy.annotation) == (2, None)
    with sandbox.client("worker-1") as client:
        assert _source_state(client, namespace) == UNTOUCHED
    with sandbox.client("worker-2") as client:
        assert _replicas(client, namespace) == ORIGINAL
    with Ledger.open(workspace.ledger_path, create=False) as ledger:
        assert {r.phase for r in ledger.runs(job="plain")} == {RunPhase.COMPLETED}
        resumed = [e for e in ledger.events() if e.kind == "quiesce.resumed"]
        assert len(resumed) == 1
        assert "Deployment/web" in resumed[0].message


class WatchingEngine(ObjectEngine):
    """Records the source workloads each object backup finds, and which backups ran while
    a quiesced copy was in progress."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: dict[str, dict[str, int]] = {}
        self.during_quiesced_copy: list[str] = []
        self.started = threading.Event()
        """Set by the first object backup."""
        self.copying = threading.Event()
        """Set by the mover while a quiesced copy is in progress."""

    def backup(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
        metadata: dict[str, object],
    ) -> BackupResult:
        if self.copying.is_set():
            self.during_quiesced_copy.append(job.name)
        self.started.set()
        found = _workloads(client, job.namespace)
        self.listed[job.name] = {n: _seen(o).replicas for n, o in found.items()}
        return super().backup(client, repository, job, snapshot_id, reporter, metadata)


class OverlappingMover(RecordingMover):
    """Makes two jobs' backups overlap if nothing keeps them apart: the job without quiesce
    waits for the quiesced copy to start, and the quiesced copy waits for the other job's
    object backup (each at most ``wait`` seconds)."""

    def __init__(self, engine: WatchingEngine, wait: float) -> None:
        super().__init__()
        self.engine = engine
        self.wait = wait
        self.copy_started = threading.Event()

    def backup_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> int:
        if not job.quiesce:
            self.copy_started.wait(self.wait)
            return super().backup_volumes(client, repository, job, snapshot_id, reporter)
        self.engine.copying.set()
        self.copy_started.set()
        try:
            self.engine.started.wait(self.wait)  # the other job's, unless it is kept apart
            return super().backup_volumes(client, repository, job, snapshot_id, reporter)
        finally:
            self.engine.copying.clear()


def test_a_concurrent_job_on_the_same_namespace_never_copies_a_quiesced_workload(
    sandbox: SandboxInfo, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs of one apply read the same namespace, one with quiesce: the other's object
    backup must not list the workloads while they are at zero."""
    namespace = source.namespace
    other_target = f"{namespace}-b"
    workspace = _workspace(
        sandbox,
        source,
        tmp_path,
        monkeypatch,
        {"calm": (namespace, True), "plain": (other_target, False)},
    )
    engine = WatchingEngine()
    mover = OverlappingMover(engine, wait=8)

    _apply(workspace, mover=mover, engine=engine, parallelism=4)

    with sandbox.client("worker-2") as client:
        assert _replicas(client, namespace) == ORIGINAL
        assert _replicas(client, other_target) == ORIGINAL
    assert engine.during_quiesced_copy == []
    assert engine.listed == {"calm": ORIGINAL, "plain": ORIGINAL}
    with sandbox.client("worker-1") as client:
        assert _source_state(client, namespace) == UNTOUCHED


def _volume_set_claims(workspace: Workspace, snapshot_id: str) -> dict[str, int]:
    """claim -> files, from the volume set of ``snapshot_id``."""
    connections = Connections(workspace.load_inventory())
    try:
        volume_set = read_volume_set(connections.repository("vault"), snapshot_id)
    finally:
        connections.close()
    assert volume_set is not None
    return {entry.claim: entry.files for entry in volume_set.volumes}
