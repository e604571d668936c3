"""On-demand work outside the plan: back up a job now, list snapshots, restore one.

The CLI (`kubeferry backup`, `snapshots`, `restore`) and the TUI call these functions and
only render what they return. Runs are recorded in the ledger exactly as apply records
them (the same ``ActionRunner`` code), under the ledger lock.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from reconciler._events import EventBus
from reconciler.apply import Cancellation
from reconciler.engines import (
    ExistingResourcePolicy,
    JobSpec,
    ObjectReplicator,
    PrecheckReport,
)
from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.reconcile._actions import (
    ActionRunner,
    RetentionResult,
    SnapshotInfo,
    expired_snapshots,
)
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._runner import (
    DNS_LABEL,
    SNAPSHOT_ID,
    find_snapshot,
    ledger_if_any,
    locked_runner,
    note_backup_on_job,
    one_line_errors,
    require_job,
)
from reconciler.reconcile._session import (
    default_engine,
    open_ledger,
)
from reconciler.reconcile._views import desired_job
from reconciler.repository import Repository
from reconciler.workspace import Workspace
from state import Ledger, LedgerError, RunPhase, Snapshot

POLICIES: tuple[ExistingResourcePolicy, ...] = ("none", "update", "recreate")

__all__ = [
    "POLICIES",
    "BackupOutcome",
    "RestoreOutcome",
    "RestorePrecheck",
    "RetentionResult",
    "SnapshotInfo",
    "apply_retention",
    "backup_job",
    "expired_snapshots",
    "list_snapshots",
    "precheck_restore",
    "restore_snapshot",
]


@dataclass(frozen=True)
class BackupOutcome:
    job: str
    run_id: int
    snapshot_id: str
    repository: str
    items: int
    size_bytes: int
    phase: str
    """Completed, or PartiallyFailed when items had warnings."""
    warnings: list[str]
    retention: RetentionResult


@dataclass(frozen=True)
class RestoreOutcome:
    snapshot_id: str
    job: str
    run_id: int
    cluster: str
    namespace: str
    policy: str
    items: int
    phase: str
    outcomes: dict[str, int] = field(default_factory=dict)
    """created / updated / recreated / exists-identical / exists-differs / failed -> count."""
    precheck: PrecheckReport | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcomes.get("failed", 0) == 0


@dataclass(frozen=True)
class RestorePrecheck:
    """The pre-check report of a restore that has not run (``precheck_restore``)."""

    snapshot_id: str
    job: str
    repository: str
    cluster: str
    namespace: str
    policy: str
    pre_check_flag: str
    """The flag the restore would run with (``ignorePrechecks`` when asked to ignore them)."""
    report: PrecheckReport

    @property
    def would_stop(self) -> bool:
        """True when ``restore_snapshot`` with the same arguments would stop at the pre-checks."""
        return self.report.overall == "not_compatible" and self.pre_check_flag == "stopOnPrecheck"


# -- sessions --------------------------------------------------------------------------------


# -- backup and retention --------------------------------------------------------------------


def backup_job(
    workspace: Workspace,
    job_name: str,
    *,
    bus: EventBus | None = None,
    cancellation: Cancellation | None = None,
    engine: ObjectReplicator | None = None,
    lock_timeout: float = 0.0,
) -> BackupOutcome:
    """Back up job ``job_name``'s source namespace now, then apply the job's retention.

    Takes the ledger lock (LockBusyError when another run holds it). The job must have been
    applied (its repository initialized). Raises ``Interrupted`` when cancelled.
    """
    inventory = workspace.load_inventory()
    require_job(inventory, job_name)
    cancellation = cancellation or Cancellation()
    with (
        locked_runner(
            workspace,
            "backup",
            bus=bus,
            engine=engine,
            lock_timeout=lock_timeout,
            inventory=inventory,
        ) as runner,
        one_line_errors(f"backup of job {job_name}"),
    ):
        run_id, result = runner.run_backup(job_name, cancellation)
        note_backup_on_job(runner, job_name, result.source_fingerprint)
        retention = runner.apply_retention(job_name)
        if retention.deleted:
            runner.collect_volume_garbage(job_name, retention.repository, run_id=run_id)
        phase = runner.ledger.run(run_id).phase
        return BackupOutcome(
            job=job_name,
            run_id=run_id,
            snapshot_id=result.snapshot_id,
            repository=retention.repository,
            items=result.items,
            size_bytes=result.size_bytes,
            phase=phase.value,
            warnings=list(result.warnings),
            retention=retention,
        )


def apply_retention(
    workspace: Workspace,
    job_name: str,
    *,
    now: datetime | None = None,
    lock_timeout: float = 0.0,
) -> RetentionResult:
    """Apply job ``job_name``'s retention to its snapshots now (under the ledger lock)."""
    inventory = workspace.load_inventory()
    require_job(inventory, job_name)
    with locked_runner(
        workspace,
        "retention",
        bus=None,
        engine=None,
        lock_timeout=lock_timeout,
        inventory=inventory,
    ) as runner:
        return runner.apply_retention(job_name, now=now)


