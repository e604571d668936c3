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
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from croniter import croniter
from pyfastcdc import FastCDC

from reconciler._events import EventBus
from reconciler.apply import Cancellation
from reconciler.engines import JobSpec, ObjectReplicator, PrecheckFailed, VolumeMover
from reconciler.engines.objects import (
    ArchivedObject,
    api_group,
    read_archive,
    restore_skip_reason,
    sanitize_for_restore,
)
from reconciler.engines.objects._engine import ARCHIVE_PART
from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory, resolve_declared_path
from reconciler.kube import KubeClient, KubeError, Manifest
from reconciler.reconcile._actions import ActionRunner, SnapshotInfo, _RunReporter
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
    ManifestEntry,
    VolumeManifest,
    VolumeStore,
    claim_volume_dir,
    read_volume_set,
)
from reconciler.workspace import Workspace
from state import Ledger, LedgerError, LedgerNotFoundError, RunKind

log = logging.getLogger("kubeferry.drill")

REPORT_FORMAT = "kubeferry.drill-report/v1"
DRILL_FAILED_EXIT_CODE = 4
"""`kubeferry drill` and `kubeferry reconcile` exit with it when a drill fails."""
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
_WORKLOAD_GROUPS = frozenset({"apps", "batch"})
_KUBEFERRY_LABEL = "kubeferry.io/"
_IGNORED_ROOT_ENTRIES = frozenset({"lost+found"})
_SCRATCH_SUFFIX = "-drill-"
_NOTIFY_TIMEOUT = 10.0
_MAX_VALUE = 60

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


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """One difference between the snapshot and what the drill restored."""

    item: str
    """``Kind/name`` of an object, or the claim name of a volume."""
    path: str
    """Field path (``data.key``, ``spec.template.spec.containers[0].image``) or file path."""
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"item": self.item, "path": self.path, "problem": self.problem}


@dataclass(frozen=True)
class WorkloadCheck:
    item: str
    spec_equal: bool

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "specEqual": self.spec_equal}


@dataclass(frozen=True)
class VolumeCheck:
    claim: str
    verified: bool
    """False when the restored data could not be read (the reason is in ``note``)."""
    files: int = 0
    bytes: int = 0
    mismatches: tuple[Mismatch, ...] = ()
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.verified and not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "verified": self.verified,
            "files": self.files,
            "bytes": self.bytes,
            "mismatches": [m.to_dict() for m in self.mismatches],
            "note": self.note,
        }


