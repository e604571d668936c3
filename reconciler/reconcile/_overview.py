"""The read model of the TUI (and any status view): inventory + ledger, no network.

``load_overview`` joins the inventory (desired) with the ledger (what was applied, what the
last refresh saw, the runs) into rows ready to show. It never contacts a cluster or a
repository and never creates or writes the ledger, so the TUI can call it every few
seconds; the parsed inventory is cached by its files' stamps (mtime and size). Secret
values never appear: the inventory only holds references, and the describe view redacts
credential-like keys a second time.

Status model (as Argo CD, two separate columns):

**Sync** compares the inventory with what the ledger recorded as applied, plus due-ness:

- ``Unknown``: the inventory did not load, so there is nothing to compare with;
- ``OutOfSync``: the job was never applied (not in the ledger), was removed from the
  inventory (the plan will forget or delete it), its desired spec digest differs from the
  one last applied, it has no successful run yet, or its ``backupFrequency`` made it due
  (``reconciler.plan.next_due`` of the last success is not in the future; the planner's rule),
  or, for a replication with ``restoreFrequency``, the destination refresh is due (never
  restored, or the schedule's next time after the last restore has come);
- ``Synced`` otherwise. A job without ``backupFrequency`` also goes OutOfSync when its
  source namespace changes, but only a refresh (``kubeferry plan``) can see that.

**Health** comes from the job's runs (a replication is a backup run then a restore run):

- ``Progressing``: its newest run is New or InProgress (and its process is alive, when
  it runs on this host);
- ``Degraded``: its newest run ended Failed, PartiallyFailed or Interrupted, or it is
  InProgress but its process on this host is gone;
- ``Missing``: it never ran, has no successful run, or (replicate mode) nothing has been
  restored at the destination yet, or its destination cluster is not in the ledger;
- ``Healthy`` otherwise.

RPO is the age of the job's newest usable snapshot (the ledger's ``last_snapshot_id``, or
the time of its last usable backup run). A repository's size is the sum of the catalogued
(not deleted) snapshots' sizes in the ledger; volume data deduplicates, so the bytes on
storage may be fewer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from reconciler.errors import KubeferryError
from reconciler.inventory import (
    Inventory,
    InventoryError,
    InventoryObject,
    ReplicationRepository,
    load_inventory,
)
from reconciler.plan import DesiredJob, next_due
from reconciler.reconcile._views import desired_job
from reconciler.workspace import Workspace
from state import Cluster as ClusterRecord
from state import (
    Event,
    Job,
    Ledger,
    LedgerError,
    LedgerNotFoundError,
    NotFoundError,
    Run,
    RunIssue,
    RunKind,
    RunPhase,
)
from state import Repository as RepositoryRecord
from state import Slice as SliceRecord

Sync = Literal["Synced", "OutOfSync", "Unknown"]
Health = Literal["Healthy", "Progressing", "Degraded", "Missing"]

SYNC_VALUES: tuple[Sync, ...] = ("Synced", "OutOfSync", "Unknown")
HEALTH_VALUES: tuple[Health, ...] = ("Healthy", "Progressing", "Degraded", "Missing")

_UNFINISHED = (RunPhase.NEW, RunPhase.IN_PROGRESS)
_BAD_ENDINGS = (RunPhase.FAILED, RunPhase.PARTIALLY_FAILED, RunPhase.INTERRUPTED)


# -- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRow:
    name: str
    role: str
    context: str
    protected: bool
    reachability: str
    """The ledger's Reachability value; "Unknown" if never refreshed."""
    version: str | None
    permissions_ok: bool | None
    message: str
    last_refresh: datetime | None
    in_inventory: bool = True


@dataclass(frozen=True)
class RepositoryRow:
    name: str
    kind: str
    """"filesystem" | "s3"."""
    location: str
    """A path or s3://bucket/prefix (no credentials)."""
    availability: str
    """"Available" | "Unavailable" | "Unknown"."""
    size_bytes: int | None
    message: str
    encrypted: bool = False
    snapshot_count: int = 0
    in_inventory: bool = True


