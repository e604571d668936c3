"""KubeferryApp: the `kubeferry tui` application (k9s keys, Argo CD status model).

The app owns the read model (``reconciler.reconcile.load_overview``) and the ledger watch:
every ``poll_interval`` seconds a thread worker reads the ledger serial and the inventory's
file stamp, and only when one moved reloads the overview, so a cron ``kubeferry reconcile``
shows up live. Screens get ``OverviewLoaded`` (the overview screen) and ``LedgerChanged``
(every screen on the stack) messages; the UI thread never touches the ledger itself.

Navigation: ``:`` opens the command line (``:clusters :jobs :repos :snapshots :history
:drills :plan :runs :unlock :help :q``), ctrl+p the command palette with the same commands, ``?``
help, Esc goes back, ``q`` quits, ``d`` describes the selected row. Screens of other modules
are imported when first opened, so the app starts fast and runs without them.

The same workers read who holds the ledger lock (``ledger_lock_status``) and post
``LockChanged`` when that changes; the overview shows the holder. ``:unlock`` reads the
lock again, says whether its holder is alive and asks for the word ``unlock`` typed before
``unlock_ledger`` releases it (hidden and refused with ``--read-only``).

For other screens: ``app.read_only`` (hide and refuse destructive actions),
``app.workspace``, ``app.overview`` (latest read model or None), ``app.open_view(name, ...)``,
``app.describe(address)``, ``app.now()`` (the app's clock, frozen in tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.worker import get_current_worker

from tui import _format
from tui._messages import (
    LedgerChanged,
    LockChanged,
    OverviewFailed,
    OverviewLoaded,
    UnlockAsked,
    UnlockDone,
)
from tui.screens.describe import DescribeScreen
from tui.screens.help import HelpScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.banner import Banner
from tui.widgets.command_line import CommandLineScreen
from tui.widgets.confirm import ConfirmScreen

if TYPE_CHECKING:
    # reconciler.reconcile costs ~0.8 s to import: the workers import it, after the first frame
    from reconciler.reconcile import LockView, Overview, Workspace


@dataclass(frozen=True)
class ViewCommand:
    """One `:` command (also offered in the command palette)."""

    name: str
    help: str
    argument: str = ""  # e.g. "[JOB]": what may follow the name


COMMANDS: tuple[ViewCommand, ...] = (
    ViewCommand("clusters", "clusters: reachability, version, permissions"),
    ViewCommand("jobs", "jobs: Sync, Health, last run, next due, RPO"),
    ViewCommand("repos", "repositories: availability, size"),
    ViewCommand("plan", "refresh and plan; apply with confirmation"),
    ViewCommand("runs", "live progress of a run", "[RUN_ID]"),
    ViewCommand("history", "runs and events from the ledger"),
    ViewCommand("snapshots", "snapshots in the repositories; restore, delete", "[JOB]"),
    ViewCommand("drills", "DR drills, RPO/RTO; r: run one (asks), o: report", "[JOB]"),
    ViewCommand("describe", "describe an object, e.g. job/web", "KIND/NAME"),
    ViewCommand("unlock", "release the ledger lock (asks first)"),
    ViewCommand("help", "keys and commands"),
    ViewCommand("q", "quit"),
)
ALIASES: dict[str, str] = {
    "cluster": "clusters",
    "job": "jobs",
    "repo": "repos",
    "repositories": "repos",
    "snap": "snapshots",
    "run": "runs",
    "quit": "q",
    "q!": "q",
    "overview": "jobs",
    "h": "help",
    "drill": "drills",
}

# screens owned by other modules, imported only when first opened: (module, class)
_LAZY_SCREENS: dict[str, tuple[str, str]] = {
    "plan": ("tui.screens.plan", "PlanScreen"),
    "runs": ("tui.screens.run", "RunScreen"),
    "history": ("tui.screens.history", "HistoryScreen"),
    "snapshots": ("tui.screens.snapshots", "SnapshotsScreen"),
    "drills": ("tui.screens.drills", "DrillsScreen"),
}
_OVERVIEW_SECTIONS = {"clusters": "clusters", "jobs": "jobs", "repos": "repositories"}
# commands that change something: hidden and refused with --read-only
DESTRUCTIVE_COMMANDS = frozenset({"unlock"})


def _system_now() -> datetime:
    return datetime.now(UTC)


class KubeferryApp(App[None]):
    """`kubeferry tui`: overview, describe, help, command line, plus the plan/run screens."""

    TITLE = "kubeferry"
    CSS_PATH = "kubeferry.tcss"
    # destructive actions are never bound here (and never to ctrl+d / ctrl+k anywhere)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "command_line", "Command", key_display=":"),
        Binding("escape", "go_back", "Back", show=False),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        read_only: bool = False,
        poll_interval: float = 2.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.read_only = read_only
        self.poll_interval = poll_interval
        self.now: Callable[[], datetime] = clock or _system_now
        self.overview: Overview | None = None
        self.overview_error: str | None = None
        """Why the newest overview could not be read (None: it was)."""
        self.protected_clusters: tuple[str, ...] = ()
        self._seen: tuple[int, str] | None = None
        self.lock: LockView | None = None
        """Who holds the ledger lock, as last read (None: free)."""

    # -- the banner ----------------------------------------------------------------------

    @property
    def banner_parts(self) -> tuple[str, list[str]]:
        """(inventory path, markers) for the banner: PROTECTED clusters, [read-only]."""
        markers = []
        if self.protected_clusters:
            markers.append("PROTECTED: " + ", ".join(self.protected_clusters))
        if self.read_only:
            markers.append("[read-only]")
        return _display_path(self.workspace.inventory_path), markers

    def _refresh_banners(self) -> None:
        for screen in self.screen_stack:
            for banner in screen.query(Banner):
                banner.refresh_text()

    def _screen_changed(self, screen: Screen[Any]) -> None:
        """Every full screen gets a banner, also screens that do not compose one."""
        if isinstance(screen, ModalScreen):
            return
        if not screen.query(Banner):
            screen.call_after_refresh(self._ensure_banner, screen)

    def _ensure_banner(self, screen: Screen[Any]) -> None:
        if screen.is_attached and not screen.query(Banner):
            screen.mount(Banner())

    # -- start-up and the ledger watch ---------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return OverviewScreen()

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self.reload_overview()
        if self.poll_interval > 0:
            self.set_interval(self.poll_interval, self._poll, name="ledger-poll")

    def reload_overview(self) -> None:
        """Read inventory + ledger again (in a thread); OverviewLoaded follows."""
        self._load_overview()

    @work(thread=True, exclusive=True, group="overview", exit_on_error=False)
    def _load_overview(self) -> None:
        from reconciler.reconcile import load_overview

        try:
            overview = load_overview(self.workspace, now=self.now())
        except Exception as error:  # noqa: BLE001 - shown to the user, the UI keeps running
            self.post_message(OverviewFailed(f"{type(error).__name__}: {error}"))
            return
        if not get_current_worker().is_cancelled:  # a newer reload started: it has newer data
            self.post_message(OverviewLoaded(overview))
        self._read_lock()

    def _poll(self) -> None:
        self._check_ledger()

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _check_ledger(self) -> None:
        from reconciler.reconcile import inventory_stamp, ledger_serial

        stamp = (ledger_serial(self.workspace), inventory_stamp(self.workspace))
        if self._seen is not None and stamp != self._seen:
            self.post_message(LedgerChanged(stamp[0]))
        self._seen = stamp
        self._read_lock()  # taking the lock does not move the serial: look at it each poll

    def _read_lock(self) -> None:
        """(In a worker) post LockChanged when the lock's holder differs from the one shown."""
        from reconciler.reconcile import ledger_lock_status

        try:
            lock = ledger_lock_status(self.workspace)
        except Exception:  # noqa: BLE001 - the overview reports an unreadable ledger
            return
        if lock != self.lock:
            self.post_message(LockChanged(lock))

    def _live_overviews(self) -> list[OverviewScreen]:
        # A screen still composing renders the app's latest overview in its own on_mount;
        # one closing has no widgets left to update.
        return [
            screen
            for screen in self.screen_stack
            if isinstance(screen, OverviewScreen)
            and screen.is_mounted
            and not (screen._closing or screen._closed)
        ]

    def on_lock_changed(self, message: LockChanged) -> None:
        self.lock = message.lock
        for screen in self._live_overviews():
            screen.show_lock(message.lock)

    def on_overview_loaded(self, message: OverviewLoaded) -> None:
        overview = message.overview
        self.overview = overview
        self.overview_error = None
        self._seen = (overview.ledger_serial, overview.inventory_stamp)
        if overview.protected_clusters != self.protected_clusters:
            self.protected_clusters = overview.protected_clusters
            self._refresh_banners()
        for screen in self._live_overviews():
            screen.show_overview(overview)

    def on_overview_failed(self, message: OverviewFailed) -> None:
        self.overview_error = message.error
        self.notify(message.error, title="Cannot read the overview", severity="error")
        for screen in self._live_overviews():
            screen.show_failure(message.error)

    def on_ledger_changed(self, message: LedgerChanged) -> None:
        self.reload_overview()
        for screen in self.screen_stack:
            screen.post_message(LedgerChanged(message.serial))

    # -- navigation ------------------------------------------------------------------------

    def action_go_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_command_line(self) -> None:
        if isinstance(self.screen, CommandLineScreen):
            return
        self.push_screen(CommandLineScreen(self.command_words()), self._command_entered)

    def _command_entered(self, text: str | None) -> None:
        if text:
            self.run_command(text)

    def command_words(self) -> list[str]:
        return [command.name for command in self.available_commands()]

    def available_commands(self) -> list[ViewCommand]:
        """COMMANDS, without the destructive ones in read-only mode."""
        return [
            command
            for command in COMMANDS
            if not (self.read_only and command.name in DESTRUCTIVE_COMMANDS)
        ]

    def run_command(self, text: str) -> bool:
        """Run one `:` command (leading ':' optional); False (and a notice) when unknown."""
        words = text.strip().lstrip(":").split()
        if not words:
            return False
        name = ALIASES.get(words[0].lower(), words[0].lower())
        argument = words[1] if len(words) > 1 else None
        if name == "q":
            self.exit()
        elif name == "help":
            self.action_help()
        elif name in _OVERVIEW_SECTIONS:
            self.show_overview_section(_OVERVIEW_SECTIONS[name])
        elif name == "describe":
            if argument is None:
                self.notify("describe needs KIND/NAME, e.g. ReplicationJob/web", severity="warning")
                return False
            self.describe(argument)
        elif name == "unlock":
            return self.request_unlock()
        elif name in _LAZY_SCREENS:
            return self.open_view(name, argument)
        else:
            self.notify(f"unknown command :{words[0]} (try :help)", severity="warning")
            return False
        return True

    def show_overview_section(self, section: str) -> None:
        """Back to the overview (closing the screens above it) with ``section`` shown."""
        while len(self.screen_stack) > 1 and not isinstance(self.screen, OverviewScreen):
            self.pop_screen()
        screen = self.screen_stack[0]
        if isinstance(screen, OverviewScreen):
            screen.show_section(section)

    def describe(self, address: str) -> None:
        """Open the describe view of ``address`` ("Kind/name")."""
        self.push_screen(DescribeScreen(address))

    def open_view(self, name: str, argument: str | None = None) -> bool:
        """Open a screen of another module by command name, importing it on first use."""
        module_name, class_name = _LAZY_SCREENS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            self.notify(f":{name} is not available in this build", severity="warning")
            return False
        factory: Callable[..., Screen[Any]] = getattr(module, class_name)
        try:
            screen = factory(**_view_arguments(name, argument))
        except ValueError as error:
            self.notify(str(error), severity="warning")
            return False
        if type(self.screen) is type(screen) and len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        return True

    # -- unlock ----------------------------------------------------------------------------

    def request_unlock(self) -> bool:
        """``:unlock``: read the lock, then ask (typing ``unlock``) before releasing it."""
        if self.read_only:
            self.notify("read-only: unlock is disabled", severity="warning")
            return False
        self._ask_unlock()
        return True

    @work(thread=True, exclusive=True, group="unlock", exit_on_error=False)
    def _ask_unlock(self) -> None:
        from reconciler.reconcile import ledger_lock_status

        try:
            lock = ledger_lock_status(self.workspace)
        except Exception as error:  # noqa: BLE001 - shown to the user
            self.post_message(UnlockAsked(None, f"{type(error).__name__}: {error}"))
            return
        self.post_message(UnlockAsked(lock))

    def on_unlock_asked(self, message: UnlockAsked) -> None:
        if message.error is not None:
            self.notify(message.error, title="Cannot read the lock", severity="error")
            return
        lock = message.lock
        if lock != self.lock:
            self.post_message(LockChanged(lock))
        if lock is None:
            self.notify("the ledger is not locked: nothing to unlock")
            return
        if self.read_only:  # cannot happen through request_unlock; never ask in read-only
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed and not self.read_only:
                self._unlock(lock.lock_id)

        body = unlock_body(lock, self.now())
        self.push_screen(ConfirmScreen("Release the ledger lock?", body, "unlock"), answered)

    @work(thread=True, exclusive=True, group="unlock", exit_on_error=False)
    def _unlock(self, lock_id: str) -> None:
        from reconciler.errors import KubeferryError
        from reconciler.reconcile import unlock_ledger

        try:
            released = unlock_ledger(self.workspace, lock_id)
        except KubeferryError as error:
            self.post_message(UnlockDone(None, str(error)))
            return
        except Exception as error:  # noqa: BLE001 - shown to the user
            self.post_message(UnlockDone(None, f"{type(error).__name__}: {error}"))
            return
        self.post_message(UnlockDone(released))

    def on_unlock_done(self, message: UnlockDone) -> None:
        if message.released is None:
            self.notify(message.error or "unlock failed", title="Unlock", severity="error")
        else:
            self.notify(f"Released lock {message.released.lock_id} of {message.released.holder}")
        self.reload_overview()  # reads the lock again too

    # -- command palette -----------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in self.available_commands():
            if command.argument and not command.argument.startswith("["):
                continue  # needs an argument: only from the `:` command line
            yield SystemCommand(
                f":{command.name}", command.help, partial(self.run_command, command.name)
            )
        yield from super().get_system_commands(screen)


