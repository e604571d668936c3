"""The Job mover end to end on the sandbox, its pods run by a fake kubelet.

kube-controller-manager's Job controller creates each mover Job's Pod; ``FakeKubelet``
(tests/volumes/_fake_kubelet.py) places it, runs its container command on this machine
(``kubeferry mover backup|restore`` with the claim's host-path directory, the Secret's
contents and the termination log mapped to local paths) and reports the result through
``pods/status``, so the real Job controller completes or fails the Job and ``JobMover`` reads
the termination message. The repository is an encrypted S3 repository on the sandbox's S3
endpoint (a filesystem repository would be a hostPath at ``/repository`` in the pod, which
the path mapping cannot reach inside the Secret's ``repository.json``). While a pod copies,
it keeps its progress object in that repository up to date, which ``JobMover.wait`` hands to
the reporter.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.engines import JobSpec, ObjectEngine
from reconciler.kube import KubeClient
from reconciler.repository import Repository, S3Credentials, _crypto, open_backend
from reconciler.repository._crypto import ScryptParams
from reconciler.volumes import VolumeStore, read_volume_set
from reconciler.volumes._jobmover import (
    LABEL_MANAGED_BY,
    LABEL_MOVER_RUN,
    JobMover,
    MoverError,
    MoverRepository,
    MoverSettings,
    MoverTimeout,
)
from reconciler.volumes._moverprogress import PROGRESS_PREFIX
from tests._kube_objects import hostpath_claim, volume_dir
from tests._trees import describe_tree, fill_sample_tree, hardlink_groups
from tests.volumes._fake_kubelet import FakeKubelet

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

PASSPHRASE = "job mover end-to-end passphrase"
NODE = f"node-{uuid.uuid4().hex[:6]}"
"""The node the source claim's pod runs on (registered by the source fixture)."""
MB = 2**20
SETTINGS = MoverSettings(image="kubeferry:e2e", timeout=180, poll_interval=0.3, workers=2)


@dataclass
class Recorder:
    items: list[tuple[str, int]]
    warnings: list[tuple[str, str]]
    progress: list[tuple[str, int, int]]

    def __init__(self) -> None:
        self.items, self.warnings, self.progress = [], [], []

    def total(self, items: int) -> None:
        pass

    def item_done(self, item: str, size: int = 0) -> None:
        self.items.append((item, size))

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        self.progress.append((item, done, total))

    def warning(self, text: str, item: str = "") -> None:
        self.warnings.append((item, text))

    def check_cancelled(self) -> None:
        pass


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _assert_cleaned_up(client: KubeClient, namespace: str) -> None:
    """No mover Secret, Job or Pod left (Jobs and Pods go through the garbage collector)."""
    selector = f"{LABEL_MANAGED_BY}=kubeferry"
    assert client.list_objects("v1", "Secret", namespace, label_selector=selector) == []
    for job in client.list_objects("batch/v1", "Job", namespace, label_selector=selector):
        client.wait_for_deletion("batch/v1", "Job", job["metadata"]["name"], namespace, timeout=30)
    for pod in client.list_objects("v1", "Pod", namespace, label_selector=LABEL_MOVER_RUN):
        client.wait_for_deletion("v1", "Pod", pod["metadata"]["name"], namespace, timeout=60)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clients(sandbox: SandboxInfo) -> Iterator[dict[str, KubeClient]]:
    opened = {name: sandbox.client(name) for name in ("worker-1", "worker-2")}
    yield opened
    for client in opened.values():
        client.close()


@pytest.fixture(scope="module")
def s3_repository(sandbox: SandboxInfo) -> tuple[Repository, MoverRepository]:
    """An encrypted repository under a fresh prefix of the sandbox bucket (cheap scrypt)."""
    keys = sandbox.s3.credentials()
    backend = open_backend(
        "s3",
        bucket=sandbox.s3.bucket,
        prefix=_unique("jobmover-e2e"),
        endpoint=sandbox.s3.endpoint_url,
        region=keys.region,
        force_path_style=True,
        credentials=S3Credentials(keys.access_key_id, keys.secret_access_key),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))
        Repository(backend).initialize("jobmover-e2e", passphrase=PASSPHRASE)
    repository = Repository(backend).unlock(PASSPHRASE)
    return repository, MoverRepository.from_backend(backend, passphrase=PASSPHRASE)