@dataclass(frozen=True)
class JobRow:
    name: str
    slice: str
    mode: str
    """"replicate" | "backup"."""
    source_cluster: str
    destination_cluster: str
    namespace: str
    target_namespace: str
    repository: str
    sync: Sync
    health: Health
    last_run_phase: str | None
    last_run_at: datetime | None
    next_due: datetime | None
    last_good_snapshot_at: datetime | None
    rpo_seconds: float | None
    message: str
    sync_reason: str = ""
    health_reason: str = ""
    backup_frequency: str | None = None
    in_inventory: bool = True

    @property
    def address(self) -> str:
        return f"ReplicationJob/{self.name}"


@dataclass(frozen=True)
class Overview:
    inventory_path: Path
    ledger_path: Path
    ledger_serial: int
    clusters: tuple[ClusterRow, ...]
    repositories: tuple[RepositoryRow, ...]
    jobs: tuple[JobRow, ...]
    protected_clusters: tuple[str, ...]
    problems: tuple[str, ...]
    """One-line strings, e.g. inventory load errors."""
    generated_at: datetime
    inventory_stamp: str = ""
    """What ``inventory_stamp`` returned when this was read (to notice edits)."""
    inventory_loaded: bool = True
    ledger_exists: bool = True


@dataclass(frozen=True)
class RunRow:
    id: int
    kind: str
    job: str
    phase: str
    started_at: datetime
    finished_at: datetime | None
    items_done: int
    total_items: int | None
    bytes_done: int
    bytes_total: int | None
    warning_count: int
    error_count: int
    snapshot_id: str | None
    message: str
    source_cluster: str
    destination_cluster: str
    updated_at: datetime | None = None
    drill: dict[str, Any] | None = None
    """A drill run's summary (passed, rpoSeconds, rtoSeconds, reasons...); None otherwise."""


@dataclass(frozen=True)
class IssueRow:
    severity: str
    item: str | None
    message: str
    at: datetime


@dataclass(frozen=True)
class EventRow:
    id: int
    at: datetime
    level: str
    kind: str
    message: str
    job: str | None
    run_id: int | None


@dataclass(frozen=True)
class RunDetail:
    run: RunRow
    issues: tuple[IssueRow, ...]
    events: tuple[EventRow, ...]
    details: dict[str, Any]


@dataclass(frozen=True)
class Description:
    address: str
    """"ReplicationJob/web", "Cluster/worker-1", ..."""
    spec_yaml: str
    """The inventory document as YAML, secret values redacted."""
    observed: dict[str, Any]
    """The ledger row (digests, fingerprints, reachability...), JSON-like."""
    runs: tuple[RunRow, ...]
    """The last runs concerning it (a job: its runs; others: runs of the jobs using it)."""


# -- the inventory, cached by file stamps ------------------------------------------------------


_YAML_SUFFIXES = (".yaml", ".yml")


def inventory_stamp(workspace: Workspace) -> str:
    """Cheap fingerprint (names, sizes, mtimes) of the inventory files: changes on an edit."""
    path = workspace.inventory_path
    try:
        if path.is_dir():
            files = sorted(
                child
                for child in path.iterdir()
                if child.suffix in _YAML_SUFFIXES and not child.name.startswith(".")
            )
        else:
            files = [path]
        parts = []
        for file in files:
            try:
                stat = file.stat()
            except FileNotFoundError:
                parts.append(f"{file.name}:-")
                continue
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
        return "|".join(parts)
    except OSError as error:
        return f"error:{error.errno}"


@dataclass(frozen=True)
class _LoadedInventory:
    inventory: Inventory
    desired: dict[str, DesiredJob]


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[str, _LoadedInventory]] = {}
_CACHE_SIZE = 4


def _inventory(workspace: Workspace) -> tuple[str, _LoadedInventory]:
    """The inventory and its jobs' desired views; parsed again only when a file changed."""
    key = workspace.inventory_path.absolute()
    stamp = inventory_stamp(workspace)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached
    inventory = load_inventory(workspace.inventory_path)
    loaded = _LoadedInventory(
        inventory, {name: desired_job(inventory, job) for name, job in inventory.jobs.items()}
    )
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE and key not in _cache:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (stamp, loaded)
    return stamp, loaded


def _load(workspace: Workspace, problems: list[str]) -> tuple[str, _LoadedInventory | None]:
    try:
        return _inventory(workspace)
    except InventoryError as error:
        problems.extend(f"inventory: {issue}" for issue in error.issues)
    except KubeferryError as error:
        problems.append(f"inventory: {error}")
    return inventory_stamp(workspace), None


