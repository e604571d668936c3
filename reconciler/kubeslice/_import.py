"""`kubeferry import kubeslice`: KubeSlice ReplicationSlice / ReplicationJobConfig /
SliceConfig objects -> an equivalent kubeferry inventory, with a report of what could not
be mapped. Reading goes through reconciler.kube; the mapping itself is pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.errors import KubeferryError
from reconciler.inventory import KIND_MODELS
from reconciler.kube import KubeClient
from reconciler.kubeslice._sliceconfig import SLICE_CONFIG_API, SLICE_CONFIG_KIND

API_VERSION = "kubeferry.io/v1alpha1"
PROJECT_PREFIX = "kubeslice-"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_MAPPED_SLICE = {"sourceCluster", "destinationCluster", "minIOBucketName"}
_MAPPED_JOB = {
    "replicationSliceName",
    "namespace",
    "resourcesToInclude",
    "resourcesToExclude",
    "k8sObjectsOnly",
    "pvDataOnly",
    "storageClassMapping",
    "backupFrequency",
    "restoreFrequency",
    "preCheckFlag",
}

Manifest = dict[str, Any]


@dataclass
class ProjectObjects:
    """What one KubeSlice project namespace holds."""

    project: str
    replication_slices: list[Manifest] = field(default_factory=list)
    job_configs: list[Manifest] = field(default_factory=list)
    slice_configs: list[Manifest] = field(default_factory=list)


def read_projects(client: KubeClient, project: str | None) -> list[ProjectObjects]:
    """The KubeSlice objects of ``project`` (or of every ``kubeslice-*`` namespace)."""
    if project is not None:
        if client.get("v1", "Namespace", PROJECT_PREFIX + project) is None:
            raise KubeferryError(
                f"--project {project}: namespace {PROJECT_PREFIX}{project} not found on the controller"
            )
        projects = [project]
    else:
        projects = sorted(
            str(ns["metadata"]["name"])[len(PROJECT_PREFIX) :]
            for ns in client.list_objects("v1", "Namespace")
            if str(ns["metadata"]["name"]).startswith(PROJECT_PREFIX)
        )
    found = []
    for name in projects:
        namespace = PROJECT_PREFIX + name
        found.append(
            ProjectObjects(
                project=name,
                replication_slices=client.list_objects(
                    SLICE_CONFIG_API, "ReplicationSlice", namespace
                ),
                job_configs=client.list_objects(
                    SLICE_CONFIG_API, "ReplicationJobConfig", namespace
                ),
                slice_configs=client.list_objects(SLICE_CONFIG_API, SLICE_CONFIG_KIND, namespace),
            )
        )
    return found


def parse_storage_class_mapping(text: str) -> dict[str, str] | None:
    """KubeSlice's storageClassMapping string, ``a:b,c=d`` -> {a: b, c: d}; None if unparseable."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        pieces = re.split(r"\s*[:=]\s*", part)
        if len(pieces) != 2 or not all(pieces):
            return None
        mapping[pieces[0]] = pieces[1]
    return mapping


@dataclass
class _Builder:
    controller: str
    context: str
    kubeconfig: str | None
    documents: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def add(self, kind: str, name: str, spec: Manifest) -> bool:
        document = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        try:
            KIND_MODELS[kind].model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            self.note(f"{kind}/{name}: not imported: {where}: {first['msg']}")
            return False
        self.documents[(kind, name)] = document
        return True

    def cluster(self, name: str) -> bool:
        if not _DNS_LABEL.match(name):
            self.note(f"cluster {name!r}: not a DNS label; not imported")
            return False
        if ("Cluster", name) in self.documents:
            return True
        controller = name == self.controller
        spec: Manifest = {
            "context": self.context if controller else name,
            "role": "controller" if controller else "worker",
        }
        if self.kubeconfig:
            spec["kubeconfig"] = self.kubeconfig
        if not controller:
            self.note(f"Cluster/{name}: context {name!r} assumed; check it")
        return self.add("Cluster", name, spec)


def _unmapped(builder: _Builder, address: str, spec: Manifest, mapped: set[str]) -> None:
    for key in sorted(set(spec) - mapped):
        builder.note(f"{address}: spec.{key} not mapped")


