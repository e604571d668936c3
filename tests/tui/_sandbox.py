"""A workspace on the real sandbox clusters for the TUI's end-to-end tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reconciler.reconcile import Workspace
from tests._inventory import cluster, filesystem_repository, write_inventory
from tests._kube_objects import settings_namespace

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

PASSPHRASE_VAR = "KF_TUI_PASSPHRASE"


def workspace_on_sandbox(
    sandbox: SandboxInfo,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    namespace: str,
    *documents: str,
) -> Workspace:
    """``namespace`` on worker-1 with three ConfigMaps, and a workspace in ``directory`` whose
    inventory holds worker-1, worker-2 (protected), the encrypted filesystem repository
    ``local`` (a random passphrase) and ``documents``."""
    with sandbox.client("worker-1") as client:
        settings_namespace(client, namespace)
    inventory = write_inventory(
        directory,
        cluster("worker-1"),
        cluster("worker-2", protected=True),
        filesystem_repository("local", passphrase_var=PASSPHRASE_VAR),
        *documents,
    )
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.setenv(PASSPHRASE_VAR, uuid.uuid4().hex)
    return Workspace(inventory, directory / ".kubeferry" / "ledger.sqlite")
