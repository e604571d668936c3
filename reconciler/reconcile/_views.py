"""Build the planner's desired and recorded views from the inventory and the ledger."""

from __future__ import annotations

import hashlib
import json

from reconciler.engines import JobSpec
from reconciler.inventory import Inventory, ReplicationJob
from reconciler.plan import DesiredJob, DesiredObject, DesiredState, RecordedJob, RecordedState
from reconciler.reconcile._movers import declared_mover_type, job_mover_notes
from reconciler.reconcile._onboard import desired_onboardings, recorded_onboardings
from state import Ledger, Reachability

# job spec fields that change what is copied; the rest (schedule, retention, policies) do not
_CONTENT_FIELDS = (
    "namespace",
    "targetNamespace",
    "resourcesToInclude",
    "resourcesToExclude",
    "labelSelector",
    "k8sObjectsOnly",
    "pvDataOnly",
    "storageClassMapping",
    "existingResourcePolicy",
)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def desired_job(inventory: Inventory, job: ReplicationJob) -> DesiredJob:
    replication_slice = inventory.slice_of(job)
    spec = job.normalized_spec()
    where = {
        "sourceCluster": replication_slice.spec.source_cluster,
        "destinationCluster": replication_slice.spec.destination_cluster,
        "repository": replication_slice.spec.repository,
    }
    source = replication_slice.spec.source_cluster
    destination = replication_slice.spec.destination_cluster
    repository = replication_slice.spec.repository
    movers = (
        ("", "")
        if job.spec.k8s_objects_only
        else (
            declared_mover_type(inventory, source),
            declared_mover_type(inventory, destination),
        )
    )
    notes = [] if job.spec.k8s_objects_only else job_mover_notes(inventory, source, repository)
    if destination != source and not job.spec.k8s_objects_only:
        notes += job_mover_notes(inventory, destination, repository)
    return DesiredJob(
        name=job.name,
        slice=replication_slice.name,
        source_cluster=replication_slice.spec.source_cluster,
        destination_cluster=replication_slice.spec.destination_cluster,
        repository=replication_slice.spec.repository,
        namespace=job.spec.namespace,
        target_namespace=job.spec.destination_namespace,
        spec_digest=_digest({"spec": spec, **where}),
        content_digest=_digest({k: spec.get(k) for k in _CONTENT_FIELDS} | where),
        backup_frequency=job.spec.backup_frequency,
        restore_frequency=job.spec.restore_frequency,
        deletion_policy=job.spec.deletion_policy,
        pre_check_flag=job.spec.pre_check_flag,
        backup_mover=movers[0],
        restore_mover=movers[1],
        mover_notes=tuple(notes),
    )


def job_spec(inventory: Inventory, job: ReplicationJob) -> JobSpec:
    replication_slice = inventory.slice_of(job)
    selector = job.spec.label_selector
    return JobSpec(
        name=job.name,
        namespace=job.spec.namespace,
        target_namespace=job.spec.destination_namespace,
        source_cluster=replication_slice.spec.source_cluster,
        destination_cluster=replication_slice.spec.destination_cluster,
        existing_resource_policy=job.spec.existing_resource_policy,
        resources_to_include=tuple(job.spec.resources_to_include),
        resources_to_exclude=tuple(job.spec.resources_to_exclude),
        label_selector=(
            ",".join(f"{k}={v}" for k, v in sorted(selector.match_labels.items()))
            if selector is not None
            else None
        ),
        k8s_objects_only=job.spec.k8s_objects_only,
        pv_data_only=job.spec.pv_data_only,
        storage_class_mapping=dict(job.spec.storage_class_mapping),
        pre_check_flag=job.spec.pre_check_flag,
        quiesce=job.spec.quiesce,
    )


def desired_state(inventory: Inventory) -> DesiredState:
    def objects(kind: str, group: dict[str, str]) -> dict[str, DesiredObject]:
        return {name: DesiredObject(kind, name, digest) for name, digest in group.items()}

    return DesiredState(
        inventory_path=str(inventory.path),
        inventory_digest=inventory.digest(),
        clusters=objects("Cluster", {n: c.spec_digest for n, c in inventory.clusters.items()}),
        repositories=objects(
            "ReplicationRepository",
            {n: r.spec_digest for n, r in inventory.repositories.items()},
        ),
        slices=objects("ReplicationSlice", {n: s.spec_digest for n, s in inventory.slices.items()}),
        application_slices=objects(
            "ApplicationSlice",
            {n: a.spec_digest for n, a in inventory.application_slices.items()},
        ),
        jobs={name: desired_job(inventory, job) for name, job in inventory.jobs.items()},
        onboardings=desired_onboardings(inventory),
    )


def recorded_state(ledger: Ledger) -> RecordedState:
    clusters = ledger.clusters()
    repositories = ledger.repositories()

    def digests(rows: list[object]) -> dict[str, str]:
        return {
            str(getattr(row, "name")): str(getattr(row, "spec_digest") or "")  # noqa: B009
            for row in rows
        }

    jobs = {
        row.name: RecordedJob(
            spec_digest=row.spec_digest or "",
            content_digest=row.content_digest or "",
            last_success_at=row.last_success_at,
            source_fingerprint=row.source_fingerprint,
            destination_fingerprint=row.destination_fingerprint,
            deletion_policy=row.deletion_policy,
            mode="backup" if row.mode == "backup" else "replicate",
            destination_cluster=row.destination_cluster,
            target_namespace=row.target_namespace,
            last_restore_at=row.last_restore_at,
        )
        for row in ledger.jobs()
    }
    return RecordedState(
        serial=ledger.serial,
        objects={
            "Cluster": digests(list(clusters)),
            "ReplicationRepository": digests(list(repositories)),
            "ReplicationSlice": digests(list(ledger.slices())),
            "ApplicationSlice": digests(list(ledger.application_slices())),
        },
        jobs=jobs,
        cluster_reachable={
            c.name: c.reachability == Reachability.REACHABLE
            for c in clusters
            if c.reachability != Reachability.UNKNOWN
        },
        cluster_versions={c.name: c.observed_version for c in clusters if c.observed_version},
        repository_available={
            r.name: r.availability.value == "Available"
            for r in repositories
            if r.availability.value != "Unknown"
        },
        onboardings=recorded_onboardings(ledger),
    )
