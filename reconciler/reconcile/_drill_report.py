"""A drill's report: its findings, verdict, Markdown and JSON renderings (docs/drills.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.errors import KubeferryError

REPORT_FORMAT = "kubeferry.drill-report/v1"
DRILL_FAILED_EXIT_CODE = 4
"""`kubeferry drill` and `kubeferry reconcile` exit with it when a drill fails."""


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
