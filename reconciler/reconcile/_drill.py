"""Disaster-recovery drills: restore a snapshot into a scratch namespace and prove it.

A drill (``run_drill``) takes a fresh backup of a job (or uses a given snapshot), restores
it with policy ``none`` into a scratch namespace on the job's destination cluster (the
source cluster for a same-cluster job), verifies the result against the snapshot, deletes
the scratch namespace (unless asked to keep it) and returns a ``DrillReport``. The whole
drill is one ledger run of kind ``drill``; the report's summary lands in its details, and a
passed drill updates the job's ``last_drill_at``. See docs/drills.md.

Verification:

* objects: every archived object the restore recreates is read back from the scratch
  namespace and compared with the object the restore wanted to create (the same sanitising,
  namespace mapped; kubeferry's own labels and ownerReference uids left out). Fields the
  server adds (defaults, status) are fine; every differing or missing field is a mismatch
  (object, field path). Secret values are never quoted;
* workloads (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs): their ``spec`` equal;
* volumes: each volume of the snapshot's volume set is compared, entry by entry, with the
  restored PV's directory: type, permission bits, size, symlink targets, hardlinks and the
  content, cut with the snapshot's chunker and hashed with the repository's keyed BLAKE3,
  chunk by chunk against the manifest. Extra entries are mismatches too;
* RPO: the snapshot's age when the restore starts; RTO: the restore's duration.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from reconciler._events import EventBus
from reconciler.apply import Cancellation
from reconciler.engines import JobSpec, ObjectReplicator, PrecheckFailed, VolumeMover
from reconciler.engines.objects import (
    ArchivedObject,
    read_archive,
    restore_skip_reason,
)
from reconciler.engines.objects._engine import ARCHIVE_PART
from reconciler.errors import KubeferryError
from reconciler.kube import KubeClient, KubeError
from reconciler.reconcile._actions import ActionRunner, SnapshotInfo, _RunReporter
from reconciler.reconcile._drill_report import (
    DRILL_FAILED_EXIT_CODE,
    REPORT_FORMAT,
    DrillError,
    DrillReport,
    Mismatch,
    VolumeCheck,
    WorkloadCheck,
    render_markdown,
    write_report,
)
from reconciler.reconcile._drill_schedule import drill_due, due_drills, notify_webhook, webhook_url
from reconciler.reconcile._drill_verify import (
    compare_object,
    drill_mismatches,
    field_differences,
    verify_tree,
    workload_checks,
)
from reconciler.reconcile._runner import (
    DNS_LABEL,
    SNAPSHOT_ID,
    find_snapshot,
    locked_runner,
    note_backup_on_job,
    one_line_errors,
    require_job,
)
from reconciler.reconcile._session import LockBusyError
from reconciler.reconcile._views import desired_job
from reconciler.repository import Repository, RepositoryError
from reconciler.volumes import (
    HostPathMover,
    JobMover,
    VolumeEntry,
    VolumeManifest,
    VolumeStore,
    claim_volume_dir,
    read_volume_set,
)
from reconciler.workspace import Workspace
from state import Ledger, LedgerError, LedgerNotFoundError, RunKind

log = logging.getLogger("kubeferry.drill")

_SCRATCH_SUFFIX = "-drill-"

__all__ = [
    "DRILL_FAILED_EXIT_CODE",
    "REPORT_FORMAT",
    "DrillError",
    "DrillOptions",
    "DrillReport",
    "Mismatch",
    "ScheduledDrill",
    "VolumeCheck",
    "WorkloadCheck",
    "compare_object",
    "drill_due",
    "due_drills",
    "field_differences",
    "notify_webhook",
    "render_markdown",
    "run_drill",
    "run_due_drills",
    "scratch_namespace",
    "verify_tree",
    "write_report",
]


# -- running a drill -------------------------------------------------------------------------


def scratch_namespace(target: str, token: str | None = None) -> str:
    """``<target>-drill-<6 hex>``, shortened to a valid namespace name."""
    token = token or secrets.token_hex(3)
    head = target[: 63 - len(_SCRATCH_SUFFIX) - len(token)].rstrip("-")
    return f"{head}{_SCRATCH_SUFFIX}{token}"


@dataclass
class _Verified:
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    workloads: list[WorkloadCheck] = field(default_factory=list)
    volumes: list[VolumeCheck] = field(default_factory=list)
    volume_notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _verify_objects(
    client: KubeClient,
    stored: Repository,
    spec: JobSpec,
    snapshot_id: str,
    source_namespace: str,
    result: _Verified,
) -> None:
    try:
        archive = stored.read_snapshot_part(snapshot_id, ARCHIVE_PART)
        objects: list[ArchivedObject] = read_archive(archive)
    except (KubeferryError, OSError) as error:
        result.errors.append(f"cannot read the snapshot's objects: {error}")
        return
    restored = [o for o in objects if restore_skip_reason(o.manifest) is None]
    for item in restored:
        namespaced = item.namespace is not None
        name = spec.target_namespace if item.group_resource == "namespaces" else item.name
        try:
            live = client.get(
                item.api_version, item.kind, name, spec.target_namespace if namespaced else None
            )
        except (KubeError, KeyError) as error:
            result.mismatches.append(
                Mismatch(f"{item.kind}/{item.name}", "", f"cannot read: {error}")
            )
            continue
        result.checked += 1
        if not namespaced and item.group_resource != "namespaces":
            # cluster-scoped objects are shared with whatever else uses them: presence only
            if live is None:
                result.mismatches.append(Mismatch(f"{item.kind}/{item.name}", "", "missing"))
            continue
        result.mismatches.extend(
            compare_object(
                item.manifest,
                live,
                source_namespace=source_namespace,
                target_namespace=spec.target_namespace,
                storage_class_mapping=spec.storage_class_mapping,
                snapshot_id=snapshot_id,
                job=spec.name,
            )
        )
    result.workloads = workload_checks([o.manifest for o in restored], result.mismatches)


def _restored_volume_dir(
    client: KubeClient, namespace: str, claim: str, mover: VolumeMover | None
) -> tuple[Path | None, str]:
    found = client.get("v1", "PersistentVolumeClaim", claim, namespace)
    if found is None:
        return None, "the claim was not restored"
    volume_name = str((found.get("spec") or {}).get("volumeName") or "")
    volume = client.get("v1", "PersistentVolume", volume_name) if volume_name else None
    if volume is None:
        return None, "the restored claim is not bound"
    path = claim_volume_dir(volume)
    if path is None:
        return None, f"PersistentVolume {volume_name} is neither hostPath nor local"
    directory = mover.path_of(path) if isinstance(mover, HostPathMover) else Path(path)
    if not directory.is_dir():
        return None, f"its directory {path} is not on this machine"
    return directory, ""


def _verify_volumes(
    client: KubeClient,
    stored: Repository,
    spec: JobSpec,
    snapshot_id: str,
    mover: VolumeMover | None,
    result: _Verified,
) -> None:
    if spec.k8s_objects_only:
        return
    try:
        volume_set = read_volume_set(stored, snapshot_id)
    except RepositoryError as error:
        result.errors.append(f"cannot read the snapshot's volume set: {error}")
        return
    if volume_set is None:
        return
    result.volume_notes = [f"{claim}: {why}" for claim, why in sorted(volume_set.skipped.items())]
    store = VolumeStore(stored)
    for entry in volume_set.volumes:
        if isinstance(mover, JobMover):
            # the data is on a node: a read-only Job compares it where it is
            result.volumes.append(_verify_in_cluster(client, mover, spec, snapshot_id, entry))
            continue
        directory, why = _restored_volume_dir(client, spec.target_namespace, entry.claim, mover)
        if directory is None:
            result.volumes.append(VolumeCheck(entry.claim, verified=False, note=why))
            continue
        try:
            manifest = VolumeManifest.from_bytes(store.load_manifest(entry.snapshot))
        except RepositoryError as error:
            result.volumes.append(
                VolumeCheck(entry.claim, verified=False, note=f"manifest unreadable: {error}")
            )
            continue
        mismatches, files, size = verify_tree(manifest, directory, store.chunk_id, item=entry.claim)
        result.volumes.append(
            VolumeCheck(entry.claim, True, files=files, bytes=size, mismatches=tuple(mismatches))
        )


def _verify_in_cluster(
    client: KubeClient, mover: JobMover, spec: JobSpec, snapshot_id: str, entry: VolumeEntry
) -> VolumeCheck:
    try:
        verified = mover.verify_claim(
            client, spec.target_namespace, entry.claim, snapshot_id, entry.snapshot, job=spec.name
        )
    except KubeferryError as error:
        return VolumeCheck(entry.claim, verified=False, note=f"verification Job: {error}")
    mismatches, files, size = drill_mismatches(verified, entry.claim)
    return VolumeCheck(entry.claim, True, files=files, bytes=size, mismatches=tuple(mismatches))


def _delete_scratch(client: KubeClient, namespace: str, timeout: float) -> str:
    try:
        if not client.delete("v1", "Namespace", namespace):
            return "not created"
        client.wait_for_deletion("v1", "Namespace", namespace, timeout=timeout)
    except KubeError as error:
        log.warning("scratch namespace %s: %s", namespace, error)
        return f"deletion requested, not confirmed: {error}"
    return "deleted"


@dataclass(frozen=True)
class DrillOptions:
    snapshot: str | None = None
    """A snapshot id, "latest", or None for a fresh backup."""
    into_namespace: str | None = None
    keep: bool = False
    cleanup_timeout: float = 180.0


def _check_arguments(runner: ActionRunner, job: str, options: DrillOptions) -> JobSpec:
    spec = runner.job_spec(job)
    if options.snapshot not in (None, "latest") and not SNAPSHOT_ID.fullmatch(
        str(options.snapshot)
    ):
        raise KubeferryError(f"invalid snapshot id {options.snapshot!r}")
    scratch = options.into_namespace
    if scratch is not None:
        if not DNS_LABEL.fullmatch(scratch):
            raise KubeferryError(
                f"--into-namespace {scratch!r}: not a valid namespace name "
                "(lowercase letters, digits and '-', at most 63)"
            )
        if scratch in (spec.namespace, spec.target_namespace):
            raise KubeferryError(
                f"--into-namespace {scratch!r} is the job's own namespace: a drill restores "
                "into a scratch namespace it deletes afterwards"
            )
    return spec


def _pick_snapshot(
    runner: ActionRunner, job: str, options: DrillOptions, cancellation: Cancellation
) -> tuple[str, SnapshotInfo, bool]:
    """(repository, snapshot, fresh) for the drill."""
    if options.snapshot is None:
        _, result = runner.run_backup(job, cancellation)
        note_backup_on_job(runner, job, result.source_fingerprint)
        runner.apply_retention(job)
        repository, info = find_snapshot(runner, result.snapshot_id)
        return repository, info, True
    if options.snapshot == "latest":
        wanted = runner.job_spec(job)
        repository = desired_job(runner.inventory, runner.inventory.jobs[job]).repository
        found = runner.job_snapshots(job, repository)
        if not found:
            raise KubeferryError(
                f"job {job} has no snapshot in repository {repository}",
                hint=f"back it up first: kubeferry backup {wanted.name}",
            )
        newest = max(found, key=lambda s: (s.created_at, s.id))
        return repository, newest, False
    repository, info = find_snapshot(runner, options.snapshot)
    if info.job != job:
        raise KubeferryError(f"snapshot {info.id} belongs to job {info.job!r}, not {job!r}")
    return repository, info, False


def run_drill(
    workspace: Workspace,
    job: str,
    *,
    options: DrillOptions | None = None,
    bus: EventBus | None = None,
    cancellation: Cancellation | None = None,
    engine: ObjectReplicator | None = None,
    mover: VolumeMover | None = None,
    lock_timeout: float = 0.0,
    before_verify: Callable[[KubeClient, str], None] | None = None,
    notify_transport: httpx.BaseTransport | None = None,
) -> DrillReport:
    """Run one DR drill of inventory job ``job`` (under the ledger lock) and return its report.

    Raises ``KubeferryError`` for what keeps a drill from running (unknown job, existing
    scratch namespace, unreachable cluster, an error during the restore); a drill that ran
    and found problems, or that the pre-checks stopped, returns a report that did not pass.
    ``before_verify(client, namespace)`` runs between the restore and the verification
    (tests plant differences there).
    """
    options = options or DrillOptions()
    inventory = workspace.load_inventory()
    require_job(inventory, job)
    cancellation = cancellation or Cancellation()
    with (
        locked_runner(
            workspace,
            "drill",
            bus=bus,
            engine=engine,
            lock_timeout=lock_timeout,
            inventory=inventory,
        ) as runner,
        one_line_errors(f"drill of job {job}"),
    ):
        if mover is not None:
            runner.mover = mover
        base = _check_arguments(runner, job, options)
        repository, info, fresh = _pick_snapshot(runner, job, options, cancellation)
        scratch = options.into_namespace or scratch_namespace(base.target_namespace)
        spec = replace(base, target_namespace=scratch, existing_resource_policy="none")
        client = runner.connections.client(spec.destination_cluster)
        if client.get("v1", "Namespace", scratch) is not None:
            raise KubeferryError(
                f"namespace {scratch} already exists on {spec.destination_cluster}: a drill "
                "restores into a new scratch namespace",
                hint="choose another --into-namespace, or delete that one",
            )
        return _drill_run(
            runner,
            job,
            spec,
            repository,
            info,
            fresh,
            options,
            client,
            cancellation,
            before_verify,
            notify_transport,
        )


def _drill_run(
    runner: ActionRunner,
    job: str,
    spec: JobSpec,
    repository: str,
    info: SnapshotInfo,
    fresh: bool,
    options: DrillOptions,
    client: KubeClient,
    cancellation: Cancellation,
    before_verify: Callable[[KubeClient, str], None] | None,
    notify_transport: httpx.BaseTransport | None,
) -> DrillReport:
    stored = runner.connections.repository(repository)
    started = datetime.now(UTC)
    source_namespace = info.namespace or spec.namespace
    report = DrillReport(
        job=job,
        snapshot_id=info.id,
        repository=repository,
        snapshot_created=info.created_at,
        fresh_backup=fresh,
        source_cluster=info.source_cluster or spec.source_cluster,
        source_namespace=source_namespace,
        cluster=spec.destination_cluster,
        namespace=spec.target_namespace,
        started_at=started,
        finished_at=started,
        rpo_seconds=0.0,
        rto_seconds=0.0,
    )
    details: dict[str, Any] = {
        "snapshot": info.id,
        "repository": repository,
        "cluster": spec.destination_cluster,
        "namespace": spec.target_namespace,
        "freshBackup": fresh,
        "preCheckFlag": spec.pre_check_flag,
    }
    restore = runner.restore_work(client, stored, spec, info.id, repository=repository)
    holder: list[DrillReport] = [report]

    def work(reporter: _RunReporter, run_id: int) -> DrillReport:
        current = replace(holder[0], run_id=run_id)
        holder[0] = current
        try:
            restore_started = datetime.now(UTC)
            clock = time.monotonic()
            rpo = max(0.0, (restore_started - info.created_at).total_seconds())
            try:
                restored = restore(reporter, run_id)
            except PrecheckFailed as error:
                holder[0] = replace(
                    current,
                    rpo_seconds=rpo,
                    precheck=error.report.overall,
                    errors=(f"the pre-checks stopped the restore: {error}",),
                )
                raise
            rto = time.monotonic() - clock
            runner.ledger.update_run_details(
                run_id,
                {
                    "precheck": restored.precheck.to_dict() if restored.precheck else None,
                    "outcomes": dict(restored.outcomes),
                },
            )
            if before_verify is not None:
                before_verify(client, spec.target_namespace)
            verified = _Verified()
            _verify_objects(client, stored, spec, info.id, source_namespace, verified)
            mover = runner.mover_for(spec.destination_cluster, repository)
            _verify_volumes(client, stored, spec, info.id, mover, verified)
            current = replace(
                current,
                rpo_seconds=rpo,
                rto_seconds=rto,
                precheck=restored.precheck.overall if restored.precheck else "",
                outcomes=dict(restored.outcomes),
                restore_warnings=tuple(restored.warnings),
                objects_checked=verified.checked,
                object_mismatches=tuple(verified.mismatches),
                workloads=tuple(verified.workloads),
                volumes=tuple(verified.volumes),
                volume_notes=tuple(verified.volume_notes),
                errors=tuple(verified.errors),
            )
            holder[0] = current
        finally:
            cleanup = (
                "kept"
                if options.keep
                else _delete_scratch(client, spec.target_namespace, options.cleanup_timeout)
            )
            holder[0] = replace(holder[0], cleanup=cleanup, finished_at=datetime.now(UTC))
        final = _notified(runner, holder[0], notify_transport)
        holder[0] = final
        runner.ledger.update_run_details(
            run_id, {"drill": final.summary(), "cleanup": final.cleanup}
        )
        if not final.passed:
            raise DrillError(final)
        return final

    try:
        _, result = runner._run(  # the same run bookkeeping as restores
            RunKind.DRILL,
            job,
            f"ReplicationJob/{job}",
            cancellation,
            work,
            snapshot_id=info.id,
            details=details,
        )
    except DrillError as failed:
        return failed.report
    except PrecheckFailed:
        failed_report = _notified(runner, holder[0], notify_transport)
        return failed_report
    return result


def _notified(
    runner: ActionRunner, report: DrillReport, transport: httpx.BaseTransport | None
) -> DrillReport:
    """Tell the job's webhook about a failed drill; a failure to tell is a warning."""
    if report.passed or report.notification:
        return report
    try:
        url = webhook_url(runner.inventory, report.job)
    except KubeferryError as error:
        outcome = f"not sent: {error}"
    else:
        if url is None:
            return report
        payload = {"event": "kubeferry.drill.failed", **report.summary()}
        payload["startedAt"] = report.started_at.isoformat()
        payload["runId"] = report.run_id
        outcome = notify_webhook(url, payload, transport=transport)
    if outcome != "sent":
        log.warning("drill of job %s: webhook %s", report.job, outcome)
        with contextlib.suppress(LedgerError):
            runner.ledger.record_event(
                "drill.notify-failed",
                f"drill of job {report.job}: webhook {outcome}",
                job=report.job,
                run_id=report.run_id,
            )
    return replace(report, notification=outcome)


