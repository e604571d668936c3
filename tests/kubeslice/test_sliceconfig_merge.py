"""SliceConfig applicationNamespaces merge logic and the conflict-safe update."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.errors import KubeferryError
from reconciler.kube import KubeApiError
from reconciler.kubeslice import (
    add_application_namespace,
    onboarded_clusters,
    remove_application_namespace,
    update_slice_config,
)


def _config(entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"maxClusters": 4}
    if entries is not None:
        spec["namespaceIsolationProfile"] = {
            "isolationEnabled": True,
            "applicationNamespaces": entries,
        }
    return {
        "apiVersion": "controller.kubeslice.io/v1alpha1",
        "kind": "SliceConfig",
        "metadata": {"name": "blue", "namespace": "kubeslice-acme", "resourceVersion": "7"},
        "spec": spec,
    }


def test_add_creates_the_profile_and_the_entry() -> None:
    original = _config()
    merged, changed = add_application_namespace(original, "web", "worker-2")
    assert changed
    assert merged["spec"]["namespaceIsolationProfile"]["applicationNamespaces"] == [
        {"namespace": "web", "clusters": ["worker-2"]}
    ]
    assert "namespaceIsolationProfile" not in original["spec"]  # the input is not modified
    assert merged["metadata"]["resourceVersion"] == "7"  # the write is conditional on it


def test_add_merges_into_an_existing_entry_and_keeps_the_others() -> None:
    entries = [
        {"namespace": "db", "clusters": ["worker-1"]},
        {"namespace": "web", "clusters": ["worker-1"], "extra": "kept"},
    ]
    merged, changed = add_application_namespace(_config(entries), "web", "worker-2")
    assert changed
    profile = merged["spec"]["namespaceIsolationProfile"]
    assert profile["isolationEnabled"] is True
    assert profile["applicationNamespaces"] == [
        {"namespace": "db", "clusters": ["worker-1"]},
        {"namespace": "web", "clusters": ["worker-1", "worker-2"], "extra": "kept"},
    ]
    assert onboarded_clusters(merged, "web") == ["worker-1", "worker-2"]


def test_add_is_idempotent() -> None:
    entries = [{"namespace": "web", "clusters": ["worker-2"]}]
    merged, changed = add_application_namespace(_config(entries), "web", "worker-2")
    assert not changed
    assert merged["spec"]["namespaceIsolationProfile"]["applicationNamespaces"] == entries


def test_remove_takes_only_the_one_cluster_and_drops_an_empty_entry() -> None:
    entries = [
        {"namespace": "web", "clusters": ["worker-1", "worker-2"]},
        {"namespace": "api", "clusters": ["worker-2"]},
        {"namespace": "db", "clusters": ["worker-1"]},
    ]
    merged, changed = remove_application_namespace(_config(entries), "web", "worker-2")
    assert changed
    merged, changed = remove_application_namespace(merged, "api", "worker-2")
    assert changed
    assert merged["spec"]["namespaceIsolationProfile"]["applicationNamespaces"] == [
        {"namespace": "web", "clusters": ["worker-1"]},
        {"namespace": "db", "clusters": ["worker-1"]},
    ]
    _, changed = remove_application_namespace(merged, "api", "worker-2")
    assert not changed
    _, changed = remove_application_namespace(_config(), "web", "worker-2")
    assert not changed


class _FakeClient:
    """Stores one SliceConfig; the first ``conflicts`` writes fail with 409 after someone
    else changed it (so the retry must merge into the newer version)."""

    def __init__(self, stored: dict[str, Any] | None, conflicts: int = 0) -> None:
        self.stored = stored
        self.conflicts = conflicts
        self.writes = 0

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return None if self.stored is None else {**self.stored}

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        assert self.stored is not None
        if self.conflicts:
            self.conflicts -= 1
            self.stored, _ = add_application_namespace(self.stored, "other", "worker-9")
            self.stored["metadata"] = {**self.stored["metadata"], "resourceVersion": "8"}
            raise KubeApiError("conflict", status=409)
        assert manifest["metadata"]["resourceVersion"] == self.stored["metadata"]["resourceVersion"]
        self.writes += 1
        self.stored = manifest
        return manifest


def test_update_rereads_and_merges_after_a_conflict() -> None:
    client = _FakeClient(_config([]), conflicts=1)
    changed = update_slice_config(
        client,  # type: ignore[arg-type]
        "blue",
        "acme",
        lambda m: add_application_namespace(m, "web", "worker-2"),
    )
    assert changed
    assert client.writes == 1
    assert client.stored is not None
    assert client.stored["spec"]["namespaceIsolationProfile"]["applicationNamespaces"] == [
        {"namespace": "other", "clusters": ["worker-9"]},
        {"namespace": "web", "clusters": ["worker-2"]},
    ]


def test_update_without_change_does_not_write_and_missing_config_is_an_error() -> None:
    client = _FakeClient(_config([{"namespace": "web", "clusters": ["worker-2"]}]))
    assert not update_slice_config(
        client,  # type: ignore[arg-type]
        "blue",
        "acme",
        lambda m: add_application_namespace(m, "web", "worker-2"),
    )
    assert client.writes == 0
    with pytest.raises(
        KubeferryError, match="SliceConfig blue not found in namespace kubeslice-acme"
    ):
        update_slice_config(
            _FakeClient(None),  # type: ignore[arg-type]
            "blue",
            "acme",
            lambda m: add_application_namespace(m, "web", "worker-2"),
        )


def test_removing_from_a_deleted_slice_config_is_not_an_error() -> None:
    assert not update_slice_config(
        _FakeClient(None),  # type: ignore[arg-type]
        "blue",
        "acme",
        lambda m: remove_application_namespace(m, "web", "worker-2"),
        missing_ok=True,
    )
