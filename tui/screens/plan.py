"""The plan screen: refresh + diff in a worker, the plan as a tree, apply with confirmation.

``make_plan`` talks to every cluster and repository, so it runs in a thread worker while
the tree shows a loading indicator; the result arrives as a ``PlanReady`` message. ``a``
asks for confirmation (typing a word when a protected cluster is affected) and opens the
run screen on exactly this plan: ``apply`` refuses it if the ledger or inventory moved since.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree

from reconciler.errors import KubeferryError
from reconciler.plan import Plan
from reconciler.reconcile import make_plan
from tui.screens.run import RunScreen
from tui.widgets.banner import Banner
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.host import is_read_only, workspace_of
from tui.widgets.plan_tree import NodeData, PlanTree, action_detail, affected_clusters

APPLY_WORD = "apply"
"""What to type to apply a plan that touches a protected cluster."""


class PlanReady(Message):
    """The worker's plan, and which clusters of the inventory are protected."""

    def __init__(self, plan: Plan, protected: frozenset[str]) -> None:
        super().__init__()
        self.plan = plan
        self.protected = protected


class PlanFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def error_line(error: BaseException) -> str:
    """One line, with the hint the CLI would print."""
    if isinstance(error, KubeferryError):
        hint = getattr(error, "hint", None)
        return f"{error} ({hint})" if hint else str(error)
    return f"{type(error).__name__}: {error}"


def confirmation_body(plan: Plan, protected: frozenset[str]) -> str:
    lines = [plan.summary(), ""]
    runnable = plan.runnable_actions
    for action in runnable[:8]:
        lines.append(f"{action.symbol:>3} {action.address}  {action.type.value}")
    if len(runnable) > 8:
        lines.append(f"    ... and {len(runnable) - 8} more")
    blocked = len(plan.actions) - len(runnable)
    if blocked:
        lines.append(f"{blocked} blocked action(s) will not run.")
    touched = sorted(affected_clusters(plan) & protected)
    if touched:
        lines += ["", f"PROTECTED clusters affected: {', '.join(touched)}"]
    return "\n".join(lines)


class PlanScreen(Screen[None]):
    """What apply would do, why; ``a`` applies it after confirmation, ``r`` plans again."""

    AUTO_FOCUS = "#plan-tree"
    BINDINGS = [
        Binding("a", "apply", "Apply"),
        Binding("r", "replan", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plan: Plan | None = None
        self.protected: frozenset[str] = frozenset()
        self.error: str | None = None
        self._run_screen: RunScreen | None = None

    def compose(self) -> ComposeResult:
        yield Banner()
        yield Static("Planning...", id="plan-status", markup=False)
        yield PlanTree(id="plan-tree")
        with VerticalScroll(id="plan-detail-box"):
            yield Static("", id="plan-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Plan"
        self.query_one(PlanTree).focus()
        self.replan()

    def on_screen_resume(self) -> None:
        # back from the run screen: that plan is spent (or stale); show the new state
        run_screen = self._run_screen
        if run_screen is not None and run_screen not in self.app.screen_stack:
            self._run_screen = None
            self.replan()

    # -- planning -----------------------------------------------------------------------

    def replan(self) -> None:
        self.plan = None
        self.error = None
        self.query_one("#plan-status", Static).update("Refreshing clusters and repositories...")
        self.query_one(PlanTree).loading = True
        self.refresh_bindings()
        self._plan_worker()

    @work(thread=True, exclusive=True, group="plan")
    def _plan_worker(self) -> None:
        workspace = workspace_of(self)
        try:
            inventory = workspace.load_inventory()
            protected = frozenset(
                name for name, cluster in inventory.clusters.items() if cluster.spec.protected
            )
            plan = make_plan(workspace, inventory=inventory)
        except Exception as error:  # noqa: BLE001 - shown on the screen, never raised into the UI
            self.post_message(PlanFailed(error_line(error)))
            return
        self.post_message(PlanReady(plan, protected))

    @on(PlanReady)
    def _show_plan(self, message: PlanReady) -> None:
        self.plan = message.plan
        self.protected = message.protected
        tree = self.query_one(PlanTree)
        tree.loading = False
        tree.show_plan(message.plan)
        status = Text(message.plan.summary(), style="bold")
        if not message.plan.runnable_actions:
            status.append("  nothing to apply", style="dim")
        elif is_read_only(self):
            status.append("  [read-only]", style="yellow")
        else:
            status.append("  a: apply", style="dim")
        self.query_one("#plan-status", Static).update(status)
        first = message.plan.actions[0] if message.plan.actions else None
        self._show_detail(NodeData(action=first) if first else None)
        self.refresh_bindings()

    @on(PlanFailed)
    def _show_error(self, message: PlanFailed) -> None:
        self.error = message.error
        tree = self.query_one(PlanTree)
        tree.loading = False
        tree.clear()
        tree.root.set_label(Text("No plan", style="bold red"))
        self.query_one("#plan-status", Static).update(
            Text(f"Plan failed: {message.error}  (r: try again)", style="red")
        )
        self.query_one("#plan-detail", Static).update("")
        self.refresh_bindings()

    # -- detail -------------------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#plan-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[NodeData]) -> None:
        self._show_detail(event.node.data)

    def _show_detail(self, data: NodeData | None) -> None:
        detail = self.query_one("#plan-detail", Static)
        if data is None:
            detail.update("")
        elif data.action is not None:
            detail.update(action_detail(data.action, self.protected))
        elif data.drift is not None:
            detail.update(Text(f"! {data.drift.address}: {data.drift.message}", style="yellow"))
        elif data.problem is not None:
            detail.update(Text(f"x {data.problem.address}: {data.problem.message}", style="red"))
        else:
            detail.update("")

    # -- apply --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            if is_read_only(self):
                return False  # hidden from the footer and never runs
            # shown greyed out until there is something to apply
            return True if self.plan is not None and self.plan.runnable_actions else None
        return True

    def action_apply(self) -> None:
        if is_read_only(self):
            self.notify("read-only: apply is disabled", severity="warning")
            return
        plan = self.plan
        if plan is None:
            self.notify("no plan yet", severity="warning")
            return
        if not plan.runnable_actions:
            self.notify("nothing to apply", severity="information")
            return
        touched = affected_clusters(plan) & self.protected
        count = len(plan.runnable_actions)
        title = f"Apply {count} action{'s' if count != 1 else ''}?"

        def confirmed(answer: bool | None) -> None:
            if answer and self.plan is plan:
                self._run_screen = RunScreen(plan=plan)
                self.app.push_screen(self._run_screen)

        self.app.push_screen(
            ConfirmScreen(
                title, confirmation_body(plan, self.protected), APPLY_WORD if touched else None
            ),
            confirmed,
        )

    def action_replan(self) -> None:
        self.replan()