@dataclass(frozen=True)
class DrillReport:
    job: str
    snapshot_id: str
    repository: str
    snapshot_created: datetime
    fresh_backup: bool
    source_cluster: str
    source_namespace: str
    cluster: str
    namespace: str
    """The scratch namespace."""
    started_at: datetime
    finished_at: datetime
    rpo_seconds: float
    rto_seconds: float
    run_id: int | None = None
    precheck: str = ""
    """overallCompatibility of the restore's pre-checks ("" when they did not run)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    restore_warnings: tuple[str, ...] = ()
    objects_checked: int = 0
    object_mismatches: tuple[Mismatch, ...] = ()
    workloads: tuple[WorkloadCheck, ...] = ()
    volumes: tuple[VolumeCheck, ...] = ()
    volume_notes: tuple[str, ...] = ()
    """Volumes the snapshot does not hold (skipped at backup), as the volume set says."""
    errors: tuple[str, ...] = ()
    """What stopped the drill or made it fail besides mismatches (pre-checks, errors)."""
    cleanup: str = ""
    """deleted, kept, or what went wrong deleting the scratch namespace."""
    notification: str = ""
    """"" (none configured or not needed), sent, or why it could not be sent."""

    @property
    def passed(self) -> bool:
        return (
            not self.errors
            and not self.object_mismatches
            and all(v.ok for v in self.volumes)
            and all(w.spec_equal for w in self.workloads)
            and self.outcomes.get("failed", 0) == 0
        )

    @property
    def verdict(self) -> str:
        return "PASSED" if self.passed else "FAILED"

    def reasons(self) -> list[str]:
        """Why the drill failed, one line each (empty when it passed)."""
        found = list(self.errors)
        if self.outcomes.get("failed", 0):
            found.append(f"{self.outcomes['failed']} object(s) failed to restore")
        if self.object_mismatches:
            found.append(f"{len(self.object_mismatches)} object field mismatch(es)")
        unequal = [w.item for w in self.workloads if not w.spec_equal]
        if unequal:
            found.append(f"workload spec differs: {', '.join(unequal)}")
        for volume in self.volumes:
            if not volume.verified:
                found.append(f"volume {volume.claim} not verified: {volume.note}")
            elif volume.mismatches:
                found.append(f"volume {volume.claim}: {len(volume.mismatches)} file mismatch(es)")
        return found

    def summary(self) -> dict[str, Any]:
        """The short form: ledger run details and webhook payloads."""
        return {
            "job": self.job,
            "snapshot": self.snapshot_id,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "passed": self.passed,
            "rpoSeconds": round(self.rpo_seconds, 3),
            "rtoSeconds": round(self.rto_seconds, 3),
            "objectsChecked": self.objects_checked,
            "objectMismatches": len(self.object_mismatches),
            "volumesChecked": len(self.volumes),
            "volumeMismatches": sum(len(v.mismatches) for v in self.volumes),
            "reasons": self.reasons()[:10],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "job": self.job,
            "passed": self.passed,
            "reasons": self.reasons(),
            "runId": self.run_id,
            "snapshot": {
                "id": self.snapshot_id,
                "repository": self.repository,
                "created": self.snapshot_created.isoformat(),
                "freshBackup": self.fresh_backup,
                "sourceCluster": self.source_cluster,
                "namespace": self.source_namespace,
            },
            "restoredTo": {"cluster": self.cluster, "namespace": self.namespace},
            "startedAt": self.started_at.isoformat(),
            "finishedAt": self.finished_at.isoformat(),
            "rpoSeconds": round(self.rpo_seconds, 3),
            "rtoSeconds": round(self.rto_seconds, 3),
            "precheck": self.precheck,
            "restore": {"outcomes": dict(self.outcomes), "warnings": list(self.restore_warnings)},
            "objects": {
                "checked": self.objects_checked,
                "mismatches": [m.to_dict() for m in self.object_mismatches],
            },
            "workloads": [w.to_dict() for w in self.workloads],
            "volumes": [v.to_dict() for v in self.volumes],
            "volumeNotes": list(self.volume_notes),
            "errors": list(self.errors),
            "cleanup": self.cleanup,
            "notification": self.notification,
        }


class DrillError(KubeferryError):
    """A drill whose verification failed (carried through the ledger run as its error)."""

    def __init__(self, report: DrillReport) -> None:
        super().__init__(f"drill failed: {'; '.join(report.reasons()) or 'see the report'}")
        self.report = report


# -- rendering -------------------------------------------------------------------------------


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def render_markdown(report: DrillReport) -> str:
    """The report as a Markdown document."""
    files = sum(v.files for v in report.volumes)
    size = sum(v.bytes for v in report.volumes)
    volume_mismatches = sum(len(v.mismatches) for v in report.volumes)
    unequal = sum(1 for w in report.workloads if not w.spec_equal)
    lines = [
        f"# DR drill of job `{report.job}`: {report.verdict}",
        "",
        "| | |",
        "|---|---|",
        f"| snapshot | `{report.snapshot_id}` ({'fresh backup' if report.fresh_backup else 'existing'}, "
        f"repository {_cell(report.repository)}, created {report.snapshot_created:%Y-%m-%d %H:%M:%S}Z) |",
        f"| source | {_cell(report.source_cluster)}/{_cell(report.source_namespace)} |",
        f"| restored to | {_cell(report.cluster)}/{_cell(report.namespace)} (scratch namespace) |",
        f"| RPO | {_duration(report.rpo_seconds)} (snapshot age when the restore started) |",
        f"| RTO | {_duration(report.rto_seconds)} (restore duration) |",
        f"| pre-checks | {report.precheck or 'not run'} |",
        f"| objects | {report.objects_checked} checked, {len(report.object_mismatches)} mismatch(es) |",
        f"| workloads | {len(report.workloads)} checked, {unequal} with a different spec |",
        f"| volumes | {len(report.volumes)} checked ({files} files, {size} bytes), "
        f"{volume_mismatches} mismatch(es) |",
        f"| scratch namespace | {_cell(report.cleanup or 'not created')} |",
        f"| started | {report.started_at:%Y-%m-%d %H:%M:%S}Z (ledger run {report.run_id}) |",
    ]
    if report.notification:
        lines.append(f"| notification | {_cell(report.notification)} |")
    reasons = report.reasons()
    if reasons:
        lines += ["", "## Why it failed", ""]
        lines += [f"- {reason}" for reason in reasons]
    if report.object_mismatches:
        lines += ["", "## Object mismatches", "", "| object | field | problem |", "|---|---|---|"]
        lines += [
            f"| {_cell(m.item)} | `{_cell(m.path)}` | {_cell(m.problem)} |"
            for m in report.object_mismatches
        ]
    if report.workloads:
        lines += ["", "## Workloads", "", "| workload | spec |", "|---|---|"]
        lines += [
            f"| {_cell(w.item)} | {'equal' if w.spec_equal else 'DIFFERS'} |"
            for w in report.workloads
        ]
    if report.volumes or report.volume_notes:
        lines += ["", "## Volumes", "", "| claim | files | bytes | result |", "|---|---|---|---|"]
        for volume in report.volumes:
            if not volume.verified:
                result = f"not verified: {volume.note}"
            elif volume.mismatches:
                result = f"{len(volume.mismatches)} mismatch(es)"
            else:
                result = "identical"
            lines.append(
                f"| {_cell(volume.claim)} | {volume.files} | {volume.bytes} | {_cell(result)} |"
            )
        mismatched = [m for v in report.volumes for m in v.mismatches]
        if mismatched:
            lines += ["", "| claim | path | problem |", "|---|---|---|"]
            lines += [
                f"| {_cell(m.item)} | `{_cell(m.path)}` | {_cell(m.problem)} |" for m in mismatched
            ]
        lines += [f"- not in the snapshot: {_cell(note)}" for note in report.volume_notes]
    if report.outcomes or report.restore_warnings:
        counts = ", ".join(f"{count} {name}" for name, count in sorted(report.outcomes.items()))
        lines += ["", "## Restore", "", f"Outcomes: {counts or 'none'}."]
        lines += [f"- warning: {_cell(text)}" for text in report.restore_warnings]
    return "\n".join(lines) + "\n"


def write_report(report: DrillReport, target: Path) -> list[Path]:
    """Write the report: ``X.md`` -> Markdown, ``X.json`` -> JSON, anything else -> both
    ``X.md`` and ``X.json`` (suffixes appended). Returns the files written."""
    suffix = target.suffix.lower()
    if suffix in (".md", ".json"):
        paths = [target]
    else:
        paths = [target.with_name(target.name + ".md"), target.with_name(target.name + ".json")]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".md":
            path.write_text(render_markdown(report), encoding="utf-8")
        else:
            path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return paths


# -- comparing objects (pure) ----------------------------------------------------------------


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def field_differences(
    desired: Any, existing: Any, path: str = "", *, show_values: bool = True
) -> Iterator[tuple[str, str]]:
    """(field path, problem) for every field of ``desired`` that ``existing`` lacks or holds
    otherwise; the semantics of ``is_subset`` (extra fields in ``existing`` are fine, an empty
    or null desired value matches an absent field, lists match element by element)."""
    if isinstance(desired, dict):
        if not isinstance(existing, dict):
            yield path or "(object)", f"expected an object, found {type(existing).__name__}"
            return
        for key, value in desired.items():
            sub = _key_path(path, str(key))
            if key not in existing:
                if value is None or value == {} or value == []:
                    continue
                yield sub, "missing"
            else:
                yield from field_differences(value, existing[key], sub, show_values=show_values)
        return
    if isinstance(desired, list):
        if not isinstance(existing, list):
            yield path, f"expected a list, found {type(existing).__name__}"
            return
        if len(desired) != len(existing):
            yield path, f"{len(existing)} item(s), expected {len(desired)}"
            return
        for index, (d, e) in enumerate(zip(desired, existing, strict=True)):
            yield from field_differences(d, e, f"{path}[{index}]", show_values=show_values)
        return
    same = (
        type(desired) is type(existing) and desired == existing
        if isinstance(desired, bool) or isinstance(existing, bool)
        else desired == existing
    )
    if not same:
        if show_values:
            yield path, f"differs: expected {_short(desired)}, found {_short(existing)}"
        else:
            yield path, "differs (value not shown)"


def _without_owner_uids(obj: Manifest) -> Manifest:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return obj
    refs = metadata.get("ownerReferences")
    if not isinstance(refs, list):
        return obj
    cleaned = [
        {k: v for k, v in r.items() if k != "uid"} if isinstance(r, dict) else r for r in refs
    ]
    return {**obj, "metadata": {**metadata, "ownerReferences": cleaned}}


def _comparable_desired(obj: Manifest) -> Manifest:
    """The restore's object without kubeferry's own labels (an object the scratch namespace
    already had, such as the default ServiceAccount, never got them)."""
    obj = _without_owner_uids(obj)
    metadata = dict(obj.get("metadata") or {})
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        kept = {k: v for k, v in labels.items() if not str(k).startswith(_KUBEFERRY_LABEL)}
        if kept:
            metadata["labels"] = kept
        else:
            metadata.pop("labels", None)
    return {**obj, "metadata": metadata}


def object_label(obj: Manifest) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def compare_object(
    archived: Manifest,
    live: Manifest | None,
    *,
    source_namespace: str,
    target_namespace: str,
    storage_class_mapping: Mapping[str, str],
    snapshot_id: str,
    job: str,
) -> list[Mismatch]:
    """How the live object differs from what restoring ``archived`` creates (empty: equal)."""
    desired = sanitize_for_restore(
        archived,
        source_namespace=source_namespace,
        target_namespace=target_namespace,
        storage_class_mapping=storage_class_mapping,
        snapshot_id=snapshot_id,
        job=job,
    )
    item = object_label(desired)
    if live is None:
        return [Mismatch(item, "", "missing from the scratch namespace")]
    show = not (
        archived.get("kind") == "Secret" and api_group(str(archived.get("apiVersion"))) == ""
    )
    return [
        Mismatch(item, path, problem)
        for path, problem in field_differences(
            _comparable_desired(desired), _without_owner_uids(live), show_values=show
        )
    ]


def is_workload(obj: Manifest) -> bool:
    return (
        obj.get("kind") in WORKLOAD_KINDS
        and api_group(str(obj.get("apiVersion", ""))) in _WORKLOAD_GROUPS
    )


def workload_checks(
    archived: Sequence[Manifest], mismatches: Sequence[Mismatch]
) -> list[WorkloadCheck]:
    """Workloads of the snapshot and whether their spec came back equal."""
    differing = {m.item for m in mismatches if m.path == "" or m.path.startswith("spec")}
    checks = []
    for obj in archived:
        if is_workload(obj):
            item = object_label(obj)
            checks.append(WorkloadCheck(item, item not in differing))
    return sorted(checks, key=lambda c: c.item)


# -- comparing volume data -------------------------------------------------------------------


def _chunks_of(
    path: Path, size: int, manifest: VolumeManifest, chunk_id: Callable[[bytes], str]
) -> list[tuple[str, int]]:
    """The file's chunks as the backup cut them (same chunker, same keyed hash)."""
    params = manifest.chunker
    with path.open("rb") as stream:
        if size <= params.min:
            data = stream.read()
            return [(chunk_id(data), len(data))] if data else []
        cdc = FastCDC(params.avg, min_size=params.min, max_size=params.max)
        return [(chunk_id(bytes(c.data)), len(c.data)) for c in cdc.cut_stream(stream)]


