"""`kubeferry tui`: registered through the `kubeferry.commands` entry point.

The CLI package never imports tui/; it loads this plugin and calls ``register``. Textual is
imported only when the command runs, so other commands start no slower.
"""

from __future__ import annotations

from pathlib import Path

import typer

_FILE_OPTION = typer.Option(
    None,
    "-f",
    "--file",
    "--inventory",
    help="Inventory file or directory (default: ./kubeferry.yaml; env KUBEFERRY_INVENTORY).",
)
_LEDGER_OPTION = typer.Option(
    None,
    "--ledger",
    help="Ledger path (default: .kubeferry/ledger.sqlite beside the inventory; env KUBEFERRY_LEDGER).",
)
_READ_ONLY_OPTION = typer.Option(
    False,
    "--read-only",
    help="Browse only: apply, restore, delete and unlock are hidden and refused.",
)
_POLL_OPTION = typer.Option(
    2.0, "--poll-interval", min=0.2, help="Seconds between checks of the ledger for changes."
)


def register(app: typer.Typer) -> None:
    @app.command("tui")
    def tui_command(
        file: Path | None = _FILE_OPTION,
        ledger: Path | None = _LEDGER_OPTION,
        read_only: bool = _READ_ONLY_OPTION,
        poll_interval: float = _POLL_OPTION,
    ) -> None:
        """Terminal UI: overview, plan, apply, runs, history, snapshots (k9s-style keys)."""
        from reconciler.workspace import Workspace
        from tui.app import KubeferryApp

        workspace = Workspace.resolve(file, ledger)
        KubeferryApp(workspace, read_only=read_only, poll_interval=poll_interval).run()
