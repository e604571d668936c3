"""Turn an archived source object into the object to create on the destination.

The archive keeps objects as the source server returned them (minus managedFields); all
cleaning happens here, at restore time, so rules can improve without rewriting snapshots.
Nothing here mutates its input. Rules are listed in docs/object-rules.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, cast

from reconciler.engines.objects._rules import api_group
from reconciler.kube import Manifest

SNAPSHOT_LABEL = "kubeferry.io/snapshot"
JOB_LABEL = "kubeferry.io/job"
KUBEFERRY_PREFIX = "kubeferry.io/"
PRESERVE_NODE_PORTS_ANNOTATION = "kubeferry.io/preserve-node-ports"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)
KUBESLICE_LABELS = ("kubeslice.io/nsmIP", "kubeslice.io/pod-type", "kubeslice.io/slice")
KUBESLICE_ANNOTATIONS = ("kubeslice.io/status", "ns.networkservicemesh.io", "networkservicemesh.io")
# annotations written by controllers to record their own state
CONTROLLER_ANNOTATIONS = (
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.daemonset.template.generation",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
)
PVC_BIND_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
)
PV_BIND_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller")
JOB_SELECTOR_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
JOB_CONTROLLER_LABELS = (
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _copy(value: Any) -> Any:
    """Deep copy of JSON-like data (faster than copy.deepcopy for plain dicts and lists)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def label_value(text: str) -> str:
    """``text`` when it is a valid label value, else a valid one derived from it (hashed)."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    head = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:50].strip("-_.")
    return f"{head}-{digest}" if head else digest


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _list(parent: dict[str, Any], key: str) -> list[Any]:
    value = parent.get(key)
    return value if isinstance(value, list) else []


def _drop_keys(mapping: dict[str, Any] | None, keys: tuple[str, ...]) -> None:
    if mapping is not None:
        for key in keys:
            mapping.pop(key, None)


def _prune_empty(metadata: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in metadata and not metadata[key]:
            del metadata[key]


def _pod_templates(obj: Manifest) -> Iterator[dict[str, Any]]:
    """Pod templates of workloads (spec.template, CronJob's jobTemplate, PodTemplate)."""
    spec = _dict(obj, "spec") or {}
    template = _dict(spec, "template")
    if template is not None:
        yield template
    job_spec = _dict(_dict(spec, "jobTemplate") or {}, "spec") or {}
    template = _dict(job_spec, "template")
    if template is not None:
        yield template
    if obj.get("kind") == "PodTemplate":
        template = _dict(obj, "template")
        if template is not None:
            yield template


def _strip_kubeslice(metadata: dict[str, Any] | None) -> None:
    if metadata is None:
        return
    _drop_keys(_dict(metadata, "labels"), KUBESLICE_LABELS)
    _drop_keys(_dict(metadata, "annotations"), KUBESLICE_ANNOTATIONS)
    _prune_empty(metadata, "labels", "annotations")


def _map_storage_class(holder: dict[str, Any], mapping: Mapping[str, str]) -> None:
    """Map spec.storageClassName and the beta storage-class annotation of a PVC/PV."""
    if not mapping:
        return
    spec = _dict(holder, "spec")
    if spec is not None:
        name = spec.get("storageClassName")
        if isinstance(name, str) and name in mapping:
            spec["storageClassName"] = mapping[name]
    annotations = _dict(_dict(holder, "metadata") or {}, "annotations")
    if annotations is not None:
        name = annotations.get(STORAGE_CLASS_ANNOTATION)
        if isinstance(name, str) and name in mapping:
            annotations[STORAGE_CLASS_ANNOTATION] = mapping[name]


def _port_key(port: dict[str, Any]) -> str:
    name = port.get("name")
    return str(name) if name else f"{port.get('port')}/{port.get('protocol') or 'TCP'}"


def _explicit_node_ports(annotations: dict[str, Any]) -> tuple[set[str], bool]:
    """Ports whose nodePort the last-applied configuration set, and healthCheckNodePort."""
    try:
        applied = json.loads(str(annotations.get(LAST_APPLIED_ANNOTATION) or ""))
    except ValueError:
        return set(), False
    spec = applied.get("spec") if isinstance(applied, dict) else None
    if not isinstance(spec, dict):
        return set(), False
    ports = {
        _port_key(port)
        for port in _list(spec, "ports")
        if isinstance(port, dict) and port.get("nodePort")
    }
    return ports, bool(spec.get("healthCheckNodePort"))


def _sanitize_service(obj: Manifest, annotations: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    if spec.get("clusterIP") == "None":  # headless: part of the user's intent
        if "clusterIPs" in spec:
            spec["clusterIPs"] = ["None"]
    else:
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    preserve = str(annotations.get(PRESERVE_NODE_PORTS_ANNOTATION, "")).lower() == "true"
    if preserve:
        return
    explicit, explicit_health = _explicit_node_ports(annotations)
    for port in _list(spec, "ports"):
        if isinstance(port, dict) and "nodePort" in port and _port_key(port) not in explicit:
            del port["nodePort"]
    if not explicit_health:
        spec.pop("healthCheckNodePort", None)


def _sanitize_pod(obj: Manifest) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    spec.pop("nodeName", None)
    # computed by the Priority admission plugin from priorityClassName on the destination
    spec.pop("priority", None)
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    token_prefix = f"{account}-token-"
    dropped = set()
    volumes = []
    for volume in _list(spec, "volumes"):
        name = str(volume.get("name", "")) if isinstance(volume, dict) else ""
        injected = (name.startswith(token_prefix) and "secret" in volume) or (
            name.startswith("kube-api-access-") and "projected" in volume
        )
        if injected:
            dropped.add(name)
        else:
            volumes.append(volume)
    if not dropped:
        return
    if volumes:
        spec["volumes"] = volumes
    else:
        spec.pop("volumes", None)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _list(spec, key):
            if not isinstance(container, dict):
                continue
            mounts = [
                m
                for m in _list(container, "volumeMounts")
                if not (isinstance(m, dict) and m.get("name") in dropped)
            ]
            if mounts:
                container["volumeMounts"] = mounts
            else:
                container.pop("volumeMounts", None)


def _sanitize_job(obj: Manifest) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    selector = _dict(spec, "selector")
    if selector is not None:
        _drop_keys(_dict(selector, "matchLabels"), JOB_SELECTOR_LABELS)
        _prune_empty(selector, "matchLabels")
        if not selector:
            del spec["selector"]
    if spec.get("manualSelector") is not True:
        spec.pop("manualSelector", None)
    template_metadata = _dict(_dict(spec, "template") or {}, "metadata")
    if template_metadata is not None:
        _drop_keys(_dict(template_metadata, "labels"), JOB_CONTROLLER_LABELS)
        _prune_empty(template_metadata, "labels")


def _sanitize_pvc(obj: Manifest, mapping: Mapping[str, str]) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        spec.pop("volumeName", None)
    _drop_keys(_dict(obj["metadata"], "annotations"), PVC_BIND_ANNOTATIONS)
    _map_storage_class(obj, mapping)


def _sanitize_pv(obj: Manifest, source: str, target: str, mapping: Mapping[str, str]) -> None:
    spec = _dict(obj, "spec")
    claim = _dict(spec, "claimRef") if spec is not None else None
    if claim is not None:
        claim.pop("uid", None)
        claim.pop("resourceVersion", None)
        if claim.get("namespace") == source:
            claim["namespace"] = target
    _drop_keys(_dict(obj["metadata"], "annotations"), PV_BIND_ANNOTATIONS)
    _map_storage_class(obj, mapping)


def _sanitize_statefulset(obj: Manifest, mapping: Mapping[str, str]) -> None:
    spec = _dict(obj, "spec") or {}
    for template in _list(spec, "volumeClaimTemplates"):
        if isinstance(template, dict):
            template.pop("status", None)
            _map_storage_class(template, mapping)


def _sanitize_service_account(obj: Manifest) -> None:
    name = str(obj["metadata"].get("name", ""))
    prefix = f"{name}-token-"
    if "secrets" in obj and isinstance(obj["secrets"], list):
        kept = [
            s
            for s in obj["secrets"]
            if not (isinstance(s, dict) and str(s.get("name", "")).startswith(prefix))
        ]
        if kept:
            obj["secrets"] = kept
        else:
            del obj["secrets"]


def _sanitize_binding(obj: Manifest, source: str, target: str) -> None:
    for subject in _list(obj, "subjects"):
        if (
            isinstance(subject, dict)
            and subject.get("kind") == "ServiceAccount"
            and subject.get("namespace") == source
        ):
            subject["namespace"] = target


def _sanitize_endpoints(obj: Manifest, source: str, target: str) -> None:
    for subset in _list(obj, "subsets"):
        if not isinstance(subset, dict):
            continue
        for key in ("addresses", "notReadyAddresses"):
            for address in _list(subset, key):
                ref = _dict(address, "targetRef") if isinstance(address, dict) else None
                if ref is not None:
                    ref.pop("uid", None)
                    ref.pop("resourceVersion", None)
                    if ref.get("namespace") == source:
                        ref["namespace"] = target


def _sanitize_namespace(obj: Manifest, source: str, target: str) -> None:
    metadata = obj["metadata"]
    if metadata.get("name") == source:
        metadata["name"] = target
    _drop_keys(_dict(metadata, "labels"), (NAMESPACE_NAME_LABEL,))
    spec = _dict(obj, "spec")
    if spec is not None:
        spec.pop("finalizers", None)
        if not spec:
            del obj["spec"]


def _clean(
    obj: Manifest,
    *,
    source_namespace: str,
    target_namespace: str,
    storage_class_mapping: Mapping[str, str],
) -> Manifest:
    clean = cast(Manifest, _copy(obj))
    metadata = clean.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
        clean["metadata"] = metadata
    _drop_keys(metadata, SERVER_METADATA)
    clean.pop("status", None)
    if metadata.get("namespace") == source_namespace:
        metadata["namespace"] = target_namespace
    annotations = _dict(metadata, "annotations") or {}
    _drop_keys(annotations, CONTROLLER_ANNOTATIONS)
    _strip_kubeslice(metadata)
    for template in _pod_templates(clean):
        _strip_kubeslice(_dict(template, "metadata"))

    kind = clean.get("kind")
    group = api_group(str(clean.get("apiVersion", "")))
    if group == "":
        if kind == "Service":
            _sanitize_service(clean, annotations)
        elif kind == "Pod":
            _sanitize_pod(clean)
        elif kind == "PersistentVolumeClaim":
            _sanitize_pvc(clean, storage_class_mapping)
        elif kind == "PersistentVolume":
            _sanitize_pv(clean, source_namespace, target_namespace, storage_class_mapping)
        elif kind == "ServiceAccount":
            _sanitize_service_account(clean)
        elif kind == "Endpoints":
            _sanitize_endpoints(clean, source_namespace, target_namespace)
        elif kind == "Namespace":
            _sanitize_namespace(clean, source_namespace, target_namespace)
    elif group == "batch" and kind == "Job":
        _sanitize_job(clean)
    elif group == "apps" and kind == "StatefulSet":
        _sanitize_statefulset(clean, storage_class_mapping)
    elif group == "rbac.authorization.k8s.io" and kind in ("RoleBinding", "ClusterRoleBinding"):
        _sanitize_binding(clean, source_namespace, target_namespace)
    _prune_empty(metadata, "labels", "annotations")
    return clean


def sanitize_for_restore(
    obj: Manifest,
    *,
    source_namespace: str,
    target_namespace: str,
    storage_class_mapping: Mapping[str, str],
    snapshot_id: str,
    job: str,
) -> Manifest:
    """The object to create on the destination for archived source object ``obj``.

    Returns a new dict; ``obj`` is left untouched. ownerReferences are kept as archived:
    :func:`reconciler.engines.objects.relink_owners` rewrites them once the owners exist.
    Adds the labels ``kubeferry.io/snapshot`` and ``kubeferry.io/job`` (values made valid
    label values when needed, see :func:`label_value`).
    """
    clean = _clean(
        obj,
        source_namespace=source_namespace,
        target_namespace=target_namespace,
        storage_class_mapping=storage_class_mapping,
    )
    labels = clean["metadata"].setdefault("labels", {})
    labels[SNAPSHOT_LABEL] = label_value(snapshot_id)
    labels[JOB_LABEL] = label_value(job)
    return clean


def portable(obj: Manifest) -> Manifest:
    """The content of ``obj`` that a copy on another cluster has too.

    Used for fingerprints and for "exists, identical" comparisons: sanitised as for a
    restore into the object's own namespace, without kubeferry.io/* labels, without
    metadata.namespace and without the uids of ownerReferences. Cluster-assigned values
    (uid, clusterIP, auto-assigned nodePorts, volumeName, nodeName...) are gone.
    """
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    clean = _clean(
        obj, source_namespace=namespace, target_namespace=namespace, storage_class_mapping={}
    )
    metadata = clean["metadata"]
    metadata.pop("namespace", None)
    labels = _dict(metadata, "labels")
    if labels is not None:
        for key in [k for k in labels if k.startswith(KUBEFERRY_PREFIX)]:
            del labels[key]
    for ref in _list(metadata, "ownerReferences"):
        if isinstance(ref, dict):
            ref.pop("uid", None)
    _prune_empty(metadata, "labels", "annotations")
    return clean


def is_subset(desired: Any, existing: Any) -> bool:
    """Whether every field of ``desired`` has the same value in ``existing``.

    Dicts: each key of ``desired`` must match in ``existing`` (extra keys in ``existing``,
    such as server defaults, are fine; an empty or null desired value matches an absent
    key). Lists: same length, elementwise subset. Scalars: equal (a bool never equals a
    number).
    """
    if isinstance(desired, dict):
        if not isinstance(existing, dict):
            return False
        for key, value in desired.items():
            if key not in existing:
                if value is None or value == {} or value == []:
                    continue
                return False
            if not is_subset(value, existing[key]):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(existing, list) or len(desired) != len(existing):
            return False
        return all(is_subset(d, e) for d, e in zip(desired, existing, strict=True))
    if isinstance(desired, bool) or isinstance(existing, bool):
        return type(desired) is type(existing) and desired == existing
    return bool(desired == existing)


def relink_owners(manifest: Manifest, uid_map: Mapping[str, str]) -> tuple[Manifest, list[str]]:
    """Point ``manifest``'s ownerReferences at the owners' uids on the destination.

    ``uid_map`` maps source uids (as archived) to destination uids of owners restored (or
    found existing) in this run. References to owners absent from it are dropped, each
    with a warning. Returns a new manifest and the warnings; the input is not modified.
    """
    refs = (manifest.get("metadata") or {}).get("ownerReferences")
    if not isinstance(refs, list) or not refs:
        return manifest, []
    clean = cast(Manifest, _copy(manifest))
    metadata = clean["metadata"]
    kept: list[dict[str, Any]] = []
    warnings: list[str] = []
    for ref in metadata["ownerReferences"]:
        if not isinstance(ref, dict):
            continue
        new_uid = uid_map.get(str(ref.get("uid", "")))
        if new_uid is None:
            warnings.append(
                f"ownerReference to {ref.get('kind')}/{ref.get('name')} dropped: "
                "the owner is not part of this restore"
            )
            continue
        ref["uid"] = new_uid
        kept.append(ref)
    if kept:
        metadata["ownerReferences"] = kept
    else:
        del metadata["ownerReferences"]
    return clean, warnings
