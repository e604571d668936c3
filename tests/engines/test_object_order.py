"""Restore order: dependency tiers and owner-aware placement."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.engines.objects import ArchivedObject, restore_tiers


def item(
    group_resource: str,
    name: str,
    *,
    kind: str = "K",
    owners: tuple[str, ...] = (),
    namespace: str | None = "shop",
    **extra: Any,
) -> ArchivedObject:
    group = group_resource.partition(".")[2]
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if namespace:
        metadata["namespace"] = namespace
    if owners:
        metadata["ownerReferences"] = [
            {"apiVersion": "x/v1", "kind": "K", "name": o, "uid": f"uid-{o}"} for o in owners
        ]
    manifest = {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": metadata,
        **extra,
    }
    return ArchivedObject.from_manifest(group_resource, manifest)


def names(tiers: list[list[ArchivedObject]]) -> list[list[str]]:
    return [[o.name for o in tier] for tier in tiers]


def test_the_documented_order() -> None:
    objects = [
        item("widgets.example.com", "w"),
        item("ingresses.networking.k8s.io", "ing"),
        item("horizontalpodautoscalers.autoscaling", "hpa"),
        item("cronjobs.batch", "cron"),
        item("deployments.apps", "deploy"),
        item("statefulsets.apps", "sts"),
        item("services", "svc"),
        item("resourcequotas", "quota"),
        item("limitranges", "limits"),
        item("rolebindings.rbac.authorization.k8s.io", "rb"),
        item("roles.rbac.authorization.k8s.io", "role"),
        item("configmaps", "cm"),
        item("secrets", "secret"),
        item("serviceaccounts", "sa"),
        item("persistentvolumeclaims", "pvc"),
        item("persistentvolumes", "pv", namespace=None),
        item("storageclasses.storage.k8s.io", "sc", namespace=None),
        item("namespaces", "shop", namespace=None),
        item("customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com",
             namespace=None, spec={"group": "example.com"}),
    ]  # fmt: skip
    assert names(restore_tiers(objects)) == [
        ["widgets.example.com"],
        ["shop"],
        ["sc"],
        ["pv"],
        ["pvc"],
        ["sa"],
        ["secret"],
        ["cm"],
        ["role"],
        ["rb"],
        ["limits", "quota"],
        ["svc"],
        ["cron", "deploy", "sts"],
        ["hpa", "ing"],  # everything else, alphabetically by group_resource
        ["w"],  # custom resources last
    ]


def test_a_cr_owning_a_configmap_goes_after_the_cr() -> None:
    objects = [
        item("configmaps", "generated", owners=("thing",)),
        item("configmaps", "plain"),
        item("things.example.com", "thing"),
    ]
    assert names(restore_tiers(objects)) == [["plain"], ["thing"], ["generated"]]


def test_owner_chains_follow_each_other() -> None:
    objects = [
        item("configmaps", "c", owners=("b",)),
        item("secrets", "b", owners=("a",)),
        item("things.example.com", "a"),
        item("configmaps", "solo"),
    ]
    assert names(restore_tiers(objects)) == [["solo"], ["a"], ["b"], ["c"]]


def test_an_owner_in_an_earlier_tier_changes_nothing() -> None:
    objects = [
        item("deployments.apps", "web", owners=("cfg",)),
        item("configmaps", "cfg"),
        item("services", "svc"),
    ]
    assert names(restore_tiers(objects)) == [["cfg"], ["svc"], ["web"]]


def test_an_owner_in_the_same_tier_comes_first() -> None:
    objects = [item("configmaps", "child", owners=("parent",)), item("configmaps", "parent")]
    assert names(restore_tiers(objects)) == [["parent"], ["child"]]


def test_a_moved_object_joins_the_next_tier() -> None:
    # a Secret owned by a ServiceAccount is already after it; a ServiceAccount owned by a
    # Secret moves to the tier right after the Secret's (the ConfigMap tier)
    objects = [
        item("serviceaccounts", "sa", owners=("s",)),
        item("secrets", "s"),
        item("configmaps", "cm"),
    ]
    assert names(restore_tiers(objects)) == [["s"], ["cm", "sa"]]


def test_absent_owners_and_cycles() -> None:
    objects = [
        item("configmaps", "orphan", owners=("not-in-snapshot",)),
        item("configmaps", "x", owners=("y",)),
        item("configmaps", "y", owners=("x",)),
        item("configmaps", "self", owners=("self",)),
    ]
    tiers = restore_tiers(objects)
    assert sorted(o.name for tier in tiers for o in tier) == ["orphan", "self", "x", "y"]
    assert tiers[0][0].name == "orphan"


def test_long_chains_do_not_recurse() -> None:
    objects = [item("configmaps", "c0")] + [
        item("configmaps", f"c{i}", owners=(f"c{i - 1}",)) for i in range(1, 3000)
    ]
    tiers = restore_tiers(objects)
    assert len(tiers) == 3000
    assert tiers[-1][0].name == "c2999"


@pytest.mark.parametrize(
    ("custom_groups", "expected"),
    [
        (None, [["cm"], ["metric", "w"]]),  # non-built-in groups are custom
        ({"example.com"}, [["cm"], ["metric"], ["w"]]),  # the caller knows the CRD groups
    ],
)
def test_custom_groups(custom_groups: set[str] | None, expected: list[list[str]]) -> None:
    objects = [
        item("widgets.example.com", "w"),
        item("nodes.metrics.example.org", "metric"),
        item("configmaps", "cm"),
    ]
    assert names(restore_tiers(objects, custom_groups=custom_groups)) == expected


def test_groups_of_snapshot_crds_are_custom() -> None:
    objects = [
        item("gadgets.apps.example", "g"),
        item("pods", "p"),
        item("customresourcedefinitions.apiextensions.k8s.io", "gadgets.apps.example",
             namespace=None, spec={"group": "apps.example"}),
    ]  # fmt: skip
    tiers = names(restore_tiers(objects, custom_groups=set()))
    assert tiers == [["gadgets.apps.example"], ["p"], ["g"]]
