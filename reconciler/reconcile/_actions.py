"""Carry out one plan action and record its outcome in the ledger."""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler import __version__
from reconciler._events import EventBus, ItemDone, ItemWarning, Progress, RunFinished, RunStarted
from reconciler._retry import is_retryable, retry
from reconciler.apply import Cancellation
from reconciler.engines import JobSpec, ObjectReplicator
from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.kube import KubeUnreachableError
from reconciler.plan import Action, ActionType
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._views import desired_job, job_spec
from reconciler.repository import RepositoryUnavailable
from state import Availability, IssueSeverity, Ledger, Reachability, RunKind, RunPhase


def is_transient(error: BaseException) -> bool:
    """Worth another try: unreachable peers, throttling (429) and server errors (5xx)."""
    if isinstance(error, KubeUnreachableError | RepositoryUnavailable):
        return True
    return is_retryable(error)


def _now() -> datetime:
    return datetime.now(UTC)


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
        self.bytes_done = 0
        self.warnings = 0
        self._lock = threading.Lock()
        self._last_write = 0.0

    def total(self, items: int) -> None:
        self.total_items = items
        self.ledger.update_run_progress(self.run_id, total_items=items)
        self.bus.publish(
            Progress(address=self.address, run_id=self.run_id, items_done=0, total_items=items)
        )

    def item_done(self, item: str, size: int = 0) -> None:
        with self._lock:
            self.items_done += 1
            self.bytes_done += size
            done, total = self.items_done, self.total_items
        self.bus.publish(ItemDone(address=self.address, run_id=self.run_id, item=item))
        self.bus.publish(
            Progress(
                address=self.address,
                run_id=self.run_id,
                items_done=done,
                total_items=total,
                bytes_done=self.bytes_done,
            )
        )
        now = datetime.now(UTC).timestamp()
        if now - self._last_write > 0.5 or done == total:
            self._last_write = now
            self.ledger.update_run_progress(
                self.run_id, items_done=done, bytes_done=self.bytes_done
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

    def __call__(self, action: Action, cancellation: Cancellation) -> str:
        handler = {
            "Cluster": self._cluster,
            "ReplicationRepository": self._repository,
            "ReplicationSlice": self._slice,
            "ApplicationSlice": self._application_slice,
            "ReplicationJob": self._job,
        }[action.kind]
        # a whole action is retried: every step is idempotent or writes a new snapshot id,
        # and an abandoned snapshot is invisible (its metadata is never written)
        return retry(
            lambda: handler(action, cancellation),
            attempts=self.attempts,
            retryable=is_transient,
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

    def _repository(self, action: Action, _: Cancellation) -> str:
        if action.type is ActionType.FORGET:
            self.ledger.delete_repository(action.name)
            return "forgotten (repository contents untouched)"
        detail = "registered"
        if action.details.get("initialize"):
            repository = self.connections.repository(action.name)
            if not repository.is_initialized():
                repository.initialize(str(uuid.uuid4()))
                detail = "initialized and registered"
        seen = self.observed.get("repositories", {}).get(action.name, {})
        self.ledger.upsert_repository(
            action.name,
            spec_digest=self.inventory.repositories[action.name].spec_digest,
            availability=Availability.AVAILABLE
            if seen.get("available")
            else Availability.UNAVAILABLE,
            last_validation=_now(),
            message=seen.get("message", ""),
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
        action: Action,
        cancellation: Cancellation,
        work: Any,
    ) -> Any:
        run = self.ledger.start_run(kind, action.name)
        assert run.id is not None
        operation = kind.value
        self.bus.publish(RunStarted(address=action.address, run_id=run.id, operation=operation))
        reporter = _RunReporter(self.ledger, self.bus, run.id, action.address, cancellation)
        try:
            result = work(reporter, run.id)
        except BaseException as error:
            interrupted = cancellation.cancelled
            phase = RunPhase.INTERRUPTED if interrupted else RunPhase.FAILED
            message = "cancelled by the user" if interrupted else str(error)
            if not interrupted:
                self.ledger.add_run_issue(run.id, IssueSeverity.ERROR, message)
            self.ledger.finish_run(run.id, phase, message=message)
            self.bus.publish(
                RunFinished(
                    address=action.address,
                    run_id=run.id,
                    operation=operation,
                    phase=phase.value,
                    detail=message,
                )
            )
            raise
        phase = RunPhase.PARTIALLY_FAILED if reporter.warnings else RunPhase.COMPLETED
        snapshot = getattr(result, "snapshot_id", None)
        self.ledger.update_run_progress(
            run.id, items_done=reporter.items_done, bytes_done=reporter.bytes_done
        )
        self.ledger.finish_run(run.id, phase, snapshot_id=snapshot)
        self.bus.publish(
            RunFinished(
                address=action.address, run_id=run.id, operation=operation, phase=phase.value
            )
        )
        return result

    def _replicate(self, action: Action, cancellation: Cancellation) -> str:
        declared = self.inventory.jobs[action.name]
        spec: JobSpec = job_spec(self.inventory, declared)
        wanted = desired_job(self.inventory, declared)
        self._register_job(action.name)
        repository = self.connections.repository(wanted.repository)
        if not repository.is_initialized():
            raise KubeferryError(
                f"repository {wanted.repository} is not initialized; apply its "
                "ReplicationRepository first"
            )
        source = self.connections.client(spec.source_cluster)
        started = _now()
        snapshot_id = new_snapshot_id(action.name, started)
        metadata: dict[str, object] = {
            "sourceClusterVersion": source.version(),
            "startedAt": started.isoformat(),
            "toolVersion": __version__,
        }

        def backup(reporter: _RunReporter, run_id: int) -> Any:
            result = self.engine.backup(source, repository, spec, snapshot_id, reporter, metadata)
            self.ledger.upsert_snapshot(
                result.snapshot_id,
                job=action.name,
                repository=wanted.repository,
                namespace=spec.namespace,
                source_cluster=spec.source_cluster,
                created_at=started,
                size_bytes=result.size_bytes,
                total_items=result.items,
                items_backed_up=result.items,
                complete=True,
                run_id=run_id,
            )
            return result

        backed_up = self._run(RunKind.BACKUP, action, cancellation, backup)
        destination_fingerprint = None
        if wanted.mode == "replicate":
            destination = self.connections.client(spec.destination_cluster)

            def restore(reporter: _RunReporter, _: int) -> Any:
                return self.engine.restore(destination, repository, spec, snapshot_id, reporter)

            restored = self._run(RunKind.RESTORE, action, cancellation, restore)
            destination_fingerprint = restored.destination_fingerprint
        self.ledger.upsert_job(
            action.name,
            source_fingerprint=backed_up.source_fingerprint,
            destination_fingerprint=destination_fingerprint,
            last_success_at=_now(),
        )
        where = f" and restored to {spec.destination_cluster}/{spec.target_namespace}"
        tail = where if wanted.mode == "replicate" else ""
        return f"snapshot {snapshot_id} ({backed_up.items} items){tail}"
