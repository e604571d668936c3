"""The sandbox clusters are real: ready API servers, working controller-managers, verified TLS."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import pytest
import yaml

from reconciler.kube import KubeClient, KubeUnreachableError
from reconciler.sandbox import DEFAULT_CLUSTER_NAMES, Sandbox, SandboxInfo

pytestmark = pytest.mark.sandbox


def test_all_three_clusters_are_ready(sandbox: SandboxInfo) -> None:
    assert sandbox.cluster_names == DEFAULT_CLUSTER_NAMES == ("controller", "worker-1", "worker-2")
    assert [c.role for c in sandbox.clusters] == ["controller", "worker", "worker"]
    for name in sandbox.cluster_names:
        with sandbox.client(name) as client:
            assert client.ready()
            assert client.version() == "v1.20.2"
    status = Sandbox(sandbox.directory).status()
    assert status.running, status.problems()
    assert all(cluster.ready for cluster in status.clusters)


def test_namespace_create_read_delete_in_each_cluster(
    sandbox: SandboxInfo, name_prefix: str
) -> None:
    name = name_prefix
    with ExitStack() as stack:
        clients = [stack.enter_context(sandbox.client(n)) for n in sandbox.cluster_names]
        for client in clients:
            created = client.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )
            assert created["metadata"]["name"] == name
        for client in clients:
            read = client.get("v1", "Namespace", name)
            assert read is not None
            assert read["status"]["phase"] == "Active"
            assert name in {ns["metadata"]["name"] for ns in client.list_objects("v1", "Namespace")}
        for client in clients:
            assert client.delete("v1", "Namespace", name) is True
        # the namespace controller finalizes the deletion (about 10 s)
        for client in clients:
            client.wait_for_deletion("v1", "Namespace", name, timeout=90)
            assert client.get("v1", "Namespace", name) is None
            assert client.delete("v1", "Namespace", name) is False


def test_default_service_account_appears_in_a_new_namespace(
    sandbox: SandboxInfo, make_namespace: Callable[[str], str]
) -> None:
    for cluster in sandbox.cluster_names:
        namespace = make_namespace(cluster)
        with sandbox.client(cluster) as client:
            account = client.wait_for("v1", "ServiceAccount", "default", namespace, timeout=60)
            assert account["metadata"]["namespace"] == namespace
            # the root CA publisher is a controller-manager controller too
            client.wait_for("v1", "ConfigMap", "kube-root-ca.crt", namespace, timeout=60)


def test_kubeconfig_has_one_verified_context_per_cluster(sandbox: SandboxInfo) -> None:
    assert sandbox.kubeconfig.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    assert [c["name"] for c in config["contexts"]] == list(sandbox.cluster_names)
    assert config["current-context"] == "controller"
    for entry in config["clusters"]:
        cluster = entry["cluster"]
        assert "insecure-skip-tls-verify" not in cluster
        assert cluster["server"] == sandbox.cluster(entry["name"]).api_url
        assert cluster["certificate-authority"].endswith(f"certs-{entry['name']}/apiserver.crt")


def test_tls_is_verified_against_each_apiservers_own_certificate(sandbox: SandboxInfo) -> None:
    worker_1, worker_2 = sandbox.cluster("worker-1"), sandbox.cluster("worker-2")
    token = yaml.safe_load(sandbox.kubeconfig.read_text())["users"][1]["user"]["token"]
    # worker-1's certificate cannot vouch for worker-2's server
    client = KubeClient.for_server(worker_2.api_url, token=token, ca_file=worker_1.ca_file)
    with client, pytest.raises(KubeUnreachableError, match="certificate verify failed"):
        client.version()
