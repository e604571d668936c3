"""ObjectEngine: a namespace's Kubernetes objects into a snapshot, and back onto a cluster.

Snapshot parts (see docs/repository-format.md)::

    snapshots/<id>/resources.tar.zst     Velero's layout: resources/<resource>.<group>/...
    snapshots/<id>/resource-list.json    group_resource -> ["ns/name", ...]
    snapshots/<id>/metadata.json         written last: the snapshot exists once this does

The engine's public methods are synchronous (the reconciler calls them from worker threads);
each runs its own event loop so that listing and creating go in parallel over httpx.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio

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
from reconciler.engines.objects._archive import read_archive, resource_list, write_archive
from reconciler.engines.objects._collect import Collection, collect
from reconciler.engines.objects._prechecks import run_prechecks
from reconciler.engines.objects._restore import restore_objects
from reconciler.errors import KubeferryError
from reconciler.kube import KubeClient, KubeRest
from reconciler.repository import Repository

SNAPSHOT_FORMAT = "kubeferry.objects/v1"
ARCHIVE_PART = "resources.tar.zst"
RESOURCE_LIST_PART = "resource-list.json"

T = TypeVar("T")


class SnapshotFormatError(KubeferryError):
    """A snapshot this engine cannot read (another format, damaged, wrong digest)."""


class ObjectEngine:
    """Every namespaced resource type, filtered, ordered, sanitised; parallel within a tier."""

    name = "objects"

    def __init__(self, *, parallelism: int = 32, list_parallelism: int = 8) -> None:
        self.parallelism = parallelism
        self.list_parallelism = list_parallelism

    # -- sync entry points (called from worker threads) ------------------------------------

    def _run(self, client: KubeClient, work: Callable[[KubeRest], Awaitable[T]]) -> T:
        async def main() -> T:
            async with client.rest(max_connections=self.parallelism) as rest:
                return await work(rest)

        return anyio.run(main)

    def observe(self, client: KubeClient, namespace: str, job: JobSpec) -> SourceObservation:
        collection = self._run(client, lambda rest: self._collect(rest, namespace, job))
        return SourceObservation(collection.fingerprint(), collection.requirements())

    def fingerprint(self, client: KubeClient, namespace: str, job: JobSpec) -> str:
        return self.observe(client, namespace, job).fingerprint

    def precheck(
        self, client: KubeClient, job: JobSpec, requirements: RestoreRequirements
    ) -> PrecheckReport:
        return self._run(client, lambda rest: run_prechecks(rest, job, requirements))

    def snapshot_requirements(
        self, repository: Repository, snapshot_id: str
    ) -> RestoreRequirements:
        document = self._metadata(repository, snapshot_id)
        requirements = document.get("requirements")
        if not isinstance(requirements, dict):
            raise SnapshotFormatError(f"snapshot {snapshot_id}: metadata has no requirements")
        return RestoreRequirements.from_dict(requirements)

    def backup(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
        metadata: dict[str, object],
    ) -> BackupResult:
        started = datetime.now(UTC)
        collection = self._run(client, lambda rest: self._collect(rest, job.namespace, job))
        if not collection.exists:
            raise KubeferryError(
                f"namespace {job.namespace} does not exist on {job.source_cluster}",
                hint="create it, or fix the job's namespace",
            )
        reporter.total(len(collection.objects))
        for text in collection.warnings:
            reporter.warning(text)
        for item in collection.objects:
            reporter.check_cancelled()
            reporter.item_done(f"{item.group_resource}/{item.name}")
        archive = write_archive(collection.objects)
        listing = json.dumps(resource_list(collection.objects), indent=1, sort_keys=True).encode()
        fingerprint = collection.fingerprint()
        document = {
            **metadata,
            "format": SNAPSHOT_FORMAT,
            "formatVersion": 1,
            "snapshotId": snapshot_id,
            "job": job.name,
            "namespace": job.namespace,
            "sourceCluster": job.source_cluster,
            "counts": collection.counts(),
            "totalItems": len(collection.objects),
            "itemsBackedUp": len(collection.objects),
            "skipped": dict(sorted(collection.skipped.items())),
            "warnings": collection.warnings,
            "digests": {
                ARCHIVE_PART: hashlib.sha256(archive).hexdigest(),
                RESOURCE_LIST_PART: hashlib.sha256(listing).hexdigest(),
            },
            "fingerprint": fingerprint,
            "requirements": collection.requirements().to_dict(),
            "tool": f"kubeferry {__version__}",
            "listedAt": started.isoformat(),
            "completedAt": datetime.now(UTC).isoformat(),
        }
        reporter.check_cancelled()
        repository.write_snapshot(
            snapshot_id,
            {ARCHIVE_PART: archive, RESOURCE_LIST_PART: listing},
            json.dumps(document, indent=2).encode(),
        )
        return BackupResult(
            snapshot_id=snapshot_id,
            items=len(collection.objects),
            size_bytes=len(archive) + len(listing),
            source_fingerprint=fingerprint,
            warnings=list(collection.warnings),
        )

    def restore(
        self,
        client: KubeClient,
        repository: Repository,
        job: JobSpec,
        snapshot_id: str,
        reporter: Reporter,
        *,
        after_claims: Callable[[], None] | None = None,
    ) -> RestoreResult:
        """Pre-checks, then the tiers; ``after_claims`` runs once the PVCs exist (the volume
        data hook, see ``restore_objects``), before the workloads."""
        document = self._metadata(repository, snapshot_id)
        archive = repository.read_snapshot_part(snapshot_id, ARCHIVE_PART)
        expected = (document.get("digests") or {}).get(ARCHIVE_PART)
        if hashlib.sha256(archive).hexdigest() != expected:
            raise SnapshotFormatError(
                f"snapshot {snapshot_id}: {ARCHIVE_PART} does not match its recorded digest"
            )
        objects = read_archive(archive)
        requirements = RestoreRequirements.from_dict(document.get("requirements") or {})
        source_namespace = str(document.get("namespace") or job.namespace)

        # before anything is written, through the public method so that a subclass's
        # checks apply to restores too
        report = self.precheck(client, job, requirements)
        if report.overall == "not_compatible" and job.pre_check_flag == "stopOnPrecheck":
            raise PrecheckFailed(report, f"{job.destination_cluster}/{job.target_namespace}")

        async def work(rest: KubeRest) -> Any:
            reporter.total(len(objects))
            # a thread pool restores each tier (see _restore); the loop only waits
            return await anyio.to_thread.run_sync(
                lambda: restore_objects(
                    rest.blocking,
                    objects,
                    job,
                    snapshot_id=snapshot_id,
                    source_namespace=source_namespace,
                    target_namespace=job.target_namespace,
                    reporter=reporter,
                    parallelism=self.parallelism,
                    after_claims=after_claims,
                )
            )

        tally = self._run(client, work)
        for text in tally.warnings:
            item, _, message = text.partition(": ")
            reporter.warning(message, item)
        destination = self.fingerprint(client, job.target_namespace, job)
        return RestoreResult(
            items=len(objects),
            destination_fingerprint=destination,
            warnings=list(tally.warnings),
            precheck=report,
            outcomes={k: v for k, v in tally.outcomes.items() if v},
        )

    # -- internals ---------------------------------------------------------------------------

    async def _collect(self, rest: KubeRest, namespace: str, job: JobSpec) -> Collection:
        return await collect(rest, namespace, job, parallelism=self.list_parallelism)

    @staticmethod
    def _metadata(repository: Repository, snapshot_id: str) -> dict[str, Any]:
        try:
            document = json.loads(repository.read_snapshot_metadata(snapshot_id))
        except ValueError:
            raise SnapshotFormatError(f"snapshot {snapshot_id}: metadata is not JSON") from None
        if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
            found = document.get("format") if isinstance(document, dict) else None
            raise SnapshotFormatError(
                f"snapshot {snapshot_id} has format {found!r}, not {SNAPSHOT_FORMAT}"
            )
        return document
