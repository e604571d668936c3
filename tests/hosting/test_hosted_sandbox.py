"""hostedIn on the sandbox: the objects apply creates on the controller, the readiness timeout,
and an end-to-end backup through a hosted repository.

The sandbox has no kubelet, so the MinIO pod never runs by itself: the end-to-end test plays
kubelet for it (tests/hosting/_minio_kubelet.py) so the real Deployment controller turns the
Deployment Available, and points ``hostedIn.endpoint`` at the sandbox's S3 server (moto, which
accepts any credentials) standing in for the MinIO process.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from rich.console import Console

from reconciler.apply import ApplyResult
from reconciler.kube import KubeClient, Manifest
from reconciler.plan import Plan, plan_to_json, render_plan
from reconciler.reconcile import apply, make_plan
from reconciler.repository import _crypto
from reconciler.repository._crypto import ScryptParams
from reconciler.workspace import Workspace
from state import Ledger
from tests.hosting._minio_kubelet import MinioKubelet

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

PASSPHRASE = "hosted end-to-end passphrase"
LABELS = {"app.kubernetes.io/name": "minio", "app.kubernetes.io/managed-by": "kubeferry"}
OBJECTS = (
    ("v1", "Secret", "minio-credentials"),
    ("v1", "PersistentVolumeClaim", "minio-data"),
    ("v1", "Service", "minio"),
    ("apps/v1", "Deployment", "minio"),
)

_INVENTORY = """\
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {{name: controller}}
spec: {{kubeconfig: {kubeconfig}, context: controller, role: controller}}
---
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {{name: worker-1}}
spec: {{kubeconfig: {kubeconfig}, context: worker-1, role: worker}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationRepository
metadata: {{name: {repo}}}
spec:
  hostedIn: {{cluster: controller, namespace: {namespace}, {hosted}}}
{extra}---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationSlice
metadata: {{name: keep-local}}
spec: {{sourceCluster: worker-1, destinationCluster: worker-1, repository: {repo}}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationJob
metadata: {{name: keep}}
spec: {{replicationSliceName: keep-local, namespace: {source}}}
"""


@dataclass
class Setup:
    sandbox: SandboxInfo
    controller: KubeClient
    worker: KubeClient
    directory: Path
    repo: str
    namespace: str
    source: str

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.directory / "kubeferry.yaml", self.directory / "ledger.sqlite")

    def write(self, hosted: str, extra: str = "") -> None:
        self.workspace.inventory_path.write_text(
            _INVENTORY.format(
                extra=extra,
                kubeconfig=self.sandbox.kubeconfig,
                repo=self.repo,
                namespace=self.namespace,
                source=self.source,
                hosted=hosted,
            )
        )

    def get(self, api_version: str, kind: str, name: str) -> Manifest:
        found = self.controller.get(api_version, kind, name, self.namespace)
        assert found is not None, f"{kind}/{name} missing"
        return found

    def credentials(self) -> tuple[str, str]:
        data = self.get("v1", "Secret", "minio-credentials")["data"]
        return (
            base64.b64decode(data["accessKeyId"]).decode(),
            base64.b64decode(data["secretAccessKey"]).decode(),
        )


@pytest.fixture
def setup(sandbox: SandboxInfo, tmp_path: Path) -> Iterator[Setup]:
    suffix = uuid.uuid4().hex[:8]
    controller, worker = sandbox.client("controller"), sandbox.client("worker-1")
    source = f"hosted-src-{suffix}"
    worker.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": source}})
    for index in range(2):
        worker.ensure(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"settings-{index}", "namespace": source},
                "data": {"value": str(index)},
            }
        )
    found = Setup(
        sandbox, controller, worker, tmp_path, f"hosted-{suffix}", f"kf-minio-{suffix}", source
    )
    yield found
    worker.delete("v1", "Namespace", source)
    controller.delete("v1", "Namespace", found.namespace)
    controller.wait_for_deletion("v1", "Namespace", found.namespace, timeout=120)
    controller.close()
    worker.close()


def _apply(setup: Setup) -> tuple[Plan, ApplyResult]:
    plan, result = apply(setup.workspace, parallelism=2)
    assert result is not None
    return plan, result


def _outcome(result: ApplyResult, address: str) -> tuple[str, str]:
    found = next(r for r in result.results if r.address == address)
    return found.outcome, found.detail


def _rendered(plan: Plan) -> str:
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=250, color_system=None))
    return out.getvalue()


def _assert_nowhere(setup: Setup, secrets: tuple[str, ...], *texts: str) -> None:
    """Neither the values nor their base64 in the texts, the ledger files or the inventory."""
    stored = b"".join(path.read_bytes() for path in setup.directory.rglob("*") if path.is_file())
    for value in secrets:
        encoded = base64.b64encode(value.encode()).decode()
        for text in texts:
            assert value not in text
            assert encoded not in text
        assert value.encode() not in stored
        assert encoded.encode() not in stored


def _events(setup: Setup, kind: str) -> list[Any]:
    with Ledger.open(setup.workspace.ledger_path, create=False) as ledger:
        return [e for e in ledger.events() if e.kind == kind]


# -- the objects ------------------------------------------------------------------------------


def test_apply_creates_the_minio_objects_and_a_second_apply_changes_nothing(
    setup: Setup,
) -> None:
    setup.write("size: 64Mi, readyTimeout: 1s")
    plan = make_plan(setup.workspace)
    repository = next(a for a in plan.actions if a.kind == "ReplicationRepository")
    assert repository.blocked is None
    assert f"MinIO to deploy in controller/{setup.namespace}" in repository.reasons
    assert repository.details["hosting"]["create"] == [
        f"Namespace/{setup.namespace}",
        "Secret/minio-credentials",
        "PersistentVolumeClaim/minio-data",
        "Service/minio",
        "Deployment/minio",
    ]
    job = next(a for a in plan.actions if a.kind == "ReplicationJob")
    assert job.blocked is None  # runs after the deploy, not blocked by "unavailable"

    first_plan, first = _apply(setup)
    outcome, detail = _outcome(first, f"ReplicationRepository/{setup.repo}")
    assert outcome == "failed"  # nothing runs the pod: the 1s readiness wait times out
    assert detail.startswith(f"MinIO of ReplicationRepository/{setup.repo} not ready after 1s")

    namespace = setup.controller.get("v1", "Namespace", setup.namespace)
    assert namespace is not None
    assert LABELS.items() <= namespace["metadata"]["labels"].items()
    for api_version, kind, name in OBJECTS:
        labels = setup.get(api_version, kind, name)["metadata"]["labels"]
        assert labels == {**LABELS, "kubeferry.io/repository": setup.repo}, kind
    secret = setup.get("v1", "Secret", "minio-credentials")
    assert set(secret["data"]) == {"accessKeyId", "secretAccessKey"}
    access_key, secret_key = setup.credentials()
    assert len(access_key) >= 20
    assert len(secret_key) >= 40
    assert "minioadmin" not in access_key + secret_key
    claim = setup.get("v1", "PersistentVolumeClaim", "minio-data")
    assert claim["spec"]["resources"]["requests"] == {"storage": "64Mi"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    deployment = setup.get("apps/v1", "Deployment", "minio")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        "MINIO_ROOT_USER": {"name": "minio-credentials", "key": "accessKeyId"},
        "MINIO_ROOT_PASSWORD": {"name": "minio-credentials", "key": "secretAccessKey"},
    }
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    service = setup.get("v1", "Service", "minio")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [9000]
    # the real ReplicaSet controller accepted the pod template (no kubelet runs it)
    pods = setup.controller.list_objects(
        "v1", "Pod", setup.namespace, label_selector="app.kubernetes.io/name=minio"
    )
    assert len(pods) == 1
    [deployed] = _events(setup, "hosting.deployed")
    assert "created Namespace" in deployed.message
    assert deployed.data["namespace"] == setup.namespace

    # second apply: nothing to create or update, the credentials kept
    before = {kind: setup.get(v, kind, name)["metadata"] for v, kind, name in OBJECTS}
    second_plan = make_plan(setup.workspace)
    waiting = next(a for a in second_plan.actions if a.kind == "ReplicationRepository")
    assert set(waiting.details["hosting"]) == {"cluster", "namespace"}  # no create, no update
    assert waiting.reasons[-1].startswith(
        f"MinIO in controller/{setup.namespace} not ready yet (apply waits for it)"
    )
    _, second = _apply(setup)
    assert _outcome(second, f"ReplicationRepository/{setup.repo}")[0] == "failed"
    assert setup.credentials() == (access_key, secret_key)
    for version, kind, name in OBJECTS:
        after = setup.get(version, kind, name)["metadata"]
        assert after["uid"] == before[kind]["uid"], kind
        if kind == "Deployment":
            assert after["generation"] == before[kind]["generation"]
        elif kind != "PersistentVolumeClaim":  # the volume controller annotates claims
            assert after["resourceVersion"] == before[kind]["resourceVersion"], kind
    assert len(_events(setup, "hosting.deployed")) == 1

    # a hand edit (scaled to zero) and a changed Service type: planned and put right
    scaled = setup.get("apps/v1", "Deployment", "minio")
    scaled["spec"]["replicas"] = 0
    setup.controller.replace(scaled)
    cluster_ip = service["spec"]["clusterIP"]
    setup.write("size: 64Mi, readyTimeout: 1s, serviceType: NodePort")
    third_plan = make_plan(setup.workspace)
    update = next(a for a in third_plan.actions if a.kind == "ReplicationRepository")
    assert update.details["hosting"]["update"] == ["Service/minio", "Deployment/minio"]
    assert f"MinIO to update in controller/{setup.namespace}" in update.reasons
    assert "~ Deployment/minio" in _rendered(third_plan)
    _apply(setup)
    assert setup.get("apps/v1", "Deployment", "minio")["spec"]["replicas"] == 1
    service = setup.get("v1", "Service", "minio")
    assert (service["spec"]["type"], service["spec"]["clusterIP"]) == ("NodePort", cluster_ip)
    assert setup.credentials() == (access_key, secret_key)

    # a Secret that lost a key is never regenerated: apply stops with one line
    broken = setup.get("v1", "Secret", "minio-credentials")
    del broken["data"]["secretAccessKey"]
    setup.controller.replace(broken)
    fourth_plan = make_plan(setup.workspace)
    refused = next(a for a in fourth_plan.actions if a.kind == "ReplicationRepository")
    assert refused.details["hosting"]["update"] == ["Secret/minio-credentials"]
    _, fourth = _apply(setup)
    outcome, refusal = _outcome(fourth, f"ReplicationRepository/{setup.repo}")
    assert (outcome, refusal) == (
        "failed",
        f"Secret {setup.namespace}/minio-credentials on cluster controller lacks the key(s) "
        "secretAccessKey; kubeferry never regenerates credentials: restore the keys, or delete "
        "the Secret (new credentials are generated; restart the MinIO Deployment)",
    )
    assert setup.get("v1", "Secret", "minio-credentials")["data"] == broken["data"]

    plans = (first_plan, second_plan, third_plan, fourth_plan)
    texts = [plan_to_json(p) + _rendered(p) for p in plans]
    _assert_nowhere(setup, (access_key, secret_key), *texts, detail, refusal)


# -- readiness timeout -------------------------------------------------------------------------


def test_readiness_timeout_is_one_line_and_the_objects_stay(setup: Setup) -> None:
    setup.write("size: 64Mi, readyTimeout: 2s")
    started = time.monotonic()
    _, result = _apply(setup)
    elapsed = time.monotonic() - started
    outcome, detail = _outcome(result, f"ReplicationRepository/{setup.repo}")
    assert outcome == "failed"
    ns = setup.namespace
    assert re.fullmatch(
        rf"MinIO of ReplicationRepository/{setup.repo} not ready after 2s: Deployment "
        rf"{ns}/minio on cluster controller is not Available \(Deployment minio: 0/1 replicas "
        r"available[^()\n]*; PersistentVolumeClaim minio-data is not Bound\); check its pods, "
        rf"events and PersistentVolumeClaim \(kubectl -n {ns} get pods,pvc,events\); the "
        r"objects stay and the next apply resumes",
        detail,
    ), detail
    assert elapsed < 20, "a readiness timeout must not be retried like a transient error"
    # what needs the repository waits for a later apply
    assert _outcome(result, "ReplicationJob/keep") == (
        "blocked",
        f"dependency ReplicationRepository/{setup.repo} did not complete",
    )
    for api_version, kind, name in OBJECTS:
        setup.get(api_version, kind, name)
    # the failure is in the ledger's log, without the credentials
    with Ledger.open(setup.workspace.ledger_path, create=False) as ledger:
        assert any(detail in e.message for e in ledger.events())
    _assert_nowhere(setup, setup.credentials(), detail)
    # the next plan resumes: nothing to create, only MinIO to wait for
    again = make_plan(setup.workspace)
    action = next(a for a in again.actions if a.kind == "ReplicationRepository")
    assert "create" not in action.details["hosting"]
    assert action.blocked is None


# -- end to end --------------------------------------------------------------------------------


@pytest.fixture
def storage_class(setup: Setup) -> Iterator[str]:
    """A host-path StorageClass on the controller (the sandbox gives it none), removed after."""
    name = f"kubeferry-hosting-{uuid.uuid4().hex[:6]}"
    setup.controller.create(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "kubernetes.io/host-path",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Delete",
        }
    )
    yield name
    setup.controller.delete("storage.k8s.io/v1", "StorageClass", name)


def _s3(setup: Setup, credentials: tuple[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=setup.sandbox.s3.endpoint_url,
        aws_access_key_id=credentials[0],
        aws_secret_access_key=credentials[1],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def test_backup_through_a_hosted_repository_end_to_end(
    setup: Setup, storage_class: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = setup.sandbox.s3.endpoint_url
    monkeypatch.setenv("HOSTED_E2E_PASSPHRASE", PASSPHRASE)
    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))  # fast
    setup.write(
        f"size: 32Mi, storageClassName: {storage_class}, endpoint: '{endpoint}', "
        "readyTimeout: 120s",
        "  encryption: {passphraseFrom: {env: {var: HOSTED_E2E_PASSPHRASE}}}\n",
    )
    credentials: tuple[str, str] | None = None
    kubelet_client = setup.sandbox.client("controller")  # used from the kubelet's thread
    try:
        with MinioKubelet(kubelet_client, setup.namespace) as kubelet:
            plan, result = _apply(setup)
            assert result.ok, [(r.address, r.outcome, r.detail) for r in result.results]
            credentials = setup.credentials()
            # the kubelet ran the pod with the Secret's keys as MinIO's root credentials
            [pod] = kubelet.started
            assert pod.env["MINIO_ROOT_USER"] == credentials[0]
            assert pod.env["MINIO_ROOT_PASSWORD"] == credentials[1]
            assert pod.env["MINIO_BROWSER"] == "off"
            deployment = setup.get("apps/v1", "Deployment", "minio")
            available = {c["type"]: c["status"] for c in deployment["status"]["conditions"]}
            assert available["Available"] == "True"
            claim = setup.get("v1", "PersistentVolumeClaim", "minio-data")
            assert claim["spec"]["storageClassName"] == storage_class

            outcome, detail = _outcome(result, f"ReplicationRepository/{setup.repo}")
            assert outcome == "done"
            assert detail == (
                f"MinIO ready in controller/{setup.namespace}; initialized and registered"
            )
            assert _outcome(result, "ReplicationJob/keep")[0] == "done"

            # the bucket (named after the repository) holds the marker and the snapshot
            s3 = _s3(setup, credentials)
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=setup.repo).get("Contents", [])]
            with Ledger.open(setup.workspace.ledger_path, create=False) as ledger:
                [snapshot] = ledger.snapshots(job="keep")
                assert snapshot.repository == setup.repo
                events = {e.kind for e in ledger.events()}
            assert any(snapshot.id in key for key in keys), keys
            assert {"hosting.deployed", "hosting.ready", "hosting.bucket-created"} <= events

            # converged: the next plan changes nothing
            again = make_plan(setup.workspace)
            assert again.actions == [], [(a.address, a.reasons) for a in again.actions]

            # a lost bucket is planned (not blocked) and made again
            _empty_bucket(s3, setup.repo)
            lost = make_plan(setup.workspace)
            [action] = lost.actions
            assert (action.address, action.reasons, action.blocked) == (
                f"ReplicationRepository/{setup.repo}",
                [f"bucket {setup.repo} to create"],
                None,
            )
            assert action.details["hosting"]["create"] == [f"Bucket/{setup.repo}"]
            _, remade = _apply(setup)
            assert remade.ok, [(r.address, r.outcome, r.detail) for r in remade.results]
            assert s3.head_bucket(Bucket=setup.repo)
            assert make_plan(setup.workspace).actions == []
            secrets = (*credentials, PASSPHRASE)
            _assert_nowhere(setup, secrets, plan_to_json(plan), _rendered(plan), _rendered(lost))

            # delete while the kubelet runs: it confirms the pod's deletion
            setup.controller.delete("v1", "Namespace", setup.namespace)
            setup.controller.wait_for_deletion("v1", "Namespace", setup.namespace, timeout=120)
    finally:
        kubelet_client.close()
        if credentials is not None:
            _empty_bucket(_s3(setup, credentials), setup.repo)


def _empty_bucket(s3: Any, bucket: str) -> None:
    with contextlib.suppress(s3.exceptions.NoSuchBucket):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
