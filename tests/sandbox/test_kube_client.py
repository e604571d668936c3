"""reconciler.kube against a real API server: objects as dicts, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.kube import (
    KubeApiError,
    KubeClient,
    KubeConfigError,
    KubeUnreachableError,
)
from reconciler.sandbox import SandboxInfo
from reconciler.sandbox._processes import free_ports


def _configmap(name: str, namespace: str, value: str, **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"value": value},
    }


@pytest.mark.sandbox
def test_create_get_list_replace_delete(
    sandbox: SandboxInfo, make_namespace: Callable[[str], str]
) -> None:
    namespace = make_namespace("worker-1")
    with sandbox.client("worker-1") as client:
        created = client.create(_configmap("one", namespace, "1", app="kf"))
        assert created["metadata"]["uid"]
        client.create(_configmap("two", namespace, "2"))

        assert client.get("v1", "ConfigMap", "one", namespace)["data"] == {"value": "1"}  # type: ignore[index]
        assert client.get("v1", "ConfigMap", "absent", namespace) is None
        labelled = client.list_objects("v1", "ConfigMap", namespace, label_selector="app=kf")
        assert [(cm["kind"], cm["metadata"]["name"]) for cm in labelled] == [("ConfigMap", "one")]

        # ensure never overwrites; replace does
        kept = client.ensure(_configmap("one", namespace, "changed"))
        assert kept["data"] == {"value": "1"}
        replaced = client.replace(_configmap("one", namespace, "changed"))
        assert replaced["data"] == {"value": "changed"}

        with pytest.raises(KubeApiError) as conflict:
            client.create(_configmap("two", namespace, "again"))
        assert conflict.value.status == 409
        assert "\n" not in str(conflict.value)

        assert client.delete("v1", "ConfigMap", "two", namespace) is True
        client.wait_for_deletion("v1", "ConfigMap", "two", namespace, timeout=10)
        assert client.delete("v1", "ConfigMap", "two", namespace) is False


@pytest.mark.sandbox
def test_kinds_are_discovered_not_hard_coded(sandbox: SandboxInfo) -> None:
    with sandbox.client("controller") as client:
        assert client.list_objects("apps/v1", "Deployment", "kube-system") == []
        with pytest.raises(KubeApiError, match="does not serve kind Gizmo") as unknown:
            client.get("example.com/v1", "Gizmo", "x")
        assert unknown.value.status == 404


def test_missing_kubeconfig_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError) as error:
        KubeClient.from_kubeconfig(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.sandbox
def test_unknown_context_is_one_clear_error(sandbox: SandboxInfo) -> None:
    with pytest.raises(KubeConfigError, match="context 'nope'"):
        KubeClient.from_kubeconfig(sandbox.kubeconfig, context="nope")


def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    (closed_port,) = free_ports(1)
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    client = KubeClient.for_server(f"https://127.0.0.1:{closed_port}", token="t", ca_file=ca)
    with client:
        assert client.ready(timeout=1) is False
        with pytest.raises(KubeUnreachableError) as error:
            client.version()
    assert f"https://127.0.0.1:{closed_port}" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.sandbox
def test_standard_kubeconfig_resolution(
    sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    with KubeClient.from_kubeconfig() as default_context:
        assert default_context.server == sandbox.controller.api_url
        assert default_context.ready()
    with KubeClient.from_kubeconfig(context="worker-2") as worker:
        assert worker.server == sandbox.cluster("worker-2").api_url
