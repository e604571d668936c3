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
from reconciler.plan._render import load_plan, plan_to_json, render_plan, save_plan

__all__ = [
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
    "Plan",
    "PlanProblem",
    "RecordedJob",
    "RecordedState",
    "RepositoryObservation",
    "compute_plan",
    "load_plan",
    "next_due",
    "plan_to_json",
    "render_plan",
    "save_plan",
]
