"""Alembic environment of the ledger.

Run only through ``state._migrate``, which passes an open connection (already inside a
BEGIN IMMEDIATE transaction) in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from state._columns import UTCDateTime
from state._models import LEDGER_METADATA


def _render_item(kind: str, item: Any, _context: Any) -> str | Literal[False]:
    """Write plain SQLAlchemy types into new revisions, so they never import our models."""
    if kind == "type":
        if isinstance(item, AutoString):
            return "sa.String()"
        if isinstance(item, UTCDateTime):
            return "sa.DateTime()"
        if isinstance(item, sa.Enum) and not item.native_enum:
            return f"sa.String(length={item.length})"
    return False


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the ledger's migrations through state._migrate, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=LEDGER_METADATA,
    render_as_batch=True,  # SQLite cannot ALTER most things: copy-and-move tables instead
    render_item=_render_item,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
