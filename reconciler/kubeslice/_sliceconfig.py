"""SliceConfig ``spec.namespaceIsolationProfile.applicationNamespaces``: merge logic and a
conflict-safe read-modify-write (PUT with the resourceVersion that was read)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from reconciler.errors import KubeferryError
from reconciler.kube import KubeApiError, KubeClient

SLICE_CONFIG_API = "controller.kubeslice.io/v1alpha1"
SLICE_CONFIG_KIND = "SliceConfig"

Manifest = dict[str, Any]


def project_namespace(project: str) -> str:
    """The namespace KubeSlice keeps a project's objects in."""
    return f"kubeslice-{project}"


def _entries(manifest: Manifest) -> list[Any]:
    spec = manifest.get("spec") or {}
    profile = spec.get("namespaceIsolationProfile") or {}
    entries = profile.get("applicationNamespaces") or []
    return entries if isinstance(entries, list) else []


def onboarded_clusters(manifest: Manifest, namespace: str) -> list[str]:
    """The clusters ``namespace`` is onboarded on in this SliceConfig ('*' kept as is)."""
    clusters: list[str] = []
    for entry in _entries(manifest):
        if isinstance(entry, dict) and entry.get("namespace") == namespace:
            for cluster in entry.get("clusters") or []:
                if isinstance(cluster, str) and cluster not in clusters:
                    clusters.append(cluster)
    return clusters


def add_application_namespace(
    manifest: Manifest, namespace: str, cluster: str
) -> tuple[Manifest, bool]:
    """A copy with ``cluster`` added to ``namespace``'s entry (created when missing).

    Other entries and fields are untouched; the flag says whether anything changed.
    """
    result = copy.deepcopy(manifest)
    spec = result.setdefault("spec", {})
    if not isinstance(spec.get("namespaceIsolationProfile"), dict):
        spec["namespaceIsolationProfile"] = {}
    profile = spec["namespaceIsolationProfile"]
    if not isinstance(profile.get("applicationNamespaces"), list):
        profile["applicationNamespaces"] = []
    entries: list[Any] = profile["applicationNamespaces"]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("namespace") == namespace:
            clusters = entry.get("clusters")
            if not isinstance(clusters, list):
                clusters = entry["clusters"] = []
            if cluster in clusters:
                return result, False
            clusters.append(cluster)
            return result, True
    entries.append({"namespace": namespace, "clusters": [cluster]})
    return result, True


def remove_application_namespace(
    manifest: Manifest, namespace: str, cluster: str
) -> tuple[Manifest, bool]:
    """A copy without ``cluster`` in ``namespace``'s entry; an entry left empty is dropped."""
    result = copy.deepcopy(manifest)
    profile = (result.get("spec") or {}).get("namespaceIsolationProfile")
    if not isinstance(profile, dict) or not isinstance(profile.get("applicationNamespaces"), list):
        return result, False
    changed = False
    kept: list[Any] = []
    for entry in profile["applicationNamespaces"]:
        if isinstance(entry, dict) and entry.get("namespace") == namespace:
            clusters = [c for c in entry.get("clusters") or [] if c != cluster]
            if len(clusters) != len(entry.get("clusters") or []):
                changed = True
            if not clusters:
                continue
            entry = {**entry, "clusters": clusters}
        kept.append(entry)
    profile["applicationNamespaces"] = kept
    return result, changed


def update_slice_config(
    client: KubeClient,
    name: str,
    project: str,
    change: Callable[[Manifest], tuple[Manifest, bool]],
    *,
    attempts: int = 5,
    missing_ok: bool = False,
) -> bool:
    """Read the SliceConfig, apply ``change`` and write it back with the resourceVersion that
    was read; a concurrent writer (409) makes it read and merge again. True if it changed.
    A missing SliceConfig is an error unless ``missing_ok`` (then nothing changes)."""
    namespace = project_namespace(project)
    for _ in range(attempts):
        current = client.get(SLICE_CONFIG_API, SLICE_CONFIG_KIND, name, namespace)
        if current is None:
            if missing_ok:
                return False
            raise KubeferryError(f"SliceConfig {name} not found in namespace {namespace}")
        updated, changed = change(current)
        if not changed:
            return False
        try:
            client.replace(updated)
        except KubeApiError as error:
            if error.status == 409:
                continue
            raise
        return True
    raise KubeferryError(f"SliceConfig {namespace}/{name}: kept changing while being updated")
