"""Application-slice onboarding end to end: the KubeSlice CRDs (the project's minimal copies)
on the sandbox controller cluster, a Project namespace with a SliceConfig, plan/apply."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from state import Ledger
from tests._environment import kubeferry, subprocess_env
from tests._inventory import (
    cluster,
    document,
    filesystem_repository,
    inventory,
    job,
    replication_slice,
)
from tests._kube_objects import config_map, delete_namespace
from tests._kube_objects import namespace as kube_namespace
from tests.fixtures.kubeslice_crds import install_controller_crds

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox

API = "controller.kubeslice.io/v1alpha1"


def _inventory(namespace: str, project: str, *, onboard: bool) -> str:
    onboarding = {"onboard": {"applicationSlice": "blue"}} if onboard else {}
    return inventory(
        cluster("controller", role="controller"),
        cluster("worker-1"),
        cluster("worker-2"),
        filesystem_repository("local"),
        replication_slice("w1-to-w2", "worker-1", "worker-2", "local"),
        document(
            "ApplicationSlice",
            "blue",
            {
                "controllerCluster": "controller",
                "project": project,
                "clusters": ["worker-1", "worker-2"],
            },
        ),
        job("copy", "w1-to-w2", namespace, **onboarding),
    )


@pytest.fixture
def onboarding(sandbox: SandboxInfo, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with sandbox.client("controller") as client:
        install_controller_crds(client)  # left installed: shared and idempotent
    suffix = uuid.uuid4().hex[:8]
    namespace, project = f"ob-{suffix}", f"p{suffix}"
    project_ns = f"kubeslice-{project}"
    with sandbox.client("worker-1") as client:
        client.ensure(kube_namespace(namespace))
        client.ensure(config_map("settings", namespace, {"value": "1"}))
    with sandbox.client("controller") as client:
        client.ensure(kube_namespace(project_ns))
    inventory = tmp_path / "kubeferry.yaml"

    def write(*, onboard: bool) -> None:
        inventory.write_text(_inventory(namespace, project, onboard=onboard))

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
    env = subprocess_env(sandbox.kubeconfig)
    yield {
        "inventory": str(inventory),
        "namespace": namespace,
        "env": env,
        "dir": tmp_path,
        "write": write,
        "slice_config": slice_config,
        "entries": entries,
    }
    delete_namespace(sandbox, namespace)
    delete_namespace(sandbox, project_ns, ["controller"])


def test_onboard_after_replication_is_idempotent_and_removable(onboarding) -> None:  # type: ignore[no-untyped-def]
    inv, env, ns = onboarding["inventory"], onboarding["env"], onboarding["namespace"]
    other = {"namespace": "other", "clusters": ["worker-1"]}
    onboarding["slice_config"]([other])
    assert kubeferry("validate", "-f", inv, env=env).returncode == 0

    first = kubeferry("plan", "-f", inv, env=env)
    assert first.returncode == 0, first.stderr
    assert "~ Onboarding/copy  onboard" in first.stdout
    assert "» ReplicationJob/copy" in first.stdout

    applied = kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert onboarding["entries"]() == [other, {"namespace": ns, "clusters": ["worker-2"]}]

    again = kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout

    ledger_path = onboarding["dir"] / ".kubeferry" / "ledger.sqlite"
    with Ledger.open(ledger_path, create=False) as ledger:
        [event] = [e for e in ledger.events(job="copy") if e.kind == "onboarding"]
        assert event.data["state"] == "added"
        assert event.data["namespace"] == ns
        assert event.data["cluster"] == "worker-2"

    onboarding["write"](onboard=False)
    removal = kubeferry("plan", "-f", inv, env=env)
    assert "~ Onboarding/copy  onboard" in removal.stdout
    assert f"onboard removed: remove worker-2/{ns}" in removal.stdout
    applied = kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert onboarding["entries"]() == [other]  # only the entry kubeferry added is gone
    settled = kubeferry("plan", "-f", inv, "--detailed-exitcode", env=env)
    assert settled.returncode == 0, settled.stdout + settled.stderr


def test_namespace_already_onboarded_on_the_destination_is_not_onboarded(onboarding) -> None:  # type: ignore[no-untyped-def]
    inv, env, ns = onboarding["inventory"], onboarding["env"], onboarding["namespace"]
    existing = [{"namespace": ns, "clusters": ["worker-1", "worker-2"]}]
    onboarding["slice_config"](existing)

    plan = kubeferry("plan", "-f", inv, env=env)
    problem = f"x Onboarding/copy: namespace {ns} is already onboarded on worker-2 in SliceConfig"
    assert problem in plan.stdout, plan.stdout
    assert "also onboarded from worker-1" in plan.stdout  # namespace sameness is reported

    kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert onboarding["entries"]() == existing
    ledger_path = onboarding["dir"] / ".kubeferry" / "ledger.sqlite"
    with Ledger.open(ledger_path, create=False) as ledger:
        assert not [e for e in ledger.events(job="copy") if e.kind == "onboarding"]
