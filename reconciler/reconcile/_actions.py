"""Carry out one plan action and record its outcome in the ledger."""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from reconciler import __version__
from reconciler._events import (
    Event,
    EventBus,
    ItemDone,
    ItemWarning,
    Progress,
    RunFinished,
    RunStarted,
)
from reconciler._retry import is_retryable, retry
from reconciler.apply import Cancellation
from reconciler.engines import (
    BackupResult,
    JobSpec,
    ObjectEngine,
    ObjectReplicator,
    PrecheckFailed,
    RestoreResult,
    VolumeMover,
)
from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory, Retention
from reconciler.kube import KubeClient, KubeError, KubeUnreachableError
from reconciler.kubeslice import MirroredRun, status_write_back
from reconciler.plan import Action, ActionType
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._hosted import deploy_hosted
from reconciler.reconcile._movers import FROM_INVENTORY, MoverChoice, cluster_mover
from reconciler.reconcile._onboard import run_onboarding
from reconciler.reconcile._views import desired_job, job_spec
from reconciler.repository import Repository, RepositoryUnavailable
from reconciler.volumes import (
    HostPathMover,
    PruneStats,
    VolumeManifest,
    VolumeStore,
    delete_volume_set,
    quiesced,
    read_volume_set,
    resume,
)
from state import (
    Availability,
    EventLevel,
    IssueSeverity,
    Ledger,
    NotFoundError,
    Reachability,
    Run,
    RunKind,
    RunPhase,
    Snapshot,
)

_Result = TypeVar("_Result")
log = logging.getLogger("kubeferry.reconcile")

_SOURCE_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_SOURCE_LOCKS_GUARD = threading.Lock()


@contextmanager
def reading_source(
    cluster: str, namespace: str, check_cancelled: Callable[[], None]
) -> Iterator[None]:
    """One backup of a source namespace at a time in this process.

    A ``quiesce: true`` backup keeps the namespace's workloads at zero while it copies the
    data; another job's backup of the same namespace (same apply, parallel actions) must
    neither list them then (its snapshot would hold 0 replicas and the quiesce annotation)
    nor scale them back up (the copy would no longer be crash-consistent). Waiting stays
    cancellable.
    """
    with _SOURCE_LOCKS_GUARD:
        lock = _SOURCE_LOCKS.setdefault((cluster, namespace), threading.Lock())
    waited = False
    while not lock.acquire(timeout=0.5):
        if not waited:
            log.info("%s/%s: waiting for another backup of this namespace", cluster, namespace)
            waited = True
        check_cancelled()
    try:
        yield
    finally:
        lock.release()


def is_transient(error: BaseException) -> bool:
    """Worth another try: unreachable peers, throttling (429) and server errors (5xx)."""
    if isinstance(error, KubeUnreachableError | RepositoryUnavailable):
        return True
    return is_retryable(error)


VOLUME_GC_GRACE = timedelta(hours=1)
"""Packs and index files younger than this survive a collection (a backup may use them)."""


def _now() -> datetime:
    return datetime.now(UTC)


def default_mover() -> VolumeMover:
    """The volume mover of a cluster that declares none: the host-path mover."""
    return HostPathMover()


def new_snapshot_id(job: str, at: datetime) -> str:
    return f"{job}-{at:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


