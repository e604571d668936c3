"""The `kubeferry` command line.

Each command group lives in its own private module and is registered here. Plugins from
other distributions (the TUI) add commands through the ``kubeferry.commands`` entry point,
so this package never imports them.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from reconciler import __version__
from reconciler._allocator import limit_malloc_arenas
from reconciler.cli import _inventory, _ledger, _mover, _repo, _sandbox, _snapshots, _workflow
from reconciler.errors import KubeferryError

app = typer.Typer(
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


app.add_typer(_sandbox.app, name="sandbox")
app.add_typer(_ledger.app, name="ledger", help="Inspect the ledger: status, history, locks.")
app.add_typer(
    _repo.app, name="repo", help="Repository maintenance: init, keys, check, prune, stats."
)
app.add_typer(
    _mover.app,
    name="mover",
    help="In-pod entry point of the Job mover (backup or restore one volume).",
)
_inventory.register(app)
_workflow.register(app)
_snapshots.register(app)


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
