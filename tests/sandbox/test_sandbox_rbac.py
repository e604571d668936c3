"""RBAC is enforced: a token bound to a namespaced Role is denied outside its namespace."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from reconciler.kube import KubeApiError, KubeClient, Manifest, can_i
from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox


def _has_token_secret(account: Manifest) -> bool:
    return bool(account.get("secrets"))


def _configmap(name: str, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    }


def test_role_bound_token_is_denied_outside_its_namespace(
    sandbox: SandboxInfo, make_namespace: Callable[[str], str]
) -> None:
    cluster = sandbox.cluster("worker-2")
    allowed, denied = make_namespace(cluster.name), make_namespace(cluster.name)
    with sandbox.client(cluster.name) as admin:
        admin.create(_configmap("visible", allowed))
        admin.create(_configmap("hidden", denied))
        admin.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-configmaps", "namespace": allowed},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                ],
            }
        )
        admin.create(
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "reader", "namespace": allowed}}
        )  # fmt: skip
        admin.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader", "namespace": allowed},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": allowed}],
            }
        )
        # Kubernetes 1.20's tokens controller creates a token Secret for each ServiceAccount
        account = admin.wait_for(
            "v1", "ServiceAccount", "reader", allowed, condition=_has_token_secret, timeout=60
        )
        secret = admin.wait_for("v1", "Secret", account["secrets"][0]["name"], allowed)
        token = base64.b64decode(secret["data"]["token"]).decode()

        with KubeClient.for_server(cluster.api_url, token=token, ca_file=cluster.ca_file) as reader:
            names = {
                cm["metadata"]["name"] for cm in reader.list_objects("v1", "ConfigMap", allowed)
            }
            assert "visible" in names
            assert reader.get("v1", "ConfigMap", "visible", allowed) is not None

            assert can_i(reader, "list", "configmaps", namespace=allowed)
            assert not can_i(reader, "list", "configmaps", namespace=denied)
            assert not can_i(reader, "create", "configmaps", namespace=allowed)

            with pytest.raises(KubeApiError) as outside:
                reader.list_objects("v1", "ConfigMap", denied)
            assert outside.value.status == 403
            with pytest.raises(KubeApiError) as read_outside:
                reader.get("v1", "ConfigMap", "hidden", denied)
            assert read_outside.value.status == 403
            with pytest.raises(KubeApiError) as cluster_wide:
                reader.list_objects("v1", "Namespace")
            assert cluster_wide.value.status == 403
            with pytest.raises(KubeApiError) as write_inside:
                reader.create(_configmap("not-allowed", allowed))
            assert write_inside.value.status == 403


def test_unknown_token_is_rejected(sandbox: SandboxInfo) -> None:
    cluster = sandbox.cluster("controller")
    with KubeClient.for_server(cluster.api_url, token="not-a-token", ca_file=cluster.ca_file) as c:
        with pytest.raises(KubeApiError) as rejected:
            c.version()
        assert rejected.value.status == 401
        assert "not-a-token" not in str(rejected.value)
