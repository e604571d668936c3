"""HostPathMover against the real sandbox: a PVC's data goes worker-1 -> worker-2.

A namespace on worker-1 holds a PVC (storage class ``hostpath``) whose PV directory is filled
directly on this machine (sizes, modes, a symlink, mtimes), a PVC that opts out, and a
Deployment mounting the first. It is replicated the way the reconciler does it: volume data,
then objects (the object snapshot commits both); on restore the ObjectEngine calls the
mover right after the PVC tier, before the workloads. The new PV's directory must have
byte-identical content (sha256), the same modes and mtimes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.engines import JobSpec, ObjectEngine, RestoreResult
from reconciler.kube import KubeClient, Manifest
from reconciler.repository import FilesystemBackend, Repository, RepositoryError
from reconciler.volumes import (
    EXCLUDE_ANNOTATION,
    HostPathMover,
    read_volume_set,
)
from tests._environment import cheap_scrypt
from tests._kube_objects import hostpath_claim, volume_dir
from tests._kube_objects import namespace as kube_namespace
from tests._trees import describe_tree, fill_sample_tree

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

PASSPHRASE = "hostpath mover test passphrase"
MB = 2**20


@dataclass
class Recorder:
    totals: list[int] = field(default_factory=list)
    items: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    moving: list[tuple[str, int, int]] = field(default_factory=list)

    def total(self, items: int) -> None:
        self.totals.append(items)

    def item_done(self, item: str, size: int = 0) -> None:
        self.items.append((item, size))

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        self.moving.append((item, done, total))

    def warning(self, text: str, item: str = "") -> None:
        self.warnings.append((item, text))

    def check_cancelled(self) -> None:
        pass


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _deployment(namespace: str) -> Manifest:
    labels = {"app": "web"}
    return {
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
                            "image": "busybox",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                },
            },
        },
    }


class OrderCheckingMover(HostPathMover):
    """Remembers whether the workloads existed when the volume data was restored."""

    def __init__(self) -> None:
        super().__init__(bind_timeout=90)
        self.deployment_existed: list[bool] = []

    def restore_volumes(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Any,
    ) -> int:
        existing = client.get("apps/v1", "Deployment", "web", job.target_namespace)
        self.deployment_existed.append(existing is not None)
        return super().restore_volumes(client, repository, job, snapshot_id, reporter)


# -- fixtures ---------------------------------------------------------------------------------


_CREATED: list[tuple[str, str]] = []
"""(cluster, namespace) to delete when the module is done."""


@pytest.fixture(scope="module")
def clients(sandbox: SandboxInfo) -> Iterator[dict[str, KubeClient]]:
    opened = {name: sandbox.client(name) for name in ("worker-1", "worker-2")}
    yield opened
    for cluster, namespace in _CREATED:
        opened[cluster].delete("v1", "Namespace", namespace)
    _CREATED.clear()
    for client in opened.values():
        client.close()


def _forget_later(clients: dict[str, KubeClient], cluster: str, namespace: str) -> None:
    _CREATED.append((cluster, namespace))


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    with pytest.MonkeyPatch.context() as patch:
        cheap_scrypt(patch)
        backend = FilesystemBackend(tmp_path_factory.mktemp("volumes-repository"))
        Repository(backend).initialize("hostpath-tests", passphrase=PASSPHRASE)
        yield Repository(backend).unlock(PASSPHRASE)


@dataclass
class Source:
    namespace: str
    data_dir: Path
    excluded_dir: Path
    expected: dict[str, tuple[Any, ...]]


@pytest.fixture(scope="module")
def source(clients: dict[str, KubeClient]) -> Source:
    client = clients["worker-1"]
    namespace = _unique("kf-vol")
    client.create(kube_namespace(namespace))
    _forget_later(clients, "worker-1", namespace)
    client.create(hostpath_claim("data", namespace, "64Mi", {}))
    client.create(hostpath_claim("skipme", namespace, "64Mi", {EXCLUDE_ANNOTATION: "true"}))
    client.create(_deployment(namespace))
    data_dir = volume_dir(client, namespace, "data")
    excluded_dir = volume_dir(client, namespace, "skipme")
    fill_sample_tree(data_dir, seed=1)
    (excluded_dir / "not-copied").write_text("stays behind")
    return Source(namespace, data_dir, excluded_dir, describe_tree(data_dir))


def _job(source: Source, target: str, destination: str, name: str = "vol") -> JobSpec:
    return JobSpec(
        name=name,
        namespace=source.namespace,
        target_namespace=target,
        source_cluster="worker-1",
        destination_cluster=destination,
    )


def _backup(client: KubeClient, repository: Repository, job: JobSpec) -> tuple[str, Recorder]:
    """As the reconciler does it: volume data first, then the objects (which commit both)."""
    snapshot_id = _unique(f"{job.name}-snap")
    recorder = Recorder()
    HostPathMover().backup_volumes(client, repository, job, snapshot_id, recorder)
    ObjectEngine().backup(client, repository, job, snapshot_id, recorder, {})
    return snapshot_id, recorder


def _restore(
    client: KubeClient, repository: Repository, job: JobSpec, snapshot_id: str
) -> tuple[RestoreResult, OrderCheckingMover, Recorder]:
    mover = OrderCheckingMover()
    recorder = Recorder()
    result = ObjectEngine().restore(
        client,
        repository,
        job,
        snapshot_id,
        recorder,
        after_claims=lambda: mover.restore_volumes(client, repository, job, snapshot_id, recorder),
    )
    return result, mover, recorder


def _check_replica(
    clients: dict[str, KubeClient],
    repository: Repository,
    source: Source,
    snapshot_id: str,
    destination: str,
    target: str,
) -> None:
    if target != source.namespace or destination != "worker-1":
        _forget_later(clients, destination, target)
    client = clients[destination]
    job = _job(source, target, destination)
    result, mover, recorder = _restore(client, repository, job, snapshot_id)
    assert result.outcomes.get("failed", 0) == 0, result.warnings
    assert mover.deployment_existed == [False], "data must be written before the workloads"
    assert client.get("apps/v1", "Deployment", "web", target) is not None
    restored_dir = volume_dir(client, target, "data")
    assert restored_dir != source.data_dir
    assert describe_tree(restored_dir) == source.expected
    # the excluded claim is restored as an object, without its data
    assert list(volume_dir(client, target, "skipme").iterdir()) == []
    sizes = dict(recorder.items)
    # a hardlinked file's bytes are stored (and counted) once
    data_bytes = sum(
        entry[2]
        for path, entry in source.expected.items()
        if entry[0] == "file" and path != "small-hardlink.txt"
    )
    assert sizes["persistentvolumeclaims/data"] == data_bytes
    # byte progress reached the reporter while the data moved, ending at the whole claim
    assert recorder.moving[-1] == ("persistentvolumeclaims/data", data_bytes, data_bytes)


# -- tests ------------------------------------------------------------------------------------


def test_backup_records_the_selected_claims_in_a_volume_set(
    clients: dict[str, KubeClient], repository: Repository, source: Source
) -> None:
    job = _job(source, source.namespace, "worker-2", name="set")
    snapshot_id, recorder = _backup(clients["worker-1"], repository, job)
    volume_set = read_volume_set(repository, snapshot_id)
    assert volume_set is not None
    assert [entry.claim for entry in volume_set.volumes] == ["data"]
    entry = volume_set.volumes[0]
    assert entry.source_path == str(source.data_dir)
    assert entry.storage_class == "hostpath"
    assert entry.files == sum(1 for v in source.expected.values() if v[0] == "file")
    assert volume_set.summary()["count"] == 1
    assert ("persistentvolumeclaims/data", entry.bytes) in recorder.items
    assert recorder.moving[-1] == ("persistentvolumeclaims/data", entry.bytes, entry.bytes)

    # a second backup of the same job is incremental: nothing new to store
    second_id, _ = _backup(clients["worker-1"], repository, job)
    second = read_volume_set(repository, second_id)
    assert second is not None
    assert second.volumes[0].new_bytes == 0
    assert second.volumes[0].snapshot != entry.snapshot


def test_replicate_worker1_to_worker2_same_namespace(
    clients: dict[str, KubeClient], repository: Repository, source: Source
) -> None:
    job = _job(source, source.namespace, "worker-2")
    snapshot_id, _ = _backup(clients["worker-1"], repository, job)
    _check_replica(clients, repository, source, snapshot_id, "worker-2", source.namespace)


def test_replicate_worker1_to_worker2_mapped_namespace(
    clients: dict[str, KubeClient], repository: Repository, source: Source
) -> None:
    job = _job(source, source.namespace, "worker-2", name="mapped")
    snapshot_id, _ = _backup(clients["worker-1"], repository, job)
    _check_replica(clients, repository, source, snapshot_id, "worker-2", _unique("kf-mapped"))


def test_same_cluster_backup_then_restore_into_another_namespace(
    clients: dict[str, KubeClient], repository: Repository, source: Source
) -> None:
    job = _job(source, source.namespace, "worker-1", name="local")
    snapshot_id, _ = _backup(clients["worker-1"], repository, job)
    _check_replica(clients, repository, source, snapshot_id, "worker-1", _unique("kf-copy"))


def test_objects_only_jobs_and_unencrypted_repositories(
    clients: dict[str, KubeClient],
    source: Source,
    tmp_path: Path,
) -> None:
    plain = Repository(FilesystemBackend(tmp_path / "plain"))
    plain.initialize("plain")
    job = _job(source, source.namespace, "worker-2", name="plain")
    with pytest.raises(RepositoryError, match="needs an encrypted repository"):
        HostPathMover().backup_volumes(clients["worker-1"], plain, job, "plain-1", Recorder())
    objects_only = JobSpec(**{**job.__dict__, "k8s_objects_only": True})
    recorder = Recorder()
    assert (
        HostPathMover().backup_volumes(
            clients["worker-1"], plain, objects_only, "plain-2", recorder
        )
        == 0
    )
    assert recorder.items == []


def test_unreachable_volume_is_a_warning_not_a_crash(
    clients: dict[str, KubeClient], repository: Repository, source: Source
) -> None:
    job = _job(source, source.namespace, "worker-2", name="far")
    mover = HostPathMover(path_of=lambda path: Path("/nonexistent") / path.lstrip("/"))
    recorder = Recorder()
    assert mover.backup_volumes(clients["worker-1"], repository, job, "far-1", recorder) == 0
    assert any("not on this machine" in text for _, text in recorder.warnings)
    volume_set = read_volume_set(repository, "far-1")
    assert volume_set is not None
    assert volume_set.volumes == ()
    assert "data" in volume_set.skipped
