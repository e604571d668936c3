"""ObjectEngine against the real sandbox: a rich namespace round-trips worker-1 -> worker-2.

Drives `reconciler.engines.ObjectEngine` directly (no inventory, no ledger): backup of a
namespace on worker-1 into a filesystem repository, restore onto worker-2 into the same
namespace and into a mapped one. Per object it asserts what must be equal (spec, data,
labels, selectors...) and what must differ (uid, ClusterIP, auto-assigned nodePort, PVC
volumeName, owner uid re-linked to the owner's new uid), the kubeferry labels, the stripped
KubeSlice/NSM metadata, the kinds a backup never takes, each existingResourcePolicy, an
idempotent second restore, the pre-checks (missing storage class, missing CRD, terminating
namespace), the filters, and a backup killed midway.

The rich namespace is built by tests/fixtures/rich_namespace.py; its CRD comes from
tests/fixtures/kubeslice-crds/.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.engines import BackupResult, JobSpec, PrecheckFailed, RestoreResult
from reconciler.errors import KubeferryError
from reconciler.kube import KubeClient, Manifest
from reconciler.repository import FilesystemBackend, Repository, RepositoryUnavailable

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SNAPSHOT_LABEL = "kubeferry.io/snapshot"
JOB_LABEL = "kubeferry.io/job"
# the contract's outcomes, plus "skipped": archived objects a restore leaves out on purpose
# (PersistentVolumes with reclaim policy Delete: the restored claim provisions its own)
OUTCOMES = {
    "created",
    "updated",
    "recreated",
    "exists-identical",
    "exists-differs",
    "failed",
    "skipped",
}
CRD_API = "apiextensions.k8s.io/v1"


def _load_fixture(name: str) -> ModuleType:
    module_name = f"kubeferry_test_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FIXTURES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


rich_namespace = _load_fixture("rich_namespace")

# Velero's group_resource naming of the kinds in the rich namespace
GROUP_RESOURCE = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "Role": "roles.rbac.authorization.k8s.io",
    "RoleBinding": "rolebindings.rbac.authorization.k8s.io",
    "LimitRange": "limitranges",
    "ResourceQuota": "resourcequotas",
    "Service": "services",
    "Deployment": "deployments.apps",
    "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps",
    "Job": "jobs.batch",
    "CronJob": "cronjobs.batch",
    "Ingress": "ingresses.networking.k8s.io",
    "NetworkPolicy": "networkpolicies.networking.k8s.io",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers.autoscaling",
    "SliceConfig": "sliceconfigs.controller.kubeslice.io",
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
}
NEVER_BACKED_UP = {
    "events",
    "events.events.k8s.io",
    "leases.coordination.k8s.io",
    "pods",
    "replicasets.apps",
    "controllerrevisions.apps",
    "endpoints",
    "endpointslices.discovery.k8s.io",
}
# kinds whose whole spec must arrive unchanged (both servers apply the same defaults)
SPEC_EQUAL = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "CronJob",
    "Ingress",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "LimitRange",
    "ResourceQuota",
    "SliceConfig",
}
# kinds no controller writes to once settled: a no-op restore must leave their resourceVersion
QUIET = {
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Service",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "Ingress",
    "LimitRange",
    "CronJob",
    "SliceConfig",
}


# -- helpers --------------------------------------------------------------------------------


@dataclass
class Recorder:
    """A Reporter that remembers everything it was told."""

    totals: list[int] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    cancel_checks: int = 0

    def total(self, items: int) -> None:
        self.totals.append(items)

    def item_done(self, item: str, size: int = 0) -> None:
        self.items.append(item)

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        pass

    def warning(self, text: str, item: str = "") -> None:
        self.warnings.append((item, text))

    def check_cancelled(self) -> None:
        self.cancel_checks += 1


def _engine() -> Any:
    from reconciler.engines import ObjectEngine

    return ObjectEngine()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _job(name: str, namespace: str, target: str | None = None, **options: Any) -> JobSpec:
    return JobSpec(
        name=name,
        namespace=namespace,
        target_namespace=target or namespace,
        source_cluster="worker-1",
        destination_cluster="worker-2",
        **options,
    )


def _backup(
    client: KubeClient, repository: Repository, job: JobSpec
) -> tuple[str, BackupResult, Recorder]:
    snapshot_id = _unique(f"s-{job.name}")
    recorder = Recorder()
    result = _engine().backup(client, repository, job, snapshot_id, recorder, {"test": "yes"})
    return snapshot_id, result, recorder


def _restore(
    client: KubeClient, repository: Repository, job: JobSpec, snapshot_id: str
) -> tuple[RestoreResult, Recorder]:
    recorder = Recorder()
    result = _engine().restore(client, repository, job, snapshot_id, recorder)
    return result, recorder


def _outcomes(result: RestoreResult) -> dict[str, int]:
    """Non-zero outcome counts; every key is one of the contract's."""
    assert set(result.outcomes) <= OUTCOMES, result.outcomes
    return {key: count for key, count in result.outcomes.items() if count}


