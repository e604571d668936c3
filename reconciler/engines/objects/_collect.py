"""Backup side: discover every resource type, list the namespace in parallel, apply the rules.

One pass produces what a backup writes, what a fingerprint digests and what a restore will
need from its destination (``RestoreRequirements``), so refresh and backup share the work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from reconciler.engines._protocols import JobSpec, RestoreRequirements
from reconciler.engines.objects._archive import ArchivedObject
from reconciler.engines.objects._rules import (
    BUILTIN_GROUPS,
    resource_selected,
    skip_reason,
)
from reconciler.engines.objects._sanitize import portable
from reconciler.kube import ApiResource, KubeApiError, KubeRest, Manifest

_ALL_VERBS = frozenset({"get", "list", "create", "delete", "patch", "update"})


def known_resource(api_version: str, resource: str, kind: str, *, namespaced: bool) -> ApiResource:
    """The REST address of a type we know without discovery (only its path is used)."""
    group, _, version = api_version.rpartition("/")
    return ApiResource(group, version, resource, kind, namespaced, _ALL_VERBS)


CRD_RESOURCE = known_resource(
    "apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition",
    namespaced=False,
)  # fmt: skip
NAMESPACE_RESOURCE = known_resource("v1", "namespaces", "Namespace", namespaced=False)
PV_RESOURCE = known_resource("v1", "persistentvolumes", "PersistentVolume", namespaced=False)


@dataclass
class Collection:
    """The objects of one namespace that a backup stores, with what was left out and why."""

    namespace: str
    objects: list[ArchivedObject] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """reason -> count (events, owned by a replicated Deployment, ...)."""
    warnings: list[str] = field(default_factory=list)
    exists: bool = True

    def fingerprint(self) -> str:
        """Digest of the portable content: equal digests mean a restore would change nothing."""
        digest = hashlib.sha256()
        for item in sorted(self.objects, key=_sort_key):
            body = json.dumps(portable(item.manifest), sort_keys=True, separators=(",", ":"))
            digest.update(f"{item.group_resource}|{item.namespace or ''}|{item.name}|".encode())
            digest.update(body.encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.objects:
            counts[item.group_resource] = counts.get(item.group_resource, 0) + 1
        return dict(sorted(counts.items()))

    def requirements(self) -> RestoreRequirements:
        resources: dict[str, str] = {}
        crds: set[str] = set()
        included: set[str] = set()
        classes: set[str] = set()
        for item in self.objects:
            resources.setdefault(item.group_resource, item.api_version)
            group = item.group_resource.partition(".")[2]
            if group and group not in BUILTIN_GROUPS:
                crds.add(item.group_resource)  # a CRD is named <plural>.<group>
            if item.group_resource == "customresourcedefinitions.apiextensions.k8s.io":
                included.add(item.name)
            classes.update(_storage_classes(item))
        return RestoreRequirements(
            resources=resources,
            counts=self.counts(),
            crds=tuple(sorted(crds)),
            included_crds=tuple(sorted(included & crds)),
            storage_classes=tuple(sorted(classes)),
        )


def _sort_key(item: ArchivedObject) -> tuple[str, str, str]:
    return (item.group_resource, item.namespace or "", item.name)


def _storage_classes(item: ArchivedObject) -> set[str]:
    """Storage classes the destination must have; "" stands for "the default class"."""
    spec = item.manifest.get("spec") or {}
    if item.group_resource == "persistentvolumeclaims":
        names = [spec.get("storageClassName") or ""]
    elif item.group_resource == "statefulsets.apps":
        names = [
            (template.get("spec") or {}).get("storageClassName") or ""
            for template in spec.get("volumeClaimTemplates") or []
        ]
    else:
        return set()
    return set(names)


async def collect(
    rest: KubeRest,
    namespace: str,
    job: JobSpec,
    *,
    parallelism: int = 8,
    resources: Sequence[ApiResource] | None = None,
) -> Collection:
    """List everything a backup of ``namespace`` includes (paginated, types in parallel)."""
    collection = Collection(namespace)
    namespace_object = await rest.get(NAMESPACE_RESOURCE, namespace)
    if namespace_object is None:
        collection.exists = False
        return collection
    discovered = list(resources) if resources is not None else await rest.discover()
    wanted = [
        r for r in discovered if r.namespaced and "list" in r.verbs and resource_selected(job, r)
    ]
    listed: dict[ApiResource, list[Manifest]] = {}
    limiter = anyio.CapacityLimiter(max(1, parallelism))

    async def list_one(resource: ApiResource) -> None:
        async with limiter:
            try:
                listed[resource] = await rest.list(
                    resource, namespace, label_selector=job.label_selector
                )
            except KubeApiError as error:
                if error.status in (403, 404, 405):
                    # an aggregated API that is down or a type we may not list: note it
                    collection.warnings.append(f"{resource.group_resource}: not listed ({error})")
                    return
                raise

    async with anyio.create_task_group() as group:
        for resource in wanted:
            group.start_soon(list_one, resource)

    everything = [obj for objects in listed.values() for obj in objects]
    context = _SkipContext.build(everything)
    for resource in sorted(listed, key=lambda r: r.group_resource):
        for obj in listed[resource]:
            reason = skip_reason(
                obj,
                included_owner_uids=context.owner_uids,
                services_with_selector=context.services_with_selector,
            )
            if reason is not None:
                collection.skipped[reason] = collection.skipped.get(reason, 0) + 1
                continue
            collection.objects.append(_archived(resource, obj))

    if resource_selected(job, NAMESPACE_RESOURCE, cluster_scoped_extra=True):
        collection.objects.append(_archived(NAMESPACE_RESOURCE, namespace_object))
    await _add_crds(rest, job, collection)
    await _add_bound_volumes(rest, job, collection)
    return collection


@dataclass(frozen=True)
class _SkipContext:
    owner_uids: frozenset[str]
    services_with_selector: frozenset[str]

    @classmethod
    def build(cls, objects: list[Manifest]) -> _SkipContext:
        uids = {
            str(obj["metadata"]["uid"]) for obj in objects if obj.get("metadata", {}).get("uid")
        }
        services = {
            str(obj["metadata"]["name"])
            for obj in objects
            if obj.get("kind") == "Service"
            and obj.get("apiVersion") == "v1"
            and (obj.get("spec") or {}).get("selector")
        }
        return cls(frozenset(uids), frozenset(services))


def _archived(resource: ApiResource, obj: Manifest) -> ArchivedObject:
    metadata: dict[str, Any] = obj.get("metadata") or {}
    manifest = dict(obj)
    manifest["apiVersion"] = resource.api_version
    manifest["kind"] = resource.kind
    # managedFields are server bookkeeping, large and useless elsewhere (Velero drops them too)
    manifest["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return ArchivedObject(
        group_resource=resource.group_resource,
        api_version=resource.api_version,
        kind=resource.kind,
        namespace=metadata.get("namespace") if resource.namespaced else None,
        name=str(metadata.get("name", "")),
        manifest=manifest,
    )


async def _add_crds(rest: KubeRest, job: JobSpec, collection: Collection) -> None:
    """The CRDs of included custom resources, unless customresourcedefinitions is excluded."""
    if not resource_selected(job, CRD_RESOURCE, cluster_scoped_extra=True):
        return
    names = sorted(
        {
            item.group_resource
            for item in collection.objects
            if item.group_resource.partition(".")[2] not in BUILTIN_GROUPS
            and "." in item.group_resource
        }
    )
    for name in names:
        crd = await rest.get(CRD_RESOURCE, name)
        if crd is None:
            collection.warnings.append(f"{name}: its CustomResourceDefinition was not found")
            continue
        collection.objects.append(_archived(CRD_RESOURCE, crd))


async def _add_bound_volumes(rest: KubeRest, job: JobSpec, collection: Collection) -> None:
    """The PersistentVolumes bound to included PVCs (restore decides whether to recreate them)."""
    if not resource_selected(job, PV_RESOURCE, cluster_scoped_extra=True):
        return
    claims = [i for i in collection.objects if i.group_resource == "persistentvolumeclaims"]
    for claim in claims:
        volume = (claim.manifest.get("spec") or {}).get("volumeName")
        if not volume:
            continue
        found = await rest.get(PV_RESOURCE, str(volume))
        if found is None:
            collection.warnings.append(
                f"persistentvolumeclaims/{claim.name}: volume {volume} not found"
            )
            continue
        collection.objects.append(_archived(PV_RESOURCE, found))
