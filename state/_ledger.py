"""The Ledger: every read and write of the ledger file goes through this class.

Safe to share between threads (the reconciler calls it through ``anyio.to_thread``): it
holds one engine, and every method runs in its own short session on a pooled connection.
Rows it returns are detached snapshots; change the ledger through its methods only.

Every write transaction bumps the serial number in the same transaction, so a watcher
(the TUI) can poll ``serial`` cheaply and reread only when it moved.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select, update

from state._columns import utcnow
from state._engine import create_ledger_engine, writer
from state._errors import (
    InUseError,
    LedgerError,
    LedgerNotFoundError,
    LockHeldError,
    NotFoundError,
    RunStateError,
    UnknownLockError,
)
from state._locking import LockHandle, LockInfo, pid_alive, this_host
from state._migrate import current_revision, upgrade_to_head
from state._models import (
    COUNTED_TABLES,
    ApplicationSlice,
    Availability,
    Cluster,
    Event,
    EventLevel,
    IssueSeverity,
    Job,
    LedgerModel,
    LockRow,
    Meta,
    Reachability,
    Repository,
    Run,
    RunIssue,
    RunKind,
    RunPhase,
    Slice,
    Snapshot,
)
from state._redact import redact

DEFAULT_BUSY_TIMEOUT: Final = 30.0


class _Unset(Enum):
    UNSET = "UNSET"


_UNSET: Final = _Unset.UNSET
_T = TypeVar("_T")
# an upsert argument left out keeps the stored value (a new row gets the column default)
_Maybe: TypeAlias = _T | Literal[_Unset.UNSET]
_Row = TypeVar("_Row", bound=LedgerModel)


class _LockTaken(Exception):
    """Raised inside a write transaction to roll it back: someone holds the lock already."""


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not _UNSET}


class Ledger:
    """The ledger of one inventory: open with ``Ledger.open(path)``; close when done."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self._engine = engine
        self._writer = writer(engine)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path, *, create: bool = True, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> Ledger:
        """Open (with ``create``, first create) the ledger at ``path`` and migrate it to head.

        ``create=False`` is for read-only commands: a missing file raises LedgerNotFoundError
        instead of leaving a new empty ledger behind. ``busy_timeout`` is how long a write
        waits for another process's write transaction before failing.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise LedgerNotFoundError(f"no ledger at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_ledger_engine(path, busy_timeout)
        try:
            upgrade_to_head(engine)
        except sa.exc.DatabaseError as error:
            engine.dispose()
            raise LedgerError(f"cannot open the ledger at {path}: {error.orig}") from None
        except BaseException:
            engine.dispose()
            raise
        return cls(path, engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ledger {self.path}>"

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.IntegrityError as error:
            raise LedgerError(f"the ledger refused the change: {error.orig}") from None
        except sa.exc.OperationalError as error:
            if "locked" in str(error.orig) or "busy" in str(error.orig):
                raise LedgerError(
                    f"the ledger at {self.path} stayed busy (another process is writing)"
                ) from None
            raise LedgerError(f"ledger {self.path}: {error.orig}") from None
        except sa.exc.StatementError as error:
            # a bad value from the caller (e.g. a naive datetime) is a bug: show it plainly
            if isinstance(error.orig, ValueError | TypeError):
                raise error.orig from None
            raise

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._database_errors(), Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self, *, bump_serial: bool = True) -> Iterator[Session]:
        """One BEGIN IMMEDIATE transaction that also bumps the serial number.

        Taking and giving back the lock does not bump it: the serial tracks the ledger's
        content, so a saved plan stays valid across the lock its own apply takes.
        """
        with (
            self._database_errors(),
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            if bump_serial:
                session.exec(update(Meta).where(col(Meta.id) == 1).values(serial=Meta.serial + 1))
            yield session

    # -- ledger-wide -----------------------------------------------------------------------

    @property
    def serial(self) -> int:
        """Bumped by every write of content (not by the lock); unchanged means nothing changed."""
        with self._read() as session:
            meta = session.get(Meta, 1)
            if meta is None:
                raise LedgerError(f"the ledger at {self.path} has no serial row (damaged?)")
            return meta.serial

    @property
    def schema_revision(self) -> str | None:
        with self._database_errors(), self._engine.connect() as connection:
            return current_revision(connection)

    def counts(self) -> dict[str, int]:
        """Rows per table, e.g. {"clusters": 2, "runs": 14, ...}."""
        with self._read() as session:
            return {
                name: session.exec(select(func.count()).select_from(model)).one()
                for name, model in COUNTED_TABLES.items()
            }

    # -- the lock --------------------------------------------------------------------------

    def acquire_lock(
        self, operation: str, timeout: float = 0.0, *, poll_interval: float = 0.2
    ) -> LockHandle:
        """Take the ledger lock for ``operation`` (e.g. "apply"), waiting up to ``timeout`` s.

        Raises LockHeldError describing the holder when it stays taken; at once, without
        waiting, when the holder is stale (see ``state._locking`` for why it is not broken).
        """
        started = time.monotonic()
        while True:
            holder = self.lock_status()
            if holder is None:
                taken = self._try_take_lock(operation)
                if taken is not None:
                    return LockHandle(self, taken)
                continue  # another process won the race: look at the new holder
            waited = time.monotonic() - started
            if holder.stale or waited >= timeout:
                raise LockHeldError(holder, waited)
            time.sleep(max(0.0, min(poll_interval, timeout - waited)))

    def _try_take_lock(self, operation: str) -> LockInfo | None:
        row = LockRow(
            lock_id=str(uuid.uuid4()),
            operation=operation,
            user=_current_user(),
            host=this_host(),
            pid=os.getpid(),
            created_at=utcnow(),
        )
        try:
            # BEGIN IMMEDIATE: no other process can take it between our check and insert
            with self._write(bump_serial=False) as session:
                if session.get(LockRow, 1) is not None:
                    raise _LockTaken
                session.add(row)
        except _LockTaken:
            return None  # rolled back: no serial bump for a failed attempt
        return _lock_info(row)

    def lock_status(self) -> LockInfo | None:
        """The current holder (check ``.stale``), or None when the ledger is not locked."""
        with self._read() as session:
            row = session.get(LockRow, 1)
            return None if row is None else _lock_info(row)

    def unlock(self, lock_id: str) -> LockInfo:
        """Release the lock ``lock_id`` on behalf of its holder (e.g. a stale one).

        Only that lock: any other id raises UnknownLockError. Recorded in the event log.
        """
        with self._write() as session:
            released = self._remove_lock(session, lock_id)
            session.add(
                Event(
                    kind="lock.unlocked",
                    level=EventLevel.WARNING,
                    message=f"lock {lock_id} of {released.describe()} released by unlock",
                    data={
                        "lock_id": lock_id,
                        "operation": released.operation,
                        "holder": f"{released.user}@{released.host}",
                        "pid": released.pid,
                        "stale": released.stale,
                        "by": f"{_current_user()}@{this_host()}",
                    },
                )
            )
        return released

    def _release_lock(self, lock_id: str) -> None:
        """The holder gives its lock back (LockHandle.release)."""
        with self._write(bump_serial=False) as session:
            self._remove_lock(session, lock_id)

    @staticmethod
    def _remove_lock(session: Session, lock_id: str) -> LockInfo:
        row = session.get(LockRow, 1)
        if row is None:
            raise UnknownLockError(f"no lock {lock_id!r}: the ledger is not locked")
        if row.lock_id != lock_id:
            raise UnknownLockError(
                f"no lock {lock_id!r}: the ledger is locked by "
                f"{_lock_info(row).describe()} under another lock id"
            )
        session.delete(row)
        return _lock_info(row)

    # -- the inventory mirror --------------------------------------------------------------

    def upsert_cluster(
        self,
        name: str,
        *,
        spec_digest: _Maybe[str | None] = _UNSET,
        observed_version: _Maybe[str | None] = _UNSET,
        reachability: _Maybe[Reachability] = _UNSET,
        permissions: _Maybe[Mapping[str, Any]] = _UNSET,
        last_refresh: _Maybe[datetime | None] = _UNSET,
        message: _Maybe[str] = _UNSET,
    ) -> Cluster:
        """Create or update a cluster; arguments left out keep their stored value."""
        if reachability is not _UNSET:
            reachability = Reachability(reachability)
        if permissions is not _UNSET:
            permissions = redact(dict(permissions))
        fields = _given(
            spec_digest=spec_digest,
            observed_version=observed_version,
            reachability=reachability,
            permissions=permissions,
            last_refresh=last_refresh,
            message=message,
        )
        with self._write() as session:
            return _upsert(session, Cluster, name, fields)

    def upsert_repository(
        self,
        name: str,
        *,
        spec_digest: _Maybe[str | None] = _UNSET,
        availability: _Maybe[Availability] = _UNSET,
        last_validation: _Maybe[datetime | None] = _UNSET,
        message: _Maybe[str] = _UNSET,
    ) -> Repository:
        """Create or update a repository; arguments left out keep their stored value."""
        if availability is not _UNSET:
            availability = Availability(availability)
        fields = _given(
            spec_digest=spec_digest,
            availability=availability,
            last_validation=last_validation,
            message=message,
        )
        with self._write() as session:
            return _upsert(session, Repository, name, fields)

    def upsert_slice(
        self,
        name: str,
        *,
        source_cluster: _Maybe[str] = _UNSET,
        destination_cluster: _Maybe[str] = _UNSET,
        repository: _Maybe[str] = _UNSET,
        spec_digest: _Maybe[str | None] = _UNSET,
        last_applied: _Maybe[datetime | None] = _UNSET,
        message: _Maybe[str] = _UNSET,
    ) -> Slice:
        """Create or update a slice; its clusters and repository must be in the ledger."""
        fields = _given(
            source_cluster=source_cluster,
            destination_cluster=destination_cluster,
            repository=repository,
            spec_digest=spec_digest,
            last_applied=last_applied,
            message=message,
        )
        with self._write() as session:
            for key, model in (
                ("source_cluster", Cluster),
                ("destination_cluster", Cluster),
                ("repository", Repository),
            ):
                if key in fields:
                    _require(session, model, fields[key], f"slice {name!r}")
            return _upsert(session, Slice, name, fields)

    def upsert_job(
        self,
        name: str,
        *,
        slice: _Maybe[str] = _UNSET,
        namespace: _Maybe[str] = _UNSET,
        spec_digest: _Maybe[str | None] = _UNSET,
        content_digest: _Maybe[str | None] = _UNSET,
        mode: _Maybe[str] = _UNSET,
        source_cluster: _Maybe[str] = _UNSET,
        destination_cluster: _Maybe[str] = _UNSET,
        target_namespace: _Maybe[str] = _UNSET,
        deletion_policy: _Maybe[str] = _UNSET,
        source_fingerprint: _Maybe[str | None] = _UNSET,
        destination_fingerprint: _Maybe[str | None] = _UNSET,
        last_success_at: _Maybe[datetime | None] = _UNSET,
        last_applied: _Maybe[datetime | None] = _UNSET,
        message: _Maybe[str] = _UNSET,
    ) -> Job:
        """Create or update a job; its slice must be in the ledger."""
        fields = _given(
            slice=slice,
            namespace=namespace,
            spec_digest=spec_digest,
            content_digest=content_digest,
            mode=mode,
            source_cluster=source_cluster,
            destination_cluster=destination_cluster,
            target_namespace=target_namespace,
            deletion_policy=deletion_policy,
            source_fingerprint=source_fingerprint,
            destination_fingerprint=destination_fingerprint,
            last_success_at=last_success_at,
            last_applied=last_applied,
            message=message,
        )
        with self._write() as session:
            if "slice" in fields:
                _require(session, Slice, fields["slice"], f"job {name!r}")
            return _upsert(session, Job, name, fields)

    def clusters(self) -> list[Cluster]:
        return self._all(Cluster)

    def repositories(self) -> list[Repository]:
        return self._all(Repository)

    def slices(self) -> list[Slice]:
        return self._all(Slice)

    def jobs(self, *, slice: str | None = None) -> list[Job]:
        with self._read() as session:
            query = select(Job).order_by(col(Job.name))
            if slice is not None:
                query = query.where(col(Job.slice) == slice)
            return list(session.exec(query))

    def _all(self, model: type[_Row]) -> list[_Row]:
        with self._read() as session:
            key = sa.inspect(model).primary_key[0]
            return list(session.exec(select(model).order_by(key)))

    def delete_cluster(self, name: str) -> None:
        """Forget a cluster; refused (InUseError) while a slice uses it."""
        with self._write() as session:
            users = session.exec(
                select(Slice.name).where(
                    (col(Slice.source_cluster) == name) | (col(Slice.destination_cluster) == name)
                )
            ).all()
            _refuse_in_use(f"cluster {name!r}", "slices", users)
            _delete(session, Cluster, name)

    def delete_repository(self, name: str) -> None:
        """Forget a repository; refused (InUseError) while a slice uses it."""
        with self._write() as session:
            users = session.exec(select(Slice.name).where(col(Slice.repository) == name)).all()
            _refuse_in_use(f"repository {name!r}", "slices", users)
            _delete(session, Repository, name)

    def delete_slice(self, name: str) -> None:
        """Forget a slice; refused (InUseError) while it has jobs."""
        with self._write() as session:
            users = session.exec(select(Job.name).where(col(Job.slice) == name)).all()
            _refuse_in_use(f"slice {name!r}", "jobs", users)
            _delete(session, Slice, name)

    def upsert_application_slice(
        self,
        name: str,
        *,
        controller_cluster: _Maybe[str] = _UNSET,
        project: _Maybe[str] = _UNSET,
        spec_digest: _Maybe[str | None] = _UNSET,
        last_applied: _Maybe[datetime | None] = _UNSET,
    ) -> ApplicationSlice:
        fields = _given(
            controller_cluster=controller_cluster,
            project=project,
            spec_digest=spec_digest,
            last_applied=last_applied,
        )
        with self._write() as session:
            return _upsert(session, ApplicationSlice, name, fields)

    def application_slices(self) -> list[ApplicationSlice]:
        return self._all(ApplicationSlice)

    def delete_application_slice(self, name: str) -> None:
        with self._write() as session:
            _delete(session, ApplicationSlice, name)

    def delete_job(self, name: str) -> None:
        """Forget a job; its runs, events and snapshots stay in the history."""
        with self._write() as session:
            _delete(session, Job, name)

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        kind: RunKind,
        job: str,
        *,
        total_items: int | None = None,
        bytes_total: int | None = None,
        message: str = "",
    ) -> Run:
        """Record a new run, InProgress from now, owned by this process (host and pid)."""
        now = utcnow()
        run = Run(
            kind=RunKind(kind),
            job=job,
            phase=RunPhase.IN_PROGRESS,
            total_items=total_items,
            bytes_total=bytes_total,
            message=message,
            host=this_host(),
            pid=os.getpid(),
            started_at=now,
            updated_at=now,
        )
        with self._write() as session:
            session.add(run)
            session.flush()
            return run

    def update_run_progress(
        self,
        run_id: int,
        *,
        total_items: _Maybe[int | None] = _UNSET,
        items_done: _Maybe[int] = _UNSET,
        bytes_total: _Maybe[int | None] = _UNSET,
        bytes_done: _Maybe[int] = _UNSET,
        message: _Maybe[str] = _UNSET,
    ) -> Run:
        """Set progress counters of an unfinished run (arguments left out are kept)."""
        fields = _given(
            total_items=total_items,
            items_done=items_done,
            bytes_total=bytes_total,
            bytes_done=bytes_done,
            message=message,
        )
        with self._write() as session:
            run = _unfinished_run(session, run_id, "update")
            for key, value in fields.items():
                setattr(run, key, value)
            run.updated_at = utcnow()
            if run.phase == RunPhase.NEW:
                run.phase = RunPhase.IN_PROGRESS
            return run

    def update_run_details(self, run_id: int, details: Mapping[str, Any]) -> Run:
        """Merge ``details`` (top-level keys replace) into an unfinished run's details.

        For what a run learns on the way, e.g. a restore's pre-check report before it
        writes anything. Credential-like keys are redacted; never pass object contents.
        """
        with self._write() as session:
            run = _unfinished_run(session, run_id, "update the details of")
            run.details = _merged(run.details, details)
            run.updated_at = utcnow()
            return run

    def annotate_run(self, run_id: int, details: Mapping[str, Any]) -> Run:
        """Merge ``details`` into a run's details, ended or not (e.g. cleanup after it)."""
        with self._write() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id} in the ledger")
            run.details = _merged(run.details, details)
            return run

    def add_run_issue(
        self, run_id: int, severity: IssueSeverity, message: str, *, item: str | None = None
    ) -> RunIssue:
        """Record one warning or error of a run (and count it on the run)."""
        severity = IssueSeverity(severity)
        with self._write() as session:
            run = _unfinished_run(session, run_id, "add an issue to")
            if severity == IssueSeverity.ERROR:
                run.error_count += 1
            else:
                run.warning_count += 1
            run.updated_at = utcnow()
            issue = RunIssue(run_id=run_id, severity=severity, item=item, message=message)
            session.add(issue)
            session.flush()
            return issue

    def finish_run(
        self,
        run_id: int,
        phase: RunPhase,
        *,
        snapshot_id: str | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Run:
        """End a run in a final phase; a usable result also updates its job's last_* columns.

        Completed and PartiallyFailed count as usable (as with Velero, a partially failed
        backup still restores what it holds). ``details`` are merged into the run's details
        (credential-like keys redacted).
        """
        phase = RunPhase(phase)
        if not phase.finished:
            raise RunStateError(f"cannot finish run {run_id} as {phase}: not a final phase")
        with self._write() as session:
            run = _unfinished_run(session, run_id, "finish")
            now = utcnow()
            run.phase = phase
            run.finished_at = now
            run.updated_at = now
            if snapshot_id is not None:
                run.snapshot_id = snapshot_id
            if message is not None:
                run.message = message
            if details:
                run.details = _merged(run.details, details)
            job = session.get(Job, run.job)
            if job is not None and phase in (RunPhase.COMPLETED, RunPhase.PARTIALLY_FAILED):
                _note_result_on_job(job, run, now)
            return run

    def mark_interrupted_runs(self) -> list[Run]:
        """Mark Interrupted the unfinished runs of dead processes on this host; returns them.

        Runs owned by another host are left alone: their pid cannot be checked from here.
        """
        host = this_host()
        with self._read() as session:
            owners = session.exec(
                select(Run.host, Run.pid).where(
                    col(Run.phase).in_([RunPhase.NEW, RunPhase.IN_PROGRESS])
                )
            ).all()
        if not any(owner == host and not pid_alive(pid) for owner, pid in owners):
            # nothing to mark (live runs, or other hosts'): no write, the serial stays put,
            # so a saved plan is not made stale by another process's run in progress
            return []
        with self._write() as session:
            unfinished = session.exec(
                select(Run).where(col(Run.phase).in_([RunPhase.NEW, RunPhase.IN_PROGRESS]))
            ).all()
            interrupted = [run for run in unfinished if run.host == host and not pid_alive(run.pid)]
            now = utcnow()
            for run in interrupted:
                run.phase = RunPhase.INTERRUPTED
                run.finished_at = now
                run.updated_at = now
                run.message = f"process {run.pid} on {run.host} ended before the run finished"
                session.add(
                    Event(
                        kind="run.interrupted",
                        level=EventLevel.WARNING,
                        message=f"{run.kind} run {run.id} of job {run.job!r}: {run.message}",
                        run_id=run.id,
                        job=run.job,
                    )
                )
            return interrupted

    def run(self, run_id: int) -> Run:
        with self._read() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id} in the ledger")
            return run

    def runs(
        self,
        *,
        job: str | None = None,
        kind: RunKind | None = None,
        phase: RunPhase | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first."""
        query = select(Run).order_by(col(Run.id).desc()).limit(limit)
        if job is not None:
            query = query.where(col(Run.job) == job)
        if kind is not None:
            query = query.where(col(Run.kind) == kind)
        if phase is not None:
            query = query.where(col(Run.phase) == phase)
        with self._read() as session:
            return list(session.exec(query))

    def run_issues(self, run_id: int) -> list[RunIssue]:
        """A run's warnings and errors, in the order they were recorded."""
        with self._read() as session:
            query = select(RunIssue).where(col(RunIssue.run_id) == run_id)
            return list(session.exec(query.order_by(col(RunIssue.id))))

    # -- the snapshot catalog --------------------------------------------------------------

    def upsert_snapshot(
        self,
        id: str,
        *,
        job: str,
        repository: str,
        namespace: str,
        source_cluster: str,
        created_at: datetime,
        size_bytes: int | None = None,
        total_items: int | None = None,
        items_backed_up: int | None = None,
        complete: bool = False,
        run_id: int | None = None,
    ) -> Snapshot:
        """Mirror one snapshot as the repository lists it (replaces what was stored)."""
        fields: dict[str, Any] = {
            "job": job,
            "repository": repository,
            "namespace": namespace,
            "source_cluster": source_cluster,
            "created_at": created_at,
            "size_bytes": size_bytes,
            "total_items": total_items,
            "items_backed_up": items_backed_up,
            "complete": complete,
            "run_id": run_id,
            "seen_at": utcnow(),
            # listed by its repository: present, whatever an earlier row said
            "deleted_at": None,
            "deletion_reason": None,
        }
        with self._write() as session:
            snapshot = session.get(Snapshot, id)
            if snapshot is None:
                snapshot = Snapshot(id=id, **fields)
                session.add(snapshot)
            else:
                for key, value in fields.items():
                    setattr(snapshot, key, value)
            session.flush()
            return snapshot

    def delete_snapshot(self, id: str) -> None:
        """Forget a snapshot the repository no longer holds."""
        with self._write() as session:
            _delete(session, Snapshot, id)

    def mark_snapshot_deleted(
        self, id: str, *, reason: str, at: datetime | None = None
    ) -> Snapshot:
        """Record that kubeferry deleted a snapshot from its repository (e.g. by retention).

        The row stays as history; ``snapshots()`` leaves it out unless asked for deleted ones.
        """
        with self._write() as session:
            snapshot = session.get(Snapshot, id)
            if snapshot is None:
                raise NotFoundError(f"no snapshot {id!r} in the ledger")
            snapshot.deleted_at = at or utcnow()
            snapshot.deletion_reason = reason
            session.flush()
            return snapshot

    def snapshot(self, id: str) -> Snapshot | None:
        """One catalogued snapshot (deleted or not), or None."""
        with self._read() as session:
            return session.get(Snapshot, id)

    def snapshots(
        self,
        *,
        job: str | None = None,
        repository: str | None = None,
        include_deleted: bool = False,
    ) -> list[Snapshot]:
        """Catalogued snapshots, newest first; deleted ones only with ``include_deleted``."""
        query = select(Snapshot).order_by(col(Snapshot.created_at).desc(), col(Snapshot.id))
        if job is not None:
            query = query.where(col(Snapshot.job) == job)
        if repository is not None:
            query = query.where(col(Snapshot.repository) == repository)
        if not include_deleted:
            query = query.where(col(Snapshot.deleted_at).is_(None))
        with self._read() as session:
            return list(session.exec(query))

    # -- the event log ---------------------------------------------------------------------

    def record_event(
        self,
        kind: str,
        message: str,
        *,
        level: EventLevel = EventLevel.INFO,
        run_id: int | None = None,
        job: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append an event; credential-like keys in ``data`` are redacted."""
        event = Event(
            kind=kind,
            level=EventLevel(level),
            message=message,
            run_id=run_id,
            job=job,
            data=redact(dict(data or {})),
        )
        with self._write() as session:
            if run_id is not None:
                _require(session, Run, run_id, f"event {kind!r}")
            session.add(event)
            session.flush()
            return event

    def events(
        self,
        *,
        since_id: int | None = None,
        job: str | None = None,
        run_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Events in log order; ``since_id`` gives only later ones (to tail the log live)."""
        order = col(Event.id).desc() if newest_first else col(Event.id)
        query = select(Event).order_by(order).limit(limit)
        if since_id is not None:
            query = query.where(col(Event.id) > since_id)
        if job is not None:
            query = query.where(col(Event.job) == job)
        if run_id is not None:
            query = query.where(col(Event.run_id) == run_id)
        with self._read() as session:
            return list(session.exec(query))


# -- helpers ---------------------------------------------------------------------------------


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid {os.getuid()}"


def _lock_info(row: LockRow) -> LockInfo:
    return LockInfo(
        lock_id=row.lock_id,
        operation=row.operation,
        user=row.user,
        host=row.host,
        pid=row.pid,
        created_at=row.created_at,
    )


def _upsert(session: Session, model: type[_Row], name: str, fields: dict[str, Any]) -> _Row:
    row = session.get(model, name)
    if row is None:
        missing = [
            field
            for field, info in model.model_fields.items()
            if info.is_required() and field != "name" and field not in fields
        ]
        if missing:
            raise LedgerError(f"new {_noun(model)} {name!r} needs {', '.join(missing)}")
        row = model(name=name, **fields)
        session.add(row)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = utcnow()  # every inventory table has it
    session.flush()  # NOT NULL and foreign key failures surface here, inside the transaction
    return row


def _require(session: Session, model: type[LedgerModel], key: object, who: str) -> None:
    if session.get(model, key) is None:
        raise NotFoundError(f"{who} refers to {_noun(model)} {key!r}, not in the ledger")


def _delete(session: Session, model: type[LedgerModel], key: str) -> None:
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(f"no {_noun(model)} {key!r} in the ledger")
    session.delete(row)


def _noun(model: type[LedgerModel]) -> str:
    return model.__name__.lower()  # "cluster", "repository", "run", ...


def _refuse_in_use(what: str, users_kind: str, users: Sequence[str]) -> None:
    if users:
        raise InUseError(f"{what} is still used by {users_kind} {', '.join(sorted(users))}")


def _unfinished_run(session: Session, run_id: int, action: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id} in the ledger")
    if run.phase.finished:
        raise RunStateError(f"cannot {action} run {run_id}: it already ended {run.phase}")
    return run


def _merged(stored: Mapping[str, Any] | None, update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(stored or {})
    merged.update(redact(dict(update)))
    return merged


def _note_result_on_job(job: Job, run: Run, finished: datetime) -> None:
    if run.kind == RunKind.BACKUP:
        job.last_backup_at = finished
        if run.snapshot_id is not None:
            job.last_snapshot_id = run.snapshot_id
    elif run.kind == RunKind.RESTORE:
        job.last_restore_at = finished
    else:
        job.last_drill_at = finished
    job.updated_at = finished
