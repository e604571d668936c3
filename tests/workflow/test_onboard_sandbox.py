"""Application-slice onboarding end to end: the KubeSlice CRDs (the project's minimal copies)
on the sandbox controller cluster, a Project namespace with a SliceConfig, plan/apply."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from state import Ledger

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

CRD_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "kubeslice-crds"
API = "controller.kubeslice.io/v1alpha1"

_INVENTORY = """\
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {{name: controller}}
spec: {{context: controller, role: controller}}
---
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {{name: worker-1}}
spec: {{context: worker-1, role: worker}}
---
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {{name: worker-2}}
spec: {{context: worker-2, role: worker}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationRepository
metadata: {{name: local}}
spec:
  filesystem: {{path: ./repository}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationSlice
metadata: {{name: w1-to-w2}}
spec: {{sourceCluster: worker-1, destinationCluster: worker-2, repository: local}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ApplicationSlice
metadata: {{name: blue}}
spec: {{controllerCluster: controller, project: {project}, clusters: [worker-1, worker-2]}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationJob
metadata: {{name: copy}}
spec: {{replicationSliceName: w1-to-w2, namespace: {ns}{onboard}}}
"""
_ONBOARD = ", onboard: {applicationSlice: blue}"


def _kubeferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _install_crds(sandbox: SandboxInfo) -> None:
    # left installed: idempotent, and other tests on the controller may be using them
    with sandbox.client("controller") as client:
        names = []
        for path in sorted(CRD_DIR.glob("*.controller.kubeslice.io.yaml")):
            crd = yaml.safe_load(path.read_text())
            client.ensure(crd)
            names.append(crd["metadata"]["name"])
        for name in names:
            client.wait_for(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                name,
                condition=_established,
                timeout=60,
            )


@pytest.fixture
def onboarding(sandbox: SandboxInfo, tmp_path: Path) -> Iterator[dict[str, Any]]:
    _install_crds(sandbox)
    suffix = uuid.uuid4().hex[:8]
    namespace, project = f"ob-{suffix}", f"p{suffix}"
    project_ns = f"kubeslice-{project}"
    with sandbox.client("worker-1") as client:
        client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        client.ensure(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": namespace},
                "data": {"value": "1"},
            }
        )
    with sandbox.client("controller") as client:
        client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": project_ns}})
    inventory = tmp_path / "kubeferry.yaml"

    def write(*, onboard: bool) -> None:
        inventory.write_text(
            _INVENTORY.format(ns=namespace, project=project, onboard=_ONBOARD if onboard else "")
        )

    def slice_config(entries: list[dict[str, Any]]) -> None:
        with sandbox.client("controller") as client:
            client.create(
                {
                    "apiVersion": API,
                    "kind": "SliceConfig",
                    "metadata": {"name": "blue", "namespace": project_ns},
                    "spec": {
                        "maxClusters": 4,
                        "clusters": ["worker-1", "worker-2"],
                        "namespaceIsolationProfile": {"applicationNamespaces": entries},
                    },
                }
            )

    def entries() -> list[dict[str, Any]]:
        with sandbox.client("controller") as client:
            found = client.get(API, "SliceConfig", "blue", project_ns)
        assert found is not None
        result: list[dict[str, Any]] = found["spec"]["namespaceIsolationProfile"][
            "applicationNamespaces"
        ]
        return result

    write(onboard=True)
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    env.pop("KUBEFERRY_LEDGER", None)
    yield {
        "inventory": str(inventory),
        "namespace": namespace,
        "env": env,
        "dir": tmp_path,
        "write": write,
        "slice_config": slice_config,
        "entries": entries,
    }
    for cluster in ("worker-1", "worker-2"):
        with sandbox.client(cluster) as client:
            client.delete("v1", "Namespace", namespace)
    with sandbox.client("controller") as client:
        client.delete("v1", "Namespace", project_ns)


def test_onboard_after_replication_is_idempotent_and_removable(onboarding) -> None:  # type: ignore[no-untyped-def]
    inv, env, ns = onboarding["inventory"], onboarding["env"], onboarding["namespace"]
    other = {"namespace": "other", "clusters": ["worker-1"]}
    onboarding["slice_config"]([other])
    assert _kubeferry("validate", "-f", inv, env=env).returncode == 0

    first = _kubeferry("plan", "-f", inv, env=env)
    assert first.returncode == 0, first.stderr
    assert "~ Onboarding/copy  onboard" in first.stdout
    assert "» ReplicationJob/copy" in first.stdout

    applied = _kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert onboarding["entries"]() == [other, {"namespace": ns, "clusters": ["worker-2"]}]

    again = _kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout

    ledger_path = onboarding["dir"] / ".kubeferry" / "ledger.sqlite"
    with Ledger.open(ledger_path, create=False) as ledger:
        [event] = [e for e in ledger.events(job="copy") if e.kind == "onboarding"]
        assert event.data["state"] == "added"
        assert event.data["namespace"] == ns
        assert event.data["cluster"] == "worker-2"

    onboarding["write"](onboard=False)
    removal = _kubeferry("plan", "-f", inv, env=env)
    assert "~ Onboarding/copy  onboard" in removal.stdout
    assert f"onboard removed: remove worker-2/{ns}" in removal.stdout
    applied = _kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert onboarding["entries"]() == [other]  # only the entry kubeferry added is gone
    settled = _kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env)
    assert settled.returncode == 0, settled.stdout + settled.stderr


def test_namespace_already_onboarded_on_the_destination_is_not_onboarded(onboarding) -> None:  # type: ignore[no-untyped-def]
    inv, env, ns = onboarding["inventory"], onboarding["env"], onboarding["namespace"]
    existing = [{"namespace": ns, "clusters": ["worker-1", "worker-2"]}]
    onboarding["slice_config"](existing)

    plan = _kubeferry("plan", "-f", inv, env=env)
    problem = f"x Onboarding/copy: namespace {ns} is already onboarded on worker-2 in SliceConfig"
    assert problem in plan.stdout, plan.stdout
    assert "also onboarded from worker-1" in plan.stdout  # namespace sameness is reported

    _kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert onboarding["entries"]() == existing
    ledger_path = onboarding["dir"] / ".kubeferry" / "ledger.sqlite"
    with Ledger.open(ledger_path, create=False) as ledger:
        assert not [e for e in ledger.events(job="copy") if e.kind == "onboarding"]