# -- the ledger --------------------------------------------------------------------------------


@contextlib.contextmanager
def _ledger(workspace: Workspace) -> Iterator[Ledger | None]:
    """The ledger, opened without creating it; None when there is none yet."""
    try:
        ledger = Ledger.open(workspace.ledger_path, create=False)
    except LedgerNotFoundError:
        yield None
        return
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    try:
        yield ledger
    except LedgerError as error:
        raise KubeferryError(f"ledger {workspace.ledger_path}: {error}") from None
    finally:
        ledger.close()


@dataclass
class _LedgerView:
    serial: int = 0
    clusters: dict[str, ClusterRecord] | None = None
    repositories: dict[str, RepositoryRecord] | None = None
    slices: dict[str, SliceRecord] | None = None
    jobs: dict[str, Job] | None = None
    last_runs: dict[str, Run] | None = None
    snapshot_times: dict[str, datetime] | None = None
    repository_sizes: dict[str, tuple[int, int | None]] | None = None


def _latest_runs(ledger: Ledger, jobs: Iterable[str]) -> dict[str, Run]:
    """The newest run of each job: one windowed read, then per-job reads for the rest."""
    wanted = set(jobs)
    latest: dict[str, Run] = {}
    window = max(500, 4 * len(wanted))
    recent = ledger.runs(limit=window)
    for run in recent:
        latest.setdefault(run.job, run)
    if len(recent) >= window:  # older history exists: look up the jobs not seen yet
        for name in sorted(wanted - latest.keys()):
            found = ledger.runs(job=name, limit=1)
            if found:
                latest[name] = found[0]
    return latest


def _read_ledger(ledger: Ledger, job_names: Iterable[str]) -> _LedgerView:
    jobs = {row.name: row for row in ledger.jobs()}
    times: dict[str, datetime] = {}
    sizes: dict[str, tuple[int, int | None]] = {}
    for snapshot in ledger.snapshots():
        times[snapshot.id] = snapshot.created_at
        count, total = sizes.get(snapshot.repository, (0, None))
        if snapshot.size_bytes is not None:
            total = (total or 0) + snapshot.size_bytes
        sizes[snapshot.repository] = (count + 1, total)
    return _LedgerView(
        serial=ledger.serial,
        clusters={row.name: row for row in ledger.clusters()},
        repositories={row.name: row for row in ledger.repositories()},
        slices={row.name: row for row in ledger.slices()},
        jobs=jobs,
        last_runs=_latest_runs(ledger, set(job_names) | jobs.keys()),
        snapshot_times=times,
        repository_sizes=sizes,
    )


def ledger_serial(workspace: Workspace) -> int:
    """The ledger's serial (0 when there is no ledger yet); cheap, for polling."""
    with _ledger(workspace) as ledger:
        return 0 if ledger is None else ledger.serial


# -- status rules ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _next_due(backup_frequency: str, last_success_at: datetime) -> datetime:
    """The planner's ``next_due``, memoized: every reload asks again for the same pairs."""
    return next_due(backup_frequency, last_success_at)


def job_sync(
    desired: DesiredJob | None,
    record: Job | None,
    now: datetime,
    *,
    inventory_loaded: bool = True,
) -> tuple[Sync, str]:
    """Sync of one job and why (see the module docstring)."""
    if not inventory_loaded:
        return "Unknown", "the inventory did not load"
    if desired is None:
        return "OutOfSync", "removed from the inventory"
    if record is None:
        return "OutOfSync", "never applied"
    if (record.spec_digest or "") != desired.spec_digest:
        return "OutOfSync", "spec changed since the last apply"
    if record.last_success_at is None:
        return "OutOfSync", "no successful run yet"
    if desired.backup_frequency:
        due = _next_due(desired.backup_frequency, record.last_success_at)
        if due <= now:
            return "OutOfSync", f"backup due since {due:%Y-%m-%d %H:%M}Z"
    restore_due = _restore_due(desired, record, now)
    if restore_due is not None and restore_due <= now:
        if record.last_restore_at is None:
            return "OutOfSync", "destination never restored (restoreFrequency)"
        return "OutOfSync", f"restore due since {restore_due:%Y-%m-%d %H:%M}Z"
    return "Synced", ""


