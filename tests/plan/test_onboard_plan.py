"""Planning of application-slice onboarding: ~ Onboarding/<job> actions and pre-checks."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.plan import (
    ActionType,
    ClusterObservation,
    DesiredJob,
    DesiredState,
    ObservedState,
    Onboarding,
    OnboardingObservation,
    RecordedJob,
    RecordedState,
    RepositoryObservation,
    compute_plan,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WANT = Onboarding(
    job="copy",
    application_slice="blue",
    controller_cluster="controller",
    project="acme",
    namespace="web",
    cluster="worker-2",
)
JOB = DesiredJob(
    name="copy",
    slice="w1-to-w2",
    source_cluster="worker-1",
    destination_cluster="worker-2",
    repository="local",
    namespace="web",
    target_namespace="web",
    spec_digest="s",
    content_digest="c",
)
CLUSTERS = {
    name: ClusterObservation(name=name, reachable=True)
    for name in ("controller", "worker-1", "worker-2")
}


def _plan(
    *,
    recorded: dict[str, Onboarding] | None = None,
    seen: OnboardingObservation | None = None,
    desired: dict[str, Onboarding] | None = None,
    job_done: bool = False,
):  # type: ignore[no-untyped-def]
    jobs = (
        {"copy": RecordedJob(spec_digest="s", content_digest="c", last_success_at=NOW)}
        if job_done
        else {}
    )
    return compute_plan(
        DesiredState(
            "inv.yaml",
            "d",
            jobs={"copy": JOB},
            onboardings={"copy": WANT} if desired is None else desired,
        ),
        RecordedState(serial=1, jobs=jobs, onboardings=recorded or {}),
        ObservedState(
            clusters=CLUSTERS,
            repositories={"local": RepositoryObservation("local", available=True)},
            onboardings={"copy": seen} if seen is not None else {},
        ),
        now=NOW,
    )


def test_onboard_is_planned_after_the_replication() -> None:
    plan = _plan(seen=OnboardingObservation(found=True))
    onboard = next(a for a in plan.actions if a.address == "Onboarding/copy")
    assert onboard.type is ActionType.ONBOARD
    assert onboard.symbol == "~"
    assert onboard.depends_on == ["ReplicationJob/copy"]
    assert onboard.details["add"] == WANT.to_dict()
    assert onboard.blocked is None
    assert "SliceConfig kubeslice-acme/blue on controller" in onboard.reasons[0]
    assert plan.counts()["change"] == 1


def test_onboarded_is_nothing_to_do() -> None:
    plan = _plan(
        recorded={"copy": WANT}, seen=OnboardingObservation(True, ("worker-2",)), job_done=True
    )
    assert plan.actions == []
    assert plan.problems == []


def test_an_entry_removed_outside_kubeferry_is_planned_again() -> None:
    plan = _plan(recorded={"copy": WANT}, seen=OnboardingObservation(True, ()), job_done=True)
    [action] = plan.actions
    assert action.type is ActionType.ONBOARD
    assert "missing" in action.reasons[0]


def test_precheck_already_onboarded_on_the_destination_blocks() -> None:
    plan = _plan(seen=OnboardingObservation(True, ("worker-2",)))
    onboard = next(a for a in plan.actions if a.address == "Onboarding/copy")
    assert onboard.blocked is not None
    assert [p.message for p in plan.problems] == [
        "namespace web is already onboarded on worker-2 in SliceConfig kubeslice-acme/blue "
        "on controller (must not be before replication)"
    ]


def test_namespace_onboarded_from_other_clusters_is_reported() -> None:
    plan = _plan(seen=OnboardingObservation(True, ("worker-1",)))
    onboard = next(a for a in plan.actions if a.address == "Onboarding/copy")
    assert onboard.blocked is None
    assert len(plan.problems) == 1
    assert "also onboarded from worker-1" in plan.problems[0].message
    assert "namespace sameness" in plan.problems[0].message


def test_missing_slice_config_blocks() -> None:
    plan = _plan(
        seen=OnboardingObservation(
            False, message="SliceConfig kubeslice-acme/blue on controller not found"
        )
    )
    onboard = next(a for a in plan.actions if a.address == "Onboarding/copy")
    assert onboard.blocked == "SliceConfig kubeslice-acme/blue on controller not found"


def test_removing_onboard_plans_removing_only_the_recorded_entry() -> None:
    plan = _plan(
        desired={},
        recorded={"copy": WANT},
        seen=OnboardingObservation(True, ("worker-2",)),
        job_done=True,
    )
    [action] = plan.actions
    assert action.address == "Onboarding/copy"
    assert action.type is ActionType.ONBOARD
    assert action.details == {"remove": WANT.to_dict()}
    assert action.reasons[0].startswith("onboard removed: remove worker-2/web")


def test_removal_is_blocked_while_the_controller_is_not_observed() -> None:
    plan = _plan(desired={}, recorded={"copy": WANT}, job_done=True)
    [action] = plan.actions
    assert action.blocked == "SliceConfig kubeslice-acme/blue on controller was not observed"
