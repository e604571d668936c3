"""diff(desired, recorded, observed) -> Plan. Pure: no I/O, so plans are fast and testable."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from croniter import croniter

from reconciler.plan._inputs import (
    DesiredJob,
    DesiredObject,
    DesiredState,
    HostingObservation,
    ObservedState,
    RecordedJob,
    RecordedState,
)
from reconciler.plan._model import Action, ActionType, Drift, Plan, PlanProblem
from reconciler.plan._onboard import plan_onboardings

# Registration order: an object's dependencies come earlier in this tuple.
_REGISTERED_KINDS = ("Cluster", "ReplicationRepository", "ReplicationSlice", "ApplicationSlice")


def next_due(backup_frequency: str, last_success_at: datetime) -> datetime:
    """The first scheduled time after the last successful run (missed runs collapse to one)."""
    due: datetime = croniter(backup_frequency, last_success_at).get_next(datetime)
    return due


MISSED_COUNT_LIMIT = 10_000
"""Counting stops here (an every-minute schedule idle for weeks): "10000+ missed"."""


def scheduled_since(frequency: str, last_success_at: datetime, now: datetime) -> int:
    """How many scheduled times of ``frequency`` fell after the last success, up to ``now``.

    One backup serves them all (missed runs collapse to one); the others were missed.
    """
    schedule = croniter(frequency, last_success_at)
    count = 0
    while count < MISSED_COUNT_LIMIT and schedule.get_next(datetime) <= now:
        count += 1
    return count


def _desired_objects(desired: DesiredState, kind: str) -> dict[str, DesiredObject]:
    return {
        "Cluster": desired.clusters,
        "ReplicationRepository": desired.repositories,
        "ReplicationSlice": desired.slices,
        "ApplicationSlice": desired.application_slices,
    }[kind]


def _targeted(address: str, targets: frozenset[str] | None) -> bool:
    return targets is None or address in targets


class _Planner:
    def __init__(
        self,
        desired: DesiredState,
        recorded: RecordedState,
        observed: ObservedState,
        now: datetime,
        targets: frozenset[str] | None,
    ) -> None:
        self.desired = desired
        self.recorded = recorded
        self.observed = observed
        self.now = now
        self.targets = targets
        self.actions: list[Action] = []
        self.drift: list[Drift] = []
        self.problems: list[PlanProblem] = []
        self._problem_keys: set[tuple[str, str]] = set()

    def problem(self, address: str, message: str) -> None:
        if (address, message) not in self._problem_keys:
            self._problem_keys.add((address, message))
            self.problems.append(PlanProblem(address=address, message=message))

    # -- availability of what actions need -------------------------------------------
    def cluster_blocker(self, name: str) -> str | None:
        seen = self.observed.clusters.get(name)
        if seen is None:
            return f"cluster {name} was not observed"
        if not seen.reachable:
            return f"cluster {name} unreachable"
        return None

    def repository_blocker(self, name: str) -> str | None:
        seen = self.observed.repositories.get(name)
        if seen is None:
            return f"repository {name} was not observed"
        if not seen.available and not self.hosting_planned(name):
            return f"repository {name} unavailable"
        return None

    def hosting_planned(self, name: str) -> bool:
        """This plan deploys (or waits for) repository ``name``'s MinIO, unblocked: actions
        using the repository run after it instead of being blocked."""
        address = f"ReplicationRepository/{name}"
        return any(
            a.address == address and a.blocked is None and "hosting" in a.details
            for a in self.actions
        )

    # -- registered objects ------------------------------------------------------------
    def plan_registered(self) -> None:
        for kind in _REGISTERED_KINDS:
            wanted = _desired_objects(self.desired, kind)
            have = self.recorded.objects.get(kind, {})
            for name, obj in wanted.items():
                if not _targeted(obj.address, self.targets):
                    continue
                details: dict[str, Any] = {}
                blocked = None
                reasons: list[str] = []
                if kind == "ReplicationRepository":
                    seen = self.observed.repositories.get(name)
                    hosting = seen.hosting if seen is not None else None
                    if hosting is not None and hosting.pending:
                        # apply deploys (or waits for) the MinIO: only its cluster can block
                        blocked = self.cluster_blocker(hosting.cluster)
                        reasons.extend(_hosting_reasons(hosting))
                        details["hosting"] = _hosting_details(hosting)
                        details["initialize"] = True
                    else:
                        blocked = self.repository_blocker(name)
                    if seen is not None and seen.available and not seen.initialized:
                        reasons.append("repository not initialized")
                        details["initialize"] = True
                if name not in have:
                    reasons.insert(0, "new in inventory")
                    self.actions.append(
                        Action(
                            address=obj.address,
                            type=ActionType.CREATE,
                            reasons=reasons,
                            details=details,
                            blocked=blocked,
                        )
                    )
                elif have[name] != obj.spec_digest or details.get("initialize"):
                    if have[name] != obj.spec_digest:
                        reasons.insert(0, "spec changed")
                    self.actions.append(
                        Action(
                            address=obj.address,
                            type=ActionType.UPDATE,
                            reasons=reasons,
                            details=details,
                            blocked=blocked,
                        )
                    )
            for name in sorted(set(have) - set(wanted)):
                address = f"{kind}/{name}"
                if _targeted(address, self.targets):
                    self.actions.append(
                        Action(
                            address=address,
                            type=ActionType.FORGET,
                            reasons=["removed from inventory; only the ledger record is dropped"],
                        )
                    )

    # -- jobs ----------------------------------------------------------------------------
    def job_reasons(
        self, job: DesiredJob, record: RecordedJob | None, schedule: dict[str, Any] | None = None
    ) -> tuple[list[str], bool]:
        """Why a job must replicate; the flag says the spec changed without needing a copy.

        ``schedule`` receives ``dueSince``/``missedRuns`` when backupFrequency made it due.
        """
        if record is None:
            return ["new job"], False
        reasons: list[str] = []
        if record.content_digest != job.content_digest:
            reasons.append("spec changed")
        source = self.observed.namespaces.get((job.source_cluster, job.namespace))
        if job.backup_frequency:
            if record.last_success_at is None:
                reasons.append("no successful run yet")
            else:
                due = next_due(job.backup_frequency, record.last_success_at)
                if due <= self.now:
                    reason = f"due by backupFrequency '{job.backup_frequency}' (since {due:%Y-%m-%d %H:%M}Z)"
                    slots = scheduled_since(job.backup_frequency, record.last_success_at, self.now)
                    missed = slots - 1
                    if missed > 0:
                        more = "+" if slots >= MISSED_COUNT_LIMIT else ""
                        runs = "run" if missed == 1 else "runs"
                        reason += f"; {missed}{more} scheduled {runs} missed (one backup now)"
                    if schedule is not None:
                        schedule.update({"dueSince": due.isoformat(), "missedRuns": missed})
                    reasons.append(reason)
        elif record.last_success_at is None:
            reasons.append("no successful run yet")
        elif (
            source is not None
            and source.fingerprint is not None
            and source.fingerprint != record.source_fingerprint
        ):
            reasons.append("source namespace changed since the last snapshot")
        spec_only = not reasons and record.spec_digest != job.spec_digest
        return reasons, spec_only

    def plan_jobs(self) -> None:
        for name, job in self.desired.jobs.items():
            if not _targeted(job.address, self.targets):
                continue
            record = self.recorded.jobs.get(name)
            status_target = self.observed.status_targets.get(name)
            if status_target is not None and status_target.problem:
                self.problem(job.address, f"statusWriteBack: {status_target.problem}")
            schedule: dict[str, Any] = {}
            reasons, spec_only = self.job_reasons(job, record, schedule)
            restore = self.restore_schedule(job, record, backup=bool(reasons))
            if restore is not None:
                reasons.extend(restore.pop("reasons"))
                schedule.update(restore)
                spec_only = spec_only and schedule["steps"] == []
            self.note_destination_drift(job, record)
            if spec_only:
                self.actions.append(
                    Action(address=job.address, type=ActionType.UPDATE, reasons=["spec changed"])
                )
                continue
            if not reasons:
                continue
            blocked = self.job_blocker(job)
            details: dict[str, Any] = {
                "mode": job.mode,
                "source": f"{job.source_cluster}/{job.namespace}",
                "destination": f"{job.destination_cluster}/{job.target_namespace}",
                "repository": job.repository,
                **schedule,
            }
            if status_target is not None and status_target.target:
                details["statusWriteBack"] = status_target.target
            if "job" in (job.backup_mover, job.restore_mover):
                details["volumeMovers"] = _mover_details(job)
            if job.mover_notes:
                details["notes"] = list(job.mover_notes)
            precheck = self.observed.prechecks.get(name) if job.mode == "replicate" else None
            if precheck is not None:
                details["precheck"] = precheck
                if blocked is None:
                    blocked = self.precheck_blocker(job, precheck)
            self.actions.append(
                Action(
                    address=job.address,
                    type=ActionType.REPLICATE,
                    reasons=reasons,
                    details=details,
                    blocked=blocked,
                )
            )
        for name in sorted(set(self.recorded.jobs) - set(self.desired.jobs)):
            address = f"ReplicationJob/{name}"
            if not _targeted(address, self.targets):
                continue
            gone = self.recorded.jobs[name]
            if gone.deletion_policy == "Delete" and gone.mode == "replicate":
                where = f"{gone.destination_cluster}/{gone.target_namespace}"
                self.actions.append(
                    Action(
                        address=address,
                        type=ActionType.DELETE,
                        reasons=[
                            f"removed from inventory with deletionPolicy Delete: deletes {where}"
                        ],
                        details={
                            "cluster": gone.destination_cluster,
                            "namespace": gone.target_namespace,
                        },
                        blocked=self.cluster_blocker(gone.destination_cluster),
                    )
                )
            else:
                self.actions.append(
                    Action(
                        address=address,
                        type=ActionType.FORGET,
                        reasons=["removed from inventory; snapshots kept per retention"],
                    )
                )

    def restore_schedule(
        self, job: DesiredJob, record: RecordedJob | None, *, backup: bool
    ) -> dict[str, Any] | None:
        """A replication with ``restoreFrequency``: which steps run and why (None: no
        restoreFrequency, the destination follows every backup).

        The restore is due when the schedule's next time after the last restore has come
        (a replication never restored is due at once); it restores the newest snapshot,
        so with a backup planned too it runs after that backup.
        """
        if job.mode != "replicate" or not job.restore_frequency:
            return None
        frequency = job.restore_frequency
        last_restore = record.last_restore_at if record is not None else None
        has_snapshot = record is not None and record.last_success_at is not None
        due_at = next_due(frequency, last_restore) if last_restore is not None else None
        due = due_at is None or due_at <= self.now
        reasons: list[str] = []
        if due and (backup or has_snapshot):
            steps = ["backup", "restore"] if backup else ["restore"]
            since = f" (since {due_at:%Y-%m-%d %H:%M}Z)" if due_at is not None else ""
            what = "this backup" if backup else "the newest snapshot"
            reasons.append(f"restore of {what} due by restoreFrequency '{frequency}'{since}")
        elif backup:
            steps = ["backup"]
            assert due_at is not None  # never restored is always due
            reasons.append(
                f"destination not refreshed: restoreFrequency '{frequency}' "
                f"(next {due_at:%Y-%m-%d %H:%M}Z)"
            )
        else:
            steps = []
        return {"restoreFrequency": frequency, "steps": steps, "reasons": reasons}

    def job_blocker(self, job: DesiredJob) -> str | None:
        for blocker in (
            self.cluster_blocker(job.source_cluster),
            self.cluster_blocker(job.destination_cluster),
            self.repository_blocker(job.repository),
        ):
            if blocker is not None:
                return blocker
        source = self.observed.namespaces.get((job.source_cluster, job.namespace))
        if source is not None and not source.exists:
            message = f"source namespace {job.namespace} does not exist on {job.source_cluster}"
            self.problem(job.address, message)
            return message
        return None

    def precheck_blocker(self, job: DesiredJob, precheck: dict[str, Any]) -> str | None:
        """stopOnPrecheck blocks a restore that is not_compatible; ignorePrechecks proceeds."""
        if precheck.get("overallCompatibility") != "not_compatible":
            return None
        failed = "; ".join(
            f"{c.get('name')}: {c.get('message')}"
            for c in precheck.get("compatibilityChecks", [])
            if c.get("status") == "not_compatible"
        )
        if job.pre_check_flag == "ignorePrechecks":
            self.problem(job.address, f"pre-checks not_compatible (ignorePrechecks): {failed}")
            return None
        message = f"pre-checks not_compatible: {failed}"
        self.problem(job.address, message)
        return message

    def note_destination_drift(self, job: DesiredJob, record: RecordedJob | None) -> None:
        if record is None or job.mode != "replicate" or record.destination_fingerprint is None:
            return
        seen = self.observed.namespaces.get((job.destination_cluster, job.target_namespace))
        if seen is None:
            return
        if not seen.exists:
            self.drift.append(
                Drift(
                    address=job.address,
                    message=f"destination {job.destination_cluster}/{job.target_namespace} was deleted",
                )
            )
        elif seen.fingerprint is not None and seen.fingerprint != record.destination_fingerprint:
            self.drift.append(
                Drift(
                    address=job.address,
                    message=(
                        f"destination {job.destination_cluster}/{job.target_namespace} "
                        "changed outside kubeferry"
                    ),
                )
            )

    def order_ledger_references(self) -> None:
        """Registrations follow what they reference; forgets go the other way round.

        The ledger keeps slices pointing at registered clusters and repositories, and jobs at
        registered slices, so a slice is registered after its clusters and forgotten after
        the jobs that used it.
        """
        registering = {
            a.address for a in self.actions if a.type in (ActionType.CREATE, ActionType.UPDATE)
        }
        forgetting: dict[str, list[str]] = {}
        for action in self.actions:
            if action.type in (ActionType.FORGET, ActionType.DELETE):
                forgetting.setdefault(action.kind, []).append(action.address)
        ordered: list[Action] = []
        for action in self.actions:
            extra: list[str] = []
            if action.type in (ActionType.CREATE, ActionType.UPDATE, ActionType.REPLICATE):
                if action.kind == "ReplicationSlice":
                    spec = self.desired.slices.get(action.name)
                    extra = (
                        [
                            a
                            for a in registering
                            if a.split("/", 1)[0] in ("Cluster", "ReplicationRepository")
                        ]
                        if spec
                        else []
                    )
                elif action.kind == "ReplicationJob":
                    job = self.desired.jobs.get(action.name)
                    if job is not None:
                        extra = [
                            a
                            for a in (
                                f"Cluster/{job.source_cluster}",
                                f"Cluster/{job.destination_cluster}",
                                f"ReplicationRepository/{job.repository}",
                                f"ReplicationSlice/{job.slice}",
                            )
                            if a in registering
                        ]
            elif action.type in (ActionType.FORGET, ActionType.DELETE):
                if action.kind == "ReplicationSlice":
                    extra = forgetting.get("ReplicationJob", [])
                elif action.kind in ("Cluster", "ReplicationRepository"):
                    extra = forgetting.get("ReplicationSlice", []) + forgetting.get(
                        "ReplicationJob", []
                    )
            merged = sorted(set(action.depends_on) | set(extra))
            ordered.append(
                action
                if merged == action.depends_on
                else action.model_copy(update={"depends_on": merged})
            )
        self.actions = ordered

    # -- observations ----------------------------------------------------------------------
    def note_observations(self) -> None:
        for name, seen in sorted(self.observed.clusters.items()):
            address = f"Cluster/{name}"
            if not seen.reachable:
                self.problem(
                    address, f"unreachable: {seen.message}" if seen.message else "unreachable"
                )
            elif seen.missing_permissions:
                missing = ", ".join(seen.missing_permissions)
                self.problem(address, f"missing permissions: {missing}")
        for name, repo in sorted(self.observed.repositories.items()):
            if repo.hosting is not None and repo.hosting.pending:
                # not a problem: apply deploys it (the action says so), or the cluster's
                # own problem explains why it cannot
                continue
            if not repo.available:
                address = f"ReplicationRepository/{name}"
                self.problem(
                    address, f"unavailable: {repo.message}" if repo.message else "unavailable"
                )

    def refresh_drift(self) -> None:
        """Observed changes since the last recorded refresh (for ``--refresh-only``)."""
        for name, seen in sorted(self.observed.clusters.items()):
            before = self.recorded.cluster_reachable.get(name)
            if before is not None and before != seen.reachable:
                state = "reachable" if seen.reachable else "unreachable"
                self.drift.append(Drift(address=f"Cluster/{name}", message=f"now {state}"))
            version = self.recorded.cluster_versions.get(name)
            if version and seen.version and version != seen.version:
                self.drift.append(
                    Drift(address=f"Cluster/{name}", message=f"version {version} -> {seen.version}")
                )
        for name, repo in sorted(self.observed.repositories.items()):
            before = self.recorded.repository_available.get(name)
            if before is not None and before != repo.available:
                state = "Available" if repo.available else "Unavailable"
                self.drift.append(
                    Drift(address=f"ReplicationRepository/{name}", message=f"now {state}")
                )
        for job in self.desired.jobs.values():
            record = self.recorded.jobs.get(job.name)
            source = self.observed.namespaces.get((job.source_cluster, job.namespace))
            if (
                record is not None
                and source is not None
                and source.fingerprint is not None
                and record.source_fingerprint is not None
                and source.fingerprint != record.source_fingerprint
            ):
                self.drift.append(
                    Drift(
                        address=job.address, message="source namespace changed since last snapshot"
                    )
                )
            self.note_destination_drift(job, record)


def _hosting_reasons(hosting: HostingObservation) -> list[str]:
    """Why a hosted repository's action is planned, e.g. "MinIO to deploy in controller/x"."""
    objects = [o for o in hosting.create if not o.startswith("Bucket/")]
    buckets = [o.split("/", 1)[1] for o in hosting.create if o.startswith("Bucket/")]
    where = hosting.location
    reasons: list[str] = []
    if any(o.startswith("Deployment/") for o in objects):
        reasons.append(f"MinIO to deploy in {where}")
    elif objects or hosting.update:
        reasons.append(f"MinIO to update in {where}")
    elif not hosting.ready:
        detail = f": {hosting.message}" if hosting.message else ""
        reasons.append(f"MinIO in {where} not ready yet (apply waits for it){detail}")
    reasons.extend(f"bucket {bucket} to create" for bucket in buckets)
    return reasons