# -- scheduled drills (reconcile) ------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledDrill:
    job: str
    report: DrillReport | None
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed


def run_due_drills(
    workspace: Workspace,
    *,
    now: datetime | None = None,
    bus: EventBus | None = None,
    cancellation: Cancellation | None = None,
    engine: ObjectReplicator | None = None,
    mover: VolumeMover | None = None,
    lock_timeout: float = 0.0,
    notify_transport: httpx.BaseTransport | None = None,
) -> list[ScheduledDrill]:
    """Run the drills ``drillFrequency`` makes due (one after the other), for reconcile.

    A drill that cannot run (an error) is a failed one; when another run holds the ledger
    lock the remaining drills wait for the next reconcile.
    """
    inventory = workspace.load_inventory()
    if not any(job.spec.drill_frequency for job in inventory.jobs.values()):
        return []
    try:
        ledger = Ledger.open(workspace.ledger_path, create=False)
    except LedgerNotFoundError:
        return []
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    try:
        due = due_drills(inventory, ledger, now or datetime.now(UTC))
    finally:
        ledger.close()
    done: list[ScheduledDrill] = []
    for job in due:
        try:
            report = run_drill(
                workspace,
                job,
                bus=bus,
                cancellation=cancellation,
                engine=engine,
                mover=mover,
                lock_timeout=lock_timeout,
                notify_transport=notify_transport,
            )
        except LockBusyError:
            break
        except KubeferryError as error:
            done.append(ScheduledDrill(job, None, str(error)))
            continue
        done.append(ScheduledDrill(job, report))
    return done