@dataclass
class Source:
    namespace: str
    data_dir: Path
    expected: dict[str, tuple[Any, ...]]
    hardlinks: list[list[str]]


@pytest.fixture(scope="module")
def source(clients: dict[str, KubeClient]) -> Iterator[Source]:
    """worker-1: a namespace whose claim ``data`` holds files and is used by a pod on NODE."""
    client = clients["worker-1"]
    namespace = _unique("kf-jobmover")
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    # a node that exists: the pod garbage collector deletes pods bound to unknown nodes
    client.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }
    )
    try:
        client.create(hostpath_claim("data", namespace, size="64Mi"))
        data_dir = volume_dir(client, namespace, "data")
        fill_sample_tree(data_dir, seed=5)
        client.wait_for("v1", "ServiceAccount", "default", namespace, timeout=60)
        client.create(  # what the (absent) scheduler would have put on NODE
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "app", "namespace": namespace},
                "spec": {
                    "nodeName": NODE,
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "app", "image": "busybox"}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                },
            }
        )
        yield Source(namespace, data_dir, describe_tree(data_dir), hardlink_groups(data_dir))
    finally:
        _force_delete_pods(client, namespace)
        client.delete("v1", "Namespace", namespace)
        client.delete("v1", "Node", NODE)


def _force_delete_pods(client: KubeClient, namespace: str) -> None:
    """Pods bound to a node without a kubelet never finish a graceful deletion."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = k8s.CoreV1Api(client.api_client)
    for pod in client.list_objects("v1", "Pod", namespace):
        try:
            core.delete_namespaced_pod(pod["metadata"]["name"], namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:  # gone meanwhile (a mover pod the collector removed)
                raise


@pytest.fixture
def destination(clients: dict[str, KubeClient]) -> Iterator[str]:
    """A fresh namespace name on worker-2 (deleted afterwards)."""
    namespace = _unique("kf-jobmover-to")
    yield namespace
    _force_delete_pods(clients["worker-2"], namespace)
    clients["worker-2"].delete("v1", "Namespace", namespace)


# -- tests ------------------------------------------------------------------------------------


def test_backup_claim_on_worker1_then_restore_claim_on_worker2(
    sandbox: SandboxInfo,
    clients: dict[str, KubeClient],
    s3_repository: tuple[Repository, MoverRepository],
    source: Source,
    destination: str,
) -> None:
    repository, settings = s3_repository
    mover = JobMover(settings, SETTINGS)
    worker1, worker2 = clients["worker-1"], clients["worker-2"]

    # backup: a Job on worker-1, pinned to NODE (the RWO claim is in use there)
    with (
        sandbox.client("worker-1") as own,
        FakeKubelet(own, source.namespace, node=NODE) as kubelet,
    ):
        backed_up = mover.backup_claim(worker1, source.namespace, "data", "set-e2e", job="e2e")

    files = [v for v in source.expected.values() if v[0] == "file"]
    assert backed_up.operation == "backup"
    assert backed_up.files == len(files)
    assert backed_up.bytes > 0
    assert backed_up.snapshot in VolumeStore(repository).list_snapshots()

    (run,) = kubelet.runs
    assert run.exit_code == 0, run.output
    assert run.node_selector == {"kubernetes.io/hostname": NODE}
    assert run.command[:3] == ["kubeferry", "mover", "backup"]
    data = run.mount("/data")
    assert (data.local, data.read_only) == (source.data_dir, True)
    assert json.loads(run.message)["snapshot"] == backed_up.snapshot
    assert run.labels["kubeferry.io/job"] == "e2e"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(run.env_names)
    assert run.secrets == [run.name.rsplit("-", 1)[0]]  # the Job's Secret, named like the Job
    assert PASSPHRASE not in run.output
    # the backup read the claim and left it as it was
    assert describe_tree(source.data_dir) == source.expected
    _assert_cleaned_up(worker1, source.namespace)

    # restore: a claim on worker-2, written by a Job there (nobody uses it: no pinning)
    worker2.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": destination}})
    worker2.create(hostpath_claim("data", destination, size="64Mi"))
    with (
        sandbox.client("worker-2") as own,
        FakeKubelet(own, destination) as kubelet,
    ):
        restored = mover.restore_claim(
            worker2, destination, "data", "set-e2e", backed_up.snapshot, job="e2e"
        )

    (run,) = kubelet.runs
    assert run.exit_code == 0, run.output
    assert run.node_selector == {}
    assert run.command[:3] == ["kubeferry", "mover", "restore"]
    assert run.command[run.command.index("--snapshot") + 1] == backed_up.snapshot
    assert run.mount("/data").read_only is False
    assert restored.snapshot == backed_up.snapshot
    assert restored.files == backed_up.files
    target = volume_dir(worker2, destination, "data")
    assert target != source.data_dir
    assert describe_tree(target) == source.expected
    assert hardlink_groups(target) == source.hardlinks
    _assert_cleaned_up(worker2, destination)


def test_a_failing_mover_run_is_a_one_line_error_and_cleans_up(
    sandbox: SandboxInfo,
    clients: dict[str, KubeClient],
    s3_repository: tuple[Repository, MoverRepository],
    source: Source,
) -> None:
    _, settings = s3_repository
    wrong = "not the passphrase of this repository"
    mover = JobMover(dataclasses.replace(settings, passphrase=wrong), SETTINGS)
    worker1 = clients["worker-1"]

    with (
        sandbox.client("worker-1") as own,
        FakeKubelet(own, source.namespace, node=NODE) as kubelet,
        pytest.raises(MoverError) as raised,
    ):
        mover.backup_claim(worker1, source.namespace, "data", "set-bad", job="e2e")

    assert not isinstance(raised.value, MoverTimeout)
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"mover job {source.namespace}/kf-backup-data-")
    assert "failed: " in text
    assert "passphrase" in text.lower()
    assert wrong not in text
    (run,) = kubelet.runs
    assert run.exit_code == 1
    assert json.loads(run.message)["error"]  # the pod reported its error as the result
    _assert_cleaned_up(worker1, source.namespace)
    assert describe_tree(source.data_dir) == source.expected


def test_replication_with_the_job_mover_worker1_to_worker2(
    sandbox: SandboxInfo,
    clients: dict[str, KubeClient],
    s3_repository: tuple[Repository, MoverRepository],
    source: Source,
    destination: str,
) -> None:
    """The VolumeMover protocol, as the reconciler drives it: volume data, then the objects;
    on restore the data right after the PVC tier, before the workloads."""
    repository, settings = s3_repository
    mover = JobMover(settings, SETTINGS)
    job = JobSpec(
        name="e2e-replication",
        namespace=source.namespace,
        target_namespace=destination,
        source_cluster="worker-1",
        destination_cluster="worker-2",
        resources_to_exclude=("pods",),  # the bare pod pinned to NODE stays behind
    )
    snapshot_id = _unique("e2e-snap")
    worker1, worker2 = clients["worker-1"], clients["worker-2"]

    with sandbox.client("worker-1") as own, FakeKubelet(own, source.namespace, node=NODE):
        new_bytes = mover.backup_volumes(worker1, repository, job, snapshot_id, Recorder())
    ObjectEngine().backup(worker1, repository, job, snapshot_id, Recorder(), {})
    volume_set = read_volume_set(repository, snapshot_id)
    assert volume_set is not None
    assert volume_set.mover == "job"
    assert [entry.claim for entry in volume_set.volumes] == ["data"]
    assert new_bytes >= 0

    recorder = Recorder()

    def volumes() -> None:  # what ActionRunner hands the object engine
        mover.restore_volumes(worker2, repository, job, snapshot_id, recorder)

    with sandbox.client("worker-2") as own, FakeKubelet(own, destination) as kubelet:
        result = ObjectEngine().restore(
            worker2, repository, job, snapshot_id, recorder, after_claims=volumes
        )
    assert result.outcomes.get("failed", 0) == 0, result.warnings
    assert len(kubelet.runs) == 1
    assert kubelet.runs[0].exit_code == 0, kubelet.runs[0].output
    target = volume_dir(worker2, destination, "data")
    assert describe_tree(target) == source.expected
    assert ("persistentvolumeclaims/data", volume_set.volumes[0].bytes) in recorder.items
    _assert_cleaned_up(worker1, source.namespace)
    _assert_cleaned_up(worker2, destination)


@pytest.fixture
def bulk(clients: dict[str, KubeClient]) -> Iterator[tuple[str, Path]]:
    """worker-1: a namespace of its own with a claim ``bulk`` of 48 MiB (random, so no
    dedup shortcut): a copy long enough for several progress writes."""
    client = clients["worker-1"]
    namespace = _unique("kf-jobmover-bulk")
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        client.create(hostpath_claim("bulk", namespace, size="64Mi"))
        data_dir = volume_dir(client, namespace, "bulk")
        rng = random.Random(7)
        for index in range(24):
            (data_dir / f"part-{index:02d}.bin").write_bytes(rng.randbytes(2 * MB))
        client.wait_for("v1", "ServiceAccount", "default", namespace, timeout=60)
        yield namespace, data_dir
    finally:
        _force_delete_pods(client, namespace)
        client.delete("v1", "Namespace", namespace)


def test_job_mover_reports_live_progress_through_the_repository(
    sandbox: SandboxInfo,
    clients: dict[str, KubeClient],
    s3_repository: tuple[Repository, MoverRepository],
    bulk: tuple[str, Path],
    destination: str,
) -> None:
    """The pod writes progress every 0.05 s (MoverSettings.progress_interval) with one
    worker, the waiting side polls as often: the reporter sees the bytes grow while the Job
    runs, for a backup and a restore, and the progress object is gone once the mover has
    cleaned up."""
    repository, settings = s3_repository
    namespace, data_dir = bulk
    fast = dataclasses.replace(SETTINGS, progress_interval=0.05, poll_interval=0.05, workers=1)
    mover = JobMover(settings, fast)
    worker1 = clients["worker-1"]
    recorder = Recorder()

    with sandbox.client("worker-1") as own, FakeKubelet(own, namespace) as kubelet:
        result = mover.backup_claim(
            worker1,
            namespace,
            "bulk",
            "set-progress",
            job="e2e",
            reporter=recorder,
            repository=repository,
        )

    (run,) = kubelet.runs
    assert run.exit_code == 0, run.output
    assert run.command[run.command.index("--progress") + 1] == run.name.rsplit("-", 1)[0]
    assert run.command[run.command.index("--progress-interval") + 1] == "0.05"
    expected = sum(p.stat().st_size for p in data_dir.iterdir())
    assert result.bytes == expected
    seen = recorder.progress
    assert seen, "no progress reached the reporter"
    assert {item for item, _, _ in seen} == {"persistentvolumeclaims/bulk"}
    assert {total for _, _, total in seen} == {expected}  # the pod scans before it copies
    done = [d for _, d, _ in seen]
    assert done == sorted(set(done)), f"progress went back or repeated: {done}"
    assert len([d for d in done if 0 < d < expected]) >= 2, f"not seen while copying: {done}"
    # the object is deleted with the Job and the Secret
    assert list(repository.backend.list(PROGRESS_PREFIX)) == []
    _assert_cleaned_up(worker1, namespace)

    # the same for a restore, on worker-2
    worker2 = clients["worker-2"]
    worker2.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": destination}})
    worker2.create(hostpath_claim("bulk", destination, size="64Mi"))
    restoring = Recorder()
    with sandbox.client("worker-2") as own, FakeKubelet(own, destination) as kubelet:
        restored = mover.restore_claim(
            worker2,
            destination,
            "bulk",
            "set-progress",
            result.snapshot,
            job="e2e",
            reporter=restoring,
            repository=repository,
        )
    assert kubelet.runs[0].exit_code == 0, kubelet.runs[0].output
    assert restored.bytes == expected
    done = [d for item, d, total in restoring.progress if total == expected]
    assert len(done) == len(restoring.progress)
    assert done == sorted(set(done)), f"progress went back or repeated: {done}"
    # a restore of this volume takes a fraction of a second here: at least the pod's first
    # object (written once the manifest is loaded) reached the reporter while it ran
    assert done, "no restore progress reached the reporter"
    assert done[0] < expected, f"not seen while copying: {done}"
    assert list(repository.backend.list(PROGRESS_PREFIX)) == []
    _assert_cleaned_up(worker2, destination)
