"""Where an inventory and its ledger live: the handle every workflow API takes.

A module of its own, light on imports, so front ends (the TUI's first frame, shell
completion) can resolve paths before the reconciler's heavier parts load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler._paths import resolve_inventory_path, resolve_ledger_path

if TYPE_CHECKING:
    from reconciler.inventory import Inventory


@dataclass(frozen=True)
class Workspace:
    """Where the inventory and the ledger live."""

    inventory_path: Path
    ledger_path: Path

    @classmethod
    def resolve(cls, inventory: Path | None = None, ledger: Path | None = None) -> Workspace:
        inventory_path = resolve_inventory_path(inventory)
        return cls(inventory_path, resolve_ledger_path(ledger, inventory_path))

    def load_inventory(self) -> Inventory:
        from reconciler.inventory import load_inventory

        return load_inventory(self.inventory_path)