def _archived(repository: Repository, snapshot_id: str) -> dict[tuple[str, str | None, str], Any]:
    """(group_resource, namespace, name) -> manifest of every object in the snapshot's archive."""
    from reconciler.engines.objects._archive import read_archive

    found: dict[tuple[str, str | None, str], Any] = {}
    parts = repository.list_snapshot_parts(snapshot_id)
    for part in parts:
        data = repository.read_snapshot_part(snapshot_id, part)
        try:
            items = read_archive(data)
        except Exception:  # the resource list and other non-archive parts
            continue
        for item in items:
            found[(item.group_resource, item.namespace, item.name)] = item.manifest
    assert found, f"no archive among the snapshot's parts {parts}"
    return found


def _group_resources(archived: dict[tuple[str, str | None, str], Any]) -> set[str]:
    return {key[0] for key in archived}


def _labels(obj: Manifest) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def _annotations(obj: Manifest) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def _namespace(client: KubeClient, name: str, **labels: str) -> str:
    client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )
    return name


def _configmap(name: str, namespace: str, data: dict[str, str], **labels: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    }


def _bound_claim(client: KubeClient, name: str, namespace: str) -> Manifest:
    return client.wait_for(
        "v1",
        "PersistentVolumeClaim",
        name,
        namespace,
        condition=lambda c: (c.get("status") or {}).get("phase") == "Bound",
        timeout=90,
    )


def _check(report: Any, name: str) -> Any:
    checks = {check.name: check for check in report.checks}
    assert name in checks, f"no pre-check named {name!r}: {sorted(checks)}"
    return checks[name]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def w1(sandbox: SandboxInfo) -> Iterator[KubeClient]:
    with sandbox.client("worker-1") as client:
        yield client


@pytest.fixture(scope="module")
def w2(sandbox: SandboxInfo) -> Iterator[KubeClient]:
    with sandbox.client("worker-2") as client:
        yield client


@pytest.fixture(scope="module")
def cleanup(w1: KubeClient, w2: KubeClient) -> Iterator[Callable[[str, str], None]]:
    """``cleanup(cluster, namespace)``: delete it at the end of the module."""
    namespaces: list[tuple[str, str]] = []
    yield lambda cluster, namespace: namespaces.append((cluster, namespace))
    clients = {"worker-1": w1, "worker-2": w2}
    for cluster, namespace in namespaces:
        clients[cluster].delete("v1", "Namespace", namespace)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    repository = Repository(FilesystemBackend(tmp_path_factory.mktemp("repository")))
    repository.initialize("roundtrip-tests")
    return repository


@dataclass
class Source:
    namespace: str
    rich: Any  # rich_namespace.RichNamespace
    job: JobSpec
    snapshot_id: str
    backup: BackupResult
    recorder: Recorder


@pytest.fixture(scope="module")
def rich_source(
    w1: KubeClient,
    w2: KubeClient,
    repository: Repository,
    cleanup: Callable[[str, str], None],
) -> Source:
    """The rich namespace on worker-1, backed up once.

    On worker-2 a blocker Service holds the source's auto-assigned nodePort, so a restore
    that kept it would fail instead of passing by luck.
    """
    namespace = _unique("kf-rich")
    cleanup("worker-1", namespace)
    cleanup("worker-2", namespace)
    cleanup("worker-2", f"{namespace}-mapped")
    rich = rich_namespace.create(w1, namespace, fixed_node_port=random.randint(30100, 32700))
    auto_port = rich.get("Service", "web-auto")["spec"]["ports"][0]["nodePort"]
    blocker = _namespace(w2, f"{namespace}-blocker")
    cleanup("worker-2", blocker)
    w2.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hold-port", "namespace": blocker},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": auto_port}]},
        }
    )
    job = _job("rich", namespace)
    snapshot_id, backup, recorder = _backup(w1, repository, job)
    return Source(namespace, rich, job, snapshot_id, backup, recorder)


@dataclass
class Restored:
    result: RestoreResult
    recorder: Recorder


