"""`quiesce: true`: writers at zero while volume data is copied, back afterwards (sandbox)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from reconciler.kube import KubeClient, Manifest
from reconciler.volumes import QUIESCED_ANNOTATION, quiesced

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox


def _workload(kind: str, name: str, namespace: str, replicas: int) -> Manifest:
    labels = {"app": name}
    spec: Manifest = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def namespace(sandbox: SandboxInfo) -> Iterator[tuple[KubeClient, str]]:
    name = f"kf-quiesce-{uuid.uuid4().hex[:6]}"
    with sandbox.client("worker-1") as client:
        client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        client.create(_workload("Deployment", "web", name, 2))
        client.create(_workload("StatefulSet", "db", name, 1))
        client.create(_workload("Deployment", "idle", name, 0))
        yield client, name
        client.delete("v1", "Namespace", name)


def _state(client: KubeClient, namespace: str) -> dict[str, tuple[int, str | None]]:
    found = {}
    for kind in ("Deployment", "StatefulSet"):
        for obj in client.list_objects("apps/v1", kind, namespace):
            annotations = obj["metadata"].get("annotations") or {}
            found[obj["metadata"]["name"]] = (
                obj["spec"]["replicas"],
                annotations.get(QUIESCED_ANNOTATION),
            )
    return found


def test_workloads_are_at_zero_inside_and_restored_after(
    namespace: tuple[KubeClient, str],
) -> None:
    client, name = namespace
    with quiesced(client, name, timeout=30) as scaled:
        assert sorted(scaled) == ["Deployment/web", "StatefulSet/db"]  # idle stays untouched
        assert _state(client, name) == {"web": (0, "2"), "db": (0, "1"), "idle": (0, None)}
    assert _state(client, name) == {"web": (2, None), "db": (1, None), "idle": (0, None)}


def test_workloads_are_restored_when_the_copy_fails(namespace: tuple[KubeClient, str]) -> None:
    client, name = namespace
    with pytest.raises(RuntimeError, match="copy failed"), quiesced(client, name, timeout=30):
        raise RuntimeError("copy failed")
    assert _state(client, name)["web"] == (2, None)


def test_a_run_that_died_quiesced_is_repaired_by_the_next(
    namespace: tuple[KubeClient, str],
) -> None:
    client, name = namespace
    # what a killed run leaves behind: scaled to zero with the replicas recorded
    web = client.get("apps/v1", "Deployment", "web", name)
    assert web is not None
    web["metadata"].setdefault("annotations", {})[QUIESCED_ANNOTATION] = "2"
    web["spec"]["replicas"] = 0
    client.replace(web)
    with quiesced(client, name, timeout=30):
        # resumed first, then quiesced again with its real replica count recorded
        assert _state(client, name)["web"] == (0, "2")
    assert _state(client, name)["web"] == (2, None)
