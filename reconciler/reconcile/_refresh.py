"""Refresh: observe clusters, repositories and the namespaces jobs read and write."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.engines import (
    ObjectReplicator,
    PrecheckReport,
    PrecheckResult,
    RestoreRequirements,
)
from reconciler.errors import KubeferryError
from reconciler.hosting import MinioSettings
from reconciler.hosting import observe as observe_minio
from reconciler.inventory import Inventory
from reconciler.kube import KubeError
from reconciler.kube._access import api_groups, can_i
from reconciler.plan import (
    ClusterObservation,
    HostingObservation,
    NamespaceObservation,
    ObservedState,
    RepositoryObservation,
)
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._views import job_spec

# (verb, resource, group): what replication needs, checked with SelfSubjectAccessReview
REQUIRED_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("get", "namespaces", ""),
    ("create", "namespaces", ""),
    ("list", "configmaps", ""),
    ("create", "configmaps", ""),
    ("update", "configmaps", ""),
    ("list", "secrets", ""),
    ("create", "secrets", ""),
    ("list", "persistentvolumeclaims", ""),
    ("list", "customresourcedefinitions", "apiextensions.k8s.io"),
)


def _permission_key(verb: str, resource: str, group: str) -> str:
    return f"{verb} {resource}.{group}" if group else f"{verb} {resource}"


def observe_cluster(connections: Connections, name: str) -> ClusterObservation:
    try:
        client = connections.client(name)
        version = client.version()
    except KubeferryError as error:
        return ClusterObservation(name=name, reachable=False, message=str(error))
    permissions: dict[str, bool] = {}
    message = ""
    groups: dict[str, str] = {}
    try:
        groups = api_groups(client)
        for verb, resource, group in REQUIRED_PERMISSIONS:
            permissions[_permission_key(verb, resource, group)] = can_i(
                client, verb, resource, group
            )
    except KubeferryError as error:
        message = f"permissions not checked: {error}"
    return ClusterObservation(
        name=name,
        reachable=True,
        version=version,
        permissions=permissions,
        message=message,
        api_groups=groups,
    )


def observe_repository(connections: Connections, name: str) -> RepositoryObservation:
    declared = connections.inventory.repositories.get(name)
    if declared is not None and declared.spec.hosted_in is not None:
        return observe_hosted_repository(connections, name)
    try:
        repository = connections.repository(name)
        availability = repository.backend.check()
        initialized = availability.available and repository.is_initialized()
    except KubeferryError as error:
        return RepositoryObservation(name=name, available=False, message=str(error))
    return RepositoryObservation(
        name=name,
        available=availability.available,
        initialized=initialized,
        message=availability.message,
    )


MISSING_BUCKET = ": bucket does not exist"
"""How ``S3Backend.check`` ends its message for a missing bucket (apply creates it)."""


def observe_hosted_repository(connections: Connections, name: str) -> RepositoryObservation:
    """A hostedIn repository: its MinIO objects first; the S3 side only once MinIO is ready."""
    settings = MinioSettings.of(connections.inventory.repositories[name])
    where = (settings.cluster, settings.namespace)
    try:
        state = observe_minio(connections.client(settings.cluster), settings)
    except KubeferryError as error:
        return RepositoryObservation(
            name=name,
            available=False,
            message=str(error),
            hosting=HostingObservation(*where, message=str(error)),
        )
    if state.pending:
        hosting = HostingObservation(*where, state.create, state.update, state.ready, state.message)
        message = f"MinIO in {settings.location} not ready: {state.message}"
        return RepositoryObservation(name=name, available=False, message=message, hosting=hosting)
    ready = HostingObservation(*where, ready=True)
    try:
        # the transport first: an encrypted repository's marker cannot be read without a bucket
        availability = connections.backend(name).check()  # quick: few attempts, short timeouts
        if not availability.available and availability.message.endswith(MISSING_BUCKET):
            return RepositoryObservation(
                name=name,
                available=False,
                message=availability.message,
                hosting=HostingObservation(
                    *where, create=(f"Bucket/{settings.bucket}",), ready=True
                ),
            )
        initialized = availability.available and connections.repository(name).is_initialized()
    except KubeferryError as error:
        return RepositoryObservation(name=name, available=False, message=str(error), hosting=ready)
    return RepositoryObservation(
        name=name,
        available=availability.available,
        initialized=initialized,
        message=availability.message,
        hosting=ready,
    )


def observe_namespace(
    connections: Connections,
    engine: ObjectReplicator,
    inventory: Inventory,
    cluster: str,
    namespace: str,
    job_name: str,
) -> tuple[NamespaceObservation, RestoreRequirements | None]:
    """The namespace's state and fingerprint, and what restoring its objects would need."""
    try:
        client = connections.client(cluster)
        found = client.get("v1", "Namespace", namespace)
        if found is None:
            return NamespaceObservation(cluster, namespace, exists=False), None
        phase = str((found.get("status") or {}).get("phase", ""))
        spec = job_spec(inventory, inventory.jobs[job_name])
        seen = engine.observe(client, namespace, spec)
    except KubeError as error:
        return NamespaceObservation(cluster, namespace, exists=False, message=str(error)), None
    return NamespaceObservation(
        cluster, namespace, True, phase, seen.fingerprint
    ), seen.requirements


