"""Helpers for inventory tests: write YAML next to a valid base inventory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.inventory import InventoryError, load_inventory

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"

# Three clusters, a filesystem repository, a replication slice and a backup slice.
BASE_INVENTORY = """\
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {name: controller}
spec: {context: controller, role: controller}
---
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {name: worker-1}
spec: {context: worker-1, role: worker}
---
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {name: worker-2}
spec: {context: worker-2, role: worker, protected: true}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationRepository
metadata: {name: repo}
spec: {filesystem: {path: ./repository}}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationSlice
metadata: {name: s12}
spec: {sourceCluster: worker-1, destinationCluster: worker-2, repository: repo}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationSlice
metadata: {name: backup}
spec: {sourceCluster: worker-1, destinationCluster: worker-1, repository: repo}
"""

CaseWriter = Callable[[str], Path]
IssueLister = Callable[[Path], list[str]]


@pytest.fixture
def inventory_dir(tmp_path: Path) -> CaseWriter:
    """Write ``text`` as ``case.yaml`` beside ``00-base.yaml``; returns the directory."""

    def write(text: str) -> Path:
        directory = tmp_path / "inventory"
        directory.mkdir(exist_ok=True)
        (directory / "00-base.yaml").write_text(BASE_INVENTORY)
        (directory / "case.yaml").write_text(textwrap.dedent(text))
        return directory

    return write


@pytest.fixture
def issues_of() -> IssueLister:
    """Load an inventory that must fail; its issues as printed, directory names removed."""

    def issues(path: Path) -> list[str]:
        with pytest.raises(InventoryError) as caught:
            load_inventory(path)
        base = f"{path}/" if path.is_dir() else f"{path.parent}/"
        return [str(issue).replace(base, "") for issue in caught.value.issues]

    return issues


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def base() -> str:
    """The text of the valid base inventory written as 00-base.yaml by ``inventory_dir``."""
    return BASE_INVENTORY