def _restore_due(desired: DesiredJob, record: Job, now: datetime) -> datetime | None:
    """When a replication's ``restoreFrequency`` refresh is due (the planner's rule: never
    restored is due at once); None without restoreFrequency or outside replicate mode."""
    if desired.mode != "replicate" or not desired.restore_frequency:
        return None
    if record.last_restore_at is None:
        return now
    return _next_due(desired.restore_frequency, record.last_restore_at)


def _process_gone(run: Run) -> bool:
    if run.host != socket.gethostname() or run.pid <= 0:
        return False
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def job_health(
    mode: str,
    record: Job | None,
    last_run: Run | None,
    *,
    destination_registered: bool = True,
) -> tuple[Health, str]:
    """Health of one job and why (see the module docstring)."""
    if last_run is not None:
        what = f"{last_run.kind} run {last_run.id}"
        if last_run.phase in _UNFINISHED:
            if _process_gone(last_run):
                return "Degraded", f"{what}: its process {last_run.pid} is gone"
            return "Progressing", f"{what} in progress"
        if last_run.phase in _BAD_ENDINGS:
            tail = f": {last_run.message}" if last_run.message else ""
            return "Degraded", f"{what} {last_run.phase}{tail}"
    if last_run is None or record is None or record.last_success_at is None:
        return "Missing", "never replicated" if mode == "replicate" else "never backed up"
    if mode == "replicate":
        if not destination_registered:
            return "Missing", f"destination cluster {record.destination_cluster} not registered"
        if record.last_restore_at is None:
            return "Missing", "nothing restored at the destination yet"
    return "Healthy", ""


# -- rows --------------------------------------------------------------------------------------


def _permissions_ok(permissions: dict[str, Any]) -> bool | None:
    values = [value for value in permissions.values() if isinstance(value, bool)]
    return all(values) if values else None


def _cluster_rows(inventory: Inventory | None, view: _LedgerView) -> list[ClusterRow]:
    recorded = view.clusters or {}
    rows: list[ClusterRow] = []
    declared = inventory.clusters if inventory is not None else {}
    for name in sorted(declared):
        cluster = declared[name]
        record = recorded.get(name)
        rows.append(
            ClusterRow(
                name=name,
                role=cluster.spec.role,
                context=cluster.spec.context,
                protected=cluster.spec.protected,
                reachability=record.reachability.value if record else "Unknown",
                version=record.observed_version if record else None,
                permissions_ok=_permissions_ok(record.permissions) if record else None,
                message=record.message if record else "never refreshed (run plan or apply)",
                last_refresh=record.last_refresh if record else None,
            )
        )
    for name in sorted(recorded.keys() - declared.keys()):
        record = recorded[name]
        rows.append(
            ClusterRow(
                name=name,
                role="",
                context="",
                protected=False,
                reachability=record.reachability.value,
                version=record.observed_version,
                permissions_ok=_permissions_ok(record.permissions),
                message="removed from the inventory" if inventory is not None else record.message,
                last_refresh=record.last_refresh,
                in_inventory=inventory is None,
            )
        )
    return rows


def repository_location(repository: ReplicationRepository) -> tuple[str, str]:
    """("filesystem", path) or ("s3", "s3://bucket/prefix"): never credentials."""
    s3 = repository.spec.s3
    if s3 is not None:
        prefix = s3.prefix.strip("/")
        location = f"s3://{s3.bucket}/{prefix}" if prefix else f"s3://{s3.bucket}"
        return "s3", location
    path = repository.filesystem_path
    return "filesystem", str(path) if path is not None else ""


def _repository_rows(inventory: Inventory | None, view: _LedgerView) -> list[RepositoryRow]:
    recorded = view.repositories or {}
    sizes = view.repository_sizes or {}
    rows: list[RepositoryRow] = []
    declared = inventory.repositories if inventory is not None else {}
    for name in sorted(declared):
        repository = declared[name]
        record = recorded.get(name)
        kind, location = repository_location(repository)
        count, size = sizes.get(name, (0, None))
        rows.append(
            RepositoryRow(
                name=name,
                kind=kind,
                location=location,
                availability=record.availability.value if record else "Unknown",
                size_bytes=size,
                message=record.message if record else "never validated (run plan or apply)",
                encrypted=repository.spec.encryption is not None,
                snapshot_count=count,
            )
        )
    for name in sorted(recorded.keys() - declared.keys()):
        record = recorded[name]
        count, size = sizes.get(name, (0, None))
        rows.append(
            RepositoryRow(
                name=name,
                kind="",
                location="",
                availability=record.availability.value,
                size_bytes=size,
                message="removed from the inventory" if inventory is not None else record.message,
                snapshot_count=count,
                in_inventory=inventory is None,
            )
        )
    return rows


