"""Backup rules of the object engine: type filters and per-object skip rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.engines import JobSpec
from reconciler.engines.objects import (
    matches,
    partition,
    resource_selected,
    restore_skip_reason,
    skip_reason,
)


@dataclass(frozen=True)
class Res:
    group: str
    resource: str
    kind: str

    @property
    def group_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


DEPLOYMENTS = Res("apps", "deployments", "Deployment")
CONFIGMAPS = Res("", "configmaps", "ConfigMap")
SECRETS = Res("", "secrets", "Secret")
PVCS = Res("", "persistentvolumeclaims", "PersistentVolumeClaim")
NAMESPACES = Res("", "namespaces", "Namespace")
EVENTS = Res("", "events", "Event")
NEW_EVENTS = Res("events.k8s.io", "events", "Event")
LEASES = Res("coordination.k8s.io", "leases", "Lease")
POD_METRICS = Res("metrics.k8s.io", "pods", "PodMetrics")
SLICES = Res("controller.kubeslice.io", "sliceconfigs", "SliceConfig")


def job(**kw: Any) -> JobSpec:
    return JobSpec(
        name="j",
        namespace="src",
        target_namespace="dst",
        source_cluster="a",
        destination_cluster="b",
        **kw,
    )


@pytest.mark.parametrize(
    ("patterns", "resource", "expected"),
    [
        (["deployments"], DEPLOYMENTS, True),
        (["deployments.apps"], DEPLOYMENTS, True),
        (["Deployment"], DEPLOYMENTS, True),
        (["DEPLOYMENTS.APPS"], DEPLOYMENTS, True),
        (["*.apps"], DEPLOYMENTS, True),
        (["*"], CONFIGMAPS, True),
        (["config*"], CONFIGMAPS, True),
        (["deployments.batch"], DEPLOYMENTS, False),
        (["*.apps"], CONFIGMAPS, False),
        (["*.kubeslice.io"], SLICES, True),
        ([], CONFIGMAPS, False),
    ],
)
def test_matches(patterns: list[str], resource: Res, expected: bool) -> None:
    assert matches(patterns, resource) is expected


@pytest.mark.parametrize(
    ("spec", "resource", "cluster_extra", "expected"),
    [
        ({}, CONFIGMAPS, False, True),
        ({}, EVENTS, False, False),
        ({}, NEW_EVENTS, False, False),
        ({}, LEASES, False, False),
        ({}, POD_METRICS, False, False),
        ({"resources_to_include": ("events",)}, EVENTS, False, False),
        ({"resources_to_include": ("configmaps",)}, CONFIGMAPS, False, True),
        ({"resources_to_include": ("configmaps",)}, SECRETS, False, False),
        (
            {"resources_to_include": ("*",), "resources_to_exclude": ("secrets",)},
            SECRETS,
            False,
            False,
        ),
        (
            {"resources_to_include": ("secrets",), "resources_to_exclude": ("secrets",)},
            SECRETS,
            False,
            False,
        ),
        ({"pv_data_only": True}, CONFIGMAPS, False, False),
        ({"pv_data_only": True}, PVCS, False, True),
        ({"k8s_objects_only": True}, CONFIGMAPS, False, True),
        # the Namespace and other cluster-scoped extras ignore the include list ...
        ({"resources_to_include": ("configmaps",)}, NAMESPACES, True, True),
        # ... but not the exclude list
        ({"resources_to_exclude": ("namespaces",)}, NAMESPACES, True, False),
    ],
)
def test_resource_selected(
    spec: dict[str, Any], resource: Res, cluster_extra: bool, expected: bool
) -> None:
    assert resource_selected(job(**spec), resource, cluster_scoped_extra=cluster_extra) is expected


def obj(
    kind: str,
    name: str,
    *,
    api: str = "v1",
    uid: str | None = None,
    owner: tuple[str, str, str] | None = None,
    controller: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "src", "uid": uid or f"uid-{name}"}
    if owner is not None:
        owner_api, owner_kind, owner_name = owner
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner_api,
                "kind": owner_kind,
                "name": owner_name,
                "uid": f"uid-{owner_name}",
                "controller": controller,
            }
        ]
    metadata.update(extra.pop("metadata", {}))
    return {"apiVersion": api, "kind": kind, "metadata": metadata, **extra}


DEPLOY = obj("Deployment", "web", api="apps/v1")
RS = obj("ReplicaSet", "web-5d4", api="apps/v1", owner=("apps/v1", "Deployment", "web"))
RS_POD = obj("Pod", "web-5d4-x", owner=("apps/v1", "ReplicaSet", "web-5d4"))
OWNED = {"uid-web", "uid-web-5d4", "uid-db", "uid-ds", "uid-batch", "uid-nightly", "uid-cr"}


@pytest.mark.parametrize(
    ("manifest", "services", "skipped"),
    [
        (obj("Event", "e1"), None, True),
        (obj("Event", "e2", api="events.k8s.io/v1"), None, True),
        (obj("Lease", "l", api="coordination.k8s.io/v1"), None, True),
        (
            obj("Secret", "default-token-abcde", type="kubernetes.io/service-account-token"),
            None,
            True,
        ),
        (obj("Secret", "app", type="Opaque"), None, False),
        (obj("ConfigMap", "kube-root-ca.crt"), None, True),
        (obj("ConfigMap", "settings"), None, False),
        # endpoints of a Service with a selector are the endpoints controller's
        (obj("Endpoints", "web"), {"web"}, True),
        # ... those of a selector-less Service are the user's
        (obj("Endpoints", "external-db"), {"web"}, False),
        # without the list of Services, the controller's annotation decides
        (
            obj(
                "Endpoints",
                "web",
                metadata={
                    "annotations": {
                        "endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:00Z"
                    }
                },
            ),
            None,
            True,
        ),
        (obj("Endpoints", "external-db"), None, False),
        (
            obj(
                "EndpointSlice",
                "web-abc",
                api="discovery.k8s.io/v1beta1",
                metadata={
                    "labels": {
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
                    }
                },
            ),
            None,
            True,
        ),
        (
            obj(
                "EndpointSlice",
                "mine",
                api="discovery.k8s.io/v1beta1",
                metadata={"labels": {"endpointslice.kubernetes.io/managed-by": "me"}},
            ),
            None,
            False,
        ),
        (
            obj("Pod", "static-x", metadata={"annotations": {"kubernetes.io/config.mirror": "h"}}),
            None,
            True,
        ),
        # workload chains: Deployment -> ReplicaSet -> Pod
        (DEPLOY, None, False),
        (RS, None, True),
        (RS_POD, None, True),
        (obj("Pod", "db-0", owner=("apps/v1", "StatefulSet", "db")), None, True),
        (obj("Pod", "ds-x", owner=("apps/v1", "DaemonSet", "ds")), None, True),
        (obj("Pod", "batch-x", owner=("batch/v1", "Job", "batch")), None, True),
        (
            obj("Job", "nightly-1", api="batch/v1", owner=("batch/v1beta1", "CronJob", "nightly")),
            None,
            True,
        ),
        (
            obj(
                "ControllerRevision", "db-1", api="apps/v1", owner=("apps/v1", "StatefulSet", "db")
            ),
            None,
            True,
        ),
        # a bare Pod, and a Pod whose owner is not in the backup, are kept
        (obj("Pod", "bare"), None, False),
        (obj("Pod", "orphan", owner=("apps/v1", "ReplicaSet", "gone")), None, False),
        # a non-controller reference does not make the owner recreate it
        (
            obj("Pod", "x", owner=("apps/v1", "ReplicaSet", "web-5d4"), controller=False),
            None,
            False,
        ),
        # an operator's CR owning a ConfigMap / Pod: kept (we cannot know it recreates them)
        (obj("ConfigMap", "cfg", owner=("example.com/v1", "Thing", "cr")), None, False),
        (obj("Pod", "op", owner=("example.com/v1", "Thing", "cr")), None, False),
        # PVCs of a StatefulSet hold data: never skipped for their owner
        (
            obj("PersistentVolumeClaim", "data-db-0", owner=("apps/v1", "StatefulSet", "db")),
            None,
            False,
        ),
    ],
)
def test_skip_reason(manifest: dict[str, Any], services: set[str] | None, skipped: bool) -> None:
    reason = skip_reason(manifest, OWNED, services_with_selector=services)
    assert (reason is not None) is skipped, reason


def test_partition_skips_the_whole_workload_chain() -> None:
    service = obj("Service", "web", spec={"selector": {"app": "web"}})
    external = obj("Service", "external-db", spec={"ports": [{"port": 5432}]})
    objects = [
        DEPLOY,
        RS,
        RS_POD,
        obj("Pod", "bare"),
        service,
        external,
        obj("Endpoints", "web"),
        obj("Endpoints", "external-db"),
    ]
    kept, skipped = partition(objects)
    assert [o["metadata"]["name"] for o in kept] == [
        "web",
        "bare",
        "web",
        "external-db",
        "external-db",
    ]
    assert {(o["kind"], o["metadata"]["name"]) for o, _ in skipped} == {
        ("ReplicaSet", "web-5d4"),
        ("Pod", "web-5d4-x"),
        ("Endpoints", "web"),
    }
    assert all(reason for _, reason in skipped)


@pytest.mark.parametrize(
    ("policy", "skipped"), [("Delete", True), ("Retain", False), ("Recycle", False)]
)
def test_restore_skips_dynamically_provisioned_volumes(policy: str, skipped: bool) -> None:
    pv = obj("PersistentVolume", "pvc-1", spec={"persistentVolumeReclaimPolicy": policy})
    assert (restore_skip_reason(pv) is not None) is skipped
    assert restore_skip_reason(obj("ConfigMap", "x")) is None
