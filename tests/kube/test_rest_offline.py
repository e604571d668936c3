"""KubeRest behaviour the sandbox cannot show on demand (expired continue tokens, a broken
aggregated API), over httpx.MockTransport, plus how credentials are taken from a KubeClient."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import certifi
import httpx
import pytest

from reconciler.kube import (
    ApiResource,
    KubeApiError,
    KubeClient,
    KubeRest,
    KubeUnreachableError,
    Manifest,
)
from reconciler.kube._rest import _ssl_context

SERVER = "https://kube.example:6443"
CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list"}))


def _status(code: int, message: str) -> httpx.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}
    return httpx.Response(code, json=body)


def _run(
    handler: Callable[[httpx.Request], httpx.Response],
    body: Callable[[KubeRest], Any],
    **kw: Any,
) -> Any:
    async def main() -> Any:
        rest = KubeRest(SERVER, ssl_context=None, transport=httpx.MockTransport(handler), **kw)
        async with rest:
            return await body(rest)

    return anyio.run(main)


def _item(name: str) -> Manifest:
    return {"metadata": {"name": name, "namespace": "ns"}, "data": {}}


def test_an_expired_continue_token_restarts_the_listing_once() -> None:
    requests: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        requests.append(params)
        if len(requests) == 2:  # the first continue token has expired meanwhile
            return _status(410, "The provided continue parameter is too old")
        generation = "new" if len(requests) > 2 else "old"
        if "continue" not in params:
            return httpx.Response(
                200, json={"metadata": {"continue": "t1"}, "items": [_item(f"{generation}-a")]}
            )
        return httpx.Response(200, json={"metadata": {}, "items": [_item(f"{generation}-b")]})

    async def body(rest: KubeRest) -> list[Manifest]:
        return await rest.list(CONFIGMAPS, "ns", label_selector="app=x", page_size=1)

    items = _run(handler, body)
    assert [item["metadata"]["name"] for item in items] == ["new-a", "new-b"]
    assert all((i["apiVersion"], i["kind"]) == ("v1", "ConfigMap") for i in items)
    assert requests == [
        {"limit": "1", "labelSelector": "app=x"},
        {"limit": "1", "labelSelector": "app=x", "continue": "t1"},
        {"limit": "1", "labelSelector": "app=x"},
        {"limit": "1", "labelSelector": "app=x", "continue": "t1"},
    ]


def test_a_second_expiry_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "continue" in request.url.params:
            return _status(410, "The provided continue parameter is too old")
        return httpx.Response(200, json={"metadata": {"continue": "t"}, "items": [_item("a")]})

    async def body(rest: KubeRest) -> list[Manifest]:
        return await rest.list(CONFIGMAPS, "ns")

    with pytest.raises(KubeApiError) as error:
        _run(handler, body)
    assert error.value.status == 410
    assert str(error.value) == (
        f"{SERVER}: list configmaps in ns failed: HTTP 410 "
        "The provided continue parameter is too old"
    )


_DISCOVERY: dict[str, Any] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/api/v1": {
        "resources": [
            {"name": "configmaps", "kind": "ConfigMap", "namespaced": True, "verbs": ["create"]},
            {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list"]},
            {"name": "pods/log", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
            {"name": "nodes", "kind": "Node", "namespaced": False, "verbs": ["list"]},
        ]
    },
    "/apis": {
        "groups": [
            {
                "name": "batch",
                "versions": [{"version": "v1"}, {"version": "v1beta1"}],
                "preferredVersion": {"version": "v1"},
            },
            {
                "name": "metrics.k8s.io",
                "versions": [{"version": "v1beta1"}],
                "preferredVersion": {"version": "v1beta1"},
            },
            {
                "name": "example.com",
                "versions": [{"version": "v1"}, {"version": "v2"}],
                "preferredVersion": {"version": "v2"},
            },
        ]
    },
    "/apis/batch/v1": {
        "resources": [{"name": "jobs", "kind": "Job", "namespaced": True, "verbs": ["list"]}]
    },
    "/apis/batch/v1beta1": {
        "resources": [
            {"name": "jobs", "kind": "Job", "namespaced": True, "verbs": ["list"]},
            {"name": "cronjobs", "kind": "CronJob", "namespaced": True, "verbs": ["list"]},
            {"name": "cronjobs/status", "kind": "CronJob", "namespaced": True, "verbs": ["get"]},
        ]
    },
    "/apis/example.com/v2": {
        "resources": [{"name": "gizmos", "kind": "Gizmo", "namespaced": False, "verbs": ["get"]}]
    },
    "/apis/example.com/v1": {
        "resources": [{"name": "gizmos", "kind": "Gizmo", "namespaced": False, "verbs": ["get"]}]
    },
}


def _discovery(overrides: dict[str, httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in overrides:
            return overrides[path]
        if path not in _DISCOVERY:
            return _status(404, "the server could not find the requested resource")
        return httpx.Response(200, json=_DISCOVERY[path])

    return handler


def test_discovery_prefers_versions_and_skips_broken_groups(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unavailable = _status(503, "the server is currently unable to handle the request")
    handler = _discovery({"/apis/metrics.k8s.io/v1beta1": unavailable})

    async def body(rest: KubeRest) -> list[ApiResource]:
        return await rest.discover()

    with caplog.at_level(logging.WARNING, logger="kubeferry.kube"):
        resources = _run(handler, body)

    assert [(r.api_version, r.resource, r.kind, r.namespaced) for r in resources] == [
        ("v1", "configmaps", "ConfigMap", True),
        ("v1", "pods", "Pod", True),
        ("v1", "nodes", "Node", False),
        ("batch/v1", "jobs", "Job", True),
        ("batch/v1beta1", "cronjobs", "CronJob", True),  # only served by the older version
        ("example.com/v2", "gizmos", "Gizmo", False),
    ]
    assert resources[0].verbs == frozenset({"create"})
    assert [r.group_resource for r in resources][3:] == [
        "jobs.batch",
        "cronjobs.batch",
        "gizmos.example.com",
    ]
    warnings = [r for r in caplog.records if r.name == "kubeferry.kube"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "metrics.k8s.io/v1beta1" in warnings[0].getMessage()
    assert "HTTP 503" in warnings[0].getMessage()


def test_the_core_group_is_not_optional() -> None:
    handler = _discovery({"/api/v1": _status(500, "etcd\nis down")})

    async def body(rest: KubeRest) -> list[ApiResource]:
        return await rest.discover()

    with pytest.raises(KubeApiError) as error:
        _run(handler, body)
    assert error.value.status == 500
    assert str(error.value) == f"{SERVER}: API discovery (/api/v1) failed: HTTP 500 etcd is down"


def test_requests_carry_json_and_the_current_token() -> None:
    seen: list[httpx.Request] = []
    tokens = iter(["Bearer one", "Bearer two"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "DELETE":
            return _status(404, 'configmaps "x" not found')
        return httpx.Response(201, json=json.loads(request.content))

    async def body(rest: KubeRest) -> tuple[Manifest, Manifest, bool]:
        created = await rest.create(CONFIGMAPS, {"metadata": {"name": "x", "namespace": "ns"}})
        patched = await rest.merge_patch(CONFIGMAPS, "x", {"data": {"a": "1"}}, "ns")
        deleted = await rest.delete(CONFIGMAPS, "x", "ns", propagation="Foreground")
        return created, patched, deleted

    created, patched, deleted = _run(handler, body, authorization=lambda: next(tokens))
    assert created == {"metadata": {"name": "x", "namespace": "ns"}}
    assert patched == {"data": {"a": "1"}}
    assert deleted is False
    create, patch, delete = seen
    assert (create.method, create.url.path) == ("POST", "/api/v1/namespaces/ns/configmaps")
    assert create.headers["content-type"] == "application/json"
    assert create.headers["accept"] == "application/json"
    assert create.headers["authorization"] == "Bearer one"  # read once, reused (60 s)
    assert (patch.method, patch.url.path) == ("PATCH", "/api/v1/namespaces/ns/configmaps/x")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.headers["authorization"] == "Bearer one"
    assert json.loads(delete.content) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Foreground",
    }


def test_paths() -> None:
    deployments = ApiResource("apps", "v1", "deployments", "Deployment", True, frozenset())
    namespaces = ApiResource("", "v1", "namespaces", "Namespace", False, frozenset())
    assert deployments.path() == "/apis/apps/v1/deployments"
    assert deployments.path("ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert deployments.path("ns", "web") == "/apis/apps/v1/namespaces/ns/deployments/web"
    assert namespaces.path("ignored", "kube-system") == "/api/v1/namespaces/kube-system"
    assert (deployments.api_version, deployments.group_resource) == ("apps/v1", "deployments.apps")
    assert (namespaces.api_version, namespaces.group_resource) == ("v1", "namespaces")


def test_credentials_and_tls_come_from_the_kube_configuration() -> None:
    ca_file = Path(certifi.where())
    with KubeClient.for_server(SERVER, token="secret-token", ca_file=ca_file) as kube:
        configuration = kube.api_client.configuration
        context = _ssl_context(configuration)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname

        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"versions": ["v1"]})

        async def main() -> None:
            async with kube.rest(transport=httpx.MockTransport(handler)) as rest:
                assert rest.server == SERVER
                await rest.get(CONFIGMAPS, "x", "ns")

        anyio.run(main)
        assert seen[0].headers["authorization"] == "Bearer secret-token"
        assert str(seen[0].url) == f"{SERVER}/api/v1/namespaces/ns/configmaps/x"

        configuration.verify_ssl = False  # only when the configuration itself says so
        assert _ssl_context(configuration).verify_mode == ssl.CERT_NONE


def test_discovery_raises_plain_errors_and_skips_hanging_groups() -> None:
    def failing(error: httpx.TransportError) -> Callable[[httpx.Request], httpx.Response]:
        base = _discovery({})

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/apis/example.com/v2":
                raise error
            return base(request)

        return handler

    async def body(rest: KubeRest) -> list[ApiResource]:
        return await rest.discover()

    refused = failing(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(KubeUnreachableError) as error:  # not an ExceptionGroup
        _run(refused, body)
    assert str(error.value) == (
        f"cannot reach the Kubernetes API at {SERVER} (API discovery (/apis/example.com/v2)): "
        "[Errno 111] Connection refused"
    )

    hanging = failing(httpx.ReadTimeout(""))
    resources = _run(hanging, body)
    assert "gizmos.example.com" not in {r.group_resource for r in resources}
    assert "cronjobs.batch" in {r.group_resource for r in resources}


def test_a_failed_connection_is_tried_once_more_and_a_timeout_is_not() -> None:
    """A dropped TLS handshake (seen once against the sandbox's apiserver) sent nothing, so
    any request may be tried again, once; a timeout may have reached the server: no retry."""
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ConnectError("[SSL: SSLV3_ALERT_UNEXPECTED_MESSAGE]", request=request)
        return httpx.Response(201, json=_item("a"))

    created = _run(flaky, lambda rest: rest.create(CONFIGMAPS, _item("a"), "ns"))
    assert created["metadata"]["name"] == "a"
    assert calls == ["POST", "POST"]

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ConnectError("connection refused", request=request)

    calls.clear()
    with pytest.raises(KubeUnreachableError, match="connection refused"):
        _run(down, lambda rest: rest.get(CONFIGMAPS, "a", "ns"))
    assert calls == ["GET", "GET"]

    def slow(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadTimeout("timed out", request=request)

    calls.clear()
    with pytest.raises(KubeUnreachableError):
        _run(slow, lambda rest: rest.create(CONFIGMAPS, _item("a"), "ns"))
    assert calls == ["POST"]