def _age_seconds(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def _last_good_snapshot(record: Job | None, view: _LedgerView) -> datetime | None:
    if record is None:
        return None
    times = view.snapshot_times or {}
    if record.last_snapshot_id is not None and record.last_snapshot_id in times:
        return times[record.last_snapshot_id]
    return record.last_backup_at


def _job_row(
    name: str,
    desired: DesiredJob | None,
    view: _LedgerView,
    now: datetime,
    *,
    inventory_loaded: bool,
) -> JobRow:
    record = (view.jobs or {}).get(name)
    last_run = (view.last_runs or {}).get(name)
    mode: str
    if desired is not None:
        slice_name, mode = desired.slice, desired.mode
        source, destination = desired.source_cluster, desired.destination_cluster
        namespace, target, repository = (
            desired.namespace,
            desired.target_namespace,
            desired.repository,
        )
        frequency = desired.backup_frequency
    else:
        assert record is not None  # a job comes from the inventory or the ledger
        slice_name, mode = record.slice, record.mode
        source, destination = record.source_cluster, record.destination_cluster
        namespace, target = record.namespace, record.target_namespace
        recorded_slice = (view.slices or {}).get(record.slice)
        repository = recorded_slice.repository if recorded_slice is not None else ""
        frequency = None
    sync, sync_reason = job_sync(desired, record, now, inventory_loaded=inventory_loaded)
    health, health_reason = job_health(
        mode,
        record,
        last_run,
        destination_registered=view.clusters is None or destination in view.clusters,
    )
    due: datetime | None = None
    if frequency:
        last_success = record.last_success_at if record is not None else None
        due = _next_due(frequency, last_success) if last_success is not None else now
    if desired is not None and record is not None and record.last_success_at is not None:
        restore_due = _restore_due(desired, record, now)
        if restore_due is not None:
            due = restore_due if due is None else min(due, restore_due)
    good = _last_good_snapshot(record, view)
    return JobRow(
        name=name,
        slice=slice_name,
        mode=mode,
        source_cluster=source,
        destination_cluster=destination,
        namespace=namespace,
        target_namespace=target,
        repository=repository,
        sync=sync,
        health=health,
        last_run_phase=last_run.phase.value if last_run is not None else None,
        last_run_at=(last_run.finished_at or last_run.started_at) if last_run else None,
        next_due=due,
        last_good_snapshot_at=good,
        rpo_seconds=_age_seconds(now, good),
        message="; ".join(reason for reason in (sync_reason, health_reason) if reason),
        sync_reason=sync_reason,
        health_reason=health_reason,
        backup_frequency=frequency,
        in_inventory=desired is not None,
    )


def load_overview(workspace: Workspace, *, now: datetime | None = None) -> Overview:
    """Clusters, repositories and jobs with Sync and Health, from inventory + ledger only.

    Never raises for a broken inventory (its issues go to ``problems``, jobs then come from
    the ledger with Sync Unknown); raises KubeferryError for an unreadable ledger.
    """
    now = now or datetime.now(UTC)
    problems: list[str] = []
    stamp, loaded = _load(workspace, problems)
    inventory = loaded.inventory if loaded is not None else None
    desired = loaded.desired if loaded is not None else {}
    with _ledger(workspace) as ledger:
        view = _read_ledger(ledger, desired) if ledger is not None else _LedgerView()
    if view.jobs is None:
        problems.append(f"no ledger yet at {workspace.ledger_path}: nothing applied so far")
    names = sorted(desired.keys() | (view.jobs or {}).keys())
    jobs = tuple(
        _job_row(name, desired.get(name), view, now, inventory_loaded=inventory is not None)
        for name in names
    )
    protected = (
        tuple(sorted(n for n, c in inventory.clusters.items() if c.spec.protected))
        if inventory is not None
        else ()
    )
    return Overview(
        inventory_path=workspace.inventory_path,
        ledger_path=workspace.ledger_path,
        ledger_serial=view.serial,
        clusters=tuple(_cluster_rows(inventory, view)),
        repositories=tuple(_repository_rows(inventory, view)),
        jobs=jobs,
        protected_clusters=protected,
        problems=tuple(problems),
        generated_at=now,
        inventory_stamp=stamp,
        inventory_loaded=inventory is not None,
        ledger_exists=view.jobs is not None,
    )


# -- runs and events ---------------------------------------------------------------------------


def _run_row(run: Run, jobs: dict[str, Job], desired: dict[str, DesiredJob]) -> RunRow:
    assert run.id is not None
    wanted = desired.get(run.job)
    record = jobs.get(run.job)
    if wanted is not None:
        source, destination = wanted.source_cluster, wanted.destination_cluster
    elif record is not None:
        source, destination = record.source_cluster, record.destination_cluster
    else:
        source = destination = ""
    return RunRow(
        id=run.id,
        kind=run.kind.value,
        job=run.job,
        phase=run.phase.value,
        started_at=run.started_at,
        finished_at=run.finished_at,
        items_done=run.items_done,
        total_items=run.total_items,
        bytes_done=run.bytes_done,
        bytes_total=run.bytes_total,
        warning_count=run.warning_count,
        error_count=run.error_count,
        snapshot_id=run.snapshot_id,
        message=run.message,
        source_cluster=source,
        destination_cluster=destination,
        updated_at=run.updated_at,
        drill=_drill_summary(run),
    )


def _drill_summary(run: Run) -> dict[str, Any] | None:
    if run.kind is not RunKind.DRILL:
        return None
    summary = (run.details or {}).get("drill")
    return dict(summary) if isinstance(summary, dict) else {}


def _kind(kind: str | None) -> RunKind | None:
    if kind is None:
        return None
    try:
        return RunKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in RunKind)
        raise KubeferryError(f"unknown run kind {kind!r} (one of {known})") from None


