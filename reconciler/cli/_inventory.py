"""`kubeferry validate` and `kubeferry schema`: check the inventory, publish its schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reconciler._paths import resolve_inventory_path
from reconciler.errors import KubeferryError
from reconciler.inventory import InventoryError, json_schema, load_inventory


def register(root: typer.Typer) -> None:
    """Add this module's top-level commands to the root app."""
    root.command("validate")(validate)
    root.command("schema")(schema)


InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Inventory file or directory. Default: $KUBEFERRY_INVENTORY, ./kubeferry.yaml, "
        "./inventory/.",
        show_default=False,
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write to this file instead of stdout.", show_default=False),
]


def validate(inventory: InventoryOption = None) -> None:
    """Check the inventory; print every error as `file:line:col: Kind/name.field: message`."""
    path = resolve_inventory_path(inventory)
    try:
        loaded = load_inventory(path)
    except InventoryError as error:
        # all issues, one per line (editors and CI parse file:line:col), on stderr
        for issue in error.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"inventory OK: {loaded.summary()}")


def schema(out: OutOption = None) -> None:
    """Print the JSON Schema of inventory documents (for editors and CI)."""
    text = schema_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise KubeferryError(f"cannot write {out}: {error.strerror or error}") from None
    typer.echo(f"wrote {out}", err=True)


def schema_text() -> str:
    """The schema exactly as `kubeferry schema` writes it (and examples/ commits it)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
