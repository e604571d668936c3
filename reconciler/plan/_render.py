"""Human and machine renderings of a plan, and saved-plan files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from reconciler.errors import KubeferryError
from reconciler.plan._model import PLAN_FORMAT_VERSION, SYMBOLS, Action, ActionType, Plan

ACTION_STYLES: dict[ActionType, str] = {
    ActionType.CREATE: "green",
    ActionType.UPDATE: "yellow",
    ActionType.REPLACE: "magenta",
    ActionType.DELETE: "red",
    ActionType.FORGET: "red",
    ActionType.REPLICATE: "cyan",
    ActionType.ONBOARD: "yellow",
}


def action_header(action: Action) -> Text:
    """``» ReplicationJob/web  replicate  worker-1/web -> worker-2/web via local`` (styled)."""
    line = Text()
    line.append(f"{action.symbol:>3} ", style=ACTION_STYLES[action.type])
    line.append(action.address, style="bold")
    line.append(f"  {action.type.value}", style="dim")
    if action.type is ActionType.REPLICATE:
        details = action.details
        line.append(
            f"  {details.get('source')} -> {details.get('destination')}"
            f" via {details.get('repository')}",
            style="dim",
        )
    return line


def action_detail_lines(action: Action) -> list[Text]:
    """Why the action is planned: reasons, the pre-check verdict, what blocks it (unindented)."""
    lines = [Text(reason) for reason in action.reasons]
    lines.extend(hosting_lines(action.details.get("hosting")))
    lines.extend(precheck_lines(action.details.get("precheck")))
    if action.details.get("statusWriteBack"):
        lines.append(Text(f"status written back to {action.details['statusWriteBack']}"))
    movers = action.details.get("volumeMovers")
    if isinstance(movers, dict):
        moved = ", ".join(f"{step} by the {how}" for step, how in movers.items())
        lines.append(Text(f"volume data: {moved}"))
    for note in action.details.get("notes") or []:
        lines.append(Text(f"note: {note}", style="yellow"))
    if action.blocked:
        lines.append(Text(f"blocked: {action.blocked}", style="red"))
    return lines


def render_plan(plan: Plan, console: Console) -> None:
    """Terraform-like text: one block per action with its reasons, then drift, problems, summary."""
    if plan.actions:
        console.print("kubeferry will perform the following actions:\n")
    for action in plan.actions:
        console.print(Text("  ") + action_header(action))
        for line in action_detail_lines(action):
            console.print(Text("        ") + line)
    if plan.drift:
        console.print("\nObserved changes (drift):")
        for drift in plan.drift:
            console.print(Text(f"    ! {drift.address}: {drift.message}", style="yellow"))
    if plan.problems:
        console.print("\nProblems:")
        for problem in plan.problems:
            console.print(Text(f"    x {problem.address}: {problem.message}", style="red"))
    console.print()
    console.print(Text(plan.summary(), style="bold"))


def hosting_lines(hosting: object) -> list[Text]:
    """The objects of a hosted repository's MinIO that apply creates (+) or updates (~),
    indented by two (from an action's ``details["hosting"]``; names only, never data)."""
    if not isinstance(hosting, dict):
        return []
    lines = []
    for key, symbol in (("create", ActionType.CREATE), ("update", ActionType.UPDATE)):
        for name in hosting.get(key) or []:
            line = Text("  ")
            line.append(SYMBOLS[symbol], style=ACTION_STYLES[symbol])
            line.append(f" {name}")
            lines.append(line)
    return lines


COMPATIBILITY_STYLES = {"compatible": "green", "warning": "yellow", "not_compatible": "red"}


def precheck_lines(precheck: object) -> list[Text]:
    """``pre-checks: <overallCompatibility>``, then the checks that are not compatible (indented
    by two) — from a pre-check report's dict form (``PrecheckReport.to_dict()``)."""
    if not isinstance(precheck, dict):
        return []
    overall = str(precheck.get("overallCompatibility", "unknown"))
    line = Text("pre-checks: ")
    line.append(overall, style=COMPATIBILITY_STYLES.get(overall, ""))
    lines = [line]
    for check in precheck.get("compatibilityChecks") or []:
        status = str(check.get("status"))
        if status != "compatible":
            text = f"  {status}: {check.get('name')}: {check.get('message')}"
            lines.append(Text(text, style=COMPATIBILITY_STYLES.get(status, "")))
    return lines


def plan_to_json(plan: Plan) -> str:
    document = plan.model_dump(mode="json")
    for rendered, action in zip(document["actions"], plan.actions, strict=True):
        rendered["symbol"] = action.symbol
    document["summary"] = plan.summary()
    document["counts"] = plan.counts()
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False)


def save_plan(plan: Plan, path: Path) -> None:
    """Write atomically so an interrupted save never leaves a half plan behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(plan_to_json(plan))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_plan(path: Path) -> Plan:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise KubeferryError(f"{path}: saved plan not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KubeferryError(f"{path}: not a kubeferry plan file ({error})") from None
    if not isinstance(document, dict) or document.get("format_version") != PLAN_FORMAT_VERSION:
        raise KubeferryError(
            f"{path}: not a kubeferry plan file of format_version {PLAN_FORMAT_VERSION}",
            hint="run `kubeferry plan --out FILE` again",
        )
    for key in ("summary", "counts"):
        document.pop(key, None)
    for action in document.get("actions", []):
        if isinstance(action, dict):
            action.pop("symbol", None)
    try:
        return Plan.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise KubeferryError(f"{path}: invalid plan file at {where}: {first['msg']}") from None
