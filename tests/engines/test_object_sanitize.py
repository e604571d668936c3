"""Restore-time sanitising, portable content, semantic comparison and owner re-linking."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from reconciler.engines.objects import (
    is_subset,
    label_value,
    portable,
    relink_owners,
    sanitize_for_restore,
)

SERVER_META = {
    "uid": "u-1",
    "resourceVersion": "42",
    "generation": 3,
    "creationTimestamp": "2024-01-01T00:00:00Z",
    "deletionTimestamp": "2024-01-02T00:00:00Z",
    "deletionGracePeriodSeconds": 30,
    "selfLink": "/api/v1/x",
    "managedFields": [{"manager": "kubectl"}],
}


def sanitize(obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "source_namespace": "src",
        "target_namespace": "dst",
        "storage_class_mapping": {"fast": "standard"},
        "snapshot_id": "web-20240101000000-abcdef",
        "job": "web",
    }
    options.update(kw)
    return sanitize_for_restore(obj, **options)


def meta(name: str, namespace: str | None = "src", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, **SERVER_META, **extra}
    if namespace is not None:
        data["namespace"] = namespace
    return data


def service(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata = meta("web")
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def last_applied(spec: dict[str, Any]) -> dict[str, str]:
    return {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
            {"apiVersion": "v1", "kind": "Service", "spec": spec}
        )
    }


def test_generic_metadata_status_namespace_and_labels() -> None:
    source = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("cfg", labels={"app": "web"}),
        "data": {"k": "v"},
        "status": {"x": 1},
    }
    out = sanitize(source)
    assert out == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cfg",
            "namespace": "dst",
            "labels": {
                "app": "web",
                "kubeferry.io/snapshot": "web-20240101000000-abcdef",
                "kubeferry.io/job": "web",
            },
        },
        "data": {"k": "v"},
    }


def test_sanitize_does_not_mutate_its_input() -> None:
    source = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("db", annotations={"deployment.kubernetes.io/revision": "2"}),
        "spec": {
            "template": {"metadata": {"labels": {"kubeslice.io/slice": "s", "app": "db"}}},
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"storageClassName": "fast"}}
            ],
        },
        "status": {"replicas": 1},
    }
    before = copy.deepcopy(source)
    sanitize(source)
    portable(source)
    relink_owners(source, {})
    assert source == before


@pytest.mark.parametrize(
    ("spec", "annotations", "expected"),
    [
        # ClusterIP: the address is the cluster's; removed
        (
            {"type": "ClusterIP", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"],
             "ports": [{"port": 80}]},
            None,
            {"type": "ClusterIP", "ports": [{"port": 80}]},
        ),
        # headless: "None" is the user's intent; kept
        (
            {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]},
            None,
            {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]},
        ),
        # NodePort auto-assigned (no last-applied record): removed
        (
            {"type": "NodePort", "clusterIP": "10.0.0.6",
             "ports": [{"name": "http", "port": 80, "nodePort": 31234}]},
            None,
            {"type": "NodePort", "ports": [{"name": "http", "port": 80}]},
        ),
        # NodePort set explicitly (last-applied shows it): kept; the auto one is removed
        (
            {"type": "NodePort", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "metrics", "port": 9090, "nodePort": 31999}]},
            last_applied({"type": "NodePort", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "metrics", "port": 9090}]}),
            {"type": "NodePort", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "metrics", "port": 9090}]},
        ),
        # unnamed port: matched by port/protocol
        (
            {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
            last_applied({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
        ),
        # healthCheckNodePort: auto-assigned removed
        (
            {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
             "healthCheckNodePort": 32000, "ports": [{"port": 80, "nodePort": 30001}]},
            None,
            {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]},
        ),
        # kubeferry.io/preserve-node-ports keeps them all
        (
            {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31234}]},
            {"kubeferry.io/preserve-node-ports": "true"},
            {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31234}]},
        ),
    ],
)  # fmt: skip
def test_service(
    spec: dict[str, Any], annotations: dict[str, str] | None, expected: dict[str, Any]
) -> None:
    assert sanitize(service(spec, annotations))["spec"] == expected


def test_pvc_loses_binding_and_maps_storage_class() -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(
            "data",
            annotations={
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": "rancher.io/local-path",
                "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
                "volume.kubernetes.io/selected-node": "node-1",
                "volume.beta.kubernetes.io/storage-class": "fast",
                "team": "a",
            },
            finalizers=["kubernetes.io/pvc-protection"],
        ),
        "spec": {"storageClassName": "fast", "volumeName": "pvc-123", "resources": {}},
        "status": {"phase": "Bound"},
    }
    out = sanitize(pvc)
    assert out["spec"] == {"storageClassName": "standard", "resources": {}}
    assert out["metadata"]["annotations"] == {
        "volume.beta.kubernetes.io/storage-class": "standard",
        "team": "a",
    }
    assert out["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert "status" not in out


@pytest.mark.parametrize(("claim_ns", "expected_ns"), [("src", "dst"), ("other", "other")])
def test_pv_claim_ref_namespace_mapping(claim_ns: str, expected_ns: str) -> None:
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta(
            "pv-1",
            namespace=None,
            annotations={"pv.kubernetes.io/bound-by-controller": "yes",
                         "pv.kubernetes.io/provisioned-by": "x"},
        ),
        "spec": {
            "storageClassName": "fast",
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": claim_ns, "name": "data",
                         "uid": "c-1", "resourceVersion": "9"},
        },
        "status": {"phase": "Bound"},
    }  # fmt: skip
    out = sanitize(pv)
    assert out["spec"] == {
        "storageClassName": "standard",
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": expected_ns, "name": "data"},
    }
    assert out["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": "x"}
    assert "namespace" not in out["metadata"]
    assert "status" not in out


def test_statefulset_volume_claim_templates_storage_class_and_kubeslice() -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("db", labels={"kubeslice.io/slice": "red", "app": "db"}),
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app": "db", "kubeslice.io/pod-type": "app"},
                    "annotations": {"ns.networkservicemesh.io": "red", "kubeslice.io/status": "x"},
                },
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": "a"}, "spec": {"storageClassName": "fast"},
                 "status": {"phase": "Pending"}},
                {"metadata": {"name": "b"}, "spec": {"storageClassName": "slow"}},
                {"metadata": {"name": "c", "annotations": {
                    "volume.beta.kubernetes.io/storage-class": "fast"}}, "spec": {}},
            ],
        },
    }  # fmt: skip
    out = sanitize(sts)
    templates = out["spec"]["volumeClaimTemplates"]
    assert templates[0] == {"metadata": {"name": "a"}, "spec": {"storageClassName": "standard"}}
    assert templates[1]["spec"]["storageClassName"] == "slow"
    assert templates[2]["metadata"]["annotations"] == {
        "volume.beta.kubernetes.io/storage-class": "standard"
    }
    assert out["spec"]["template"]["metadata"] == {"labels": {"app": "db"}}
    assert "kubeslice.io/slice" not in out["metadata"]["labels"]


def test_kubeslice_metadata_is_stripped_from_pods_and_cronjob_templates() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(
            "p",
            labels={"kubeslice.io/nsmIP": "1.2.3.4", "kubeslice.io/pod-type": "app"},
            annotations={"networkservicemesh.io": "x", "kubeslice.io/status": "injected"},
        ),
        "spec": {"containers": []},
    }
    out = sanitize(pod)
    assert out["metadata"]["labels"] == {
        "kubeferry.io/snapshot": "web-20240101000000-abcdef",
        "kubeferry.io/job": "web",
    }
    assert "annotations" not in out["metadata"]
    cron = {
        "apiVersion": "batch/v1beta1",
        "kind": "CronJob",
        "metadata": meta("nightly"),
        "spec": {
            "jobTemplate": {
                "spec": {"template": {"metadata": {"labels": {"kubeslice.io/slice": "s"}}}}
            }
        },
    }
    assert sanitize(cron)["spec"]["jobTemplate"]["spec"]["template"] == {"metadata": {}}


def test_pod_node_name_priority_and_token_volumes() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("p"),
        "spec": {
            "nodeName": "node-1",
            "priority": 0,
            "serviceAccountName": "app",
            "volumes": [
                {"name": "app-token-x1y2z", "secret": {"secretName": "app-token-x1y2z"}},
                {"name": "data", "emptyDir": {}},
            ],
            "containers": [
                {
                    "name": "c",
                    "volumeMounts": [
                        {"name": "app-token-x1y2z", "mountPath": "/var/run/secrets/x"},
                        {"name": "data", "mountPath": "/data"},
                    ],
                }
            ],
            "initContainers": [
                {"name": "i", "volumeMounts": [{"name": "app-token-x1y2z", "mountPath": "/s"}]}
            ],
        },
    }
    spec = sanitize(pod)["spec"]
    assert spec == {
        "serviceAccountName": "app",
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "initContainers": [{"name": "i"}],
    }


def test_job_controller_uid_selector_and_labels() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("once", labels={"controller-uid": "j-1", "job-name": "once"}),
        "spec": {
            "manualSelector": False,
            "selector": {"matchLabels": {"controller-uid": "j-1"}},
            "template": {
                "metadata": {"labels": {"controller-uid": "j-1", "job-name": "once", "app": "x"}}
            },
        },
    }
    spec = sanitize(job)["spec"]
    assert spec == {"template": {"metadata": {"labels": {"app": "x"}}}}
    manual = copy.deepcopy(job)
    manual["spec"]["manualSelector"] = True
    manual["spec"]["selector"] = {"matchLabels": {"app": "x", "controller-uid": "j-1"}}
    spec = sanitize(manual)["spec"]
    assert spec["manualSelector"] is True
    assert spec["selector"] == {"matchLabels": {"app": "x"}}


def test_service_account_drops_token_secrets_keeps_pull_secrets() -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta("builder"),
        "secrets": [{"name": "builder-token-abcde"}, {"name": "extra"}],
        "imagePullSecrets": [{"name": "registry"}],
    }
    out = sanitize(sa)
    assert out["secrets"] == [{"name": "extra"}]
    assert out["imagePullSecrets"] == [{"name": "registry"}]
    only_token = {**sa, "secrets": [{"name": "builder-token-abcde"}]}
    assert "secrets" not in sanitize(only_token)


@pytest.mark.parametrize("kind", ["RoleBinding", "ClusterRoleBinding"])
def test_binding_subjects_follow_the_namespace_mapping(kind: str) -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta("b"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "app", "namespace": "src"},
            {"kind": "ServiceAccount", "name": "mon", "namespace": "monitoring"},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        ],
    }
    subjects = sanitize(binding)["subjects"]
    assert [s.get("namespace") for s in subjects] == ["dst", "monitoring", None]


def test_namespace_object_is_renamed() -> None:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(
            "src",
            namespace=None,
            labels={"kubernetes.io/metadata.name": "src", "team": "a", "kubeslice.io/slice": "s"},
        ),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    out = sanitize(namespace)
    assert out["metadata"]["name"] == "dst"
    assert out["metadata"]["labels"] == {
        "team": "a",
        "kubeferry.io/snapshot": "web-20240101000000-abcdef",
        "kubeferry.io/job": "web",
    }
    assert "spec" not in out
    assert "status" not in out


def test_deployment_revision_and_hpa_status_annotations() -> None:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("web", annotations={"deployment.kubernetes.io/revision": "7"}),
        "spec": {"replicas": 2},
    }
    assert "annotations" not in sanitize(deploy)["metadata"]
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("ds", annotations={"deprecated.daemonset.template.generation": "3"}),
    }
    assert "annotations" not in sanitize(daemonset)["metadata"]
    hpa = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(
            "web",
            annotations={
                "autoscaling.alpha.kubernetes.io/conditions": "[]",
                "autoscaling.alpha.kubernetes.io/current-metrics": "[]",
            },
        ),
        "spec": {"maxReplicas": 3},
    }
    assert "annotations" not in sanitize(hpa)["metadata"]


def test_selectorless_endpoints_keep_addresses_without_uids() -> None:
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": meta("external-db"),
        "subsets": [
            {
                "addresses": [
                    {"ip": "10.1.1.1", "targetRef": {"kind": "Pod", "namespace": "src",
                                                     "name": "p", "uid": "x",
                                                     "resourceVersion": "1"}}
                ],
                "ports": [{"port": 5432}],
            }
        ],
    }  # fmt: skip
    subset = sanitize(endpoints)["subsets"][0]
    assert subset["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "dst", "name": "p"}


def test_owner_references_are_kept_for_relinking() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(
            "cfg", ownerReferences=[{"apiVersion": "x/v1", "kind": "T", "name": "t", "uid": "o-1"}]
        ),
    }
    assert sanitize(cm)["metadata"]["ownerReferences"][0]["uid"] == "o-1"


def test_relink_owners() -> None:
    refs = [
        {"apiVersion": "x/v1", "kind": "Thing", "name": "t", "uid": "old-1", "controller": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "old-2"},
    ]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "ownerReferences": refs},
    }
    out, warnings = relink_owners(cm, {"old-1": "new-1"})
    assert out["metadata"]["ownerReferences"] == [
        {"apiVersion": "x/v1", "kind": "Thing", "name": "t", "uid": "new-1", "controller": True}
    ]
    assert len(warnings) == 1
    assert "ConfigMap/gone" in warnings[0]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "old-1"  # input untouched
    out, warnings = relink_owners(cm, {})
    assert "ownerReferences" not in out["metadata"]
    assert len(warnings) == 2
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}
    assert relink_owners(plain, {}) == (plain, [])


def test_portable_is_the_same_on_both_clusters() -> None:
    source = service(
        {"type": "NodePort", "clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 31000}]}
    )
    source["metadata"]["ownerReferences"] = [{"kind": "T", "name": "t", "uid": "a"}]
    restored = sanitize(source, target_namespace="src")
    restored["metadata"].update(uid="other", resourceVersion="1")
    restored["metadata"]["ownerReferences"][0]["uid"] = "b"
    restored["spec"].update(clusterIP="10.9.9.9", clusterIPs=["10.9.9.9"])
    restored["spec"]["ports"][0]["nodePort"] = 32000
    assert portable(source) == portable(restored)
    assert "namespace" not in portable(source)["metadata"]
    assert "kubeferry.io/job" not in portable(restored)["metadata"].get("labels", {})


@pytest.mark.parametrize(
    ("desired", "existing", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {}, False),
        ({"a": {}}, {}, True),
        ({"a": None}, {}, True),
        ({"a": []}, {}, True),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
        ({"a": [1, 2]}, {"a": [2, 1]}, False),
        ({"a": [1]}, {"a": [1, 2]}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": {"b": 1}}, {"a": "x"}, False),
        # a Deployment as sent vs. as the server stores it (defaults filled in)
        (
            {"spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "nginx"}]}}}},
            {"spec": {"replicas": 2, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                      "strategy": {"type": "RollingUpdate"},
                      "template": {"spec": {"dnsPolicy": "ClusterFirst", "containers": [
                          {"name": "c", "image": "nginx", "imagePullPolicy": "Always",
                           "terminationMessagePath": "/dev/termination-log"}]}}}},
            True,
        ),
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
            {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "nginx", "imagePullPolicy": "Always"}]}}}},
            False,
        ),
    ],
)  # fmt: skip
def test_is_subset(desired: Any, existing: Any, expected: bool) -> None:
    assert is_subset(desired, existing) is expected


@pytest.mark.parametrize(
    "text",
    ["web-20240101000000-abcdef", "a" * 80 + "-20240101000000-abcdef", "bad value!", "-x-"],
)
def test_label_values_are_valid(text: str) -> None:
    import re

    value = label_value(text)
    assert len(value) <= 63
    assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value)
    if len(text) <= 63 and text[0].isalnum() and text.replace("-", "").isalnum():
        assert value == text
    assert label_value(text) == value


def _as_destination_stores(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """What the destination server makes of a restored object (new uids, controller data)."""
    stored = copy.deepcopy(obj)
    stored["metadata"].update(uid="new", resourceVersion="7", creationTimestamp="t")
    if kind == "ServiceAccount":
        stored["secrets"] = [*stored.get("secrets", []), {"name": "app-token-zzzzz"}]
    elif kind == "Job":
        stored["spec"]["selector"] = {"matchLabels": {"controller-uid": "new"}}
        labels = stored["spec"]["template"]["metadata"].setdefault("labels", {})
        labels.update({"controller-uid": "new", "job-name": "once"})
    elif kind == "Namespace":
        stored["spec"] = {"finalizers": ["kubernetes"]}
        stored["metadata"]["labels"]["kubernetes.io/metadata.name"] = "dst"
        stored["status"] = {"phase": "Active"}
    elif kind == "Pod":
        stored["spec"]["nodeName"] = "node-9"
        stored["spec"]["volumes"] = [
            {"name": "app-token-q", "secret": {"secretName": "app-token-q"}}
        ]
        stored["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "app-token-q", "mountPath": "/s"}
        ]
    return stored


@pytest.mark.parametrize(
    "source",
    [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("app"),
         "secrets": [{"name": "app-token-abcde"}]},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("once"),
         "spec": {"selector": {"matchLabels": {"controller-uid": "old"}},
                  "template": {"metadata": {"labels": {"controller-uid": "old",
                                                       "job-name": "once"}}}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("src", namespace=None),
         "spec": {"finalizers": ["kubernetes"]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"),
         "spec": {"serviceAccountName": "app", "nodeName": "node-1",
                  "containers": [{"name": "c"}]}},
    ],
)  # fmt: skip
def test_a_restored_object_compares_identical(source: dict[str, Any]) -> None:
    """What makes a second restore a no-op: desired is a subset of what the server stored."""
    desired = sanitize(source)
    stored = _as_destination_stores(desired, source["kind"])
    assert is_subset(portable(desired), portable(stored))