@pytest.fixture(scope="module")
def restored(rich_source: Source, w2: KubeClient, repository: Repository) -> Restored:
    """The rich snapshot restored onto worker-2, same namespace name."""
    result, recorder = _restore(w2, repository, rich_source.job, rich_source.snapshot_id)
    return Restored(result, recorder)


# -- backup ---------------------------------------------------------------------------------


def test_backup_publishes_a_complete_snapshot(
    rich_source: Source, repository: Repository, w1: KubeClient
) -> None:
    assert rich_source.snapshot_id in repository.list_snapshots()
    # the metadata document (written last) names the snapshot, the job and the namespace
    metadata = json.dumps(json.loads(repository.read_snapshot_metadata(rich_source.snapshot_id)))
    for name in (rich_source.snapshot_id, rich_source.job.name, rich_source.namespace):
        assert name in metadata
    backup = rich_source.backup
    assert backup.snapshot_id == rich_source.snapshot_id
    assert backup.items >= len(rich_namespace.OBJECTS) + 1  # + the owned ConfigMap
    assert backup.size_bytes > 0
    assert rich_source.recorder.totals
    assert rich_source.recorder.totals[-1] == backup.items
    assert len(rich_source.recorder.items) == backup.items
    assert rich_source.recorder.cancel_checks > 0
    # nothing changed on the source since: the same fingerprint
    fingerprint = _engine().fingerprint(w1, rich_source.namespace, rich_source.job)
    assert fingerprint == backup.source_fingerprint


def test_archive_holds_the_namespace_and_nothing_the_cluster_recreates(
    rich_source: Source, repository: Repository
) -> None:
    archived = _archived(repository, rich_source.snapshot_id)
    namespace, rich = rich_source.namespace, rich_source.rich
    expected: set[tuple[str, str | None, str]] = {
        (GROUP_RESOURCE[kind], namespace, name) for _, kind, name in rich_namespace.OBJECTS
    }
    expected |= {
        ("configmaps", namespace, rich_namespace.OWNED_CONFIGMAP),
        ("namespaces", None, namespace),
        (GROUP_RESOURCE["CustomResourceDefinition"], None, rich_namespace.CR_CRD),
    }
    volume = rich.get("PersistentVolumeClaim", rich_namespace.PVC)["spec"]["volumeName"]
    expected.add(("persistentvolumes", None, volume))
    assert expected <= set(archived), sorted(expected - set(archived))

    assert not _group_resources(archived) & NEVER_BACKED_UP
    assert ("configmaps", namespace, "kube-root-ca.crt") not in archived
    tokens = [
        key
        for key, manifest in archived.items()
        if key[0] == "secrets" and manifest.get("type") == "kubernetes.io/service-account-token"
    ]
    assert tokens == []
    # the only Job is the bare one; nothing a CronJob made
    assert {key[2] for key in archived if key[0] == "jobs.batch"} == {"migrate"}


# -- restore --------------------------------------------------------------------------------


def _assert_restored_metadata(
    source: Manifest, restored: Manifest, snapshot: str, job: str
) -> None:
    where = f"{restored['kind']}/{restored['metadata']['name']}"
    assert restored["metadata"]["uid"] != source["metadata"]["uid"], where
    labels = _labels(restored)
    assert labels.get(SNAPSHOT_LABEL) == snapshot, where
    assert labels.get(JOB_LABEL) == job, where
    # controller-uid labels belong to the source's Job; KubeSlice's must go
    dropped = {*rich_namespace.KUBESLICE_LABELS, "controller-uid"}
    kept = {k: v for k, v in _labels(source).items() if k not in dropped}
    assert kept.items() <= labels.items(), where
    assert not set(labels) & set(rich_namespace.KUBESLICE_LABELS), where
    annotations = _annotations(restored)
    assert not set(annotations) & set(rich_namespace.KUBESLICE_ANNOTATIONS), where
    for key, value in _annotations(source).items():
        if key not in rich_namespace.KUBESLICE_ANNOTATIONS and not key.startswith(
            (
                "deployment.kubernetes.io/",
                "pv.kubernetes.io/",
                "volume.",
                "kubectl.kubernetes.io/last-applied-configuration",
            )
        ):
            assert annotations.get(key) == value, f"{where}: annotation {key}"


