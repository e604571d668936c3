"""Which volumes of a namespace a backup copies (pure functions over manifests).

* Every PersistentVolumeClaim of the namespace, unless it carries
  ``backup.kubeferry.io/exclude: "true"``.
* Other volumes of pods only when a pod, or the workload whose pod template declares them,
  names them in ``backup.kubeferry.io/volumes: "cache,scratch"``. configMap, secret,
  projected and downwardAPI volumes are never copied as data (their objects already carry
  it); of the other types only emptyDir holds data a mover can copy.

See docs/volume-data.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EXCLUDE_ANNOTATION = "backup.kubeferry.io/exclude"
VOLUMES_ANNOTATION = "backup.kubeferry.io/volumes"

OBJECT_BACKED_TYPES = frozenset({"configMap", "secret", "projected", "downwardAPI"})
"""Volume types whose content is a Kubernetes object the object engine already copies."""
COPYABLE_POD_VOLUME_TYPES = frozenset({"emptyDir"})
"""Non-PVC volume types a mover can copy when asked for."""

_WORKLOAD_KINDS = frozenset(
    {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
)
_GROUP_RESOURCE = {
    "Pod": "pods",
    "Deployment": "deployments.apps",
    "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps",
    "ReplicaSet": "replicasets.apps",
    "Job": "jobs.batch",
    "CronJob": "cronjobs.batch",
}

Manifest = Mapping[str, Any]


@dataclass(frozen=True, order=True)
class PodVolume:
    """A non-PVC volume a pod or workload asked to have copied."""

    owner: str
    """``deployments.apps/web``, ``pods/web-0``..."""
    name: str
    type: str


@dataclass(frozen=True)
class VolumeSelection:
    claims: tuple[str, ...] = ()
    """Names of the PVCs whose data is copied, sorted."""
    excluded: tuple[str, ...] = ()
    """PVCs left out by their exclude annotation."""
    pod_volumes: tuple[PodVolume, ...] = ()
    """Opted-in non-PVC volumes of a copyable type (emptyDir)."""
    notes: tuple[str, ...] = field(default=())
    """Why an opted-in volume is not copied (object-backed type, unknown name...)."""

    @property
    def empty(self) -> bool:
        return not self.claims and not self.pod_volumes


def _metadata(obj: Manifest) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _annotations(obj: Manifest) -> Mapping[str, Any]:
    annotations = _metadata(obj).get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def is_excluded(claim: Manifest) -> bool:
    """Whether a PVC opted out (``backup.kubeferry.io/exclude: "true"``, any case)."""
    value = _annotations(claim).get(EXCLUDE_ANNOTATION)
    return isinstance(value, str) and value.strip().lower() == "true"


def requested_volumes(annotations: Mapping[str, Any]) -> list[str]:
    """The volume names of a ``backup.kubeferry.io/volumes`` annotation, in order, no repeats."""
    value = annotations.get(VOLUMES_ANNOTATION)
    if not isinstance(value, str):
        return []
    names: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def volume_type(volume: Mapping[str, Any]) -> str:
    """The volume source type (``persistentVolumeClaim``, ``emptyDir``...), "" if none."""
    for key in volume:
        if key != "name":
            return str(key)
    return ""


def pod_templates(obj: Manifest) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(template metadata, pod spec) of a Pod or of the pod template of a workload."""
    kind = obj.get("kind")
    if kind not in _WORKLOAD_KINDS:
        return
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return
    if kind == "Pod":
        yield _metadata(obj), spec
        return
    if kind == "CronJob":
        job_template = spec.get("jobTemplate")
        spec = job_template.get("spec") if isinstance(job_template, Mapping) else None
        if not isinstance(spec, Mapping):
            return
    template = spec.get("template")
    if not isinstance(template, Mapping):
        return
    pod_spec = template.get("spec")
    if isinstance(pod_spec, Mapping):
        yield _metadata(template), pod_spec


def owner_label(obj: Manifest) -> str:
    kind = str(obj.get("kind") or "")
    resource = _GROUP_RESOURCE.get(kind, kind.lower())
    return f"{resource}/{_metadata(obj).get('name', '')}"


def select_volumes(
    claims: Iterable[Manifest], workloads: Sequence[Manifest] = ()
) -> VolumeSelection:
    """The volumes of a namespace to copy, from its PVCs and its pods/workloads."""
    chosen: list[str] = []
    excluded: list[str] = []
    for claim in claims:
        name = str(_metadata(claim).get("name") or "")
        if not name:
            continue
        (excluded if is_excluded(claim) else chosen).append(name)

    pod_volumes: set[PodVolume] = set()
    notes: list[str] = []
    for obj in workloads:
        owner = owner_label(obj)
        for template_metadata, pod_spec in pod_templates(obj):
            wanted = requested_volumes(_annotations(obj))
            for name in requested_volumes(_annotations({"metadata": template_metadata})):
                if name not in wanted:
                    wanted.append(name)
            if not wanted:
                continue
            volumes = pod_spec.get("volumes")
            by_name = {
                str(v.get("name")): v
                for v in (volumes if isinstance(volumes, list) else [])
                if isinstance(v, Mapping)
            }
            for name in wanted:
                volume = by_name.get(name)
                if volume is None:
                    notes.append(f"{owner}: {VOLUMES_ANNOTATION} names {name!r}, no such volume")
                    continue
                kind = volume_type(volume)
                if kind == "persistentVolumeClaim":
                    continue  # PVCs are selected (or excluded) by themselves
                if kind in OBJECT_BACKED_TYPES:
                    notes.append(
                        f"{owner}: volume {name!r} ({kind}) is not copied as data: "
                        f"the {kind} objects carry it"
                    )
                elif kind in COPYABLE_POD_VOLUME_TYPES:
                    pod_volumes.add(PodVolume(owner, name, kind))
                else:
                    notes.append(f"{owner}: volume {name!r} ({kind or 'no type'}) cannot be copied")
    return VolumeSelection(
        claims=tuple(sorted(set(chosen))),
        excluded=tuple(sorted(set(excluded))),
        pod_volumes=tuple(sorted(pod_volumes)),
        notes=tuple(notes),
    )


def claim_volume_dir(volume: Manifest) -> str | None:
    """The data directory of a PersistentVolume as its spec names it (hostPath or local)."""
    spec = volume.get("spec")
    if not isinstance(spec, Mapping):
        return None
    for key in ("hostPath", "local"):
        source = spec.get(key)
        if isinstance(source, Mapping):
            path = source.get("path")
            if isinstance(path, str) and path:
                return path
    return None