def unlock_body(lock: LockView, now: datetime) -> str:
    """What ``:unlock`` says before asking: the holder, and whether it is alive."""
    age = _format.duration(lock.age_seconds(now))
    lines = [f"Lock {lock.lock_id}", f"held by {lock.holder}, for {age}.", ""]
    running = f"Unlocking a live holder's lock may break a running {lock.operation}"
    if lock.stale:
        lines.append(
            f"The holder is gone: pid {lock.pid} no longer runs on this host (stale lock). "
            "Releasing it is safe if nothing else uses this ledger."
        )
    elif lock.on_this_host:
        lines.append(
            f"The holder is ALIVE: pid {lock.pid} still runs on this host. {running}: "
            "another run could start beside it on the same clusters and ledger."
        )
    else:
        lines.append(
            f"The holder runs on another host ({lock.host}): whether it is alive cannot be "
            f"told from here. {running} there."
        )
    return "\n".join(lines)


def _view_arguments(name: str, argument: str | None) -> dict[str, Any]:
    if argument is None:
        return {}
    if name == "runs":
        try:
            return {"run_id": int(argument)}
        except ValueError:
            raise ValueError(f":runs takes a run id (a number), not {argument!r}") from None
    if name in ("snapshots", "drills"):
        return {"job": argument}
    raise ValueError(f":{name} takes no argument")


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
