"""Shared fixtures: `sandbox`, the real local clusters and S3 endpoint of `kubeferry sandbox`.

Usage in a test module::

    pytestmark = pytest.mark.sandbox

    def test_something(sandbox: SandboxInfo) -> None:
        with sandbox.client("worker-1") as client:       # reconciler.kube.KubeClient
            client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        sandbox.kubeconfig        # Path, one context per cluster (controller, worker-1, worker-2)
        sandbox.s3.endpoint_url   # http://127.0.0.1:PORT, bucket sandbox.s3.bucket
        sandbox.s3.credentials()  # S3Credentials(access_key_id, secret_access_key, region)

The fixture reuses a running sandbox ($KUBEFERRY_SANDBOX_DIR or the default directory;
`kubeferry sandbox up` once makes test runs fast) or starts one, which the last test session
using it stops at its end (leaving no process behind). Tests must clean up what they create
(use unique namespace names).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

# Property tests explore fresh random inputs on a developer's machine; CI (HYPOTHESIS_PROFILE=ci,
# set by .ci/run) replays a fixed sequence so a landing never depends on luck. Inputs that once
# failed stay pinned with @example.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# a first run builds Kubernetes (about 7.5 minutes) inside the first sandbox test's setup
_TIMEOUT_WITH_BUILD_SECONDS = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    users = [item for item in items if "sandbox" in getattr(item, "fixturenames", ())]
    if not users:
        return
    from reconciler.sandbox import Sandbox

    needs_build = Sandbox().needs_build()
    for item in users:
        item.add_marker(pytest.mark.sandbox)  # so `-m "not sandbox"` deselects every user
        if needs_build:
            item.add_marker(pytest.mark.timeout(_TIMEOUT_WITH_BUILD_SECONDS))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxInfo]:
    """The sandbox (controller, worker-1, worker-2 + S3), running for the whole session."""
    from reconciler.sandbox import DEFAULT_CLUSTER_NAMES, Sandbox

    # shared: parallel sessions reuse it, and the last one out stops a sandbox that a test
    # session started (one started with `kubeferry sandbox up` keeps running)
    with Sandbox().shared(DEFAULT_CLUSTER_NAMES) as info:
        yield info