def _desired_quietly(workspace: Workspace) -> dict[str, DesiredJob]:
    try:
        return _inventory(workspace)[1].desired
    except KubeferryError:
        return {}


def _phase(phase: str | None) -> RunPhase | None:
    if phase is None:
        return None
    try:
        return RunPhase(phase)
    except ValueError:
        known = ", ".join(p.value for p in RunPhase)
        raise KubeferryError(f"unknown run phase {phase!r} (one of {known})") from None


def list_runs(
    workspace: Workspace,
    *,
    job: str | None = None,
    cluster: str | None = None,
    phase: str | None = None,
    kind: str | None = None,
    limit: int = 200,
) -> list[RunRow]:
    """Runs from the ledger, newest first; ``cluster`` matches source or destination;
    ``kind`` e.g. ``drill``."""
    wanted_phase = _phase(phase)
    wanted_kind = _kind(kind)
    desired = _desired_quietly(workspace)
    with _ledger(workspace) as ledger:
        if ledger is None:
            return []
        jobs = {row.name: row for row in ledger.jobs()}
        runs = ledger.runs(
            job=job, kind=wanted_kind, phase=wanted_phase, limit=None if cluster else limit
        )
    rows = (_run_row(run, jobs, desired) for run in runs)
    if cluster is not None:
        rows = (r for r in rows if cluster in (r.source_cluster, r.destination_cluster))
    return [row for _, row in zip(range(limit), rows, strict=False)]


def _event_row(event: Event) -> EventRow:
    assert event.id is not None
    return EventRow(
        id=event.id,
        at=event.at,
        level=event.level.value,
        kind=event.kind,
        message=event.message,
        job=event.job,
        run_id=event.run_id,
    )


def _issue_row(issue: RunIssue) -> IssueRow:
    return IssueRow(
        severity=issue.severity.value, item=issue.item, message=issue.message, at=issue.created_at
    )


