"""Status write-back: a job's backup and restore runs mirrored into the status of its KubeSlice
ReplicationJobConfig (Velero-style ``status.backup`` / ``status.restore``, plus the restore
pre-checks as ``overallCompatibility`` / ``compatibilityChecks``), so KubeSlice tooling sees
kubeferry's runs. Only for slices with ``statusWriteBack: true`` (docs/kubeslice.md).

The mapping (``status_patch``) is pure. ``StatusWriteBack`` does the writing for one run and
never raises: whatever goes wrong (controller unreachable, no or several matching
ReplicationJobConfigs, 403, 409) is reported once per run through its ``report`` callback
and the run goes on unchanged.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.kube import ApiResource, KubeApiError, KubeClient, KubeRest, KubeUnreachableError
from reconciler.kube import Manifest as _Manifest
from reconciler.kubeslice._sliceconfig import SLICE_CONFIG_API
from reconciler.plan import StatusTargetObservation
from state import Run, RunKind, RunPhase

log = logging.getLogger("kubeferry.kubeslice")

JOB_CONFIG_API: Final = SLICE_CONFIG_API
JOB_CONFIG_KIND: Final = "ReplicationJobConfig"
JOB_CONFIGS: Final = ApiResource(
    "controller.kubeslice.io",
    "v1alpha1",
    "replicationjobconfigs",
    JOB_CONFIG_KIND,
    True,
    frozenset({"list", "patch"}),
)
PROJECT_NAMESPACE_PREFIX: Final = "kubeslice-"

FORMAT_VERSION: Final = "1.1.0"
"""status.backup.formatVersion: the Velero backup format version KubeSlice tooling expects."""
PROGRESS_INTERVAL_SECONDS: Final = 2.0
"""At most one progress write per run in this many seconds (the final state always goes)."""
REQUEST_TIMEOUT_SECONDS: Final = 5.0
"""Per request to the controller: a hung controller must not hold a run up for long."""

SKIPPED_EVENT: Final = "status.writeback.skipped"
"""Ledger event: nothing written for a run (no or several matching ReplicationJobConfigs)."""
FAILED_EVENT: Final = "status.writeback.failed"
"""Ledger event: writing failed (controller unreachable, 403, a lasting conflict...)."""

# Published status fields kubeferry has no value for: nulled (merge patch: removed) with every
# write, so no value of an earlier run or another writer is left next to this run's
_BACKUP_FIELDS_NOT_WRITTEN: Final = (
    "backupItemOperationsAttempted",
    "backupItemOperationsCompleted",
    "backupItemOperationsFailed",
    "csiVolumeSnapshotsAttempted",
    "csiVolumeSnapshotsCompleted",
    "validationErrors",
    "version",
    "volumeSnapshotsAttempted",
    "volumeSnapshotsCompleted",
)
_RESTORE_FIELDS_NOT_WRITTEN: Final = (
    "restoreItemOperationsAttempted",
    "restoreItemOperationsCompleted",
    "restoreItemOperationsFailed",
    "validationErrors",
)
_COMPATIBILITY: Final = frozenset({"compatible", "warning", "not_compatible", "fixable"})
"""The published overallCompatibility values a finished pre-check can have."""

Report = Callable[[str, str], None]
"""(event kind, one-line reason): how a StatusWriteBack tells about what it could not do."""


# -- the mapping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MirroredRun:
    """What the status shows of one run: a ledger Run, or the counters of a running one."""

    kind: Literal["backup", "restore"]
    phase: RunPhase
    started_at: datetime
    finished_at: datetime | None = None
    total_items: int | None = None
    items_done: int = 0
    errors: int = 0
    warnings: int = 0
    message: str = ""
    """Why a Failed run failed (the ledger run's message)."""
    precheck: Mapping[str, Any] | None = None
    """A restore's pre-check report (``PrecheckReport.to_dict()``), once known."""

    @classmethod
    def from_run(cls, run: Run) -> MirroredRun:
        if run.kind not in (RunKind.BACKUP, RunKind.RESTORE):
            raise ValueError(f"a {run.kind.value} run is not mirrored")
        precheck = (run.details or {}).get("precheck")
        return cls(
            kind="backup" if run.kind is RunKind.BACKUP else "restore",
            phase=run.phase,
            started_at=run.started_at,
            finished_at=run.finished_at,
            total_items=run.total_items,
            items_done=run.items_done,
            errors=run.error_count,
            warnings=run.warning_count,
            message=run.message,
            precheck=precheck if isinstance(precheck, Mapping) else None,
        )


def rfc3339(moment: datetime) -> str:
    """``2026-11-25T18:30:00Z``: UTC with Z, whole seconds (as Kubernetes writes times)."""
    if moment.tzinfo is None:  # the ledger stores UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _phase(run: MirroredRun) -> tuple[str, str | None]:
    """Velero's phase and failureReason: Interrupted has no Velero phase, it is a Failed run."""
    if run.phase is RunPhase.INTERRUPTED:
        return RunPhase.FAILED.value, f"interrupted: {run.message or 'the run did not finish'}"
    if run.phase is RunPhase.FAILED:
        return RunPhase.FAILED.value, run.message or "failed"
    return run.phase.value, None


def status_patch(run: MirroredRun, *, ttl: timedelta | None = None) -> dict[str, Any]:
    """The merge patch of a ReplicationJobConfig's status for ``run``, complete: every field
    of ``status.backup`` (or ``.restore``) is set, those without a value to null, so a new run
    leaves nothing of the previous one. ``ttl`` (the job's retention ttl) gives a backup's
    expiration. Only fields of the published schema: the API server prunes anything else."""
    phase, failure = _phase(run)
    failed = phase == RunPhase.FAILED.value
    common: dict[str, Any] = {
        "phase": phase,
        "startTimestamp": rfc3339(run.started_at),
        "completionTimestamp": rfc3339(run.finished_at) if run.finished_at else None,
        "errors": run.errors,
        "warnings": run.warnings,
        "failureReason": failure,
    }
    if run.kind == "backup":
        expiration = None
        if ttl is not None and not failed:  # a failed backup left no snapshot to expire
            expiration = rfc3339(run.started_at + ttl)
        backup = {
            **dict.fromkeys(_BACKUP_FIELDS_NOT_WRITTEN),
            **common,
            "progress": {"totalItems": run.total_items, "itemsBackedUp": run.items_done},
            "expiration": expiration,
            "formatVersion": FORMAT_VERSION,
        }
        return {"status": {"backup": backup}}
    restore = {
        **dict.fromkeys(_RESTORE_FIELDS_NOT_WRITTEN),
        **common,
        "progress": {"totalItems": run.total_items, "itemsRestored": run.items_done},
    }
    overall, checks = _compatibility(run)
    return {
        "status": {
            "restore": restore,
            "overallCompatibility": overall,
            "compatibilityChecks": checks,
        }
    }


def _compatibility(run: MirroredRun) -> tuple[str | None, list[dict[str, str]] | None]:
    """overallCompatibility and compatibilityChecks of a restore: ``in_progress`` while it
    runs, then its pre-check report; none when it ended before the pre-checks."""
    if not run.phase.finished:
        return "in_progress", None
    report = run.precheck or {}
    overall = report.get("overallCompatibility")
    if overall not in _COMPATIBILITY:
        return None, None
    checks = [
        {
            "name": str(check.get("name", "")),
            "status": str(check.get("status", "")),
            "description": str(check.get("message", "")),
        }
        for check in report.get("compatibilityChecks") or []
        if isinstance(check, Mapping)
    ]
    return str(overall), checks


# -- finding the ReplicationJobConfig ------------------------------------------------------


@dataclass(frozen=True)
class StatusTarget:
    """The ReplicationJobConfig a job's status goes to."""

    cluster: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{JOB_CONFIG_KIND} {self.namespace}/{self.name} on {self.cluster}"


@dataclass(frozen=True)
class TargetLookup:
    """The one matching ReplicationJobConfig, or why there is none."""

    target: StatusTarget | None
    problem: str = ""
    """One line, when ``target`` is None."""
    failed: bool = False
    """The controller could not be asked (unreachable, forbidden): a failure, not a skip."""


Listing = Sequence[_Manifest] | KubeferryError
"""A controller's ReplicationJobConfigs, or why they could not be listed."""


def find_target(listings: Mapping[str, Listing], job: str, slice_name: str) -> TargetLookup:
    """The ReplicationJobConfig named ``job`` whose spec.replicationSliceName is
    ``slice_name``, in any ``kubeslice-*`` namespace of the controller clusters listed."""
    found: list[StatusTarget] = []
    errors: list[str] = []
    for cluster, listing in listings.items():
        if isinstance(listing, KubeferryError):
            errors.append(_listing_problem(cluster, listing))
            continue
        for config in listing:
            metadata = config.get("metadata") or {}
            namespace = str(metadata.get("namespace") or "")
            spec = config.get("spec") or {}
            if (
                namespace.startswith(PROJECT_NAMESPACE_PREFIX)
                and metadata.get("name") == job
                and spec.get("replicationSliceName") == slice_name
            ):
                found.append(StatusTarget(cluster, namespace, job))
    if len(found) == 1:
        return TargetLookup(found[0])
    if len(found) > 1:
        where = ", ".join(f"{t.namespace} on {t.cluster}" for t in found)
        return TargetLookup(
            None, f"several ReplicationJobConfigs {job} for slice {slice_name} ({where})"
        )
    if errors:
        return TargetLookup(None, "; ".join(errors), failed=True)
    clusters = ", ".join(listings) or "no controller cluster"
    return TargetLookup(
        None,
        f"no ReplicationJobConfig {job} for slice {slice_name} in any "
        f"{PROJECT_NAMESPACE_PREFIX}* namespace on {clusters}",
    )


def _listing_problem(cluster: str, error: KubeferryError) -> str:
    if isinstance(error, KubeApiError) and error.status == 404:
        return f"{cluster} does not serve {JOB_CONFIG_KIND} (KubeSlice controller not installed?)"
    return f"cannot list {JOB_CONFIG_KIND}s on {cluster}: {error}"


def controller_clusters(inventory: Inventory) -> list[str]:
    return sorted(n for n, c in inventory.clusters.items() if c.spec.role == "controller")


def _mirrored_slice(inventory: Inventory, job: str) -> str | None:
    """The slice of ``job`` when it has statusWriteBack, else None."""
    declared = inventory.jobs.get(job)
    if declared is None:
        return None
    replication_slice = inventory.slices.get(declared.spec.replication_slice_name)
    if replication_slice is None or not replication_slice.spec.status_write_back:
        return None
    return replication_slice.name


def list_job_configs(client: KubeClient, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Listing:
    """Every ReplicationJobConfig of the cluster (one list call), or the error."""
    try:
        rest = KubeRest.from_client(client, max_connections=1, timeout=timeout)
    except KubeferryError as error:
        return error
    try:
        return rest.blocking.list(JOB_CONFIGS)
    except KubeferryError as error:
        return error
    finally:
        rest.close()


def observe_status_targets(
    inventory: Inventory, client_of: Callable[[str], KubeClient]
) -> dict[str, StatusTargetObservation]:
    """For the plan: job -> where its status goes, or why it cannot; jobs of slices with
    statusWriteBack only, one list call per controller cluster."""
    jobs = {name: s for name in inventory.jobs if (s := _mirrored_slice(inventory, name))}
    if not jobs:
        return {}
    listings: dict[str, Listing] = {}
    for cluster in controller_clusters(inventory):
        try:
            listings[cluster] = list_job_configs(client_of(cluster))
        except KubeferryError as error:  # e.g. a broken kubeconfig
            listings[cluster] = error
    observed = {}
    for job, slice_name in jobs.items():
        lookup = find_target(listings, job, slice_name)
        observed[job] = StatusTargetObservation(
            target=str(lookup.target) if lookup.target else "", problem=lookup.problem
        )
    return observed


# -- writing -------------------------------------------------------------------------------


class StatusTransport(Protocol):
    """The two calls a StatusWriteBack makes to controller clusters."""

    def list_job_configs(self, cluster: str) -> Listing: ...

    def patch_status(self, target: StatusTarget, patch: _Manifest) -> None: ...

    def close(self) -> None: ...


class KubeStatusTransport:
    """StatusTransport over KubeRest, with short timeouts (a run must not wait on status)."""

    def __init__(
        self,
        client_of: Callable[[str], KubeClient],
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._client_of = client_of
        self._timeout = timeout
        self._rests: dict[str, KubeRest] = {}
        self._lock = threading.Lock()

    def _rest(self, cluster: str) -> KubeRest:
        with self._lock:
            if cluster not in self._rests:
                self._rests[cluster] = KubeRest.from_client(
                    self._client_of(cluster), max_connections=1, timeout=self._timeout
                )
            return self._rests[cluster]

    def list_job_configs(self, cluster: str) -> Listing:
        try:
            return self._rest(cluster).blocking.list(JOB_CONFIGS)
        except KubeferryError as error:
            return error

    def patch_status(self, target: StatusTarget, patch: _Manifest) -> None:
        self._rest(target.cluster).blocking.merge_patch(
            JOB_CONFIGS, target.name, patch, target.namespace, subresource="status"
        )

    def close(self) -> None:
        with self._lock:
            rests, self._rests = list(self._rests.values()), {}
        for rest in rests:
            rest.close()


class StatusWriteBack:
    """Mirrors one run into the status of its job's ReplicationJobConfig.

    ``started`` finds the ReplicationJobConfig (once) and writes the InProgress state;
    ``progressed`` writes at most once per ``interval`` seconds (a write still in flight
    skips it); ``finished`` always writes the final state. None of them raises: each kind of
    trouble is reported once per run (``report``, and a log warning) and, when writing is
    pointless for the rest of the run (no target, unreachable, forbidden, gone), stops it.
    """

    def __init__(
        self,
        *,
        job: str,
        slice_name: str,
        controllers: Sequence[str],
        transport: StatusTransport,
        report: Report,
        ttl: timedelta | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = PROGRESS_INTERVAL_SECONDS,
    ) -> None:
        self.job = job
        self.slice_name = slice_name
        self.controllers = list(controllers)
        self.transport = transport
        self.report = report
        self.ttl = ttl
        self.clock = clock
        self.interval = interval
        self.target: StatusTarget | None = None
        self._run: MirroredRun | None = None
        self._active = False
        self._last_write = float("-inf")
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time, the final one last
        self._reported: set[str] = set()

    def started(self, run: MirroredRun) -> None:
        try:
            listings = {c: self.transport.list_job_configs(c) for c in self.controllers}
            lookup = find_target(listings, self.job, self.slice_name)
            if lookup.target is None:
                self._tell(FAILED_EVENT if lookup.failed else SKIPPED_EVENT, lookup.problem)
                return
            with self._state_lock:
                self.target, self._run, self._active = lookup.target, run, True
                self._last_write = self.clock()
            self._write(run, wait=True)
        except Exception as error:  # noqa: BLE001 - best effort by contract: never fail a run
            self._unexpected(error)

    def progressed(self, items_done: int, total_items: int) -> None:
        try:
            with self._state_lock:
                if not self._active or self._run is None:
                    return
                now = self.clock()
                if now - self._last_write < self.interval:
                    return
                self._last_write = now
                self._run = replace(self._run, items_done=items_done, total_items=total_items)
                run = self._run
            self._write(run, wait=False)
        except Exception as error:  # noqa: BLE001 - see started
            self._unexpected(error)

    def finished(self, run: MirroredRun) -> None:
        try:
            with self._state_lock:
                active, self._run = self._active, run
            if active:
                self._write(run, wait=True)
        except Exception as error:  # noqa: BLE001 - see started
            self._unexpected(error)
        finally:
            with self._state_lock:
                self._active = False
            self.transport.close()

    def ended(self, run: MirroredRun) -> None:
        """Mirror a run that ended while nobody watched it (its process died: the ledger
        marked it Interrupted): find the target and write the final state, once."""
        try:
            self.started(run)
        finally:
            with self._state_lock:
                self._active = False
            self.transport.close()

    def _write(self, run: MirroredRun, *, wait: bool) -> None:
        if not self._write_lock.acquire(blocking=wait):
            return  # a write is in flight: this progress is skipped, a later write has more
        try:
            with self._state_lock:
                target = self.target if self._active else None
            if target is None:
                return
            patch = status_patch(run, ttl=self.ttl)
            try:
                self._patch(target, patch)
            except KubeferryError as error:
                self._tell(FAILED_EVENT, f"{target}: {error}")
                status = error.status if isinstance(error, KubeApiError) else None
                if isinstance(error, KubeUnreachableError) or status in (401, 403, 404):
                    with self._state_lock:
                        self._active = False  # nothing later in this run would go through
        finally:
            self._write_lock.release()

    def _patch(self, target: StatusTarget, patch: _Manifest) -> None:
        try:
            self.transport.patch_status(target, patch)
        except KubeApiError as error:
            if error.status != 409:
                raise
            self.transport.patch_status(target, patch)  # a conflict: once more

    def _tell(self, event: str, reason: str) -> None:
        with self._state_lock:
            if event in self._reported:
                return
            self._reported.add(event)
        what = "skipped" if event == SKIPPED_EVENT else "failed"
        text = f"status write-back {what} for job {self.job}: {reason}"
        log.warning("%s", text)
        try:
            self.report(event, text)
        except Exception:  # the ledger's trouble is not the run's either
            log.warning("could not record %s for job %s", event, self.job, exc_info=True)

    def _unexpected(self, error: Exception) -> None:
        log.debug("status write-back of job %s", self.job, exc_info=error)
        self._tell(FAILED_EVENT, f"unexpected error: {type(error).__name__}: {error}")
        with self._state_lock:
            self._active = False


def mirror_interrupted_runs(
    inventory: Inventory,
    runs: Sequence[Run],
    *,
    client_of: Callable[[str], KubeClient],
    report: Callable[[Run, str, str], None],
    transport: StatusTransport | None = None,
) -> None:
    """statusWriteBack for runs the ledger has just marked Interrupted: their status still
    says InProgress (their process died mid-run), now it says Failed, interrupted. Runs of
    jobs no longer mirrored (or no longer in the inventory) are left alone."""
    for run in runs:
        if run.job is None or run.job not in inventory.jobs:
            continue
        mirror = status_write_back(
            inventory,
            run.job,
            run.kind,
            client_of=client_of,
            report=functools.partial(report, run),
            transport=transport,
        )
        if mirror is not None:
            mirror.ended(MirroredRun.from_run(run))


def status_write_back(
    inventory: Inventory,
    job: str,
    kind: RunKind,
    *,
    client_of: Callable[[str], KubeClient],
    report: Report,
    transport: StatusTransport | None = None,
) -> StatusWriteBack | None:
    """The StatusWriteBack for a ``kind`` run of ``job``, or None when nothing is mirrored:
    the job's slice has no statusWriteBack, or the run is a drill (it restores into a scratch
    namespace, which is not the job's restore; a drill's fresh backup is a backup run)."""
    if kind not in (RunKind.BACKUP, RunKind.RESTORE):
        return None
    slice_name = _mirrored_slice(inventory, job)
    if slice_name is None:
        return None
    retention = inventory.jobs[job].spec.retention
    return StatusWriteBack(
        job=job,
        slice_name=slice_name,
        controllers=controller_clusters(inventory),
        transport=transport or KubeStatusTransport(client_of),
        report=report,
        ttl=retention.ttl if retention is not None else None,
    )
