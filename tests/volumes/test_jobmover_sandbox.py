"""The Job mover's objects on a real API server (worker-1 of the sandbox).

The sandbox has no kubelet, so mover pods never run: these tests check what the mover
creates, and that the timeout path deletes the Job and the Secret.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.kube import KubeClient
from reconciler.repository import S3Credentials
from reconciler.sandbox import SandboxInfo
from reconciler.volumes._jobmover import (
    LABEL_JOB,
    LABEL_SNAPSHOT,
    JobMover,
    MoverRepository,
    MoverSettings,
    MoverTimeout,
)

pytestmark = pytest.mark.sandbox

PASSPHRASE = "sandbox mover passphrase"
SECRET_KEY = "sandbox-secret-access-key-value"
REPOSITORY = MoverRepository(
    "s3",
    PASSPHRASE,
    bucket="kubeferry",
    prefix="mover-test",
    endpoint="http://127.0.0.1:9000",
    force_path_style=True,
    credentials=S3Credentials("sandbox-key-id", SECRET_KEY),
)


@pytest.fixture
def worker(sandbox: SandboxInfo) -> Iterator[tuple[KubeClient, str]]:
    """worker-1 and a fresh namespace with a bound claim used by a pod on node-7."""
    namespace = f"kf-mover-{uuid.uuid4().hex[:8]}"
    with sandbox.client("worker-1") as client:
        client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        try:
            client.create(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "namespace": namespace},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Mi"}},
                    },
                }
            )
            # a pod the (absent) scheduler would have put on node-7: nodeName set directly
            client.wait_for("v1", "ServiceAccount", "default", namespace, timeout=60)
            client.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "app", "namespace": namespace},
                    "spec": {
                        "nodeName": "node-7",
                        "automountServiceAccountToken": False,
                        "containers": [{"name": "app", "image": "busybox"}],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
                        ],
                    },
                }
            )
            yield client, namespace
        finally:
            client.delete("v1", "Namespace", namespace)


def _only(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, [i["metadata"]["name"] for i in items]
    return items[0]


def test_launch_creates_job_and_secret_then_timeout_cleans_up(
    worker: tuple[KubeClient, str],
) -> None:
    client, namespace = worker
    mover = JobMover(REPOSITORY, MoverSettings(timeout=3, poll_interval=0.5))
    request = mover.request_for(client, "backup", namespace, "data", "set-1", job="nightly")
    assert request.node == "node-7"

    launched = mover.launch(client, request)
    try:
        job = client.get("batch/v1", "Job", launched.job, namespace)
        secret = client.get("v1", "Secret", launched.secret, namespace)
        assert job is not None
        assert secret is not None

        # the Job as the API server stored it
        spec = job["spec"]
        assert spec["backoffLimit"] == 0
        assert spec["activeDeadlineSeconds"] == 3 + 60
        pod = spec["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node-7"}
        container = pod["containers"][0]
        assert container["args"][:4] == ["mover", "backup", "--path", "/data"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
        assert data_mount["readOnly"] is True
        claim = next(v for v in pod["volumes"] if v["name"] == "data")
        assert claim["persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}
        env = {e["name"]: e for e in container["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": launched.secret,
            "key": "secretAccessKey",
        }
        stored = json.dumps(job)
        assert PASSPHRASE not in stored
        assert SECRET_KEY not in stored
        for labels in (job["metadata"]["labels"], secret["metadata"]["labels"]):
            assert labels[LABEL_JOB] == "nightly"
            assert labels[LABEL_SNAPSHOT] == "set-1"

        # the Secret holds the values, and is owned by the Job (garbage-collected with it)
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data["passphrase"] == PASSPHRASE
        assert data["secretAccessKey"] == SECRET_KEY
        assert json.loads(data["repository.json"])["bucket"] == "kubeferry"
        owner = _only(secret["metadata"]["ownerReferences"])
        assert owner["kind"] == "Job"
        assert owner["name"] == launched.job
        assert owner["uid"] == job["metadata"]["uid"]

        # no kubelet: the pod never runs, the wait times out
        with pytest.raises(MoverTimeout, match="did not finish within 3s"):
            mover.wait(client, launched)
    finally:
        mover.cleanup(client, launched)

    assert client.get("v1", "Secret", launched.secret, namespace) is None
    client.wait_for_deletion("batch/v1", "Job", launched.job, namespace, timeout=30)
    # Background propagation: the garbage collector removes the Job's pods too
    selector = f"kubeferry.io/mover-run={launched.job}"
    for leftover in client.list_objects("v1", "Pod", namespace, label_selector=selector):
        name = leftover["metadata"]["name"]
        client.wait_for_deletion("v1", "Pod", name, namespace, timeout=60)


def test_run_always_cleans_up_on_timeout(worker: tuple[KubeClient, str]) -> None:
    client, namespace = worker
    mover = JobMover(REPOSITORY, MoverSettings(timeout=2, poll_interval=0.5))
    with pytest.raises(MoverTimeout):
        mover.backup_claim(client, namespace, "data", "set-2", job="nightly")
    selector = "app.kubernetes.io/managed-by=kubeferry"
    assert client.list_objects("v1", "Secret", namespace, label_selector=selector) == []
    for job in client.list_objects("batch/v1", "Job", namespace, label_selector=selector):
        client.wait_for_deletion("batch/v1", "Job", job["metadata"]["name"], namespace, timeout=30)