class _RunReporter:
    """Engine progress -> ledger counters (throttled) and the event bus."""

    def __init__(
        self,
        ledger: Ledger,
        bus: EventBus,
        run_id: int,
        address: str,
        cancellation: Cancellation,
    ) -> None:
        self.ledger = ledger
        self.bus = bus
        self.run_id = run_id
        self.address = address
        self.cancellation = cancellation
        self.total_items = 0
        self.items_done = 0
        self.bytes_done = 0  # of finished items
        self.warnings = 0
        self._moving: dict[str, tuple[int, int]] = {}  # item -> (bytes done, bytes total)
        self._lock = threading.Lock()
        self._last_write = 0.0

    def total(self, items: int) -> None:
        # additive: a run's object engine and volume mover each announce their items
        with self._lock:
            self.total_items += items
            total, done = self.total_items, self.items_done
        self.ledger.update_run_progress(self.run_id, total_items=total)
        self.bus.publish(
            Progress(address=self.address, run_id=self.run_id, items_done=done, total_items=total)
        )

    def item_done(self, item: str, size: int = 0) -> None:
        with self._lock:
            self.items_done += 1
            self.bytes_done += size
            self._moving.pop(item, None)
            done, total = self.items_done, self.total_items
        self.bus.publish(ItemDone(address=self.address, run_id=self.run_id, item=item))
        self._publish_progress(force_write=done == total)

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        with self._lock:
            self._moving[item] = (done, total)
        self._publish_progress(force_write=False)

    def _publish_progress(self, *, force_write: bool) -> None:
        with self._lock:
            done, total = self.items_done, self.total_items
            moving = list(self._moving.values())
            bytes_done = self.bytes_done + sum(d for d, _ in moving)
            # known so far: finished items plus the totals of those still moving
            bytes_total = self.bytes_done + sum(t for _, t in moving)
        self.bus.publish(
            Progress(
                address=self.address,
                run_id=self.run_id,
                items_done=done,
                total_items=total,
                bytes_done=bytes_done,
                bytes_total=bytes_total,
            )
        )
        now = datetime.now(UTC).timestamp()
        if force_write or now - self._last_write > 0.5:
            self._last_write = now
            self.ledger.update_run_progress(
                self.run_id,
                items_done=done,
                bytes_done=bytes_done,
                bytes_total=bytes_total or None,
            )

    def warning(self, text: str, item: str = "") -> None:
        self.warnings += 1
        self.ledger.add_run_issue(self.run_id, IssueSeverity.WARNING, text, item=item or None)
        self.bus.publish(
            ItemWarning(address=self.address, run_id=self.run_id, text=text, item=item)
        )

    def check_cancelled(self) -> None:
        self.cancellation.check()


