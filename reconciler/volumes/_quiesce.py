"""`quiesce: true`: scale a namespace's writers to zero while its volume data is copied.

Each scaled workload keeps its replica count in the annotation ``kubeferry.io/quiesced-replicas``
while it is down, so a run that dies in between is repaired by the next one (which scales
the workloads back up before anything else) and never leaves an application at zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.kube import KubeApiError, KubeClient, KubeError, Manifest

log = logging.getLogger("kubeferry.volumes")

QUIESCED_ANNOTATION = "kubeferry.io/quiesced-replicas"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
_CONFLICT_ATTEMPTS = 6


def _update(
    client: KubeClient, kind: str, name: str, namespace: str, change: Callable[[Manifest], None]
) -> None:
    """Read-modify-write with the object's resourceVersion; retried when a controller's status
    update wins the race (HTTP 409)."""
    for attempt in range(_CONFLICT_ATTEMPTS):
        current = client.get("apps/v1", kind, name, namespace)
        if current is None:
            return
        change(current)
        try:
            client.replace(current)
            return
        except KubeApiError as error:
            if error.status != 409 or attempt == _CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _workloads(client: KubeClient, namespace: str) -> list[Manifest]:
    return [
        item for kind in WORKLOAD_KINDS for item in client.list_objects("apps/v1", kind, namespace)
    ]


def _annotations(obj: Manifest) -> dict[str, str]:
    metadata = obj.setdefault("metadata", {})
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
        metadata["annotations"] = annotations
    return annotations


def resume(client: KubeClient, namespace: str) -> list[str]:
    """Scale every workload marked by a quiesce back to its recorded replicas; their names."""
    resumed = []
    for workload in _workloads(client, namespace):
        recorded = (workload["metadata"].get("annotations") or {}).get(QUIESCED_ANNOTATION)
        if recorded is None:
            continue
        kind, name = workload["kind"], workload["metadata"]["name"]

        def scale_up(obj: Manifest, replicas: str = recorded) -> None:
            _annotations(obj).pop(QUIESCED_ANNOTATION, None)
            obj.setdefault("spec", {})["replicas"] = int(replicas) if replicas.isdigit() else 1

        _update(client, kind, name, namespace, scale_up)
        resumed.append(f"{kind}/{name}")
    return resumed


def quiesce(client: KubeClient, namespace: str, *, timeout: float = 120.0) -> list[str]:
    """Scale every running Deployment and StatefulSet to zero, recording its replicas, and
    wait (up to ``timeout``) for their pods to go; the names of the workloads scaled."""
    scaled = []
    for workload in _workloads(client, namespace):
        replicas = (workload.get("spec") or {}).get("replicas", 1)
        if not replicas:
            continue
        kind, name = workload["kind"], workload["metadata"]["name"]

        def scale_down(obj: Manifest, replicas: int = int(replicas)) -> None:
            _annotations(obj)[QUIESCED_ANNOTATION] = str(replicas)
            obj.setdefault("spec", {})["replicas"] = 0

        _update(client, kind, name, namespace, scale_down)
        scaled.append((kind, name))
    deadline = time.monotonic() + timeout
    for kind, name in scaled:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            client.wait_for(
                "apps/v1",
                kind,
                name,
                namespace,
                condition=lambda obj: not (obj.get("status") or {}).get("replicas"),
                timeout=remaining,
            )
        except KubeError as error:  # a slow shutdown is logged; the copy goes on
            log.warning(
                "%s/%s %s: pods still running after quiesce: %s", namespace, kind, name, error
            )
    return [f"{kind}/{name}" for kind, name in scaled]


@contextmanager
def quiesced(client: KubeClient, namespace: str, *, timeout: float = 120.0) -> Iterator[list[str]]:
    """Workloads at zero inside the block, back to their replicas after it (also on error)."""
    leftovers = resume(client, namespace)  # a run that died while quiesced
    if leftovers:
        log.warning(
            "%s: resumed workloads left quiesced by an earlier run: %s",
            namespace,
            ", ".join(leftovers),
        )
    scaled = quiesce(client, namespace, timeout=timeout)
    try:
        yield scaled
    finally:
        resume(client, namespace)
