"""The app shell: navigation, `:` commands, palette, help, banner, read-only, the ledger
watch and the confirmation modal (Pilot tests against a real ledger, no network)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Button, Input, Static

import tui.screens
from reconciler.cli import main as cli_main
from reconciler.reconcile import Workspace
from state import Ledger, RunPhase
from tui.app import KubeferryApp
from tui.screens.describe import DescribeScreen
from tui.screens.help import HelpScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.command_line import CommandLineScreen
from tui.widgets.confirm import ConfirmScreen

from ._data import scenario
from ._pilot import make_app, wait_for, wait_for_text
from ._screen import screen_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return scenario(tmp_path, monkeypatch)


async def test_starts_on_the_overview_with_the_banner(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, "db-backup")
        first = text.splitlines()[0]
        assert "kubeferry.yaml" in first
        assert "PROTECTED: worker-2" in first
        assert "[read-only]" not in first
        assert isinstance(app.screen, OverviewScreen)


async def test_read_only_is_marked_in_the_banner_of_every_screen(workspace: Workspace) -> None:
    app = make_app(workspace, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        assert app.read_only is True
        assert "[read-only]" in screen_text(app).splitlines()[0]
        await pilot.press("question_mark")
        await wait_for_text(pilot, "KEYS")
        assert "[read-only]" in screen_text(app).splitlines()[0]


async def test_question_mark_opens_help_and_escape_goes_back(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("question_mark")
        text = await wait_for_text(pilot, "COMMANDS")
        assert isinstance(app.screen, HelpScreen)
        assert ":snapshots [JOB]" in text
        assert "ctrl+p" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        # Esc on the bottom screen keeps the overview (there is nothing to go back to)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)
        assert "db-backup" in screen_text(app)


async def test_colon_commands_switch_overview_sections(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandLineScreen))
        await pilot.press(*"clusters", "enter")
        text = await wait_for_text(pilot, "REACHABILITY")
        assert "worker-2" in text
        assert "db-backup" not in text
        await pilot.press("colon", *"repos", "enter")
        text = await wait_for_text(pilot, "AVAILABILITY")
        offsite = next(line for line in text.splitlines() if line.startswith("offsite"))
        assert "Unavailable" in offsite
        # from a screen above the overview, :jobs goes back down to it
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("colon", *":jobs", "enter")
        text = await wait_for_text(pilot, "NEXT DUE")
        assert isinstance(app.screen, OverviewScreen)
        assert len(app.screen_stack) == 1


async def test_unknown_command_is_reported_and_escape_cancels(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("colon", *"frobnicate", "enter")
        await wait_for_text(pilot, "unknown command :frobnicate")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("colon", "h", "i")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandLineScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))


async def test_command_line_describe_and_quit(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("colon", *"describe cluster/worker-2", "enter")
        text = await wait_for_text(pilot, "protected: true")
        assert isinstance(app.screen, DescribeScreen)
        assert "Cluster/worker-2" in text
        await pilot.press("colon", "q", "enter")
        await pilot.pause()
    assert app.return_code == 0
    assert not app.is_running


async def test_command_palette_offers_the_same_commands(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("ctrl+p")
        await pilot.press(*":cluster")
        text = await wait_for_text(pilot, "clusters: reachability")
        assert ":clusters" in text
        await pilot.press("enter")
        await wait_for_text(pilot, "REACHABILITY")
        assert isinstance(app.screen, OverviewScreen)
        assert app.screen.active_section == "clusters"


async def test_other_views_open_by_command_and_escape_returns(workspace: Workspace) -> None:
    app = make_app(workspace)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for_text(pilot, "db-backup")
        await pilot.press("colon", *"history", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")
        assert "kubeferry.yaml" in screen_text(app).splitlines()[0]  # the banner is there
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("colon", *"runs abc", "enter")
        await wait_for_text(pilot, ":runs takes a run id")
        assert isinstance(app.screen, OverviewScreen)


async def test_a_screen_without_its_own_banner_gets_one(workspace: Workspace) -> None:
    class Bare(Screen[None]):
        def compose(self) -> ComposeResult:
            yield Static("bare screen body")

    app = make_app(workspace, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "db-backup")
        app.push_screen(Bare())
        text = await wait_for_text(pilot, "[read-only]")
        assert "bare screen body" in text


async def test_a_cron_run_shows_up_live(workspace: Workspace) -> None:
    """Another process (here: the test) writes to the ledger; the overview follows."""
    app = make_app(workspace, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, "Progressing")
        assert "1 Progressing" in text
        with Ledger.open(workspace.ledger_path) as ledger:
            running = ledger.runs(job="cache", phase=RunPhase.IN_PROGRESS)[0]
            assert running.id is not None
            ledger.finish_run(running.id, RunPhase.FAILED, message="source cluster went away")
        text = await wait_for_text(pilot, "2 Degraded")
        assert "Progressing" not in text
        cache = next(line for line in text.splitlines() if line.startswith("cache"))
        assert "Degraded" in cache
        assert "failed" in cache


async def test_an_unreadable_ledger_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    workspace = scenario(tmp_path, monkeypatch)
    workspace.ledger_path.write_bytes(b"this is not a database" * 100)
    app = make_app(workspace)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        text = await wait_for_text(pilot, "cannot read")
        assert "ledger" in text
        assert app.is_running


async def test_an_overview_screen_up_after_the_failure_still_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overview's failure can arrive before its screen is mounted (a busy machine): the
    screen shows it when it comes up instead of "reading..." forever."""
    monkeypatch.chdir(tmp_path)
    workspace = scenario(tmp_path, monkeypatch)
    workspace.ledger_path.write_bytes(b"this is not a database" * 100)
    app = make_app(workspace)
    app.get_default_screen = Screen  # type: ignore[method-assign]  # no overview at first
    async with app.run_test(size=(80, 24), notifications=False) as pilot:
        await wait_for(pilot, lambda: app.overview_error is not None)
        await app.push_screen(OverviewScreen())  # mounted after the failure was reported
        text = await wait_for_text(pilot, "cannot read")
        assert "ledger" in text
        assert "reading inventory and ledger" not in text


