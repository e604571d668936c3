"""Executing plans: dependency order, bounded parallelism, cooperative cancellation."""

from reconciler.apply._executor import (
    ActionResult,
    ActionRunner,
    ApplyResult,
    Cancellation,
    Interrupted,
    execute_actions,
)

__all__ = [
    "ActionResult",
    "ActionRunner",
    "ApplyResult",
    "Cancellation",
    "Interrupted",
    "execute_actions",
]