def build_inventory(
    controller: str, context: str, projects: list[ProjectObjects], kubeconfig: str | None = None
) -> tuple[list[Manifest], list[str]]:
    """The inventory documents and the report lines (one per field not mapped)."""
    builder = _Builder(controller, context, kubeconfig)
    builder.cluster(controller)
    slices: set[str] = set()
    for found in projects:
        for rs in found.replication_slices:
            name = str(rs["metadata"]["name"])
            spec = rs.get("spec") or {}
            address = f"ReplicationSlice/{name}"
            _unmapped(builder, address, spec, _MAPPED_SLICE)
            source, destination = spec.get("sourceCluster"), spec.get("destinationCluster")
            if not (isinstance(source, str) and isinstance(destination, str)):
                builder.note(f"{address}: not imported: sourceCluster/destinationCluster missing")
                continue
            if not (builder.cluster(source) and builder.cluster(destination)):
                builder.note(f"{address}: not imported: its clusters could not be imported")
                continue
            bucket = spec.get("minIOBucketName")
            if isinstance(bucket, str) and bucket:
                repository: Manifest = {"s3": {"bucket": bucket, "forcePathStyle": True}}
                builder.note(
                    f"ReplicationRepository/{name}: bucket {bucket}: set spec.s3.endpoint and "
                    "spec.credentialsFrom (the MinIO endpoint is not in the ReplicationSlice)"
                )
            else:
                repository = {"filesystem": {"path": f"./repository/{name}"}}
                builder.note(
                    f"ReplicationRepository/{name}: no minIOBucketName; a local directory is used"
                )
            if not builder.add("ReplicationRepository", name, repository):
                continue
            wanted = {
                "sourceCluster": source,
                "destinationCluster": destination,
                "repository": name,
            }
            if builder.add("ReplicationSlice", name, wanted):
                slices.add(name)
        for job in found.job_configs:
            _job(builder, job, slices)
        for config in found.slice_configs:
            _application_slice(builder, config, found.project)
    return list(builder.documents.values()), builder.notes


def _job(builder: _Builder, job: Manifest, slices: set[str]) -> None:
    name = str(job["metadata"]["name"])
    spec = job.get("spec") or {}
    address = f"ReplicationJob/{name}"
    _unmapped(builder, address, spec, _MAPPED_JOB)
    slice_name = spec.get("replicationSliceName")
    if slice_name not in slices:
        builder.note(f"{address}: not imported: ReplicationSlice {slice_name!r} was not imported")
        return
    wanted: Manifest = {"replicationSliceName": slice_name, "namespace": spec.get("namespace")}
    for key in ("resourcesToInclude", "resourcesToExclude"):
        if spec.get(key):
            wanted[key] = list(spec[key])
    for key in ("k8sObjectsOnly", "pvDataOnly"):
        if isinstance(spec.get(key), bool):
            wanted[key] = spec[key]
    for key in ("backupFrequency", "restoreFrequency"):
        if spec.get(key):
            wanted[key] = spec[key]
    mapping = spec.get("storageClassMapping")
    if isinstance(mapping, str) and mapping.strip():
        parsed = parse_storage_class_mapping(mapping)
        if parsed is None:
            builder.note(f"{address}: spec.storageClassMapping {mapping!r} not understood")
        else:
            wanted["storageClassMapping"] = parsed
    flag = spec.get("preCheckFlag")
    if flag in ("ignorePrechecks", "stopOnPrecheck"):
        wanted["preCheckFlag"] = flag
    elif flag:
        builder.note(f"{address}: spec.preCheckFlag {flag!r} is a state; stopOnPrecheck used")
    builder.add("ReplicationJob", name, wanted)


def _application_slice(builder: _Builder, config: Manifest, project: str) -> None:
    name = str(config["metadata"]["name"])
    address = f"ApplicationSlice/{name}"
    if ("ApplicationSlice", name) in builder.documents:
        builder.note(f"{address} (project {project}): not imported: the name is already used")
        return
    spec = config.get("spec") or {}
    clusters = [c for c in spec.get("clusters") or [] if isinstance(c, str) and builder.cluster(c)]
    profile = spec.get("namespaceIsolationProfile") or {}
    namespaces: list[str] = []
    for entry in profile.get("applicationNamespaces") or []:
        namespace = entry.get("namespace") if isinstance(entry, dict) else None
        if isinstance(namespace, str) and namespace not in namespaces:
            namespaces.append(namespace)
    wanted: Manifest = {
        "controllerCluster": builder.controller,
        "project": project,
        "clusters": clusters,
    }
    if namespaces:
        wanted["namespaces"] = namespaces
    builder.add("ApplicationSlice", name, wanted)


def render_inventory(documents: list[Manifest], notes: list[str], source: str) -> str:
    """YAML documents with the report as comments at the top."""
    lines = [f"# Imported by `kubeferry import kubeslice` from {source}."]
    if notes:
        lines.append("# Not mapped, or to check:")
        lines.extend(f"#   {note}" for note in notes)
    header = "\n".join(lines) + "\n"
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)
    return header + body
