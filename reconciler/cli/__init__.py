"""The `kubeferry` command line.

Each command group lives in its own private module, imported only when one of its commands
runs (or for `--help`): the ledger, the Kubernetes client and the engines cost ~0.6 s of
imports that `kubeferry --version` or `kubeferry tui`'s first frame should not pay. Plugins
from other distributions (the TUI) add commands through the ``kubeferry.commands`` entry
point, so this package never imports them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

from reconciler import __version__
from reconciler._allocator import limit_malloc_arenas
from reconciler.errors import KubeferryError

if TYPE_CHECKING:  # typer carries its own click; these are the types its groups speak
    from typer._click.core import Command, Context

# command -> (module, how it is added): "group" modules have a Typer `app` mounted under the
# command's name; "commands" modules add top-level commands with `register(typer_app)`
_LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("reconciler.cli._sandbox", "group"),
    "ledger": ("reconciler.cli._ledger", "group"),
    "repo": ("reconciler.cli._repo", "group"),
    "mover": ("reconciler.cli._mover", "group"),
    "validate": ("reconciler.cli._inventory", "commands"),
    "schema": ("reconciler.cli._inventory", "commands"),
    "plan": ("reconciler.cli._workflow", "commands"),
    "apply": ("reconciler.cli._workflow", "commands"),
    "reconcile": ("reconciler.cli._workflow", "commands"),
    "backup": ("reconciler.cli._snapshots", "commands"),
    "snapshots": ("reconciler.cli._snapshots", "commands"),
    "restore": ("reconciler.cli._snapshots", "commands"),
    "drill": ("reconciler.cli._drill", "commands"),
    "import": ("reconciler.cli._import", "group"),
}
_GROUP_HELP = {
    "ledger": "Inspect the ledger: status, history, locks.",
    "repo": "Repository maintenance: init, keys, check, prune, stats.",
    "mover": "In-pod entry point of the Job mover (backup or restore one volume).",
    "import": "Import objects of other tools as a kubeferry inventory (kubeslice).",
}


def _lazy_command(name: str) -> Command | None:
    module_name, how = _LAZY_COMMANDS[name]
    module = importlib.import_module(module_name)
    if how == "group":
        sub: typer.Typer = module.app
        command = typer.main.get_command(sub)
        command.name = name
        if name in _GROUP_HELP:
            command.help = _GROUP_HELP[name]
        return command
    holder = typer.Typer()
    module.register(holder)
    built = typer.main.get_command(holder)
    if isinstance(built, TyperGroup):
        return built.get_command(typer.Context(built), name)
    return built if built.name == name else None


class _LazyGroup(TyperGroup):
    """The root group: built-in commands load their module when looked up."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            command = _lazy_command(cmd_name)
            if command is not None:
                self.add_command(command, cmd_name)
        return command


app = typer.Typer(
    cls=_LazyGroup,
    name="kubeferry",
    help="Replicate, back up and restore Kubernetes namespaces: declare, plan, apply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kubeferry {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Replicate, back up and restore Kubernetes namespaces: declare, plan, apply."""


def _load_plugins() -> None:
    for entry in entry_points(group="kubeferry.commands"):
        try:
            entry.load()(app)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not break the CLI
            typer.secho(f"kubeferry: warning: plugin {entry.name!r} not loaded: {error}", err=True)


def _fail(message: str, code: int) -> int:
    typer.secho(f"kubeferry: error: {message}", err=True, fg="red")
    return code


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    limit_malloc_arenas()
    _load_plugins()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="kubeferry", standalone_mode=False)
    except typer.Abort:
        return _fail("aborted", 130)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except KubeferryError as error:
        return _fail(str(error), error.exit_code)
    except typer.TyperException as error:
        # click-style usage errors (unknown command, bad option): one line, exit 2
        code = int(getattr(error, "exit_code", 2))
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        ctx = getattr(error, "ctx", None)
        hint = f" Try '{ctx.command_path} --help'." if ctx is not None and code == 2 else ""
        return _fail(f"{message}{hint}", code)
    if isinstance(result, int):
        return result
    return 0
