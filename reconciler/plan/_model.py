"""The plan: what apply will do, why, and what it was computed from (JSON format_version 1)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PLAN_FORMAT_VERSION = 1


class ActionType(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    FORGET = "forget"
    REPLICATE = "replicate"
    ONBOARD = "onboard"
    """Add a namespace to (or remove it from) an application slice's SliceConfig."""


SYMBOLS: dict[ActionType, str] = {
    ActionType.CREATE: "+",
    ActionType.UPDATE: "~",
    ActionType.REPLACE: "-/+",
    ActionType.DELETE: "-",
    ActionType.FORGET: "-",
    ActionType.REPLICATE: "»",
    ActionType.ONBOARD: "~",
}


class Action(BaseModel):
    """One change. ``address`` is ``Kind/name``; ``depends_on`` lists addresses to finish first."""

    model_config = ConfigDict(frozen=True)

    address: str
    type: ActionType
    reasons: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    blocked: str | None = Field(
        default=None, description="Why this action cannot run now (e.g. an unreachable cluster)."
    )

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.type]

    @property
    def kind(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.address.split("/", 1)[1]


class Drift(BaseModel):
    """Something observed that differs from what kubeferry last recorded."""

    model_config = ConfigDict(frozen=True)

    address: str
    message: str


class PlanProblem(BaseModel):
    """A per-object error found while planning (the rest of the plan still stands)."""

    model_config = ConfigDict(frozen=True)

    address: str
    message: str


class Plan(BaseModel):
    format_version: int = PLAN_FORMAT_VERSION
    created_at: datetime
    inventory_path: str
    inventory_digest: str
    ledger_serial: int
    refresh_only: bool = False
    actions: list[Action] = Field(default_factory=list)
    drift: list[Drift] = Field(default_factory=list)
    problems: list[PlanProblem] = Field(default_factory=list)
    observed: dict[str, Any] = Field(
        default_factory=dict, description="Refresh results to record when the plan is applied."
    )

    @property
    def runnable_actions(self) -> list[Action]:
        return [action for action in self.actions if action.blocked is None]

    @property
    def has_changes(self) -> bool:
        return bool(self.actions) or (self.refresh_only and bool(self.drift))

    def counts(self) -> dict[str, int]:
        counts = {"add": 0, "change": 0, "destroy": 0, "replicate": 0, "blocked": 0}
        for action in self.actions:
            if action.blocked is not None:
                counts["blocked"] += 1
            if action.type is ActionType.CREATE:
                counts["add"] += 1
            elif action.type in (ActionType.UPDATE, ActionType.ONBOARD):
                counts["change"] += 1
            elif action.type is ActionType.REPLACE:
                counts["add"] += 1
                counts["destroy"] += 1
            elif action.type in (ActionType.DELETE, ActionType.FORGET):
                counts["destroy"] += 1
            else:
                counts["replicate"] += 1
        return counts

    def summary(self) -> str:
        if self.refresh_only:
            n = len(self.drift)
            return "No changes observed." if not n else f"Refresh: {n} observed change(s)."
        if not self.actions:
            return "No changes. The clusters and repositories match the inventory."
        c = self.counts()
        line = (
            f"Plan: {c['add']} to add, {c['change']} to change, {c['destroy']} to destroy, "
            f"{c['replicate']} to replicate."
        )
        if c["blocked"]:
            line += f" {c['blocked']} blocked."
        return line
