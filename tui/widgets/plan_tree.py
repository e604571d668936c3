"""The plan as a tree: actions grouped by kind with Terraform symbols, drift, problems.

Labels and the "why" lines come from ``reconciler.plan`` (``action_header``,
``action_detail_lines``, ``precheck_lines``): the same wording as ``kubeferry plan``.
``action_detail`` is the long form shown beside the tree for the highlighted action.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from reconciler.plan import (
    COMPATIBILITY_STYLES,
    Action,
    ActionType,
    Drift,
    Plan,
    PlanProblem,
    action_detail_lines,
    action_header,
)

# the order kinds are applied in (registrations first), then anything else
KIND_ORDER = (
    "Cluster",
    "ReplicationRepository",
    "ReplicationSlice",
    "ApplicationSlice",
    "ReplicationJob",
)


@dataclass(frozen=True)
class NodeData:
    """What a tree node stands for: an action, a drift or problem line, or a group."""

    action: Action | None = None
    drift: Drift | None = None
    problem: PlanProblem | None = None
    group: str = ""


def _cluster_of(where: object) -> str | None:
    """``worker-2/web`` -> ``worker-2``."""
    if not isinstance(where, str) or not where:
        return None
    return where.split("/", 1)[0]


def affected_clusters(plan: Plan) -> set[str]:
    """Clusters the runnable actions read or write: replicate (source and destination; a
    backup can quiesce the source) and delete (the destination). Registrations only write
    the ledger."""
    found: set[str] = set()
    for action in plan.runnable_actions:
        if action.type is ActionType.REPLICATE:
            for key in ("source", "destination"):
                cluster = _cluster_of(action.details.get(key))
                if cluster:
                    found.add(cluster)
        elif action.type is ActionType.DELETE:
            cluster = action.details.get("cluster")
            if isinstance(cluster, str) and cluster:
                found.add(cluster)
    return found


def _kind_rank(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


def action_detail(action: Action, protected: frozenset[str] = frozenset()) -> Text:
    """The long form: header, why, every pre-check, where it reads and writes, dependencies."""
    text = Text()
    text.append_text(action_header(action))
    text.append("\n")
    if action.reasons:
        text.append("\nWhy:\n", style="bold")
        for reason in action.reasons:
            text.append(f"  {reason}\n")
    details = action.details
    fields = [
        ("Mode", details.get("mode")),
        ("Source", details.get("source")),
        ("Destination", details.get("destination")),
        ("Repository", details.get("repository")),
        ("Cluster", details.get("cluster")),
        ("Namespace", details.get("namespace")),
    ]
    shown = [(label, value) for label, value in fields if value]
    if details.get("initialize"):
        shown.append(("Repository", "will be initialized"))
    if shown:
        text.append("\n")
        for label, value in shown:
            text.append(f"{label}: ", style="bold")
            text.append(str(value))
            cluster = _cluster_of(value) if label in ("Source", "Destination", "Cluster") else None
            if cluster and cluster in protected:
                text.append("  PROTECTED", style="bold red")
            text.append("\n")
    precheck = details.get("precheck")
    if isinstance(precheck, dict):
        overall = str(precheck.get("overallCompatibility", "unknown"))
        text.append("\nPre-checks: ", style="bold")
        text.append(overall + "\n", style=COMPATIBILITY_STYLES.get(overall, ""))
        for check in precheck.get("compatibilityChecks") or []:
            status = str(check.get("status"))
            text.append(f"  {status:<14}", style=COMPATIBILITY_STYLES.get(status, ""))
            text.append(f" {check.get('name')}: {check.get('message')}\n")
    if action.depends_on:
        text.append("\nAfter: ", style="bold")
        text.append(", ".join(action.depends_on) + "\n")
    if action.blocked:
        text.append("\nBlocked: ", style="bold red")
        text.append(action.blocked + "\n", style="red")
    return text


def action_label(action: Action) -> Text:
    """The tree line: the CLI's header, with ``blocked`` before the long where-to part and a
    ``!`` in place of the padding, so both show in 80 columns."""
    header = action_header(action)
    if not action.blocked:
        return header
    plain = header.plain
    cut = plain.find("  ", plain.find(action.address) + len(action.address) + 2)
    head, tail = (header, Text()) if cut < 0 else header.divide([cut])
    label = Text("!", style="bold red") + head[1:]
    label.append("  blocked", style="bold red")
    return label + tail


class PlanTree(Tree[NodeData]):
    """Actions grouped by kind (in apply order), then drift and problems."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Plan", data=NodeData(group="plan"), id=id)
        self.show_root = False  # the summary is on the line above the tree
        self.guide_depth = 3

    def show_plan(self, plan: Plan) -> None:
        """Replace the tree with ``plan`` (groups expanded, action lines collapsed)."""
        self.clear()
        self.root.set_label(Text(plan.summary(), style="bold"))
        groups: dict[str, list[Action]] = {}
        for action in plan.actions:
            groups.setdefault(action.kind, []).append(action)
        for kind in sorted(groups, key=_kind_rank):
            actions = groups[kind]
            group = self.root.add(
                Text.assemble((kind, "bold"), f" ({len(actions)})"),
                data=NodeData(group=kind),
                expand=True,
            )
            for action in actions:
                self._add_action(group, action)
        if plan.drift:
            group = self.root.add(
                Text.assemble(
                    ("! Observed changes (drift)", "bold yellow"), f" ({len(plan.drift)})"
                ),
                data=NodeData(group="drift"),
                expand=True,
            )
            for drift in plan.drift:
                group.add_leaf(
                    Text(f"! {drift.address}: {drift.message}", style="yellow"),
                    data=NodeData(drift=drift),
                )
        if plan.problems:
            group = self.root.add(
                Text.assemble(("x Problems", "bold red"), f" ({len(plan.problems)})"),
                data=NodeData(group="problems"),
                expand=True,
            )
            for problem in plan.problems:
                group.add_leaf(
                    Text(f"x {problem.address}: {problem.message}", style="red"),
                    data=NodeData(problem=problem),
                )
        self.root.expand()

    def _add_action(self, group: TreeNode[NodeData], action: Action) -> None:
        label = action_label(action)
        lines = action_detail_lines(action)
        if not lines:
            group.add_leaf(label, data=NodeData(action=action))
            return
        node = group.add(label, data=NodeData(action=action), expand=False)
        for line in lines:
            node.add_leaf(line, data=NodeData(action=action))