def _entry_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def verify_tree(
    manifest: VolumeManifest,
    root: Path,
    chunk_id: Callable[[bytes], str],
    *,
    item: str,
) -> tuple[list[Mismatch], int, int]:
    """Compare directory ``root`` with a volume manifest: (mismatches, files, bytes checked).

    Types, permission bits, sizes, symlink targets, hardlinks and file contents (chunk by
    chunk, keyed BLAKE3 through ``chunk_id``). Entries under ``root`` the manifest lacks are
    mismatches (``lost+found`` at the top is ignored). Owners and mtimes are not compared.
    """
    found: list[Mismatch] = []
    files = 0
    checked_bytes = 0
    inodes: dict[str, int] = {}
    unusable: set[str] = set()  # directories missing or of another type: not entered
    for entry in manifest.entries:
        parent = entry.path.rpartition("/")[0]
        if parent in unusable:
            unusable.add(entry.path)  # reported with its ancestor
            continue
        path = root / entry.path
        try:
            st = path.lstat()
        except FileNotFoundError:
            found.append(Mismatch(item, entry.path, "missing"))
            unusable.add(entry.path)
            continue
        wanted = "file" if entry.type == "hardlink" else entry.type
        actual = _entry_type(st.st_mode)
        if actual != wanted:
            found.append(Mismatch(item, entry.path, f"is a {actual}, expected a {wanted}"))
            unusable.add(entry.path)
            continue
        if entry.type != "symlink" and stat.S_IMODE(st.st_mode) != entry.mode:
            found.append(
                Mismatch(
                    item,
                    entry.path,
                    f"mode {stat.S_IMODE(st.st_mode):04o}, expected {entry.mode:04o}",
                )
            )
        if entry.type == "symlink":
            target = os.readlink(path)
            if target != entry.target:
                found.append(Mismatch(item, entry.path, "symlink target differs"))
        elif entry.type == "hardlink":
            files += 1
            if inodes.get(entry.link) != st.st_ino:
                found.append(Mismatch(item, entry.path, f"not a hardlink of {entry.link}"))
        elif entry.type == "file":
            files += 1
            inodes[entry.path] = st.st_ino
            found.extend(_compare_file(entry, path, st.st_size, manifest, chunk_id, item))
            checked_bytes += st.st_size
    known = {e.path for e in manifest.entries}
    for extra in _walk(root):
        if extra in known or extra.split("/", 1)[0] in _IGNORED_ROOT_ENTRIES:
            continue
        if extra.rpartition("/")[0] not in unusable:
            found.append(Mismatch(item, extra, "not in the snapshot"))
    return found, files, checked_bytes


