"""The process environment tests run kubeferry in: cheap key derivation, passphrases from
environment variables, a wide terminal, and no KUBEFERRY_* variable of the developer's shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.repository import FilesystemBackend, Repository, ScryptParams, _crypto
from tests._inventory import write_inventory

PASSPHRASE_VAR = "KF_TEST_PASSPHRASE"
"""The variable test inventories name in ``encryption.passphraseFrom.env.var``."""

_INHERITED = ("KUBEFERRY_LEDGER", "KUBEFERRY_INVENTORY")
"""Set in a developer's shell, these would point a test at the wrong ledger or inventory."""


def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key derivation at n=2**10: the default costs ~0.2 s per derivation."""
    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))


def cli_environment(monkeypatch: pytest.MonkeyPatch, *, wide: bool = True) -> None:
    """No inherited KUBEFERRY_* variable; with ``wide``, 250 columns (tables on one line)."""
    if wide:
        monkeypatch.setenv("COLUMNS", "250")
    for name in _INHERITED:
        monkeypatch.delenv(name, raising=False)


def encrypted_repository_environment(
    monkeypatch: pytest.MonkeyPatch,
    passphrase: str,
    *,
    var: str = PASSPHRASE_VAR,
    wide: bool = True,
) -> None:
    """``cli_environment`` + cheap scrypt + ``passphrase`` in ``var``."""
    cheap_scrypt(monkeypatch)
    monkeypatch.setenv(var, passphrase)
    cli_environment(monkeypatch, wide=wide)


def encrypted_site(
    directory: Path, *documents: str, passphrase: str, repository: str = "r1"
) -> Path:
    """An inventory of ``documents`` in ``directory`` whose filesystem repository
    ``repository`` (at ``directory/vault``) is initialized, encrypted with ``passphrase``."""
    inventory = write_inventory(directory, *documents)
    Repository(FilesystemBackend(directory / "vault")).initialize(repository, passphrase=passphrase)
    return inventory


def subprocess_env(kubeconfig: Path | None = None, *, wide: bool = False) -> dict[str, str]:
    """This process's environment for a ``kubeferry`` subprocess, without KUBEFERRY_*
    variables; KUBECONFIG set when ``kubeconfig`` is given, COLUMNS=250 with ``wide``."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    if wide:
        env["COLUMNS"] = "250"
    for name in _INHERITED:
        env.pop(name, None)
    return env


def kubeferry(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python -m reconciler ARGS`` in a subprocess, output captured, never raising."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
