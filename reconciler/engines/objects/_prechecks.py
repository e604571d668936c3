"""Compatibility checks before a restore writes anything (KubeSlice's ``compatibilityChecks``).

Each check yields compatible, warning or not_compatible; the worst is ``overallCompatibility``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import anyio

from reconciler.engines._protocols import (
    JobSpec,
    PrecheckReport,
    PrecheckResult,
    RestoreRequirements,
)
from reconciler.engines.objects._collect import CRD_RESOURCE, NAMESPACE_RESOURCE, known_resource
from reconciler.engines.objects._rules import skip_reason
from reconciler.kube import ApiResource, KubeApiError, KubeError, KubeRest, Manifest

STORAGE_CLASS_RESOURCE = known_resource(
    "storage.k8s.io/v1", "storageclasses", "StorageClass", namespaced=False
)
QUOTA_RESOURCE = known_resource("v1", "resourcequotas", "ResourceQuota", namespaced=True)
ACCESS_REVIEW = known_resource(
    "authorization.k8s.io/v1",
    "selfsubjectaccessreviews",
    "SelfSubjectAccessReview",
    namespaced=False,
)
_DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
# quota keys that count objects: "configmaps" or "count/deployments.apps"
_COUNTED = {
    "configmaps": "configmaps",
    "secrets": "secrets",
    "services": "services",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "pods": "pods",
    "replicationcontrollers": "replicationcontrollers",
    "resourcequotas": "resourcequotas",
}
_CREATE_PROBES = ("configmaps", "secrets", "services", "deployments.apps")


async def run_prechecks(
    rest: KubeRest,
    job: JobSpec,
    requirements: RestoreRequirements,
    *,
    target_namespace: str | None = None,
) -> PrecheckReport:
    """Every check against the destination behind ``rest``; reads only."""
    namespace = target_namespace or job.target_namespace
    try:
        discovered = await rest.discover()
    except KubeError as error:
        return PrecheckReport(
            (PrecheckResult("destination-access", "not_compatible", f"unreachable: {error}"),)
        )
    checks = [await _access(rest, namespace, requirements)]
    checks.append(_api_resources(discovered, requirements))
    crds = await _crds(rest, requirements)
    checks.append(crds)
    checks.append(await _storage_classes(rest, requirements, job.storage_class_mapping))
    namespace_check, existing = await _namespace(rest, namespace, discovered, requirements)
    checks.append(namespace_check)
    checks.append(await _quota(rest, namespace, existing, requirements))
    return PrecheckReport(tuple(checks))


async def _can(rest: KubeRest, verb: str, group_resource: str, namespace: str | None) -> bool:
    resource, _, group = group_resource.partition(".")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": verb,
                "resource": resource,
                "group": group,
                **({"namespace": namespace} if namespace else {}),
            }
        },
    }
    answer = await rest.create(ACCESS_REVIEW, review)
    return bool((answer.get("status") or {}).get("allowed"))


async def _access(
    rest: KubeRest, namespace: str, requirements: RestoreRequirements
) -> PrecheckResult:
    wanted: list[tuple[str, str, str | None]] = [("create", "namespaces", None)]
    kinds = sorted(requirements.resources) or list(_CREATE_PROBES)
    for group_resource in kinds:
        scoped = None if group_resource in _CLUSTER_SCOPED else namespace
        wanted.append(("create", group_resource, scoped))
        wanted.append(("patch", group_resource, scoped))
    denied: list[str] = []

    async def ask(verb: str, group_resource: str, scoped: str | None) -> None:
        if not await _can(rest, verb, group_resource, scoped):
            denied.append(f"{verb} {group_resource}")

    try:
        async with anyio.create_task_group() as group:
            for verb, group_resource, scoped in wanted:
                group.start_soon(ask, verb, group_resource, scoped)
    except KubeError as error:
        return PrecheckResult("destination-access", "not_compatible", str(error))
    if denied:
        shown = ", ".join(sorted(denied)[:6]) + (" ..." if len(denied) > 6 else "")
        return PrecheckResult(
            "destination-access", "not_compatible", f"not permitted to {shown} in {namespace}"
        )
    return PrecheckResult("destination-access", "compatible", f"reachable at {rest.server}")


_CLUSTER_SCOPED = frozenset(
    {
        "namespaces",
        "persistentvolumes",
        "customresourcedefinitions.apiextensions.k8s.io",
        "storageclasses.storage.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
    }
)


def _api_resources(
    discovered: Sequence[ApiResource], requirements: RestoreRequirements
) -> PrecheckResult:
    served: dict[str, set[str]] = {}
    for resource in discovered:
        served.setdefault(resource.group_resource, set()).add(resource.api_version)
    missing: list[str] = []
    other_version: list[str] = []
    included = set(requirements.included_crds)
    for group_resource, api_version in sorted(requirements.resources.items()):
        if group_resource in included:
            continue  # served once its CRD (in the snapshot) is restored
        versions = served.get(group_resource)
        if not versions:
            missing.append(f"{group_resource} ({api_version})")
        elif api_version not in versions:
            other_version.append(f"{group_resource} {api_version} (serves {sorted(versions)[0]})")
    if missing:
        return PrecheckResult(
            "api-resources", "not_compatible", "not served: " + ", ".join(missing)
        )
    if other_version:
        return PrecheckResult(
            "api-resources",
            "not_compatible",
            "served only at another version: " + ", ".join(other_version),
        )
    return PrecheckResult(
        "api-resources", "compatible", f"all {len(requirements.resources)} resource types served"
    )


async def _crds(rest: KubeRest, requirements: RestoreRequirements) -> PrecheckResult:
    needed = sorted(set(requirements.crds) - set(requirements.included_crds))
    absent = [name for name in needed if await rest.get(CRD_RESOURCE, name) is None]
    if absent:
        return PrecheckResult(
            "crds",
            "not_compatible",
            "missing on the destination and not in the snapshot: " + ", ".join(absent),
        )
    carried = len(requirements.included_crds)
    return PrecheckResult(
        "crds",
        "compatible",
        f"{len(requirements.crds)} needed ({carried} in the snapshot, {len(needed)} present)",
    )


async def _storage_classes(
    rest: KubeRest, requirements: RestoreRequirements, mapping: dict[str, str]
) -> PrecheckResult:
    if not requirements.storage_classes:
        return PrecheckResult("storage-classes", "compatible", "no volumes claimed")
    wanted = sorted(
        {mapping.get(name, name) if name else "" for name in requirements.storage_classes}
    )
    classes = await rest.list(STORAGE_CLASS_RESOURCE)
    names = {str(c["metadata"]["name"]) for c in classes}
    has_default = any(
        ((c.get("metadata") or {}).get("annotations") or {}).get(key) == "true"
        for c in classes
        for key in _DEFAULT_CLASS_ANNOTATIONS
    )
    missing = [name for name in wanted if name and name not in names]
    if missing:
        return PrecheckResult(
            "storage-classes",
            "not_compatible",
            "missing (after storageClassMapping): " + ", ".join(missing),
        )
    if "" in wanted and not has_default:
        return PrecheckResult(
            "storage-classes",
            "warning",
            "claims without a storage class, and the destination has no default class",
        )
    present = ", ".join(n for n in wanted if n) or "default"
    return PrecheckResult("storage-classes", "compatible", f"present: {present}")


async def _namespace(
    rest: KubeRest,
    namespace: str,
    discovered: Sequence[ApiResource],
    requirements: RestoreRequirements,
) -> tuple[PrecheckResult, dict[str, int]]:
    found = await rest.get(NAMESPACE_RESOURCE, namespace)
    if found is None:
        return PrecheckResult("namespace", "compatible", f"{namespace} absent: will be created"), {}
    if (found.get("metadata") or {}).get("deletionTimestamp") or (
        (found.get("status") or {}).get("phase") == "Terminating"
    ):
        return (
            PrecheckResult(
                "namespace", "not_compatible", f"{namespace} is terminating: wait until it is gone"
            ),
            {},
        )
    by_resource = {r.group_resource: r for r in discovered}
    existing: dict[str, int] = {}
    for group_resource in sorted(requirements.resources):
        resource = by_resource.get(group_resource)
        if resource is None or not resource.namespaced or "list" not in resource.verbs:
            continue
        try:
            items = await rest.list(resource, namespace)
        except KubeApiError:
            continue
        count = sum(1 for item in items if not _created_by_cluster(item))
        if count:
            existing[group_resource] = count
    if existing:
        total = sum(existing.values())
        return (
            PrecheckResult(
                "namespace",
                "warning",
                f"{namespace} exists with {total} objects of the snapshot's types; "
                "existingResourcePolicy decides what happens to them",
            ),
            existing,
        )
    return PrecheckResult("namespace", "compatible", f"{namespace} exists and is empty"), existing


def _created_by_cluster(item: Manifest) -> bool:
    """Objects the cluster made itself (the default ServiceAccount, token secrets,
    kube-root-ca.crt, controller-managed endpoints): they do not make a namespace "in use"."""
    metadata = item.get("metadata") or {}
    if item.get("kind") == "ServiceAccount" and metadata.get("name") == "default":
        return True
    return skip_reason(item, ()) is not None


_QUANTITY = re.compile(r"^(\d+)$")


async def _quota(
    rest: KubeRest,
    namespace: str,
    existing: dict[str, int],
    requirements: RestoreRequirements,
) -> PrecheckResult:
    try:
        quotas = await rest.list(QUOTA_RESOURCE, namespace)
    except KubeApiError as error:
        if error.status == 404:
            quotas = []
        else:
            raise
    if not quotas:
        return PrecheckResult("quota", "compatible", "no ResourceQuota in the target namespace")
    exceeded: list[str] = []
    for quota in quotas:
        name = quota["metadata"]["name"]
        hard = (
            (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
        )
        used = (quota.get("status") or {}).get("used") or {}
        for key, limit in hard.items():
            group_resource = (
                key.removeprefix("count/") if key.startswith("count/") else _COUNTED.get(key)
            )
            if group_resource is None:
                continue
            incoming = requirements.counts.get(group_resource, 0) - existing.get(group_resource, 0)
            limit_match, used_match = (
                _QUANTITY.match(str(limit)),
                _QUANTITY.match(str(used.get(key, "0"))),
            )
            if incoming <= 0 or limit_match is None or used_match is None:
                continue
            if int(used_match.group(1)) + incoming > int(limit_match.group(1)):
                exceeded.append(f"{name}: {key} {used.get(key, '0')} used + {incoming} > {limit}")
    if exceeded:
        return PrecheckResult("quota", "not_compatible", "would exceed " + "; ".join(exceeded))
    return PrecheckResult("quota", "compatible", f"{len(quotas)} ResourceQuota(s) leave room")