def _compare_file(
    entry: ManifestEntry,
    path: Path,
    size: int,
    manifest: VolumeManifest,
    chunk_id: Callable[[bytes], str],
    item: str,
) -> list[Mismatch]:
    if size != entry.size:
        return [Mismatch(item, entry.path, f"size {size}, expected {entry.size}")]
    if _chunks_of(path, size, manifest, chunk_id) != list(entry.chunks):
        return [Mismatch(item, entry.path, "content differs (BLAKE3 chunk digests)")]
    return []


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of everything under ``root`` (symlinks not followed), sorted."""
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        relative = os.path.relpath(directory, root)
        for name in sorted([*dirs, *names]):
            yield name if relative == "." else f"{relative}/{name}"


# -- schedules -------------------------------------------------------------------------------


def drill_due(frequency: str, last_attempt: datetime | None, now: datetime) -> bool:
    """Whether a drill on cron ``frequency`` is due: never drilled, or a scheduled time has
    passed since the last attempt (passed or failed: a failing drill is not retried at every
    reconcile, only at its next scheduled time)."""
    if last_attempt is None:
        return True
    due: datetime = croniter(frequency, last_attempt).get_next(datetime)
    return due <= now


def due_drills(inventory: Inventory, ledger: Ledger, now: datetime) -> list[str]:
    """Jobs with a ``drillFrequency`` that are due, among those with a successful run."""
    recorded = {job.name: job for job in ledger.jobs()}
    due = []
    for name, declared in sorted(inventory.jobs.items()):
        frequency = declared.spec.drill_frequency
        record = recorded.get(name)
        if frequency is None or record is None or record.last_success_at is None:
            continue
        runs = ledger.runs(job=name, kind=RunKind.DRILL, limit=1)
        last = runs[0].started_at if runs else None
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if drill_due(frequency, last, now):
            due.append(name)
    return due


# -- notification ----------------------------------------------------------------------------


def webhook_url(inventory: Inventory, job: str) -> str | None:
    """The job's webhook URL from its reference (None when none is configured)."""
    declared = inventory.jobs[job]
    notify = declared.spec.notify
    if notify is None:
        return None
    source = notify.webhook.url_from
    if source.env is not None:
        value = os.environ.get(source.env.var, "").strip()
        if not value:
            raise KubeferryError(f"environment variable {source.env.var} (webhook URL) is not set")
        return value
    if source.file is not None:
        path = resolve_declared_path(source.file.path, declared.base_dir)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise KubeferryError(
                f"cannot read the webhook URL file {path}: {error.strerror}"
            ) from None
        if not value:
            raise KubeferryError(f"the webhook URL file {path} is empty")
        return value
    return None


