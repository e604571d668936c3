"""Where kubeferry finds its inventory and ledger when the user does not say."""

from __future__ import annotations

import os
from pathlib import Path

INVENTORY_ENV = "KUBEFERRY_INVENTORY"
LEDGER_ENV = "KUBEFERRY_LEDGER"
_DEFAULT_INVENTORY_CANDIDATES = ("kubeferry.yaml", "inventory")


def resolve_inventory_path(explicit: Path | None = None) -> Path:
    """`-f PATH`, else $KUBEFERRY_INVENTORY, else ./kubeferry.yaml, else ./inventory/."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(INVENTORY_ENV)
    if from_env:
        return Path(from_env)
    for candidate in _DEFAULT_INVENTORY_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    return Path(_DEFAULT_INVENTORY_CANDIDATES[0])


def resolve_ledger_path(explicit: Path | None, inventory_path: Path) -> Path:
    """`--ledger`, else $KUBEFERRY_LEDGER, else `.kubeferry/ledger.sqlite` next to the inventory."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(LEDGER_ENV)
    if from_env:
        return Path(from_env)
    base = inventory_path if inventory_path.is_dir() else inventory_path.parent
    return base / ".kubeferry" / "ledger.sqlite"
