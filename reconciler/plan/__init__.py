"""Plans: the diff of inventory, ledger and observed state, with Terraform symbols."""

from reconciler.plan._diff import compute_plan, next_due
from reconciler.plan._inputs import (
    ClusterObservation,
    DesiredJob,
    DesiredObject,
    DesiredState,
    NamespaceObservation,
    ObservedState,
    RecordedJob,
    RecordedState,
    RepositoryObservation,
)
from reconciler.plan._model import (
    PLAN_FORMAT_VERSION,
    SYMBOLS,
    Action,
    ActionType,
    Drift,
    Plan,
    PlanProblem,
)
from reconciler.plan._onboard import ONBOARDING_KIND, Onboarding, OnboardingObservation
from reconciler.plan._render import (
    ACTION_STYLES,
    COMPATIBILITY_STYLES,
    action_detail_lines,
    action_header,
    load_plan,
    plan_to_json,
    precheck_lines,
    render_plan,
    save_plan,
)

__all__ = [
    "ACTION_STYLES",
    "COMPATIBILITY_STYLES",
    "ONBOARDING_KIND",
    "PLAN_FORMAT_VERSION",
    "SYMBOLS",
    "Action",
    "ActionType",
    "ClusterObservation",
    "DesiredJob",
    "DesiredObject",
    "DesiredState",
    "Drift",
    "NamespaceObservation",
    "ObservedState",
    "Onboarding",
    "OnboardingObservation",
    "Plan",
    "PlanProblem",
    "RecordedJob",
    "RecordedState",
    "RepositoryObservation",
    "action_detail_lines",
    "action_header",
    "compute_plan",
    "load_plan",
    "next_due",
    "plan_to_json",
    "precheck_lines",
    "render_plan",
    "save_plan",
]