class _DropMentions(logging.Filter):
    """Drops log records that quote the secret URL (httpx logs every request's URL)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return self.secret not in record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot format is dropped too
            return False


@contextlib.contextmanager
def _quiet(url: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    dropping = _DropMentions(url)
    for logger in loggers:
        logger.addFilter(dropping)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(dropping)


def notify_webhook(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float = _NOTIFY_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    attempts: int = 2,
) -> str:
    """POST ``payload`` as JSON (one retry); returns "sent" or why not. Never raises, and
    never puts the URL (it may carry a token) into the answer or the logs."""
    problem = "not sent"
    with _quiet(url), httpx.Client(timeout=timeout, transport=transport) as client:
        for attempt in range(attempts):
            try:
                answer = client.post(url, json=dict(payload))
            except httpx.HTTPError as error:
                problem = (
                    f"not sent: {type(error).__name__}: {str(error).replace(url, '<webhook>')}"
                )
            else:
                if answer.is_success:
                    return "sent"
                problem = f"not sent: the webhook answered HTTP {answer.status_code}"
            if attempt + 1 < attempts:
                time.sleep(0.5)
    return problem


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
    restore = runner.restore_work(client, stored, spec, info.id)
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
            _verify_volumes(client, stored, spec, info.id, runner.mover, verified)
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
