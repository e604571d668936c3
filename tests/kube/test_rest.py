"""KubeRest against the real sandbox API servers (Kubernetes 1.20): discovery, paging, writes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import certifi
import pytest

from reconciler.kube import (
    ApiResource,
    KubeApiError,
    KubeClient,
    KubeError,
    KubeRest,
    KubeUnreachableError,
    Manifest,
)
from reconciler.sandbox import SandboxInfo
from reconciler.sandbox._processes import free_ports

pytestmark = pytest.mark.sandbox

CLUSTER = "worker-1"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(sandbox: SandboxInfo) -> Iterator[KubeClient]:
    with sandbox.client(CLUSTER) as kube:
        yield kube


@pytest.fixture
def namespace(client: KubeClient) -> Iterator[str]:
    name = _unique("kf-rest")
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    client.delete("v1", "Namespace", name)  # finalizes in the background


def _by_name(resources: list[ApiResource]) -> dict[str, ApiResource]:
    return {resource.group_resource: resource for resource in resources}


def _configmap(name: str, namespace: str, **labels: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"value": name},
    }


def _run(client: KubeClient, body: Callable[[KubeRest], Any], **kw: Any) -> Any:
    """Run ``body(rest)`` in a fresh event loop with a KubeRest made (and closed) inside it."""

    async def main() -> Any:
        async with client.rest(**kw) as rest:
            return await body(rest)

    return anyio.run(main)


def test_discovery_lists_every_kind_at_its_preferred_version(client: KubeClient) -> None:
    from reconciler.kube._access import api_groups

    preferred = api_groups(client)  # the kubernetes package's view, as an independent oracle

    async def body(rest: KubeRest) -> list[ApiResource]:
        return await rest.discover()

    resources: list[ApiResource] = _run(client, body)
    found = _by_name(resources)

    configmaps = found["configmaps"]
    assert (configmaps.group, configmaps.version, configmaps.kind) == ("", "v1", "ConfigMap")
    assert configmaps.namespaced
    assert {"create", "list", "get", "patch", "delete"} <= configmaps.verbs
    assert configmaps.api_version == "v1"
    assert configmaps.path("ns", "x") == "/api/v1/namespaces/ns/configmaps/x"

    deployments = found["deployments.apps"]
    assert deployments.version == preferred["apps"] == "v1"
    assert deployments.api_version == "apps/v1"
    assert deployments.kind == "Deployment"

    assert not found["namespaces"].namespaced
    assert (
        found["clusterroles.rbac.authorization.k8s.io"].version
        == preferred["rbac.authorization.k8s.io"]
    )

    # 1.20: batch prefers v1 (Jobs), CronJobs exist only in v1beta1 and must not be lost
    assert found["jobs.batch"].version == "v1"
    cronjobs = found["cronjobs.batch"]
    assert (cronjobs.api_version, cronjobs.kind) == ("batch/v1beta1", "CronJob")

    assert not [r for r in resources if "/" in r.resource], "subresources are excluded"
    keys = [(r.group, r.resource) for r in resources]
    assert len(keys) == len(set(keys)), "each resource once"
    # every group the server advertises (and that answers) is represented at its preference
    groups = {r.group: r.version for r in resources if r.group in preferred}
    for group, version in groups.items():
        assert any(r.group == group and r.version == preferred[group] for r in resources), (
            group,
            version,
        )


def test_a_new_custom_resource_is_discovered(client: KubeClient) -> None:
    group = f"kf{uuid.uuid4().hex[:8]}.test.kubeferry.io"
    crd_name = f"widgets.{group}"
    crd: Manifest = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
            },
            "versions": [
                {
                    "name": "v1alpha1",
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

    def established(obj: Manifest) -> bool:
        conditions = (obj.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    async def body(rest: KubeRest) -> tuple[ApiResource | None, ApiResource]:
        before = _by_name(await rest.discover())
        crds = before["customresourcedefinitions.apiextensions.k8s.io"]
        assert not crds.namespaced
        await rest.create(crds, crd)
        await rest.wait_for(crds, crd_name, condition=established, timeout=30)
        widgets: ApiResource | None = None
        with anyio.fail_after(30):  # /apis catches up with a new CRD within moments
            while widgets is None:
                widgets = _by_name(await rest.discover()).get(f"widgets.{group}")
                if widgets is None:
                    await anyio.sleep(0.5)
        # no Widget is created: the sandbox's 1.20.2 apiserver (built with a newer Go) crashes
        # on custom resource writes (reflect2 fault in json-iterator), see the report
        return before.get(f"widgets.{group}"), widgets

    try:
        before, widgets = _run(client, body)
    finally:
        client.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name)

    assert before is None
    assert widgets == ApiResource(
        group=group,
        version="v1alpha1",
        resource="widgets",
        kind="Widget",
        namespaced=True,
        verbs=widgets.verbs,
    )
    assert {"create", "list", "delete"} <= widgets.verbs
    assert widgets.path("ns", "w1") == f"/apis/{group}/v1alpha1/namespaces/ns/widgets/w1"


def test_list_pages_through_a_thousand_objects(client: KubeClient, namespace: str) -> None:
    count = 1203
    run = _unique("run")
    names = [f"cm-{index:04d}" for index in range(count)]

    async def body(rest: KubeRest) -> tuple[list[Manifest], list[Manifest], list[Manifest]]:
        configmaps = _by_name(await rest.discover())["configmaps"]
        limiter = anyio.CapacityLimiter(64)

        async def create(name: str) -> None:
            async with limiter:
                await rest.create(configmaps, _configmap(name, namespace, run=run))

        async with anyio.create_task_group() as tasks:
            for name in names:
                tasks.start_soon(create, name)

        everything = await rest.list(configmaps, namespace, page_size=100)
        selected = await rest.list(
            configmaps, namespace, label_selector=f"run={run}", page_size=100
        )
        cluster_wide = await rest.list(configmaps, label_selector=f"run={run}", page_size=250)
        return everything, selected, cluster_wide

    everything, selected, cluster_wide = _run(client, body, max_connections=32)

    all_names = [item["metadata"]["name"] for item in everything]
    assert len(all_names) == len(set(all_names)), "no object listed twice across pages"
    assert set(names) <= set(all_names)
    assert set(all_names) - set(names) <= {"kube-root-ca.crt"}
    for listing in (selected, cluster_wide):
        assert sorted(item["metadata"]["name"] for item in listing) == names
    assert all(item["apiVersion"] == "v1" and item["kind"] == "ConfigMap" for item in everything)
    assert {item["metadata"]["namespace"] for item in cluster_wide} == {namespace}


def test_create_get_patch_replace_delete(client: KubeClient, namespace: str) -> None:
    async def body(rest: KubeRest) -> dict[str, Any]:
        configmaps = _by_name(await rest.discover())["configmaps"]
        seen: dict[str, Any] = {}
        created = await rest.create(configmaps, _configmap("one", namespace, app="kf"))
        seen["created"] = created
        with pytest.raises(KubeApiError) as conflict:
            await rest.create(configmaps, _configmap("one", namespace))
        seen["conflict"] = conflict.value
        seen["patched"] = await rest.merge_patch(
            configmaps, "one", {"metadata": {"labels": {"app": "changed", "extra": "x"}}}, namespace
        )
        seen["got"] = await rest.get(configmaps, "one", namespace)
        seen["missing"] = await rest.get(configmaps, "absent", namespace)
        # replace without resourceVersion: last writer wins
        replacement = _configmap("one", namespace)
        replacement["data"] = {"value": "replaced"}
        seen["replaced"] = await rest.replace(configmaps, replacement)
        stale_body = _configmap("one", namespace)
        stale_body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        with pytest.raises(KubeApiError) as stale:
            await rest.replace(configmaps, stale_body)
        seen["stale"] = stale.value
        with pytest.raises(KubeApiError) as absent_patch:
            await rest.merge_patch(configmaps, "absent", {"data": {"a": "b"}}, namespace)
        seen["absent_patch"] = absent_patch.value
        seen["waited"] = await rest.wait_for(
            configmaps,
            "one",
            namespace,
            condition=lambda obj: obj["data"] == {"value": "replaced"},
            timeout=5,
        )
        with pytest.raises(KubeError, match="timed out") as timeout:
            await rest.wait_for(
                configmaps, "one", namespace, condition=lambda obj: False, timeout=0.5
            )
        seen["timeout"] = timeout.value
        seen["deleted"] = await rest.delete(configmaps, "one", namespace, propagation="Foreground")
        # the propagation policy reached the server: the object waits for the GC's finalizer
        seen["deleting"] = await rest.get(configmaps, "one", namespace)
        # (not relying on the GC's timing: release it ourselves)
        try:
            await rest.merge_patch(configmaps, "one", {"metadata": {"finalizers": None}}, namespace)
        except KubeApiError as gone:
            if gone.status != 404:
                raise
        await rest.wait_deleted(configmaps, "one", namespace, timeout=10)
        seen["after"] = await rest.get(configmaps, "one", namespace)
        seen["deleted_again"] = await rest.delete(configmaps, "one", namespace)
        return seen

    seen = _run(client, body)
    assert seen["created"]["metadata"]["uid"]
    assert seen["created"]["metadata"]["labels"] == {"app": "kf"}

    conflict: KubeApiError = seen["conflict"]
    assert conflict.status == 409
    assert str(conflict).startswith(f"{client.server}: create configmaps {namespace}/one failed:")
    assert "HTTP 409" in str(conflict)
    assert "already exists" in str(conflict)
    assert "\n" not in str(conflict)

    assert seen["patched"]["metadata"]["labels"] == {"app": "changed", "extra": "x"}
    assert seen["got"]["metadata"]["labels"] == {"app": "changed", "extra": "x"}
    assert seen["got"]["data"] == {"value": "one"}
    assert seen["missing"] is None
    assert seen["replaced"]["data"] == {"value": "replaced"}
    assert seen["stale"].status == 409
    assert seen["absent_patch"].status == 404
    assert seen["waited"]["data"] == {"value": "replaced"}
    assert "ConfigMap" in str(seen["timeout"])
    assert client.server in str(seen["timeout"])
    assert seen["deleted"] is True
    deleting = seen["deleting"]
    if deleting is not None:  # unless the GC was already done
        assert deleting["metadata"]["deletionTimestamp"]
        assert "foregroundDeletion" in deleting["metadata"]["finalizers"]
    assert seen["after"] is None
    assert seen["deleted_again"] is False


def test_cluster_scoped_objects_ignore_a_namespace(client: KubeClient) -> None:
    name = _unique("kf-rest-ns")

    async def body(rest: KubeRest) -> tuple[Manifest, Manifest | None]:
        namespaces = _by_name(await rest.discover())["namespaces"]
        created = await rest.create(
            namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        got = await rest.get(namespaces, name, namespace="ignored")
        await rest.delete(namespaces, name)
        return created, got

    created, got = _run(client, body)
    assert created["metadata"]["name"] == name
    assert got is not None
    assert got["metadata"]["uid"] == created["metadata"]["uid"]


def test_a_wrong_token_is_one_line_401(sandbox: SandboxInfo) -> None:
    cluster = sandbox.cluster(CLUSTER)
    with KubeClient.for_server(cluster.api_url, token="not-a-token", ca_file=cluster.ca_file) as kc:

        async def body(rest: KubeRest) -> None:
            await rest.discover()

        with pytest.raises(KubeApiError) as error:
            _run(kc, body)
    assert error.value.status == 401
    message = str(error.value)
    assert message.startswith(f"{cluster.api_url}: API discovery (/api) failed: HTTP 401")
    assert "Unauthorized" in message
    assert "\n" not in message
    assert "not-a-token" not in message


def test_an_unreachable_server_names_itself(sandbox: SandboxInfo) -> None:
    cluster = sandbox.cluster(CLUSTER)
    server = f"https://127.0.0.1:{free_ports(1)[0]}"
    with KubeClient.for_server(server, token="t", ca_file=cluster.ca_file) as kc:

        async def body(rest: KubeRest) -> None:
            configmaps = ApiResource("", "v1", "configmaps", "ConfigMap", True, frozenset())
            await rest.get(configmaps, "x", "default")

        with pytest.raises(KubeUnreachableError) as error:
            _run(kc, body)
    message = str(error.value)
    assert message.startswith(f"cannot reach the Kubernetes API at {server} (get configmaps")
    assert "\n" not in message


def test_tls_is_verified_against_the_configured_ca(sandbox: SandboxInfo) -> None:
    cluster = sandbox.cluster(CLUSTER)
    public_cas = Path(certifi.where())  # does not include the sandbox's private CA
    with KubeClient.for_server(cluster.api_url, token="t", ca_file=public_cas) as kc:

        async def body(rest: KubeRest) -> None:
            await rest.discover()

        with pytest.raises(KubeUnreachableError, match="certificate verify failed"):
            _run(kc, body)
