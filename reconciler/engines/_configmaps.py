"""A deliberately small object engine: replicates a namespace's ConfigMaps.

It does real work end to end (list, snapshot into the repository with the metadata document
written last, restore with an existing-resource policy, fingerprints for change detection)
so the reconciler core is exercised against real clusters before the full object engine
(every resource type, ordering, sanitising) replaces it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from reconciler import __version__
from reconciler.engines._protocols import (
    BackupResult,
    JobSpec,
    PrecheckFailed,
    PrecheckReport,
    Reporter,
    RestoreRequirements,
    RestoreResult,
    SourceObservation,
)
from reconciler.kube import KubeApiError, KubeClient, Manifest
from reconciler.repository import Repository

SNAPSHOT_FORMAT = "kubeferry.configmaps/v1"
_OBJECTS_PART = "configmaps.json"
# created by the control plane in every namespace; copying it would clash on the destination
_SKIPPED_NAMES = frozenset({"kube-root-ca.crt"})
_KEPT_METADATA = ("name", "labels", "annotations")


def _portable(config_map: Manifest) -> Manifest:
    """The parts of a ConfigMap that are the user's intent: no uid, resourceVersion, status."""
    metadata = config_map.get("metadata", {})
    clean: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {k: metadata[k] for k in _KEPT_METADATA if metadata.get(k)},
    }
    annotations = clean["metadata"].get("annotations")
    if annotations:
        annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        if not annotations:
            del clean["metadata"]["annotations"]
    for key in ("data", "binaryData", "immutable"):
        if key in config_map and config_map[key] is not None:
            clean[key] = config_map[key]
    return clean


def _fingerprint(objects: list[Manifest]) -> str:
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: str(o["metadata"]["name"])):
        digest.update(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class ConfigMapReplicator:
    name = "configmaps"

    def _collect(self, client: KubeClient, namespace: str, job: JobSpec) -> list[Manifest]:
        listed = client.list_objects(
            "v1", "ConfigMap", namespace, label_selector=job.label_selector
        )
        return [
            _portable(cm)
            for cm in listed
            if cm.get("metadata", {}).get("name") not in _SKIPPED_NAMES
        ]

    def fingerprint(self, client: KubeClient, namespace: str, job: JobSpec) -> str:
        return _fingerprint(self._collect(client, namespace, job))

    def observe(self, client: KubeClient, namespace: str, job: JobSpec) -> SourceObservation:
        objects = self._collect(client, namespace, job)
        return SourceObservation(_fingerprint(objects), _requirements(len(objects)))

    def precheck(
        self, client: KubeClient, job: JobSpec, requirements: RestoreRequirements
    ) -> PrecheckReport:
        """ConfigMaps need nothing a cluster could lack: always compatible (no checks)."""
        return PrecheckReport()

    def snapshot_requirements(
        self, repository: Repository, snapshot_id: str
    ) -> RestoreRequirements:
        document = json.loads(repository.read_snapshot_metadata(snapshot_id))
        return _requirements(int(document.get("counts", {}).get("configmaps", 0)))

    def backup(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
        metadata: dict[str, object],
    ) -> BackupResult:
        objects = self._collect(client, job.namespace, job)
        reporter.total(len(objects))
        for obj in objects:
            reporter.check_cancelled()
            reporter.item_done(f"configmaps/{obj['metadata']['name']}")
        body = json.dumps(objects, sort_keys=True).encode()
        fingerprint = _fingerprint(objects)
        document = {
            **metadata,
            "format": SNAPSHOT_FORMAT,
            "snapshotId": snapshot_id,
            "job": job.name,
            "namespace": job.namespace,
            "sourceCluster": job.source_cluster,
            "counts": {"configmaps": len(objects)},
            "digests": {_OBJECTS_PART: hashlib.sha256(body).hexdigest()},
            "fingerprint": fingerprint,
            "tool": f"kubeferry {__version__}",
            "completedAt": datetime.now(UTC).isoformat(),
        }
        reporter.check_cancelled()
        repository.write_snapshot(
            snapshot_id, {_OBJECTS_PART: body}, json.dumps(document, indent=2).encode()
        )
        return BackupResult(
            snapshot_id=snapshot_id,
            items=len(objects),
            size_bytes=len(body),
            source_fingerprint=fingerprint,
        )

    def restore(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
    ) -> RestoreResult:
        document = json.loads(repository.read_snapshot_metadata(snapshot_id))
        body = repository.read_snapshot_part(snapshot_id, _OBJECTS_PART)
        if hashlib.sha256(body).hexdigest() != document["digests"][_OBJECTS_PART]:
            raise RuntimeError(f"snapshot {snapshot_id}: {_OBJECTS_PART} does not match its digest")
        objects: list[Manifest] = json.loads(body)
        report = self.precheck(client, job, _requirements(len(objects)))
        if report.overall == "not_compatible" and job.pre_check_flag == "stopOnPrecheck":
            raise PrecheckFailed(report, f"{job.destination_cluster}/{job.target_namespace}")
        reporter.total(len(objects))
        namespace = job.target_namespace
        client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        warnings: list[str] = []
        outcomes: dict[str, int] = {}
        for obj in objects:
            reporter.check_cancelled()
            name = obj["metadata"]["name"]
            manifest = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
            outcome = "created"
            try:
                client.create(manifest)
            except KubeApiError as error:
                if error.status != 409:
                    raise
                existing = client.get("v1", "ConfigMap", name, namespace)
                identical = existing is not None and _portable(existing) == obj
                if job.existing_resource_policy == "none" or identical:
                    outcome = "exists-identical" if identical else "exists-differs"
                    if not identical:
                        text = "already exists with different content; kept (existingResourcePolicy none)"
                        warnings.append(f"configmaps/{name}: {text}")
                        reporter.warning(text, f"configmaps/{name}")
                elif job.existing_resource_policy == "update":
                    client.replace(manifest)
                    outcome = "updated"
                else:
                    client.delete("v1", "ConfigMap", name, namespace)
                    client.wait_for_deletion("v1", "ConfigMap", name, namespace)
                    client.create(manifest)
                    outcome = "recreated"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            reporter.item_done(f"configmaps/{name}")
        return RestoreResult(
            items=len(objects),
            destination_fingerprint=self.fingerprint(client, namespace, job),
            warnings=warnings,
            precheck=report,
            outcomes=outcomes,
        )


def _requirements(count: int) -> RestoreRequirements:
    return RestoreRequirements(resources={"configmaps": "v1"}, counts={"configmaps": count})