# -- listing ---------------------------------------------------------------------------------


def _run_phases(ledger: Ledger | None, rows: dict[str, Snapshot]) -> dict[int, str]:
    if ledger is None:
        return {}
    phases = {}
    for row in rows.values():
        if row.run_id is not None:
            with contextlib.suppress(LedgerError):
                phases[row.run_id] = ledger.run(row.run_id).phase.value
    return phases


def _sizes(repository: Repository) -> dict[str, int]:
    """Bytes stored per snapshot id, from one listing (for snapshots this ledger did not write)."""
    sizes: dict[str, int] = {}
    for info in repository.backend.list("snapshots/"):
        snapshot_id = info.key[len("snapshots/") :].partition("/")[0]
        sizes[snapshot_id] = sizes.get(snapshot_id, 0) + info.size
    return sizes


def list_snapshots(
    workspace: Workspace, *, job: str | None = None, repository: str | None = None
) -> list[SnapshotInfo]:
    """Complete snapshots in the inventory's repositories, newest first.

    The repositories say which snapshots exist; the ledger (when there is one) says what
    they are, else each snapshot's metadata does. ``job`` and ``repository`` filter.
    """
    inventory = workspace.load_inventory()
    if repository is not None and repository not in inventory.repositories:
        known = ", ".join(sorted(inventory.repositories)) or "none"
        raise KubeferryError(
            f"no ReplicationRepository {repository!r} in the inventory {inventory.path}",
            hint=f"repositories: {known}",
        )
    names = [repository] if repository is not None else sorted(inventory.repositories)
    with ledger_if_any(workspace) as ledger:
        rows = {row.id: row for row in (ledger.snapshots(include_deleted=True) if ledger else [])}
        if job is not None and job not in inventory.jobs:
            if not any(row.job == job for row in rows.values()):
                raise KubeferryError(
                    f"no job {job!r} in the inventory {inventory.path} or the ledger"
                )
        elif job is not None and repository is None:
            names = [desired_job(inventory, inventory.jobs[job]).repository]
        phases = _run_phases(ledger, rows)
    connections = Connections(inventory)
    found: list[SnapshotInfo] = []
    try:
        for name in names:
            stored = connections.repository(name)
            if not stored.is_initialized():
                continue
            ids = stored.list_snapshots()
            sizes: dict[str, int] | None = None
            for snapshot_id in ids:
                row = rows.get(snapshot_id)
                if job is not None and not snapshot_id.startswith(f"{job}-"):
                    continue
                if row is not None and row.repository == name:
                    phase = phases.get(row.run_id or -1, RunPhase.COMPLETED.value)
                    info = SnapshotInfo.from_row(row, phase)
                else:
                    info = _from_repository(stored, name, snapshot_id)
                if info.size_bytes is None:
                    sizes = sizes if sizes is not None else _sizes(stored)
                    info = replace(info, size_bytes=sizes.get(snapshot_id))
                if job is None or info.job == job:
                    found.append(info)
    finally:
        connections.close()
    return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)


def _from_repository(stored: Repository, name: str, snapshot_id: str) -> SnapshotInfo:
    try:
        document = json.loads(stored.read_snapshot_metadata(snapshot_id))
    except ValueError:
        document = {}
    return SnapshotInfo.from_metadata(
        snapshot_id, name, document if isinstance(document, dict) else {}
    )


# -- restore ---------------------------------------------------------------------------------


def _restore_spec(
    runner: ActionRunner,
    info: SnapshotInfo,
    *,
    cluster: str | None,
    to_namespace: str | None,
    policy: ExistingResourcePolicy | None,
    ignore_prechecks: bool,
) -> JobSpec:
    if info.job in runner.inventory.jobs:
        spec = runner.job_spec(info.job)
    else:
        if cluster is None:
            raise KubeferryError(
                f"snapshot {info.id} belongs to job {info.job!r}, which is not in the "
                "inventory: name the destination with --cluster"
            )
        spec = JobSpec(
            name=info.job,
            namespace=info.namespace,
            target_namespace=info.namespace,
            source_cluster=info.source_cluster,
            destination_cluster=cluster,
        )
    return replace(
        spec,
        destination_cluster=cluster or spec.destination_cluster,
        target_namespace=to_namespace or spec.target_namespace,
        existing_resource_policy=policy or spec.existing_resource_policy,
        pre_check_flag="ignorePrechecks" if ignore_prechecks else spec.pre_check_flag,
    )


