"""Fixtures for the sandbox tests (the `sandbox` fixture itself is in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from reconciler.kube import KubeClient
from reconciler.sandbox import SandboxInfo


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def name_prefix() -> str:
    """A unique name for what a test creates (namespaces, S3 keys)."""
    return _unique("kf-test")


@pytest.fixture
def make_namespace(sandbox: SandboxInfo) -> Iterator[Callable[[str], str]]:
    """``make_namespace(cluster)`` creates a fresh namespace there; all are deleted afterwards."""
    clients: dict[str, KubeClient] = {}
    created: list[tuple[str, str]] = []

    def make(cluster: str) -> str:
        if cluster not in clients:
            clients[cluster] = sandbox.client(cluster)
        name = _unique("kf-test")
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        clients[cluster].create(manifest)
        created.append((cluster, name))
        return name

    yield make
    for cluster, name in created:
        clients[cluster].delete("v1", "Namespace", name)  # finalizes in the background
    for client in clients.values():
        client.close()
