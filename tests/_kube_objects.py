"""Kubernetes objects the sandbox tests create, and waits on them (through the real API)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.kube import KubeClient, Manifest

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo


def namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def config_map(name: str, namespace: str, data: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def delete_namespace(
    sandbox: SandboxInfo, name: str, clusters: Iterable[str] = ("worker-1", "worker-2")
) -> None:
    """Delete namespace ``name`` on each of ``clusters`` (where it exists)."""
    for cluster in clusters:
        with sandbox.client(cluster) as client:
            client.delete("v1", "Namespace", name)


def settings_namespace(client: KubeClient, name: str, count: int = 3) -> None:
    """Namespace ``name`` holding ConfigMaps settings-0.. (data ``value``: the index)."""
    client.ensure(namespace(name))
    for n in range(count):
        client.ensure(config_map(f"settings-{n}", name, {"value": str(n)}))


def hostpath_claim_spec(size: str = "16Mi") -> Manifest:
    """A claim on the sandbox's ``hostpath`` storage class (its directory on this machine)."""
    return {
        "storageClassName": "hostpath",
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }


def hostpath_claim(
    name: str, namespace: str, size: str = "16Mi", annotations: dict[str, str] | None = None
) -> Manifest:
    metadata: Manifest = {"name": name, "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": hostpath_claim_spec(size),
    }


def bound(claim: Manifest) -> bool:
    return bool((claim.get("status") or {}).get("phase") == "Bound")


def volume_dir(client: KubeClient, namespace: str, claim: str) -> Path:
    """The host directory of ``claim``'s volume, once the claim is bound."""
    found = client.wait_for(
        "v1", "PersistentVolumeClaim", claim, namespace, condition=bound, timeout=90
    )
    volume = client.get("v1", "PersistentVolume", found["spec"]["volumeName"])
    assert volume is not None
    return Path(volume["spec"]["hostPath"]["path"])