def precheck_job(
    connections: Connections,
    engine: ObjectReplicator,
    inventory: Inventory,
    job_name: str,
    requirements: RestoreRequirements,
) -> dict[str, Any]:
    """Restore pre-checks of a job against its destination, as the plan shows them."""
    spec = job_spec(inventory, inventory.jobs[job_name])
    try:
        client = connections.client(spec.destination_cluster)
        report = engine.precheck(client, spec, requirements)
    except KubeError as error:
        report = PrecheckReport(
            (PrecheckResult("destination-access", "not_compatible", str(error)),)
        )
    return report.to_dict()


def refresh(
    inventory: Inventory,
    connections: Connections,
    engine: ObjectReplicator,
    *,
    parallelism: int = 8,
) -> ObservedState:
    """Observe everything the plan needs, clusters and repositories in parallel."""
    workers = max(1, parallelism)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
        cluster_futures = {
            name: pool.submit(observe_cluster, connections, name) for name in inventory.clusters
        }
        repository_futures = {
            name: pool.submit(observe_repository, connections, name)
            for name in inventory.repositories
        }
        clusters = {name: future.result() for name, future in cluster_futures.items()}
        wanted: dict[tuple[str, str], str] = {}
        for job_name, job in inventory.jobs.items():
            replication_slice = inventory.slice_of(job)
            source = replication_slice.spec.source_cluster
            destination = replication_slice.spec.destination_cluster
            wanted.setdefault((source, job.spec.namespace), job_name)
            wanted.setdefault((destination, job.spec.destination_namespace), job_name)
        namespace_futures = {
            key: pool.submit(observe_namespace, connections, engine, inventory, *key, job_name)
            for key, job_name in wanted.items()
            if clusters[key[0]].reachable
        }
        seen = {key: future.result() for key, future in namespace_futures.items()}
        namespaces = {key: observation for key, (observation, _) in seen.items()}
        precheck_futures = {}
        for job_name, job in inventory.jobs.items():
            replication_slice = inventory.slice_of(job)
            source_key = (replication_slice.spec.source_cluster, job.spec.namespace)
            destination = replication_slice.spec.destination_cluster
            same_place = source_key == (destination, job.spec.destination_namespace)
            requirements = seen[source_key][1] if source_key in seen else None
            if same_place or requirements is None or not clusters[destination].reachable:
                continue
            precheck_futures[job_name] = pool.submit(
                precheck_job, connections, engine, inventory, job_name, requirements
            )
        prechecks = {name: future.result() for name, future in precheck_futures.items()}
        repositories = {name: future.result() for name, future in repository_futures.items()}
    return ObservedState(
        clusters=clusters, repositories=repositories, namespaces=namespaces, prechecks=prechecks
    )


def observed_summary(observed: ObservedState) -> dict[str, Any]:
    """The JSON-able part of a refresh that apply records in the ledger."""
    return {
        "clusters": {
            name: {
                "reachable": c.reachable,
                "version": c.version,
                "message": c.message,
                "permissions": c.permissions,
                "apiGroups": c.api_groups,
            }
            for name, c in observed.clusters.items()
        },
        "repositories": {
            name: {
                "available": r.available,
                "initialized": r.initialized,
                "message": r.message,
                **({"hosting": _hosting_summary(r.hosting)} if r.hosting is not None else {}),
            }
            for name, r in observed.repositories.items()
        },
        "prechecks": observed.prechecks,
    }


def _hosting_summary(hosting: HostingObservation) -> dict[str, Any]:
    return {
        "cluster": hosting.cluster,
        "namespace": hosting.namespace,
        "ready": hosting.ready,
        "create": list(hosting.create),
        "update": list(hosting.update),
        "message": hosting.message,
    }