def _mover_details(job: DesiredJob) -> dict[str, str]:
    """Which mover reads the source's volume data (backup) and writes the destination's."""
    movers = {"backup": f"{job.backup_mover} mover on {job.source_cluster}"}
    if job.mode == "replicate":
        movers["restore"] = f"{job.restore_mover} mover on {job.destination_cluster}"
    return movers


def _hosting_details(hosting: HostingObservation) -> dict[str, Any]:
    details: dict[str, Any] = {"cluster": hosting.cluster, "namespace": hosting.namespace}
    if hosting.create:
        details["create"] = list(hosting.create)
    if hosting.update:
        details["update"] = list(hosting.update)
    return details


def compute_plan(
    desired: DesiredState,
    recorded: RecordedState,
    observed: ObservedState,
    *,
    now: datetime,
    targets: Iterable[str] | None = None,
    refresh_only: bool = False,
    observed_summary: dict[str, Any] | None = None,
) -> Plan:
    """Everything apply must do to make the world match the inventory, with reasons."""
    planner = _Planner(
        desired, recorded, observed, now, frozenset(targets) if targets is not None else None
    )
    planner.note_observations()
    if refresh_only:
        planner.refresh_drift()
    else:
        planner.plan_registered()
        planner.plan_jobs()
        onboard_actions, onboard_problems = plan_onboardings(
            desired.onboardings,
            recorded.onboardings,
            observed.onboardings,
            replicating={a.address for a in planner.actions if a.type is ActionType.REPLICATE},
            targeted=planner.targets,
        )
        planner.actions.extend(onboard_actions)
        for problem in onboard_problems:
            planner.problem(problem.address, problem.message)
        planner.order_ledger_references()
    return Plan(
        created_at=now,
        inventory_path=desired.inventory_path,
        inventory_digest=desired.inventory_digest,
        ledger_serial=recorded.serial,
        refresh_only=refresh_only,
        actions=planner.actions,
        drift=planner.drift,
        problems=planner.problems,
        observed=observed_summary or {},
    )