def _assert_round_trip(
    source: Source, w2: KubeClient, target: str, job: JobSpec
) -> dict[tuple[str, str], Manifest]:
    """Every object of the rich namespace arrived in ``target`` on worker-2, as it must."""
    rich, src_ns = source.rich, source.namespace
    live: dict[tuple[str, str], Manifest] = {}
    for api_version, kind, name in (
        *rich_namespace.OBJECTS,
        ("v1", "ConfigMap", rich_namespace.OWNED_CONFIGMAP),
    ):
        restored = w2.get(api_version, kind, name, target)
        assert restored is not None, f"{kind}/{name} missing in {target} on worker-2"
        live[(kind, name)] = restored
        src = rich.get(kind, name)
        _assert_restored_metadata(src, restored, source.snapshot_id, job.name)
        if kind in SPEC_EQUAL:
            assert restored["spec"] == src["spec"], f"{kind}/{name} spec"

    def both(kind: str, name: str) -> tuple[Manifest, Manifest]:
        return rich.get(kind, name), live[(kind, name)]

    # data, types, references
    for name in ("settings", rich_namespace.OWNED_CONFIGMAP):
        src, dst = both("ConfigMap", name)
        assert dst["data"] == src["data"]
    for name in ("credentials", rich_namespace.PULL_SECRET):
        src, dst = both("Secret", name)
        assert (dst["type"], dst["data"]) == (src["type"], src["data"])
    src, dst = both("ServiceAccount", rich_namespace.SERVICE_ACCOUNT)
    assert dst["imagePullSecrets"] == src["imagePullSecrets"]
    src, dst = both("Role", "reader")
    assert dst["rules"] == src["rules"]
    src, dst = both("RoleBinding", "reader")
    assert dst["roleRef"] == src["roleRef"]
    expected_subjects = [
        {**s, "namespace": target} if s["namespace"] == src_ns else s for s in src["subjects"]
    ]
    assert dst["subjects"] == expected_subjects

    # Services: ClusterIPs are the destination's, headless stays headless, nodePorts
    src, dst = both("Service", "web")
    assert dst["spec"]["clusterIP"] not in (src["spec"]["clusterIP"], "None", "", None)
    assert dst["spec"]["selector"] == src["spec"]["selector"]
    assert dst["spec"]["ports"] == src["spec"]["ports"]
    src, dst = both("Service", "db")
    assert dst["spec"]["clusterIP"] == "None"
    assert dst["spec"]["ports"] == src["spec"]["ports"]
    src, dst = both("Service", "web-fixed")
    assert dst["spec"]["ports"][0]["nodePort"] == rich.fixed_node_port
    assert dst["spec"]["clusterIP"] != src["spec"]["clusterIP"]
    src, dst = both("Service", "web-auto")
    auto = dst["spec"]["ports"][0]["nodePort"]
    assert auto
    assert auto != src["spec"]["ports"][0]["nodePort"]

    # the bare Job's controller-uid is the new Job's, not the source's
    src, dst = both("Job", "migrate")
    assert dst["spec"]["selector"]["matchLabels"]["controller-uid"] == dst["metadata"]["uid"]
    assert (
        dst["spec"]["template"]["spec"]["containers"]
        == src["spec"]["template"]["spec"]["containers"]
    )

    # the operator-style owner chain is re-linked to the owner's new uid
    owner = live[(rich_namespace.CR_KIND, rich_namespace.CR_NAME)]
    owned = live[("ConfigMap", rich_namespace.OWNED_CONFIGMAP)]
    (reference,) = owned["metadata"]["ownerReferences"]
    assert reference["uid"] == owner["metadata"]["uid"]
    assert (
        reference["uid"]
        != rich.get(rich_namespace.CR_KIND, rich_namespace.CR_NAME)["metadata"]["uid"]
    )
    assert (reference["kind"], reference["name"]) == (
        rich_namespace.CR_KIND,
        rich_namespace.CR_NAME,
    )
    crd = w2.get(CRD_API, "CustomResourceDefinition", rich_namespace.CR_CRD)
    assert crd is not None

    # the PVC binds to a volume of its own on the destination
    src = rich.get("PersistentVolumeClaim", rich_namespace.PVC)
    claim = _bound_claim(w2, rich_namespace.PVC, target)
    assert claim["spec"]["storageClassName"] == rich_namespace.STORAGE_CLASS
    assert claim["spec"]["resources"]["requests"] == src["spec"]["resources"]["requests"]
    assert claim["spec"]["volumeName"] != src["spec"]["volumeName"]

    # the namespace itself: labels kept, KubeSlice onboarding not copied
    namespace = w2.get("v1", "Namespace", target)
    assert namespace is not None
    assert rich_namespace.APP_LABELS.items() <= _labels(namespace).items()
    assert "kubeslice.io/slice" not in _labels(namespace)
    assert not set(_annotations(namespace)) & set(rich_namespace.KUBESLICE_ANNOTATIONS)
    return live