def test_no_screen_binds_ctrl_d_or_ctrl_k() -> None:
    """Destructive actions are never one slip away: no binding on ctrl+d / ctrl+k at all."""
    classes: list[type] = [KubeferryApp, ConfirmScreen, CommandLineScreen]
    for module in pkgutil.iter_modules(tui.screens.__path__):
        loaded = importlib.import_module(f"tui.screens.{module.name}")
        classes += [
            c for _, c in inspect.getmembers(loaded, inspect.isclass) if issubclass(c, Screen)
        ]
    assert OverviewScreen in classes
    assert HelpScreen in classes
    for cls in classes:
        for binding in getattr(cls, "BINDINGS", []):
            keys = binding.key if isinstance(binding, Binding) else binding[0]
            for key in keys.split(","):
                assert key.strip() not in ("ctrl+d", "ctrl+k"), f"{cls.__name__} binds {key}"


def test_kubeferry_tui_is_a_cli_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["tui", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--read-only" in shown
    assert "--inventory" in shown
    assert "--ledger" in shown


# -- the confirmation modal ----------------------------------------------------------------


class _Asker(App[None]):
    def __init__(self, confirm: ConfirmScreen) -> None:
        super().__init__()
        self.confirm = confirm
        self.answers: list[bool | None] = []

    def on_mount(self) -> None:
        self.push_screen(self.confirm, self.answers.append)


@pytest.mark.parametrize(
    ("keys", "answer"),
    [
        (("y",), True),
        (("n",), False),
        (("escape",), False),
        (("enter",), False),  # focus starts on Cancel: a stray Enter never confirms
        (("shift+tab", "enter"), True),  # moving to Confirm on purpose, then Enter
    ],
)
async def test_confirm_without_a_word(keys: tuple[str, ...], answer: bool) -> None:
    app = _Asker(ConfirmScreen("Apply 3 actions?", "+ Cluster/a\n» ReplicationJob/web"))
    async with app.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, "Apply 3 actions?")
        assert "» ReplicationJob/web" in text
        await pilot.press(*keys)
        await wait_for(pilot, lambda: bool(app.answers))
    assert app.answers == [answer]


async def test_confirm_with_a_word_needs_it_typed_exactly() -> None:
    confirm = ConfirmScreen("Restore onto worker-2?", "policy recreate [bold]x[/]", "worker-2")
    app = _Asker(confirm)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        text = await wait_for_text(pilot, "Type worker-2 to confirm")
        assert "[bold]x[/]" in text  # shown as typed, never as markup
        button = confirm.query_one("#confirm", Button)
        assert button.disabled
        await pilot.press("y", "n", "enter")  # letters go into the input, not yes/no
        await wait_for_text(pilot, "type worker-2 exactly")
        assert app.answers == []
        assert confirm.query_one(Input).value == "yn"
        confirm.query_one(Input).value = ""
        await pilot.press(*"worker-2")
        await wait_for(pilot, lambda: not button.disabled)
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(app.answers))
    assert app.answers == [True]
