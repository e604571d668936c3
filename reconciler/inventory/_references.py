"""Checks across objects: unknown references, duplicate names, colliding destinations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from reconciler.inventory._documents import CheckedDocument, DocumentHeader, IssueReporter
from reconciler.inventory._issues import InventoryIssue
from reconciler.inventory._models import (
    ApplicationSlice,
    Cluster,
    InventoryObject,
    ReplicationJob,
    ReplicationRepository,
    ReplicationSlice,
)
from reconciler.inventory._yaml import Loc

Reference = tuple[Loc, str, str]
"""(where, referenced kind, referenced name)."""


def cross_reference_issues(checked: Sequence[CheckedDocument]) -> list[InventoryIssue]:
    """Every problem between documents; ``checked`` in file and document order."""
    declared: dict[str, dict[str, DocumentHeader]] = {}
    issues = _duplicate_names(checked, declared)
    for document in checked:
        if document.obj is None:
            continue
        reporter = IssueReporter(document.document)
        for loc, kind, name in _references(document.obj):
            if name not in declared.get(kind, {}):
                known = sorted(declared.get(kind, {}))
                listed = f"declared: {', '.join(known)}" if known else f"no {kind} is declared"
                reporter.add(loc, f"unknown {kind} {name!r} ({listed})")
        issues.extend(reporter.issues)
    issues.extend(_colliding_destinations(checked))
    issues.extend(_status_write_back_controller(checked))
    issues.extend(_hosting_clusters(checked))
    return issues


def _hosting_clusters(checked: Sequence[CheckedDocument]) -> list[InventoryIssue]:
    """A hosted repository's MinIO runs in a controller cluster (KubeSlice's layout)."""
    roles = {
        document.obj.name: document.obj.spec.role
        for document in checked
        if isinstance(document.obj, Cluster)
    }
    issues: list[InventoryIssue] = []
    for document in checked:
        repository = document.obj
        if not isinstance(repository, ReplicationRepository) or repository.spec.hosted_in is None:
            continue
        cluster = repository.spec.hosted_in.cluster
        role = roles.get(cluster)
        if role is None or role == "controller":
            continue  # unknown (reported above) or fine
        reporter = IssueReporter(document.document)
        message = (
            f"Cluster {cluster!r} has role {role}; hostedIn needs a Cluster with role controller"
        )
        reporter.add(("spec", "hostedIn", "cluster"), message)
        issues.extend(reporter.issues)
    return issues


def _duplicate_names(
    checked: Sequence[CheckedDocument], declared: dict[str, dict[str, DocumentHeader]]
) -> list[InventoryIssue]:
    """Fills ``declared`` (kind -> name -> first header) and reports later duplicates."""
    issues: list[InventoryIssue] = []
    for document in checked:
        header = document.header
        if header is None:
            continue
        first = declared.setdefault(header.kind, {}).setdefault(header.name, header)
        if first is header:
            continue
        line, column = first.document.position(("metadata", "name"))
        where = f"{first.document.file}:{line}:{column}"
        reporter = IssueReporter(document.document)
        reporter.add(("metadata", "name"), f"duplicate {header.kind} name (first at {where})")
        issues.extend(reporter.issues)
    return issues


def _references(obj: InventoryObject) -> Iterator[Reference]:
    if isinstance(obj, ReplicationSlice):
        yield ("spec", "sourceCluster"), "Cluster", obj.spec.source_cluster
        yield ("spec", "destinationCluster"), "Cluster", obj.spec.destination_cluster
        yield ("spec", "repository"), "ReplicationRepository", obj.spec.repository
    elif isinstance(obj, ReplicationRepository):
        if obj.spec.hosted_in is not None:
            yield ("spec", "hostedIn", "cluster"), "Cluster", obj.spec.hosted_in.cluster
        credentials = obj.spec.credentials_from
        if credentials is not None and credentials.secret_ref is not None:
            loc: Loc = ("spec", "credentialsFrom", "secretRef", "cluster")
            yield loc, "Cluster", credentials.secret_ref.cluster
        encryption = obj.spec.encryption
        if encryption is not None and encryption.passphrase_from.secret_ref is not None:
            loc = ("spec", "encryption", "passphraseFrom", "secretRef", "cluster")
            yield loc, "Cluster", encryption.passphrase_from.secret_ref.cluster
    elif isinstance(obj, ReplicationJob):
        yield ("spec", "replicationSliceName"), "ReplicationSlice", obj.spec.replication_slice_name
        if obj.spec.onboard is not None:
            name = obj.spec.onboard.application_slice
            yield ("spec", "onboard", "applicationSlice"), "ApplicationSlice", name
    elif isinstance(obj, ApplicationSlice):
        yield ("spec", "controllerCluster"), "Cluster", obj.spec.controller_cluster
        for index, cluster in enumerate(obj.spec.clusters):
            yield ("spec", "clusters", index), "Cluster", cluster


def _status_write_back_controller(checked: Sequence[CheckedDocument]) -> list[InventoryIssue]:
    """statusWriteBack writes to ReplicationJobConfigs, which live on a controller cluster."""
    if any(
        isinstance(document.obj, Cluster) and document.obj.spec.role == "controller"
        for document in checked
    ):
        return []
    issues: list[InventoryIssue] = []
    for document in checked:
        if isinstance(document.obj, ReplicationSlice) and document.obj.spec.status_write_back:
            reporter = IssueReporter(document.document)
            message = (
                "statusWriteBack needs a Cluster with role controller in the inventory "
                "(the KubeSlice ReplicationJobConfigs live there)"
            )
            reporter.add(("spec", "statusWriteBack"), message)
            issues.extend(reporter.issues)
    return issues


def _colliding_destinations(checked: Sequence[CheckedDocument]) -> list[InventoryIssue]:
    """Two jobs must not write the same namespace of the same destination cluster."""
    slices = {
        document.obj.name: document.obj
        for document in checked
        if isinstance(document.obj, ReplicationSlice)
    }
    writers: dict[tuple[str, str], ReplicationJob] = {}
    issues: list[InventoryIssue] = []
    for document in checked:
        job = document.obj
        if not isinstance(job, ReplicationJob):
            continue
        replication_slice = slices.get(job.spec.replication_slice_name)
        if replication_slice is None:
            continue  # reported as an unknown (or invalid) slice
        cluster = replication_slice.spec.destination_cluster
        namespace = job.spec.destination_namespace
        first = writers.setdefault((cluster, namespace), job)
        if first is job:
            continue
        field = "targetNamespace" if job.spec.target_namespace is not None else "namespace"
        message = f"{first.ref} already writes namespace {namespace!r} on cluster {cluster!r}"
        reporter = IssueReporter(document.document)
        reporter.add(("spec", field), message)
        issues.extend(reporter.issues)
    return issues