def test_round_trip_to_worker_2(rich_source: Source, restored: Restored, w2: KubeClient) -> None:
    outcomes = _outcomes(restored.result)
    assert "failed" not in outcomes, restored.recorder.warnings
    assert outcomes.get("created", 0) >= len(rich_namespace.OBJECTS) + 1
    assert outcomes.get("skipped", 0) <= 2  # at most the PVs of the two claims
    assert restored.result.items == sum(outcomes.values())
    assert restored.result.precheck is not None
    assert restored.result.precheck.overall != "not_compatible"
    # the owner was part of the snapshot: its dependent must not be reported as orphaned
    assert not [w for w in restored.recorder.warnings if rich_namespace.OWNED_CONFIGMAP in str(w)]
    _assert_round_trip(rich_source, w2, rich_source.namespace, rich_source.job)


def _versions(client: KubeClient, namespace: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, name) -> (uid, resourceVersion) of the rich objects in ``namespace``."""
    found = {}
    for api_version, kind, name in (
        *rich_namespace.OBJECTS,
        ("v1", "ConfigMap", rich_namespace.OWNED_CONFIGMAP),
    ):
        obj = client.get(api_version, kind, name, namespace)
        assert obj is not None, f"{kind}/{name}"
        found[(kind, name)] = (obj["metadata"]["uid"], obj["metadata"]["resourceVersion"])
    return found


def test_second_restore_changes_nothing(
    rich_source: Source, restored: Restored, w2: KubeClient, repository: Repository
) -> None:
    before = _versions(w2, rich_source.namespace)
    again, _ = _restore(w2, repository, rich_source.job, rich_source.snapshot_id)
    after = _versions(w2, rich_source.namespace)

    assert set(_outcomes(again)) - {"skipped"} == {"exists-identical"}, (
        again.outcomes,
        again.warnings,
    )
    assert again.items == restored.result.items
    assert {key: uid for key, (uid, _) in after.items()} == {
        key: uid for key, (uid, _) in before.items()
    }
    quiet_before = {key: rv for key, (_, rv) in before.items() if key[0] in QUIET}
    quiet_after = {key: rv for key, (_, rv) in after.items() if key[0] in QUIET}
    assert quiet_after == quiet_before
    assert again.destination_fingerprint == restored.result.destination_fingerprint


def test_round_trip_into_a_mapped_namespace(
    rich_source: Source, w2: KubeClient, repository: Repository
) -> None:
    # the fixed nodePort can be held once per cluster: free it from the same-name copy
    if w2.delete("v1", "Namespace", rich_source.namespace):
        w2.wait_for_deletion("v1", "Namespace", rich_source.namespace, timeout=120, interval=1)
    target = f"{rich_source.namespace}-mapped"
    job = _job("rich-mapped", rich_source.namespace, target)
    result, recorder = _restore(w2, repository, job, rich_source.snapshot_id)

    outcomes = _outcomes(result)
    assert "failed" not in outcomes, recorder.warnings
    assert outcomes.get("created", 0) >= len(rich_namespace.OBJECTS) + 1
    live = _assert_round_trip(rich_source, w2, target, job)
    binding = live[("RoleBinding", "reader")]
    assert {"kind": "ServiceAccount", "name": "app", "namespace": target} in binding["subjects"]
    assert (
        w2.get("v1", "Namespace", rich_source.namespace) is None
    )  # nothing went to the source name


# -- existingResourcePolicy -----------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_source(w1: KubeClient, cleanup: Callable[[str, str], None]) -> str:
    """A small namespace on worker-1: labelled and unlabelled ConfigMaps, a Secret, a Service."""
    namespace = _namespace(w1, _unique("kf-plain"))
    cleanup("worker-1", namespace)
    w1.create(_configmap("same", namespace, {"v": "1"}, tier="front"))
    w1.create(_configmap("changed", namespace, {"v": "1"}))
    w1.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": namespace},
            "type": "Opaque",
            "stringData": {"password": "hunter2"},
        }
    )
    w1.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "front", "namespace": namespace, "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "front"}, "ports": [{"port": 80}]},
        }
    )
    return namespace


def test_existing_resource_policies(
    plain_source: str,
    w1: KubeClient,
    w2: KubeClient,
    repository: Repository,
    cleanup: Callable[[str, str], None],
) -> None:
    target = _unique("kf-policy")
    cleanup("worker-2", target)
    job = _job("policies", plain_source, target)
    snapshot_id, _, _ = _backup(w1, repository, job)
    first, _ = _restore(w2, repository, job, snapshot_id)
    assert _outcomes(first).get("created", 0) >= 4

    def edit() -> Manifest:
        current = w2.get("v1", "ConfigMap", "changed", target)
        assert current is not None
        return w2.replace({**current, "data": {"v": "edited on the destination"}})

    def state(name: str) -> Manifest:
        obj = w2.get("v1", "ConfigMap", name, target)
        assert obj is not None
        return obj

    edited, same = edit(), state("same")

    # none: nothing written, both cases reported
    result, _ = _restore(w2, repository, job, snapshot_id)
    outcomes = _outcomes(result)
    assert outcomes.get("exists-differs") == 1, outcomes
    assert outcomes.get("exists-identical", 0) >= 3, outcomes
    assert set(outcomes) <= {"exists-differs", "exists-identical"}
    assert state("changed")["data"] == {"v": "edited on the destination"}
    assert state("changed")["metadata"]["resourceVersion"] == edited["metadata"]["resourceVersion"]
    assert state("same")["metadata"]["resourceVersion"] == same["metadata"]["resourceVersion"]

    # update: patched to the snapshot in place
    result, _ = _restore(
        w2, repository, dataclasses.replace(job, existing_resource_policy="update"), snapshot_id
    )
    outcomes = _outcomes(result)
    assert outcomes.get("updated") == 1, outcomes
    assert "failed" not in outcomes
    changed = state("changed")
    assert changed["data"] == {"v": "1"}
    assert changed["metadata"]["uid"] == edited["metadata"]["uid"]
    assert _labels(changed)[SNAPSHOT_LABEL] == snapshot_id
    assert state("same")["metadata"]["resourceVersion"] == same["metadata"]["resourceVersion"]

    # recreate: deleted and created again, a new object
    edited = edit()
    result, _ = _restore(
        w2, repository, dataclasses.replace(job, existing_resource_policy="recreate"), snapshot_id
    )
    outcomes = _outcomes(result)
    assert outcomes.get("recreated", 0) >= 1, outcomes
    assert "failed" not in outcomes
    changed = state("changed")
    assert changed["data"] == {"v": "1"}
    assert changed["metadata"]["uid"] != edited["metadata"]["uid"]


# -- pre-checks -----------------------------------------------------------------------------


def _storage_source(w1: KubeClient, cleanup: Callable[[str, str], None]) -> str:
    """A namespace on worker-1 with a ConfigMap and a PVC of the `hostpath` class."""
    source = _namespace(w1, _unique("kf-storage"))
    cleanup("worker-1", source)
    w1.create(_configmap("settings", source, {"v": "1"}))
    w1.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "claim", "namespace": source},
            "spec": {
                "storageClassName": rich_namespace.STORAGE_CLASS,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        }
    )
    return source


def test_precheck_missing_storage_class(
    w1: KubeClient, w2: KubeClient, repository: Repository, cleanup: Callable[[str, str], None]
) -> None:
    source = _storage_source(w1, cleanup)
    target = _unique("kf-storage-dst")
    cleanup("worker-2", target)
    absent = _unique("kf-absent-class")
    job = _job(
        "storage", source, target, storage_class_mapping={rich_namespace.STORAGE_CLASS: absent}
    )
    snapshot_id, _, _ = _backup(w1, repository, job)
    engine = _engine()
    requirements = engine.snapshot_requirements(repository, snapshot_id)

    report = engine.precheck(w2, job, requirements)
    assert report.overall == "not_compatible"
    check = _check(report, "storage-classes")
    assert check.status == "not_compatible"
    assert absent in check.message

    with pytest.raises(PrecheckFailed) as stopped:
        engine.restore(w2, repository, job, snapshot_id, Recorder())
    assert stopped.value.report.overall == "not_compatible"
    assert w2.get("v1", "Namespace", target) is None  # nothing written

    result = engine.restore(
        w2,
        repository,
        dataclasses.replace(job, pre_check_flag="ignorePrechecks"),
        snapshot_id,
        Recorder(),
    )
    assert result.precheck is not None
    assert result.precheck.overall == "not_compatible"
    claim = w2.get("v1", "PersistentVolumeClaim", "claim", target)
    assert claim is not None
    assert claim["spec"]["storageClassName"] == absent
    assert w2.get("v1", "ConfigMap", "settings", target) is not None


def test_precheck_uses_the_restoring_jobs_storage_class_mapping(
    w1: KubeClient, w2: KubeClient, repository: Repository, cleanup: Callable[[str, str], None]
) -> None:
    """A mapping set (or changed) after the backup is what the restore applies: check that."""
    source = _storage_source(w1, cleanup)
    unmapped = _job("storage-late", source, _unique("kf-storage-late"))
    snapshot_id, _, _ = _backup(w1, repository, unmapped)
    engine = _engine()
    requirements = engine.snapshot_requirements(repository, snapshot_id)
    assert rich_namespace.STORAGE_CLASS in requirements.storage_classes
    assert _check(engine.precheck(w2, unmapped, requirements), "storage-classes").status == (
        "compatible"
    )

    absent = _unique("kf-absent-class")
    mapped = dataclasses.replace(
        unmapped, storage_class_mapping={rich_namespace.STORAGE_CLASS: absent}
    )
    check = _check(engine.precheck(w2, mapped, requirements), "storage-classes")
    assert check.status == "not_compatible"
    assert absent in check.message


def test_precheck_missing_crd(
    w1: KubeClient, w2: KubeClient, repository: Repository, cleanup: Callable[[str, str], None]
) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.kubeferry-test.io"
    crd_name = f"gadgets.{group}"
    crd = {
        "apiVersion": CRD_API,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "names": {"kind": "Gadget", "listKind": "GadgetList", "plural": "gadgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    source = _namespace(w1, _unique("kf-crd"))
    cleanup("worker-1", source)
    target = _unique("kf-crd-dst")
    cleanup("worker-2", target)
    w1.create(crd)
    try:
        w1.wait_for(
            CRD_API,
            "CustomResourceDefinition",
            crd_name,
            condition=lambda c: any(
                x["type"] == "Established" and x["status"] == "True"
                for x in (c.get("status") or {}).get("conditions") or []
            ),
            timeout=60,
        )
        rich_namespace.create_object(
            w1,
            {
                "apiVersion": f"{group}/v1",
                "kind": "Gadget",
                "metadata": {"name": "one", "namespace": source},
                "spec": {"size": 3},
            },
        )
        job = _job("crd", source, target, resources_to_exclude=("customresourcedefinitions",))
        snapshot_id, _, _ = _backup(w1, repository, job)
        archived = _archived(repository, snapshot_id)
        assert f"gadgets.{group}" in _group_resources(archived)
        assert GROUP_RESOURCE["CustomResourceDefinition"] not in _group_resources(archived)

        engine = _engine()
        requirements = engine.snapshot_requirements(repository, snapshot_id)
        assert crd_name in requirements.crds
        assert crd_name not in requirements.included_crds
        report = engine.precheck(w2, job, requirements)
        assert report.overall == "not_compatible"
        check = _check(report, "crds")
        assert check.status == "not_compatible"
        assert crd_name in check.message
        with pytest.raises(PrecheckFailed):
            engine.restore(w2, repository, job, snapshot_id, Recorder())
        assert w2.get("v1", "Namespace", target) is None
    finally:
        w1.delete(CRD_API, "CustomResourceDefinition", crd_name)


def test_precheck_terminating_namespace(
    plain_source: str,
    w1: KubeClient,
    w2: KubeClient,
    repository: Repository,
    cleanup: Callable[[str, str], None],
) -> None:
    target = _namespace(w2, _unique("kf-terminating"))
    cleanup("worker-2", target)
    held = _configmap("held", target, {"v": "1"})
    held["metadata"]["finalizers"] = ["kubeferry.io/test-hold"]
    w2.create(held)
    job = _job("terminating", plain_source, target)
    snapshot_id, _, _ = _backup(w1, repository, job)
    engine = _engine()
    requirements = engine.snapshot_requirements(repository, snapshot_id)
    try:
        w2.delete("v1", "Namespace", target)
        w2.wait_for(
            "v1",
            "Namespace",
            target,
            condition=lambda ns: (ns.get("status") or {}).get("phase") == "Terminating",
            timeout=30,
        )
        report = engine.precheck(w2, job, requirements)
        check = _check(report, "namespace")
        assert check.status in ("warning", "not_compatible"), check
        assert report.overall != "compatible"
    finally:
        current = w2.get("v1", "ConfigMap", "held", target)
        if current is not None:
            current["metadata"]["finalizers"] = []
            w2.replace(current)


# -- filters --------------------------------------------------------------------------------


def _names(archived: dict[tuple[str, str | None, str], Any], namespace: str) -> set[str]:
    """group_resource/name of the namespaced objects (the Namespace object excepted)."""
    return {f"{gr}/{name}" for gr, ns, name in archived if ns == namespace}


def test_filters_select_what_is_backed_up(
    plain_source: str, w1: KubeClient, repository: Repository
) -> None:
    def backed_up(**options: Any) -> set[str]:
        job = _job("filters", plain_source, **options)
        snapshot_id, _, _ = _backup(w1, repository, job)
        return _names(_archived(repository, snapshot_id), plain_source)

    everything = backed_up()
    assert {"configmaps/same", "configmaps/changed", "secrets/creds", "services/front"} <= (
        everything
    )

    only_configmaps = backed_up(resources_to_include=("configmaps",))
    assert {"configmaps/same", "configmaps/changed"} <= only_configmaps
    assert {name.split("/")[0] for name in only_configmaps} == {"configmaps"}

    no_secrets = backed_up(resources_to_exclude=("secrets",))
    assert not {name for name in no_secrets if name.startswith("secrets/")}
    assert {"configmaps/same", "services/front"} <= no_secrets

    front = backed_up(label_selector="tier=front")
    assert front == {"configmaps/same", "services/front"}


# -- interrupted backups --------------------------------------------------------------------

_KILLED_BACKUP = textwrap.dedent(
    """
    import sys, time
    from reconciler.engines import JobSpec, ObjectEngine
    from reconciler.kube import KubeClient
    from reconciler.repository import FilesystemBackend, Repository

    kubeconfig, root, namespace, snapshot_id = sys.argv[1:5]
    original = FilesystemBackend.put

    def put(self, key, data):
        original(self, key, data)
        if key.startswith("snapshots/"):
            print("PART-STORED", key, flush=True)
            time.sleep(300)  # killed here

    FilesystemBackend.put = put

    class Reporter:
        def total(self, items): pass
        def item_done(self, item, size=0): pass
        def bytes_progress(self, item, done, total): pass
        def warning(self, text, item=""): pass
        def check_cancelled(self): pass

    job = JobSpec(name="killed", namespace=namespace, target_namespace=namespace,
                  source_cluster="worker-1", destination_cluster="worker-2")
    with KubeClient.from_kubeconfig(kubeconfig, "worker-1") as client:
        ObjectEngine().backup(client, Repository(FilesystemBackend(root)), job, snapshot_id,
                              Reporter(), {})
    print("FINISHED", flush=True)
    """
)


def test_killed_backup_leaves_no_snapshot_and_the_next_one_completes(
    sandbox: SandboxInfo, plain_source: str, w1: KubeClient, tmp_path: Path
) -> None:
    root = tmp_path / "repository"
    repository = Repository(FilesystemBackend(root))
    repository.initialize("killed-backup")
    killed_id = _unique("s-killed")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_BACKUP,
            str(sandbox.kubeconfig),
            str(root),
            plain_source,
            killed_id,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    watchdog = threading.Timer(120, process.kill)  # never hang the session
    watchdog.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the first part is stored (or exit)
        assert line.startswith("PART-STORED"), (
            line,
            process.stderr.read() if process.stderr else "",
        )
        os.kill(process.pid, signal.SIGKILL)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    assert killed_id not in repository.list_snapshots()
    assert not repository.snapshot_exists(killed_id)
    assert list((root / "snapshots" / killed_id).rglob("*")), "the kill came before any part"

    job = _job("killed", plain_source)
    next_id, result, _ = _backup(w1, repository, job)
    assert repository.list_snapshots() == [next_id]
    assert result.items >= 4
    assert repository.gc_incomplete(timedelta(0)) == [killed_id]
    assert repository.list_snapshots() == [next_id]


class _FailAfterFirstPart(FilesystemBackend):
    """A backend whose storage fails right after the first snapshot part is written."""

    def put(self, key: str, data: bytes) -> None:
        super().put(key, data)
        if key.startswith("snapshots/"):
            raise RepositoryUnavailable(f"{self.location}: simulated outage after {key}")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key.startswith("snapshots/"):
            raise RepositoryUnavailable(f"{self.location}: simulated outage at {key}")
        return super().put_if_absent(key, data)


def test_failed_repository_write_leaves_no_snapshot(
    plain_source: str, w1: KubeClient, tmp_path: Path
) -> None:
    failing = Repository(_FailAfterFirstPart(tmp_path))
    failing.initialize("failing-writes")
    job = _job("failing", plain_source)
    with pytest.raises(KubeferryError):
        _engine().backup(w1, failing, job, _unique("s-failing"), Recorder(), {})
    healthy = Repository(FilesystemBackend(tmp_path))
    assert healthy.list_snapshots() == []
    next_id, _, _ = _backup(w1, healthy, job)
    assert healthy.list_snapshots() == [next_id]
