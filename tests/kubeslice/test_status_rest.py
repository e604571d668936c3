"""The two REST calls status write-back makes, over httpx.MockTransport: a merge patch of the
status subresource and a paged blocking list (the sandbox test makes them for real)."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from reconciler.kube import KubeApiError, KubeRest
from reconciler.kubeslice import StatusTarget
from reconciler.kubeslice._status import JOB_CONFIGS, KubeStatusTransport

SERVER = "https://kube.example:6443"
PATH = "/apis/controller.kubeslice.io/v1alpha1/namespaces/kubeslice-acme/replicationjobconfigs"


def _rest(handler: httpx.MockTransport) -> KubeRest:
    return KubeRest(SERVER, ssl_context=None, transport=handler, max_connections=1)


def test_status_merge_patch_goes_to_the_status_subresource() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"metadata": {"name": "web"}, "status": {"x": 1}})

    rest = _rest(httpx.MockTransport(handler))
    patch = {"status": {"backup": {"phase": "InProgress", "failureReason": None}}}
    answer = rest.blocking.merge_patch(
        JOB_CONFIGS, "web", patch, "kubeslice-acme", subresource="status"
    )
    assert answer["status"] == {"x": 1}
    [request] = seen
    assert request.method == "PATCH"
    assert request.url.path == f"{PATH}/web/status"
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(request.content) == patch  # nulls are sent: they remove old fields

    async def patch_async() -> None:
        await rest.merge_patch(JOB_CONFIGS, "web", patch, "kubeslice-acme", subresource="status")

    anyio.run(patch_async)
    assert seen[-1].url.path == f"{PATH}/web/status"
    rest.blocking.merge_patch(JOB_CONFIGS, "web", patch, "kubeslice-acme")  # no subresource
    assert seen[-1].url.path == f"{PATH}/web"


def test_a_failed_status_patch_names_the_subresource() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"kind": "Status", "status": "Failure", "message": "forbidden", "code": 403}
        return httpx.Response(403, json=body)

    rest = _rest(httpx.MockTransport(handler))
    with pytest.raises(KubeApiError) as caught:
        rest.blocking.merge_patch(JOB_CONFIGS, "web", {}, "kubeslice-acme", subresource="status")
    assert caught.value.status == 403
    assert "patch replicationjobconfigs.controller.kubeslice.io kubeslice-acme/web/status" in str(
        caught.value
    )


def test_blocking_list_follows_continue_tokens_across_namespaces() -> None:
    pages = [
        {"metadata": {"continue": "t1"}, "items": [{"metadata": {"name": "a"}}]},
        {"metadata": {}, "items": [{"metadata": {"name": "b"}}]},
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[len(seen) - 1])

    items = _rest(httpx.MockTransport(handler)).blocking.list(JOB_CONFIGS, page_size=1)
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert {i["kind"] for i in items} == {"ReplicationJobConfig"}
    assert seen[0].url.path == "/apis/controller.kubeslice.io/v1alpha1/replicationjobconfigs"
    assert dict(seen[1].url.params) == {"limit": "1", "continue": "t1"}


def test_the_transport_reports_a_listing_error_instead_of_raising() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"kind": "Status", "message": "not found"})

    transport = KubeStatusTransport(lambda cluster: None)  # type: ignore[arg-type,return-value]
    transport._rests["controller"] = _rest(httpx.MockTransport(handler))
    listing = transport.list_job_configs("controller")
    assert isinstance(listing, KubeApiError)
    assert listing.status == 404
    target = StatusTarget("controller", "kubeslice-acme", "web")
    with pytest.raises(KubeApiError):
        transport.patch_status(target, {"status": {}})
    transport.close()
    assert transport._rests == {}
