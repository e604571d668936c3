"""Restore order: tiers created in sequence, the objects of one tier in parallel.

Dependencies first (CRDs, the Namespace, storage, identities, configuration, RBAC, quotas,
Services), then workloads, then every other built-in type, custom resources last. An object
owned by another object of the snapshot is never created before its owner: it moves to the
tier right after its owner's when the owner would not be created earlier anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from reconciler.engines.objects._archive import ArchivedObject
from reconciler.engines.objects._rules import BUILTIN_GROUPS

_RBAC = "rbac.authorization.k8s.io"
ORDERED_TIERS: tuple[frozenset[str], ...] = (
    frozenset({"customresourcedefinitions.apiextensions.k8s.io"}),
    frozenset({"namespaces"}),
    frozenset({"storageclasses.storage.k8s.io"}),
    frozenset({"persistentvolumes"}),
    frozenset({"persistentvolumeclaims"}),
    frozenset({"serviceaccounts"}),
    frozenset({"secrets"}),
    frozenset({"configmaps"}),
    frozenset({f"roles.{_RBAC}", f"clusterroles.{_RBAC}"}),
    frozenset({f"rolebindings.{_RBAC}", f"clusterrolebindings.{_RBAC}"}),
    frozenset({"limitranges", "resourcequotas"}),
    frozenset({"services"}),
    frozenset(
        {
            "deployments.apps",
            "statefulsets.apps",
            "daemonsets.apps",
            "jobs.batch",
            "cronjobs.batch",
        }
    ),
)
_OTHER_TIER = len(ORDERED_TIERS)
_CUSTOM_TIER = _OTHER_TIER + 1
_TIER_OF = {gr: index for index, tier in enumerate(ORDERED_TIERS) for gr in tier}

_CRD = "customresourcedefinitions.apiextensions.k8s.io"


def _crd_groups(objects: Sequence[ArchivedObject]) -> set[str]:
    groups: set[str] = set()
    for obj in objects:
        if obj.group_resource == _CRD:
            group = (obj.manifest.get("spec") or {}).get("group")
            if isinstance(group, str) and group:
                groups.add(group)
    return groups


def is_custom(group: str, custom_groups: Collection[str] | None = None) -> bool:
    """Whether ``group`` holds custom resources.

    With ``custom_groups`` (the groups CRDs define, e.g. from the destination's or the
    snapshot's CRDs) membership decides; without it, any group that is not a built-in
    Kubernetes group counts as custom (aggregated APIs included).
    """
    if custom_groups is not None:
        return group in custom_groups
    return group not in BUILTIN_GROUPS


def base_tier(obj: ArchivedObject, custom_groups: Collection[str] | None = None) -> int:
    """The tier of ``obj`` by its type alone (before owner placement)."""
    tier = _TIER_OF.get(obj.group_resource)
    if tier is not None:
        return tier
    return _CUSTOM_TIER if is_custom(obj.group, custom_groups) else _OTHER_TIER


def restore_tiers(
    objects: Sequence[ArchivedObject], *, custom_groups: Collection[str] | None = None
) -> list[list[ArchivedObject]]:
    """The objects grouped into tiers to create one after the other.

    ``custom_groups``: the API groups defined by CRDs; the groups of the CRDs in ``objects``
    are always added. When None, non-built-in groups are custom. Within a tier, objects are
    sorted by (group_resource, namespace, name). An object whose owner (by source uid) is in
    the same or a later tier goes to the tier right after its owner's (chains follow);
    ownership cycles, which a sane snapshot never has, are broken arbitrarily.
    """
    groups: Collection[str] | None = custom_groups
    crd_groups = _crd_groups(objects)
    if groups is not None:
        groups = set(groups) | crd_groups
    base = [_CUSTOM_TIER if obj.group in crd_groups else base_tier(obj, groups) for obj in objects]
    index_of_uid = {obj.uid: i for i, obj in enumerate(objects) if obj.uid}
    owners = [
        [j for uid in obj.owner_uids if (j := index_of_uid.get(uid)) is not None and j != i]
        for i, obj in enumerate(objects)
    ]
    level: list[int | None] = [None] * len(objects)
    for start in range(len(objects)):
        if level[start] is not None:
            continue
        # iterative depth-first walk up the owner graph (no recursion limit on long chains)
        on_path = {start}
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            node, next_owner = stack[-1]
            pending = owners[node]
            if next_owner < len(pending):
                stack[-1] = (node, next_owner + 1)
                owner = pending[next_owner]
                if level[owner] is None and owner not in on_path:
                    on_path.add(owner)
                    stack.append((owner, 0))
                continue
            result = base[node]
            for owner in pending:
                owner_level = level[owner]
                if owner_level is not None:  # None only for an owner on a cycle
                    result = max(result, owner_level + 1)
            level[node] = result
            on_path.discard(node)
            stack.pop()

    tiers: dict[int, list[ArchivedObject]] = {}
    for obj, value in zip(objects, level, strict=True):
        assert value is not None
        tiers.setdefault(value, []).append(obj)
    return [
        sorted(tiers[key], key=lambda o: (o.group_resource, o.namespace or "", o.name))
        for key in sorted(tiers)
    ]