def run_detail(workspace: Workspace, run_id: int) -> RunDetail:
    """One run with its per-item warnings/errors, its events and its details."""
    desired = _desired_quietly(workspace)
    with _ledger(workspace) as ledger:
        if ledger is None:
            raise KubeferryError(f"no run {run_id}: there is no ledger yet")
        try:
            run = ledger.run(run_id)
        except NotFoundError as error:
            raise KubeferryError(str(error)) from None
        jobs = {row.name: row for row in ledger.jobs()}
        issues = ledger.run_issues(run_id)
        events = ledger.events(run_id=run_id)
    return RunDetail(
        run=_run_row(run, jobs, desired),
        issues=tuple(_issue_row(issue) for issue in issues),
        events=tuple(_event_row(event) for event in events),
        details=_redact(dict(run.details or {})),
    )


def events_since(
    workspace: Workspace, after_id: int, *, run_id: int | None = None, limit: int = 500
) -> list[EventRow]:
    """Events with an id above ``after_id``, oldest first (to tail the log live)."""
    with _ledger(workspace) as ledger:
        if ledger is None:
            return []
        events = ledger.events(since_id=after_id, run_id=run_id, limit=limit)
    return [_event_row(event) for event in events]


# -- describe ----------------------------------------------------------------------------------

_KIND_ALIASES = {
    "cluster": "Cluster",
    "clusters": "Cluster",
    "replicationrepository": "ReplicationRepository",
    "repository": "ReplicationRepository",
    "repo": "ReplicationRepository",
    "repos": "ReplicationRepository",
    "replicationslice": "ReplicationSlice",
    "slice": "ReplicationSlice",
    "replicationjob": "ReplicationJob",
    "job": "ReplicationJob",
    "jobs": "ReplicationJob",
    "applicationslice": "ApplicationSlice",
    "snapshot": "Snapshot",
}
REDACTED = "<redacted>"
# keys whose string values would be credentials themselves (references such as
# `secretAccessKeyVar`, `passphraseFrom` or a kubeconfig path are not)
_CREDENTIAL_VALUE_KEY = re.compile(
    r"(password|passwd|passphrase|token|secret|secret_?access_?key|access_?key_?id|api_?key|"
    r"private_?key|client_?secret|client_?key_?data|authorization|bearer)$",
    re.IGNORECASE,
)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(item, str) and isinstance(key, str) and _CREDENTIAL_VALUE_KEY.search(key)
            else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


def _document_yaml(obj: InventoryObject) -> str:
    document = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    header = f"# {obj.source}\n"
    return header + yaml.safe_dump(_redact(document), sort_keys=False, default_flow_style=False)


_BOOKKEEPING = ("created_at", "updated_at")


def _row_dict(row: Any) -> dict[str, Any]:
    """A ledger row as JSON data, without its bookkeeping times, credentials redacted."""
    data: dict[str, Any] = row.model_dump(mode="json", exclude=set(_BOOKKEEPING))
    return dict(_redact(data))


def _canonical_address(address: str) -> tuple[str, str]:
    kind, _, name = address.strip().partition("/")
    if not name:
        raise KubeferryError(f"cannot describe {address!r}: use Kind/name, e.g. ReplicationJob/web")
    return _KIND_ALIASES.get(kind.lower(), kind), name


def describe(workspace: Workspace, address: str, *, now: datetime | None = None) -> Description:
    """The inventory document, the ledger's record and the last runs of one object."""
    kind, name = _canonical_address(address)
    now = now or datetime.now(UTC)
    problems: list[str] = []
    _, loaded = _load(workspace, problems)
    inventory = loaded.inventory if loaded is not None else None
    desired = loaded.desired if loaded is not None else {}
    declared: InventoryObject | None = None
    if inventory is not None:
        group: dict[str, dict[str, Any]] = {
            "Cluster": dict(inventory.clusters),
            "ReplicationRepository": dict(inventory.repositories),
            "ReplicationSlice": dict(inventory.slices),
            "ReplicationJob": dict(inventory.jobs),
            "ApplicationSlice": dict(inventory.application_slices),
        }
        declared = group.get(kind, {}).get(name)
    observed: dict[str, Any] = {}
    runs: list[Run] = []
    with _ledger(workspace) as ledger:
        if ledger is not None:
            jobs = {row.name: row for row in ledger.jobs()}
            observed, related = _observed(ledger, kind, name, jobs, inventory, desired, now)
            runs = _related_runs(ledger, related)
        else:
            jobs = {}
    if declared is None and not observed:
        raise KubeferryError(f"{kind}/{name} is neither in the inventory nor in the ledger")
    if declared is not None:
        spec_yaml = _document_yaml(declared)
    elif problems:
        spec_yaml = "# the inventory did not load:\n" + "".join(f"# {p}\n" for p in problems)
    else:
        spec_yaml = "# not in the inventory\n"
    return Description(
        address=f"{kind}/{name}",
        spec_yaml=spec_yaml,
        observed=observed,
        runs=tuple(_run_row(run, jobs, desired) for run in runs),
    )