@dataclass
class ActionRunner:
    """Callable handed to the executor: performs any action of a plan."""

    inventory: Inventory
    connections: Connections
    ledger: Ledger
    engine: ObjectReplicator
    bus: EventBus
    observed: dict[str, Any]
    attempts: int = 3
    mover: MoverChoice = FROM_INVENTORY
    """Copies volume data: FROM_INVENTORY (each cluster's spec.volumeMover), one mover for
    every cluster (tests), or None (objects only)."""

    def __call__(self, action: Action, cancellation: Cancellation) -> str:
        handler = {
            "Cluster": self._cluster,
            "ReplicationRepository": self._repository,
            "ReplicationSlice": self._slice,
            "ApplicationSlice": self._application_slice,
            "ReplicationJob": self._job,
            "Onboarding": self._onboarding,
        }[action.kind]
        # a whole action is retried: every step is idempotent or writes a new snapshot id,
        # and an abandoned snapshot is invisible (its metadata is never written)
        return retry(
            lambda: handler(action, cancellation),
            attempts=self.attempts,
            retryable=is_transient,
        )

    # -- volume movers --------------------------------------------------------------------
    def mover_for(self, cluster: str, repository: str) -> VolumeMover | None:
        """The mover that reads (backup) or writes (restore) volume data on ``cluster``
        through repository ``repository``; an explicit ``mover`` wins."""
        if self.mover == FROM_INVENTORY:
            return cluster_mover(self.inventory, self.connections, cluster, repository)
        assert not isinstance(self.mover, str)
        return self.mover

    def _note_job_mover(
        self, mover: VolumeMover, operation: str, cluster: str, job: str, run_id: int
    ) -> None:
        """Say in the event log that a run's volume data goes through mover Jobs."""
        if mover.name != "job":
            return
        self.ledger.record_event(
            "volume.mover",
            f"{operation} of volume data by the job mover on {cluster} (one Job per claim)",
            run_id=run_id,
            job=job,
            data={"mover": mover.name, "cluster": cluster, "operation": operation},
        )

    # -- registered objects ---------------------------------------------------------------
    def _cluster(self, action: Action, _: Cancellation) -> str:
        if action.type is ActionType.FORGET:
            self.ledger.delete_cluster(action.name)
            return "forgotten"
        seen = self.observed.get("clusters", {}).get(action.name, {})
        reachable = seen.get("reachable")
        self.ledger.upsert_cluster(
            action.name,
            spec_digest=self.inventory.clusters[action.name].spec_digest,
            observed_version=seen.get("version") or None,
            reachability=(
                Reachability.UNKNOWN
                if reachable is None
                else Reachability.REACHABLE
                if reachable
                else Reachability.UNREACHABLE
            ),
            permissions=seen.get("permissions", {}),
            last_refresh=_now(),
            message=seen.get("message", ""),
        )
        return "registered"

    def _repository(self, action: Action, cancellation: Cancellation) -> str:
        if action.type is ActionType.FORGET:
            self.ledger.delete_repository(action.name)
            return "forgotten (repository contents untouched)"
        detail = "registered"
        seen = self.observed.get("repositories", {}).get(action.name, {})
        available, message = bool(seen.get("available")), str(seen.get("message", ""))
        if "hosting" in action.details:
            message = deploy_hosted(self.connections, self.ledger, action.name, cancellation.check)
            available, detail = True, f"{message}; registered"
        if action.details.get("initialize"):
            repository = self.connections.repository(action.name)
            if not repository.is_initialized():
                repository.initialize(
                    str(uuid.uuid4()), passphrase=self.connections.passphrase(action.name)
                )
                detail = f"{detail.removesuffix('registered')}initialized and registered"
        self.ledger.upsert_repository(
            action.name,
            spec_digest=self.inventory.repositories[action.name].spec_digest,
            availability=Availability.AVAILABLE if available else Availability.UNAVAILABLE,
            last_validation=_now(),
            message=message,
        )
        return detail

    def _slice(self, action: Action, _: Cancellation) -> str:
        if action.type is ActionType.FORGET:
            self.ledger.delete_slice(action.name)
            return "forgotten"
        declared = self.inventory.slices[action.name]
        self.ledger.upsert_slice(
            action.name,
            source_cluster=declared.spec.source_cluster,
            destination_cluster=declared.spec.destination_cluster,
            repository=declared.spec.repository,
            spec_digest=declared.spec_digest,
            last_applied=_now(),
        )
        return "registered"

    def _application_slice(self, action: Action, _: Cancellation) -> str:
        if action.type is ActionType.FORGET:
            self.ledger.delete_application_slice(action.name)
            return "forgotten"
        declared = self.inventory.application_slices[action.name]
        self.ledger.upsert_application_slice(
            action.name,
            controller_cluster=declared.spec.controller_cluster,
            project=declared.spec.project,
            spec_digest=declared.spec_digest,
            last_applied=_now(),
        )
        return "registered"

    def _onboarding(self, action: Action, _: Cancellation) -> str:
        return run_onboarding(self.connections, self.ledger, action)

    # -- jobs --------------------------------------------------------------------------------
    def _register_job(self, name: str, **extra: Any) -> None:
        wanted = desired_job(self.inventory, self.inventory.jobs[name])
        self.ledger.upsert_job(
            name,
            slice=wanted.slice,
            namespace=wanted.namespace,
            spec_digest=wanted.spec_digest,
            content_digest=wanted.content_digest,
            mode=wanted.mode,
            source_cluster=wanted.source_cluster,
            destination_cluster=wanted.destination_cluster,
            target_namespace=wanted.target_namespace,
            deletion_policy=wanted.deletion_policy,
            last_applied=_now(),
            **extra,
        )

    def job_spec(self, name: str) -> JobSpec:
        """The engine's view of inventory job ``name`` (with its preCheckFlag)."""
        declared = self.inventory.jobs[name]
        spec = job_spec(self.inventory, declared)
        return replace(spec, pre_check_flag=declared.spec.pre_check_flag)

    def _job(self, action: Action, cancellation: Cancellation) -> str:
        if action.type is ActionType.FORGET:
            self.ledger.delete_job(action.name)
            return "forgotten (snapshots kept)"
        if action.type is ActionType.DELETE:
            cluster, namespace = action.details["cluster"], action.details["namespace"]
            self.connections.client(cluster).delete("v1", "Namespace", namespace)
            self.ledger.delete_job(action.name)
            return f"deleted namespace {namespace} on {cluster}"
        if action.type is ActionType.UPDATE:
            self._register_job(action.name)
            return "updated"
        return self._replicate(action, cancellation)

    def _run(
        self,
        kind: RunKind,
        job: str,
        address: str,
        cancellation: Cancellation,
        work: Callable[[_RunReporter, int], _Result],
        *,
        snapshot_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> tuple[int, _Result]:
        """One ledger run around ``work``: phases, counters, issues, details, events."""
        run = self.ledger.start_run(kind, job)
        assert run.id is not None
        operation = kind.value
        if details:
            self.ledger.update_run_details(run.id, details)
        self.bus.publish(RunStarted(address=address, run_id=run.id, operation=operation))
        mirror_finished = self._mirror_status(kind, job, run)
        reporter = _RunReporter(self.ledger, self.bus, run.id, address, cancellation)
        try:
            result = work(reporter, run.id)
        except BaseException as error:
            interrupted = cancellation.cancelled
            phase = RunPhase.INTERRUPTED if interrupted else RunPhase.FAILED
            message = "cancelled by the user" if interrupted else str(error)
            if not interrupted:
                self.ledger.add_run_issue(run.id, IssueSeverity.ERROR, message)
            found: dict[str, Any] = {}
            if isinstance(error, PrecheckFailed):  # stopped before writing: keep the report
                found["precheck"] = error.report.to_dict()
            mirror_finished(
                self.ledger.finish_run(
                    run.id, phase, message=message, snapshot_id=snapshot_id, details=found
                )
            )
            self.bus.publish(
                RunFinished(
                    address=address,
                    run_id=run.id,
                    operation=operation,
                    phase=phase.value,
                    detail=message,
                )
            )
            raise
        found = {}
        failed_items = 0
        if isinstance(result, RestoreResult):
            if result.precheck is not None:
                found["precheck"] = result.precheck.to_dict()
            found["outcomes"] = dict(result.outcomes)
            failed_items = result.outcomes.get("failed", 0)
        partial = reporter.warnings or failed_items
        phase = RunPhase.PARTIALLY_FAILED if partial else RunPhase.COMPLETED
        self.ledger.update_run_progress(
            run.id, items_done=reporter.items_done, bytes_done=reporter.bytes_done
        )
        mirror_finished(
            self.ledger.finish_run(
                run.id,
                phase,
                snapshot_id=getattr(result, "snapshot_id", None) or snapshot_id,
                details=found,
            )
        )
        self.bus.publish(
            RunFinished(address=address, run_id=run.id, operation=operation, phase=phase.value)
        )
        return run.id, result

    def _mirror_status(self, kind: RunKind, job: str, run: Run) -> Callable[[Run], None]:
        """statusWriteBack: mirror this run into its job's ReplicationJobConfig (start, then
        progress events, then what the returned call gets: the finished run). Without
        statusWriteBack, or for a drill, nothing. Never raises nor changes the run."""
        assert run.id is not None
        run_id = run.id

        def report(event: str, text: str) -> None:
            self.ledger.record_event(event, text, level=EventLevel.WARNING, run_id=run_id, job=job)

        mirror = status_write_back(
            self.inventory, job, kind, client_of=self.connections.client, report=report
        )
        if mirror is None:
            return lambda _: None
        mirror.started(MirroredRun.from_run(run))

        def progressed(event: Event) -> None:
            if isinstance(event, Progress) and event.run_id == run_id:
                mirror.progressed(event.items_done, event.total_items)

        unsubscribe = self.bus.subscribe(progressed)

        def finished(final: Run) -> None:
            unsubscribe()
            mirror.finished(MirroredRun.from_run(final))

        return finished

    def _initialized(self, name: str) -> Repository:
        repository = self.connections.repository(name)
        if not repository.is_initialized():
            raise KubeferryError(
                f"repository {name} is not initialized; apply its ReplicationRepository first"
            )
        return repository

    def run_backup(
        self, name: str, cancellation: Cancellation, *, address: str | None = None
    ) -> tuple[int, BackupResult]:
        """One backup run of inventory job ``name``: a new snapshot in its repository.

        Records the run and the snapshot in the ledger; returns the run id and the result.
        """
        spec = self.job_spec(name)
        wanted = desired_job(self.inventory, self.inventory.jobs[name])
        repository = self._initialized(wanted.repository)
        source = self.connections.client(spec.source_cluster)
        started = _now()
        snapshot_id = new_snapshot_id(name, started)
        metadata: dict[str, object] = {
            "sourceClusterVersion": source.version(),
            "startedAt": started.isoformat(),
            "toolVersion": __version__,
        }

        def backup(reporter: _RunReporter, run_id: int) -> BackupResult:
            with reading_source(spec.source_cluster, spec.namespace, reporter.check_cancelled):
                # workloads a killed quiesced run left at zero are scaled back first,
                # whatever this job's quiesce, else the snapshot would copy 0 replicas
                self._resume_leftovers(source, spec, run_id)
                # volume data first: the object snapshot's metadata, written last, commits both
                volume_bytes = 0
                mover = (
                    None
                    if spec.k8s_objects_only
                    else self.mover_for(spec.source_cluster, wanted.repository)
                )
                if mover is not None:
                    self._note_job_mover(mover, "backup", spec.source_cluster, name, run_id)
                    # quiesce: writers stopped while the data is read; back up before the
                    # objects are listed, so the snapshot keeps their real replica counts
                    with quiesced(source, spec.namespace) if spec.quiesce else nullcontext():
                        mover.backup_volumes(source, repository, spec, snapshot_id, reporter)
                    volume_set = read_volume_set(repository, snapshot_id)
                    if volume_set is not None:
                        summary = volume_set.summary()
                        volume_bytes = volume_set.total_bytes
                        metadata["volumes"] = summary
                        self.ledger.update_run_details(run_id, {"volumes": summary})
                result = self.engine.backup(
                    source, repository, spec, snapshot_id, reporter, metadata
                )
            self.ledger.upsert_snapshot(
                result.snapshot_id,
                job=name,
                repository=wanted.repository,
                namespace=spec.namespace,
                source_cluster=spec.source_cluster,
                created_at=started,
                size_bytes=result.size_bytes + volume_bytes,
                total_items=result.items,
                items_backed_up=result.items,
                complete=True,
                run_id=run_id,
            )
            return result

        return self._run(
            RunKind.BACKUP, name, address or f"ReplicationJob/{name}", cancellation, backup
        )

    def _resume_leftovers(self, source: KubeClient, spec: JobSpec, run_id: int) -> None:
        """Scale back what a quiesced run that died left at zero (docs/volume-data.md)."""
        try:
            resumed = resume(source, spec.namespace)
        except KubeError as error:  # e.g. no right to scale: the backup goes on
            text = (
                f"{spec.source_cluster}/{spec.namespace}: cannot scale back workloads left "
                f"quiesced by an earlier run: {error}"
            )
            log.warning("%s", text)
            self.ledger.record_event(
                "quiesce.resume-failed",
                text,
                level=EventLevel.WARNING,
                run_id=run_id,
                job=spec.name,
            )
            return
        if not resumed:
            return
        text = (
            f"{spec.source_cluster}/{spec.namespace}: scaled back workloads an earlier "
            f"quiesced run left at zero: {', '.join(resumed)}"
        )
        log.warning("%s", text)
        self.ledger.record_event(
            "quiesce.resumed",
            text,
            level=EventLevel.WARNING,
            run_id=run_id,
            job=spec.name,
            data={"namespace": spec.namespace, "workloads": ", ".join(resumed)},
        )

    def run_restore(
        self,
        name: str,
        snapshot_id: str,
        cancellation: Cancellation,
        *,
        spec: JobSpec,
        repository: str,
        address: str | None = None,
    ) -> tuple[int, RestoreResult]:
        """One restore run of ``snapshot_id`` as ``spec`` says (cluster, namespace, policy).

        The engine runs the pre-checks first; a restore they stop (PrecheckFailed) is a
        Failed run whose details keep the report.
        """
        stored = self.connections.repository(repository)
        destination = self.connections.client(spec.destination_cluster)
        details: dict[str, Any] = {
            "snapshot": snapshot_id,
            "repository": repository,
            "cluster": spec.destination_cluster,
            "namespace": spec.target_namespace,
            "existingResourcePolicy": spec.existing_resource_policy,
            "preCheckFlag": spec.pre_check_flag,
        }
        restore = self.restore_work(destination, stored, spec, snapshot_id, repository=repository)
        return self._run(
            RunKind.RESTORE,
            name,
            address or f"ReplicationJob/{name}",
            cancellation,
            restore,
            snapshot_id=snapshot_id,
            details=details,
        )

    def restore_work(
        self,
        destination: KubeClient,
        stored: Repository,
        spec: JobSpec,
        snapshot_id: str,
        *,
        repository: str,
    ) -> Callable[[_RunReporter, int], RestoreResult]:
        """The work of one restore run (objects, and the volume data after the claims), for
        ``_run``: shared by restores and DR drills. ``stored`` is repository ``repository``;
        the data is written by the destination cluster's mover."""

        def restore(reporter: _RunReporter, run_id: int) -> RestoreResult:
            if spec.k8s_objects_only:
                return self.engine.restore(destination, stored, spec, snapshot_id, reporter)
            mover = self.mover_for(spec.destination_cluster, repository)
            if mover is None:
                return self.engine.restore(destination, stored, spec, snapshot_id, reporter)
            self._note_job_mover(mover, "restore", spec.destination_cluster, spec.name, run_id)
            moved: list[int] = []

            def volumes() -> None:
                """Volume data: after the PVCs, before the workloads that mount them."""
                if moved:
                    return
                volume_set = read_volume_set(stored, snapshot_id)
                moved.append(
                    mover.restore_volumes(destination, stored, spec, snapshot_id, reporter)
                )
                if volume_set is not None:
                    self.ledger.update_run_details(
                        run_id,
                        {
                            "volumes": {
                                **volume_set.summary(),
                                # the set names the mover that backed it up
                                "backupMover": volume_set.mover,
                                "mover": mover.name,
                                "restoredBytes": moved[0],
                            }
                        },
                    )

            if isinstance(self.engine, ObjectEngine):
                result = self.engine.restore(
                    destination, stored, spec, snapshot_id, reporter, after_claims=volumes
                )
            else:  # an engine without the hook: the data follows the objects
                result = self.engine.restore(destination, stored, spec, snapshot_id, reporter)
            volumes()
            return result

        return restore

    def _replicate(self, action: Action, cancellation: Cancellation) -> str:
        spec = self.job_spec(action.name)
        wanted = desired_job(self.inventory, self.inventory.jobs[action.name])
        self._register_job(action.name)
        missed = action.details.get("missedRuns", 0)
        if missed:
            self.ledger.record_event(
                "schedule.missed",
                f"job {action.name!r}: {missed} scheduled backups missed since "
                f"{action.details.get('dueSince')}; one backup runs for them",
                level=EventLevel.WARNING,
                job=action.name,
                data={"missedRuns": missed, "dueSince": action.details.get("dueSince")},
            )
        # "steps" (restoreFrequency): which of backup and restore run; without it a
        # replication restores after every backup
        steps = action.details.get("steps")
        restore = wanted.mode == "replicate" and (steps is None or "restore" in steps)
        where = f"{spec.destination_cluster}/{spec.target_namespace}"
        if steps is not None and "backup" not in steps:
            return self._scheduled_restore(action, spec, wanted.repository, where, cancellation)
        backup_run, backed_up = self.run_backup(action.name, cancellation, address=action.address)
        snapshot_id = backed_up.snapshot_id
        fingerprint: dict[str, Any] = {}
        if wanted.mode != "replicate":
            fingerprint["destination_fingerprint"] = None
        if restore:
            _, restored = self.run_restore(
                action.name,
                snapshot_id,
                cancellation,
                spec=spec,
                repository=wanted.repository,
                address=action.address,
            )
            fingerprint["destination_fingerprint"] = restored.destination_fingerprint
        self.ledger.upsert_job(
            action.name,
            source_fingerprint=backed_up.source_fingerprint,
            last_success_at=_now(),
            **fingerprint,
        )
        pruned = self.apply_retention(action.name)
        if pruned.deleted:
            self.collect_volume_garbage(action.name, pruned.repository, run_id=backup_run)
        tail = f" and restored to {where}" if restore else ""
        if wanted.mode == "replicate" and not restore:
            tail = f" (restore to {where} waits for restoreFrequency)"
        removed = f"; retention deleted {len(pruned.deleted)}" if pruned.deleted else ""
        return f"snapshot {snapshot_id} ({backed_up.items} items){tail}{removed}"

    def _scheduled_restore(
        self,
        action: Action,
        spec: JobSpec,
        repository_name: str,
        where: str,
        cancellation: Cancellation,
    ) -> str:
        """restoreFrequency came due without a backup: restore the newest snapshot."""
        snapshots = [s for s in self.job_snapshots(action.name, repository_name) if s.complete]
        if not snapshots:
            raise KubeferryError(
                f"job {action.name!r}: no snapshot in repository {repository_name} to restore",
                hint="the next backup makes one",
            )
        newest = max(snapshots, key=lambda s: s.created_at)
        _, restored = self.run_restore(
            action.name,
            newest.id,
            cancellation,
            spec=spec,
            repository=repository_name,
            address=action.address,
        )
        self.ledger.upsert_job(
            action.name, destination_fingerprint=restored.destination_fingerprint
        )
        return f"restored snapshot {newest.id} to {where} (restoreFrequency)"

    # -- snapshots and retention ---------------------------------------------------------
    def snapshot_info(
        self, repository_name: str, repository: Repository, snapshot_id: str
    ) -> SnapshotInfo:
        """A complete snapshot as the ledger records it, else as its metadata describes it."""
        row = self.ledger.snapshot(snapshot_id)
        if row is not None and row.repository == repository_name:
            return SnapshotInfo.from_row(row, self._run_phase(row.run_id))
        return SnapshotInfo.from_metadata(
            snapshot_id, repository_name, _metadata(repository, snapshot_id)
        )

    def _run_phase(self, run_id: int | None) -> str:
        if run_id is None:
            return RunPhase.COMPLETED.value
        try:
            return self.ledger.run(run_id).phase.value
        except NotFoundError:
            return RunPhase.COMPLETED.value

    def job_snapshots(self, name: str, repository_name: str) -> list[SnapshotInfo]:
        """The complete snapshots of job ``name`` in a repository (the repository's truth)."""
        repository = self.connections.repository(repository_name)
        found = []
        for snapshot_id in repository.list_snapshots():
            if not snapshot_id.startswith(f"{name}-"):
                continue  # ids start with their job's name (new_snapshot_id)
            info = self.snapshot_info(repository_name, repository, snapshot_id)
            if info.job == name:
                found.append(info)
        return found

    def apply_retention(self, name: str, *, now: datetime | None = None) -> RetentionResult:
        """Delete job ``name``'s snapshots that no retention rule keeps; mark them in the ledger.

        Never raises for a snapshot it could not delete: that is recorded (event, result
        errors) and retried at the next backup. A job without ``retention`` keeps everything.
        """
        declared = self.inventory.jobs[name]
        retention = declared.spec.retention
        repository_name = desired_job(self.inventory, declared).repository
        if retention is None:
            return RetentionResult(name, repository_name, "", [], [], [])
        rules = describe_retention(retention)
        try:
            snapshots = self.job_snapshots(name, repository_name)
        except KubeferryError as error:
            return self._retention_failed(name, repository_name, rules, str(error))
        expired = set(expired_snapshots(snapshots, retention, now or _now()))
        repository = self.connections.repository(repository_name)
        deleted: list[str] = []
        errors: list[str] = []
        for info in snapshots:
            if info.id not in expired:
                continue
            try:
                repository.delete_snapshot(info.id)
                delete_volume_set(repository, info.id)  # its data goes with `repo prune`
            except KubeferryError as error:
                errors.append(f"{info.id}: {error}")
                continue
            if self.ledger.snapshot(info.id) is None:
                info.record(self.ledger)
            self.ledger.mark_snapshot_deleted(info.id, reason=f"retention: {rules}")
            self.ledger.record_event(
                "snapshot.deleted",
                f"snapshot {info.id} of job {name!r} deleted by retention ({rules})",
                job=name,
                data={"snapshot": info.id, "repository": repository_name, "rules": rules},
            )
            deleted.append(info.id)
        for error_text in errors:
            self.ledger.record_event(
                "retention.failed", error_text, level=EventLevel.WARNING, job=name
            )
        kept = [s.id for s in snapshots if s.id not in set(deleted)]
        return RetentionResult(name, repository_name, rules, deleted, kept, errors)

    def collect_volume_garbage(
        self, name: str, repository_name: str, *, run_id: int | None = None
    ) -> PruneStats | None:
        """Remove volume data no remaining snapshot uses, after retention deleted some.

        The volume store's prune: under its exclusive repository lock (a concurrent backup
        holds a shared one, so they exclude each other) and keeping every pack or index
        younger than the grace period. A failure is a warning event, never an error: the
        data goes with the next collection or `repo prune`. The freed bytes land in the
        details of run ``run_id`` (the backup that triggered it).
        """
        try:
            repository = self.connections.repository(repository_name)
            if repository.cipher is None:
                return None  # unencrypted repositories hold no volume data
            store = VolumeStore(repository)
            referenced: set[str] = set()
            for volume_snapshot in store.list_snapshots():
                manifest = VolumeManifest.from_bytes(store.load_manifest(volume_snapshot))
                referenced.update(manifest.chunk_ids())
            stats = store.prune(referenced=referenced, grace=VOLUME_GC_GRACE)
        except KubeferryError as error:
            self.ledger.record_event(
                "volume.gc_failed",
                f"volume data of repository {repository_name} not collected: {error}",
                level=EventLevel.WARNING,
                run_id=run_id,
                job=name,
            )
            return None
        summary = {
            "repository": repository_name,
            "freedBytes": stats.freed_bytes,
            "deletedPacks": stats.deleted_packs,
            "repackedPacks": stats.repacked_packs,
            "removedChunks": stats.removed_chunks,
        }
        if run_id is not None:
            self.ledger.annotate_run(run_id, {"volumeGc": summary})
        self.ledger.record_event(
            "volume.gc",
            f"volume data of repository {repository_name}: {stats.freed_bytes} bytes freed",
            run_id=run_id,
            job=name,
            data=summary,
        )
        return stats

    def _retention_failed(
        self, name: str, repository: str, rules: str, text: str
    ) -> RetentionResult:
        self.ledger.record_event(
            "retention.failed",
            f"retention of job {name!r} skipped: {text}",
            level=EventLevel.WARNING,
            job=name,
        )
        return RetentionResult(name, repository, rules, [], [], [text])


# -- the snapshot catalog and retention ------------------------------------------------------


@dataclass(frozen=True)
class SnapshotInfo:
    """One complete snapshot: the repository says it exists, the ledger or metadata what it is."""

    id: str
    job: str
    repository: str
    namespace: str
    source_cluster: str
    created_at: datetime
    items: int | None = None
    size_bytes: int | None = None
    phase: str = RunPhase.COMPLETED.value
    """The phase of the backup run that wrote it (Completed when not known to this ledger)."""
    run_id: int | None = None
    complete: bool = True

    @classmethod
    def from_row(cls, row: Snapshot, phase: str) -> SnapshotInfo:
        return cls(
            id=row.id,
            job=row.job,
            repository=row.repository,
            namespace=row.namespace,
            source_cluster=row.source_cluster,
            created_at=row.created_at,
            items=row.items_backed_up if row.items_backed_up is not None else row.total_items,
            size_bytes=row.size_bytes,
            phase=phase,
            run_id=row.run_id,
            complete=True,
        )

    @classmethod
    def from_metadata(
        cls, snapshot_id: str, repository: str, document: dict[str, Any]
    ) -> SnapshotInfo:
        counts = document.get("counts")
        items = document.get("items", document.get("totalItems"))
        if not isinstance(items, int) and isinstance(counts, dict):
            items = sum(v for v in counts.values() if isinstance(v, int))
        size = document.get("sizeBytes")
        return cls(
            id=snapshot_id,
            job=str(document.get("job") or _job_of(snapshot_id)),
            repository=repository,
            namespace=str(document.get("namespace") or ""),
            source_cluster=str(document.get("sourceCluster") or ""),
            created_at=_created_at(snapshot_id, document),
            items=items if isinstance(items, int) else None,
            size_bytes=size if isinstance(size, int) else None,
        )

    def record(self, ledger: Ledger) -> None:
        """Catalog it in the ledger (a snapshot this ledger did not write)."""
        ledger.upsert_snapshot(
            self.id,
            job=self.job,
            repository=self.repository,
            namespace=self.namespace,
            source_cluster=self.source_cluster,
            created_at=self.created_at,
            size_bytes=self.size_bytes,
            total_items=self.items,
            items_backed_up=self.items,
            complete=self.complete,
            run_id=self.run_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "repository": self.repository,
            "namespace": self.namespace,
            "sourceCluster": self.source_cluster,
            "created": self.created_at.isoformat(),
            "items": self.items,
            "sizeBytes": self.size_bytes,
            "phase": self.phase,
            "complete": self.complete,
            "runId": self.run_id,
        }


@dataclass(frozen=True)
class RetentionResult:
    job: str
    repository: str
    rules: str
    """e.g. "keepLast 3, ttl 30d"; empty when the job has no retention."""
    deleted: list[str]
    kept: list[str]
    errors: list[str]


_ID_TIME = re.compile(r"-(\d{14})-[0-9a-f]{6}$")


def _job_of(snapshot_id: str) -> str:
    match = _ID_TIME.search(snapshot_id)
    return snapshot_id[: match.start()] if match else ""


def _created_at(snapshot_id: str, document: dict[str, Any]) -> datetime:
    for key in ("startedAt", "createdAt", "created", "completedAt"):
        value = document.get(key)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    match = _ID_TIME.search(snapshot_id)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def _metadata(repository: Repository, snapshot_id: str) -> dict[str, Any]:
    try:
        document = json.loads(repository.read_snapshot_metadata(snapshot_id))
    except ValueError:
        raise KubeferryError(
            f"{repository.location}: snapshot {snapshot_id!r} has unreadable metadata"
        ) from None
    return document if isinstance(document, dict) else {}


def describe_retention(retention: Retention) -> str:
    """The rules as the inventory spells them, e.g. "keepLast 3, ttl 30d"."""
    rules = retention.model_dump(mode="json", by_alias=True, exclude_none=True)
    return ", ".join(f"{key} {value}" for key, value in rules.items())


def expired_snapshots(
    snapshots: Sequence[SnapshotInfo], retention: Retention | None, now: datetime
) -> list[str]:
    """Ids no rule keeps, newest first. A snapshot is kept if any rule keeps it:

    ``keepLast N`` the N newest; ``keepDaily N`` the newest of each of the N most recent
    days (UTC) that have snapshots; ``ttl`` those younger than it. The newest snapshot is
    always kept, and no retention at all keeps everything.
    """
    if retention is None or not snapshots:
        return []
    ordered = sorted(snapshots, key=lambda s: (s.created_at, s.id), reverse=True)
    keep = {ordered[0].id}
    if retention.keep_last is not None:
        keep.update(s.id for s in ordered[: retention.keep_last])
    if retention.keep_daily is not None:
        days: set[date] = set()
        for snapshot in ordered:
            day = snapshot.created_at.astimezone(UTC).date()
            if day not in days and len(days) < retention.keep_daily:
                days.add(day)
                keep.add(snapshot.id)
    if retention.ttl is not None:
        keep.update(s.id for s in ordered if s.created_at >= now - retention.ttl)
    return [s.id for s in ordered if s.id not in keep]
