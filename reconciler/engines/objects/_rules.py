"""Which resource types and which objects a backup takes (docs/object-rules.md).

Pure functions over discovery results and listed objects: no cluster I/O. The rule tables
here are the single source of truth; the document describes them for users.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol

from reconciler.engines._protocols import JobSpec
from reconciler.kube import Manifest


class ResourceType(Protocol):
    """What the rules need of a resource type; ``reconciler.kube.ApiResource`` satisfies it."""

    @property
    def group(self) -> str: ...

    @property
    def resource(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def group_resource(self) -> str: ...


# The API groups of Kubernetes itself; any other group holds custom (or aggregated) resources.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "extensions",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)

# Resource types never listed for a backup: (group_resource -> reason).
NEVER_BACKED_UP_TYPES: dict[str, str] = {
    "events": "events describe the past of the source cluster",
    "events.events.k8s.io": "events describe the past of the source cluster",
    "leases.coordination.k8s.io": "leases are held by running processes (leader election)",
    "pods.metrics.k8s.io": "metrics are a read-only view of the kubelets",
}
NEVER_BACKED_UP_GROUPS: dict[str, str] = {
    "metrics.k8s.io": "metrics are a read-only view of the kubelets",
}

# Only the objects that hold volume data (plus the Namespace) when pvDataOnly is set.
PV_DATA_ONLY_TYPES = frozenset({"persistentvolumeclaims", "persistentvolumes", "namespaces"})

# kind of the object -> kinds of controller owners that recreate it (the apps/batch groups)
RECREATED_BY: dict[str, frozenset[str]] = {
    "Pod": frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "Job"}),
    "ReplicaSet": frozenset({"Deployment"}),
    "Job": frozenset({"CronJob"}),
    "ControllerRevision": frozenset({"StatefulSet", "DaemonSet"}),
}
_WORKLOAD_GROUPS = frozenset({"apps", "batch", "extensions"})

SA_TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 - a type name
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ENDPOINTS_TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
ENDPOINTSLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
_CONTROLLER_SLICE_MANAGERS = frozenset(
    {"endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io"}
)
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


def api_group(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> ``""``."""
    return api_version.rpartition("/")[0]


def matches(patterns: Sequence[str], resource: ResourceType) -> bool:
    """Whether any pattern names ``resource``.

    A pattern is a shell wildcard (fnmatch) compared case-insensitively with the plural
    (``deployments``), the plural qualified by its group (``deployments.apps``; the core
    group has no suffix) and the kind (``Deployment``).
    """
    candidates = {
        resource.resource.lower(),
        resource.group_resource.lower(),
        resource.kind.lower(),
    }
    if resource.group:
        candidates.add(f"{resource.resource}.{resource.group}".lower())
    for pattern in patterns:
        lowered = pattern.strip().lower()
        if any(fnmatch.fnmatchcase(candidate, lowered) for candidate in candidates):
            return True
    return False


def never_backed_up(resource: ResourceType) -> str | None:
    """Why a resource type is never listed for a backup, or None."""
    reason = NEVER_BACKED_UP_TYPES.get(resource.group_resource)
    if reason is None:
        reason = NEVER_BACKED_UP_GROUPS.get(resource.group)
    return reason


def resource_selected(
    job: JobSpec, resource: ResourceType, *, cluster_scoped_extra: bool = False
) -> bool:
    """Whether a backup of ``job`` lists ``resource``.

    Types that are never backed up are refused first; ``resourcesToExclude`` wins over
    ``resourcesToInclude``; an empty include list includes everything. ``pvDataOnly`` keeps
    only the objects that carry volume data (PVCs, PVs, the Namespace); ``k8sObjectsOnly``
    concerns volume data and does not narrow the object list.

    ``cluster_scoped_extra``: the cluster-scoped objects a backup adds for the namespaced
    ones it took (the Namespace, CRDs of included custom resources, PVs of included PVCs).
    Only ``resourcesToExclude`` (and ``pvDataOnly``) leave them out: ``resourcesToInclude:
    [configmaps]`` still carries the Namespace, like Velero's cluster-resources "auto" mode.
    """
    if never_backed_up(resource) is not None:
        return False
    if job.pv_data_only and resource.group_resource not in PV_DATA_ONLY_TYPES:
        return False
    if job.resources_to_exclude and matches(job.resources_to_exclude, resource):
        return False
    if cluster_scoped_extra:
        return True
    return not job.resources_to_include or matches(job.resources_to_include, resource)