def _checked_restore_arguments(
    workspace: Workspace,
    snapshot_id: str,
    *,
    cluster: str | None,
    to_namespace: str | None,
    policy: str | None,
) -> Inventory:
    """Validate a restore's arguments; returns the loaded inventory."""
    if not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise KubeferryError(f"invalid snapshot id {snapshot_id!r}")
    if to_namespace is not None and not DNS_LABEL.fullmatch(to_namespace):
        raise KubeferryError(
            f"--to-namespace {to_namespace!r}: not a valid namespace name "
            "(lowercase letters, digits and '-', at most 63)"
        )
    if policy is not None and policy not in POLICIES:
        raise KubeferryError(f"--policy {policy!r}: use one of {', '.join(POLICIES)}")
    inventory = workspace.load_inventory()
    if cluster is not None and cluster not in inventory.clusters:
        known = ", ".join(sorted(inventory.clusters)) or "none"
        raise KubeferryError(
            f"no Cluster {cluster!r} in the inventory {inventory.path}", hint=f"clusters: {known}"
        )
    return inventory


def precheck_restore(
    workspace: Workspace,
    snapshot_id: str,
    *,
    cluster: str | None = None,
    to_namespace: str | None = None,
    policy: ExistingResourcePolicy | None = None,
    ignore_prechecks: bool = False,
    engine: ObjectReplicator | None = None,
) -> RestorePrecheck:
    """The pre-checks ``restore_snapshot`` with the same arguments would run, without restoring.

    Reads the snapshot's requirements and the destination cluster; writes nothing to the
    clusters or the repository and takes no lock (the ledger is only read, created empty
    when there is none, as ``make_plan`` does). ``would_stop`` says whether the restore would
    stop at them.
    """
    inventory = _checked_restore_arguments(
        workspace, snapshot_id, cluster=cluster, to_namespace=to_namespace, policy=policy
    )
    engine = engine or default_engine()
    ledger = open_ledger(workspace)
    connections = Connections(inventory)
    try:
        runner = ActionRunner(inventory, connections, ledger, engine, EventBus(), {}, mover=None)
        with one_line_errors(f"pre-checks of snapshot {snapshot_id}"):
            repository, info = find_snapshot(runner, snapshot_id)
            spec = _restore_spec(
                runner,
                info,
                cluster=cluster,
                to_namespace=to_namespace,
                policy=policy,
                ignore_prechecks=ignore_prechecks,
            )
            stored = connections.repository(repository)
            requirements = engine.snapshot_requirements(stored, snapshot_id)
            report = engine.precheck(
                connections.client(spec.destination_cluster), spec, requirements
            )
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    finally:
        connections.close()
        ledger.close()
    return RestorePrecheck(
        snapshot_id=snapshot_id,
        job=info.job,
        repository=repository,
        cluster=spec.destination_cluster,
        namespace=spec.target_namespace,
        policy=spec.existing_resource_policy,
        pre_check_flag=spec.pre_check_flag,
        report=report,
    )


def restore_snapshot(
    workspace: Workspace,
    snapshot_id: str,
    *,
    cluster: str | None = None,
    to_namespace: str | None = None,
    policy: ExistingResourcePolicy | None = None,
    ignore_prechecks: bool = False,
    bus: EventBus | None = None,
    cancellation: Cancellation | None = None,
    engine: ObjectReplicator | None = None,
    lock_timeout: float = 0.0,
) -> RestoreOutcome:
    """Restore a snapshot onto ``cluster`` (default: its job's destination) into
    ``to_namespace`` (default: the job's targetNamespace) with ``policy`` (default: the
    job's existingResourcePolicy).

    The engine's pre-checks run first; ``PrecheckFailed`` (a KubeferryError) when they find
    the destination not_compatible, unless ``ignore_prechecks`` or the job's preCheckFlag is
    ignorePrechecks. The run, its pre-check report and outcomes go to the ledger.
    """
    inventory = _checked_restore_arguments(
        workspace, snapshot_id, cluster=cluster, to_namespace=to_namespace, policy=policy
    )
    cancellation = cancellation or Cancellation()
    with (
        locked_runner(
            workspace,
            "restore",
            bus=bus,
            engine=engine,
            lock_timeout=lock_timeout,
            inventory=inventory,
        ) as runner,
        one_line_errors(f"restore of snapshot {snapshot_id}"),
    ):
        repository, info = find_snapshot(runner, snapshot_id)
        spec = _restore_spec(
            runner,
            info,
            cluster=cluster,
            to_namespace=to_namespace,
            policy=policy,
            ignore_prechecks=ignore_prechecks,
        )
        run_id, result = runner.run_restore(
            info.job, snapshot_id, cancellation, spec=spec, repository=repository
        )
        return RestoreOutcome(
            snapshot_id=snapshot_id,
            job=info.job,
            run_id=run_id,
            cluster=spec.destination_cluster,
            namespace=spec.target_namespace,
            policy=spec.existing_resource_policy,
            items=result.items,
            phase=runner.ledger.run(run_id).phase.value,
            outcomes=dict(result.outcomes),
            precheck=result.precheck,
            warnings=list(result.warnings),
        )
