"""Planning of application-slice onboarding (``onboard: {applicationSlice: ...}`` on a job).

One ``~ Onboarding/<job>`` action (type ``onboard``) per change: it adds the job's destination
namespace to the SliceConfig of the ApplicationSlice, or removes the entry kubeferry added
when ``onboard`` was removed from the job (or the job from the inventory). Pure, like the
rest of the planner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reconciler.plan._model import Action, ActionType, PlanProblem

ONBOARDING_KIND = "Onboarding"


@dataclass(frozen=True)
class Onboarding:
    """A namespace onboarded (desired or recorded) into an application slice on one cluster."""

    job: str
    application_slice: str
    controller_cluster: str
    project: str
    namespace: str
    cluster: str

    @property
    def address(self) -> str:
        return f"{ONBOARDING_KIND}/{self.job}"

    @property
    def where(self) -> str:
        return (
            f"SliceConfig kubeslice-{self.project}/{self.application_slice} "
            f"on {self.controller_cluster}"
        )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Onboarding:
        return cls(**{key: str(data[key]) for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class OnboardingObservation:
    """What the SliceConfig says about a namespace: the clusters it is onboarded on."""

    found: bool
    clusters: tuple[str, ...] = ()
    message: str = ""


def _observation_blocker(want: Onboarding, seen: OnboardingObservation | None) -> str | None:
    if seen is None:
        return f"{want.where} was not observed"
    if not seen.found:
        return seen.message or f"{want.where} not found"
    return None


def plan_onboardings(
    desired: dict[str, Onboarding],
    recorded: dict[str, Onboarding],
    observed: dict[str, OnboardingObservation],
    *,
    replicating: set[str],
    targeted: frozenset[str] | None,
) -> tuple[list[Action], list[PlanProblem]]:
    """Onboard actions and the problems found (pre-checks, namespace sameness)."""
    actions: list[Action] = []
    problems: list[PlanProblem] = []

    def wanted(address: str, job_address: str) -> bool:
        return targeted is None or address in targeted or job_address in targeted

    for job, want in sorted(desired.items()):
        job_address = f"ReplicationJob/{job}"
        if not wanted(want.address, job_address):
            continue
        record = recorded.get(job)
        seen = observed.get(job)
        blocked = _observation_blocker(want, seen)
        clusters = seen.clusters if seen is not None else ()
        others = [c for c in clusters if c != want.cluster]
        if others:
            problems.append(
                PlanProblem(
                    address=want.address,
                    message=(
                        f"namespace {want.namespace} is also onboarded from {', '.join(others)} "
                        f"in {want.where}: KubeSlice requires namespace sameness (same content)"
                    ),
                )
            )
        if record == want:
            if seen is None or blocked is not None or want.cluster in clusters:
                continue  # onboarded, or nothing can be said until the SliceConfig is seen
            reasons = [f"entry for {want.namespace} on {want.cluster} missing from {want.where}"]
        else:
            if blocked is None and want.cluster in clusters:
                blocked = (
                    f"namespace {want.namespace} is already onboarded on {want.cluster} in "
                    f"{want.where} (must not be before replication)"
                )
                problems.append(PlanProblem(address=want.address, message=blocked))
            reasons = [f"onboard {want.cluster}/{want.namespace} into {want.where}"]
        details: dict[str, Any] = {"add": want.to_dict()}
        if record is not None and record != want:
            details["remove"] = record.to_dict()
            reasons.append(f"and remove {record.cluster}/{record.namespace} from {record.where}")
        actions.append(
            Action(
                address=want.address,
                type=ActionType.ONBOARD,
                reasons=reasons,
                details=details,
                depends_on=[job_address] if job_address in replicating else [],
                blocked=blocked,
            )
        )
    for job, record in sorted(recorded.items()):
        if job in desired or not wanted(record.address, f"ReplicationJob/{job}"):
            continue
        actions.append(
            Action(
                address=record.address,
                type=ActionType.ONBOARD,
                reasons=[
                    f"onboard removed: remove {record.cluster}/{record.namespace} "
                    f"from {record.where}"
                ],
                details={"remove": record.to_dict()},
                blocked=None if job in observed else f"{record.where} was not observed",
            )
        )
    return actions, problems