def _jobs_using(
    kind: str,
    name: str,
    jobs: dict[str, Job],
    inventory: Inventory | None,
    desired: dict[str, DesiredJob],
    slices: dict[str, SliceRecord],
) -> list[str]:
    def uses(job: DesiredJob | Job, repository: str) -> bool:
        if kind == "Cluster":
            return name in (job.source_cluster, job.destination_cluster)
        if kind == "ReplicationRepository":
            return repository == name
        return job.slice == name  # ReplicationSlice

    found = {n for n, d in desired.items() if uses(d, d.repository)}
    for n, record in jobs.items():
        recorded_slice = slices.get(record.slice)
        if uses(record, recorded_slice.repository if recorded_slice else ""):
            found.add(n)
    return sorted(found)


def _observed(
    ledger: Ledger,
    kind: str,
    name: str,
    jobs: dict[str, Job],
    inventory: Inventory | None,
    desired: dict[str, DesiredJob],
    now: datetime,
) -> tuple[dict[str, Any], list[str]]:
    """The ledger's record of the object, and the jobs whose runs concern it."""
    slices = {row.name: row for row in ledger.slices()}
    if kind == "ReplicationJob":
        record = jobs.get(name)
        if record is None and name not in desired:
            return {}, []
        observed = _row_dict(record) if record is not None else {}
        view = _LedgerView(
            clusters={c.name: c for c in ledger.clusters()},
            slices=slices,
            jobs=jobs,
            last_runs=_latest_runs(ledger, [name]),
            snapshot_times={s.id: s.created_at for s in ledger.snapshots(job=name)},
        )
        row = _job_row(name, desired.get(name), view, now, inventory_loaded=inventory is not None)
        observed["status"] = {
            "sync": row.sync,
            "syncReason": row.sync_reason,
            "health": row.health,
            "healthReason": row.health_reason,
            "nextDue": row.next_due.isoformat() if row.next_due else None,
            "lastGoodSnapshotAt": (
                row.last_good_snapshot_at.isoformat() if row.last_good_snapshot_at else None
            ),
        }
        return observed, [name]
    if kind == "Snapshot":
        snapshot = ledger.snapshot(name)
        return ({}, []) if snapshot is None else (_row_dict(snapshot), [])
    records: dict[str, Any] = {
        "Cluster": {row.name: row for row in ledger.clusters()},
        "ReplicationRepository": {row.name: row for row in ledger.repositories()},
        "ReplicationSlice": slices,
        "ApplicationSlice": {row.name: row for row in ledger.application_slices()},
    }
    if kind not in records:
        raise KubeferryError(
            f"cannot describe kind {kind!r}: one of Cluster, ReplicationRepository, "
            "ReplicationSlice, ReplicationJob, ApplicationSlice, Snapshot"
        )
    record = records[kind].get(name)
    observed = _row_dict(record) if record is not None else {}
    if kind == "ReplicationRepository" and record is not None:
        catalogued = ledger.snapshots(repository=name)
        observed["snapshots"] = len(catalogued)
        sizes = [s.size_bytes for s in catalogued if s.size_bytes is not None]
        observed["sizeBytes"] = sum(sizes) if sizes else None
    if kind == "ApplicationSlice":
        return observed, []
    return observed, _jobs_using(kind, name, jobs, inventory, desired, slices)


def _related_runs(ledger: Ledger, jobs: list[str], limit: int = 20) -> list[Run]:
    if not jobs:
        return []
    if len(jobs) == 1:
        return ledger.runs(job=jobs[0], limit=limit)
    wanted = set(jobs)
    found = [run for run in ledger.runs(limit=limit * 20) if run.job in wanted]
    return found[:limit]