def _metadata(obj: Manifest) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def owner_references(obj: Manifest) -> list[dict[str, Any]]:
    refs = _metadata(obj).get("ownerReferences")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def controller_reference(obj: Manifest) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any (there is at most one)."""
    for ref in owner_references(obj):
        if ref.get("controller") is True:
            return ref
    return None


def skip_reason(
    obj: Manifest,
    included_owner_uids: Collection[str],
    *,
    services_with_selector: Collection[str] | None = None,
) -> str | None:
    """Why ``obj`` is not backed up, or None to back it up.

    ``included_owner_uids`` are the uids of every object listed for this backup (before the
    skip rules apply: a ReplicaSet skipped because its Deployment recreates it still counts,
    so its Pods are skipped too). ``services_with_selector`` are the names of the Services that
    have a selector; when None, controller-managed Endpoints are recognised by the endpoints
    controller's ``last-change-trigger-time`` annotation instead.
    """
    kind = str(obj.get("kind", ""))
    group = api_group(str(obj.get("apiVersion", "")))
    metadata = _metadata(obj)
    name = str(metadata.get("name", ""))
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}

    if kind == "Event" and group in ("", "events.k8s.io"):
        return "event"
    if kind == "Lease" and group == "coordination.k8s.io":
        return "lease"
    if kind == "Secret" and group == "" and obj.get("type") == SA_TOKEN_SECRET_TYPE:
        return "service-account token secret (the token controller creates new ones)"
    if kind == "ConfigMap" and group == "" and name == ROOT_CA_CONFIGMAP:
        return "kube-root-ca.crt (published in every namespace by the control plane)"
    if kind == "Endpoints" and group == "":
        if services_with_selector is not None:
            if name in services_with_selector:
                return "endpoints of a Service with a selector (the endpoints controller)"
        elif ENDPOINTS_TRIGGER_ANNOTATION in annotations:
            return "endpoints managed by the endpoints controller"
    if (
        kind == "EndpointSlice"
        and group == "discovery.k8s.io"
        and labels.get(ENDPOINTSLICE_MANAGED_BY) in _CONTROLLER_SLICE_MANAGERS
    ):
        return f"endpointslice managed by {labels[ENDPOINTSLICE_MANAGED_BY]}"
    if kind == "Pod" and group == "" and MIRROR_POD_ANNOTATION in annotations:
        return "mirror pod of a static pod (the kubelet creates it)"
    owners = RECREATED_BY.get(kind)
    if owners is not None and group in ("", *_WORKLOAD_GROUPS):
        ref = controller_reference(obj)
        if (
            ref is not None
            and ref.get("kind") in owners
            and api_group(str(ref.get("apiVersion", ""))) in _WORKLOAD_GROUPS
            and ref.get("uid") in included_owner_uids
        ):
            return f"recreated by its owner {ref.get('kind')}/{ref.get('name')}"
    return None


def restore_skip_reason(obj: Manifest) -> str | None:
    """Why an archived object is not restored, or None to restore it.

    Like Velero without volume snapshots: a PersistentVolume whose reclaim policy is
    ``Delete`` was provisioned for its claim; the restored PVC provisions a fresh one on the
    destination (the volume engine restores the data), so the old PV is not recreated.
    """
    if obj.get("kind") == "PersistentVolume" and api_group(str(obj.get("apiVersion", ""))) == "":
        spec = obj.get("spec") or {}
        if spec.get("persistentVolumeReclaimPolicy") == "Delete":
            return "PersistentVolume with reclaim policy Delete: its PVC provisions a new one"
    return None


def selector_service_names(objects: Iterable[Manifest]) -> set[str]:
    """Names of the Services in ``objects`` that have a non-empty selector."""
    names: set[str] = set()
    for obj in objects:
        if obj.get("kind") == "Service" and api_group(str(obj.get("apiVersion", ""))) == "":
            spec = obj.get("spec") or {}
            if spec.get("selector"):
                names.add(str(_metadata(obj).get("name", "")))
    return names


def partition(
    objects: Sequence[Manifest],
) -> tuple[list[Manifest], list[tuple[Manifest, str]]]:
    """Split the objects listed for one backup into (kept, [(skipped, reason)]).

    Applies :func:`skip_reason` with the uids and selector Services of ``objects`` itself.
    """
    uids = {str(uid) for obj in objects if (uid := _metadata(obj).get("uid"))}
    services = selector_service_names(objects)
    kept: list[Manifest] = []
    skipped: list[tuple[Manifest, str]] = []
    for obj in objects:
        reason = skip_reason(obj, uids, services_with_selector=services)
        if reason is None:
            kept.append(obj)
        else:
            skipped.append((obj, reason))
    return kept, skipped
