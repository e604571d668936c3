"""Every command answers --help; an unknown command is one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer

from reconciler import __version__
from reconciler.cli import app, main


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        if not hasattr(command, "list_commands"):
            return
        # through the group's lookup: built-in commands load their module on demand
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            walk(command.get_command(ctx, name), [*path, name])

    walk(root, [])
    return paths


def test_every_group_is_reachable() -> None:
    names = {" ".join(p) for p in _command_paths()}
    top = {n.split(" ")[0] for n in names if n}
    assert {"sandbox", "ledger", "repo", "mover", "validate", "schema", "plan", "apply"} <= top
    assert {"reconcile", "backup", "snapshots", "restore"} <= top
    assert {"ledger status", "repo init", "sandbox up", "mover backup"} <= names


def test_version_does_not_load_the_engines() -> None:
    """Start-up stays light: the ledger, Kubernetes client and engines load on demand."""
    probe = (
        "import sys; from reconciler.cli import main; main(['--version']); "
        "heavy = [m for m in ('state', 'kubernetes', 'sqlalchemy', 'reconciler.reconcile') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "kubeferry")
def test_help_for_every_command(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out
    assert "kubeferry" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kubeferry {__version__}"


def test_unknown_command_is_one_line_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == ["kubeferry: error: No such command 'no-such-command'. Try 'kubeferry --help'."]


def test_unknown_option_is_one_line_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--bogus" in result.stderr
    assert "Traceback" not in result.stderr
