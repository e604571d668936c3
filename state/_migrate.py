"""Alembic migrations, run on open and configured in code (no alembic.ini at run time).

To add a revision after changing ``_models.py``::

    .venv/bin/python -c 'from state._migrate import new_revision; new_revision("what changed")'

which autogenerates ``migrations/versions/NNNN_what_changed.py`` against a ledger migrated
to the current head; review it before committing (SQLite changes run in batch mode).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from state._engine import create_ledger_engine, set_foreign_keys, writer
from state._errors import LedgerSchemaError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection  # read by migrations/env.py
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the ledger has no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> str:
    """Bring the ledger's schema to the newest revision; returns that revision.

    The whole upgrade is one BEGIN IMMEDIATE transaction, so two processes opening a new
    ledger at once do not both migrate: the second waits, then finds the schema current.
    """
    scripts = _scripts()
    head = head_revision()
    known = {script.revision for script in scripts.walk_revisions()}
    with writer(engine).connect() as connection:
        # batch mode rebuilds tables (copy, drop, rename): foreign keys would fire midway
        set_foreign_keys(connection, enabled=False)
        try:
            with connection.begin():
                current = current_revision(connection)
                if current == head:
                    return head
                if current is not None and current not in known:
                    raise LedgerSchemaError(
                        f"the ledger's schema revision {current!r} is newer than this "
                        f"kubeferry knows (newest: {head!r}); upgrade kubeferry"
                    )
                command.upgrade(_config(connection), "head")
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise LedgerSchemaError(
                        f"migrating the ledger to {head!r} broke {len(broken)} references; "
                        f"nothing was changed"
                    )
        finally:
            set_foreign_keys(connection, enabled=True)
    return head


def new_revision(message: str) -> Path:
    """Autogenerate the next numbered revision from the models (a developer tool)."""
    scripts = _scripts()
    next_number = len(list(scripts.walk_revisions())) + 1
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_ledger_engine(Path(scratch) / "ledger.sqlite", busy_timeout=5)
        try:
            upgrade_to_head(engine)
            with engine.connect() as connection:
                script = command.revision(
                    _config(connection),
                    message=message,
                    autogenerate=True,
                    rev_id=f"{next_number:04d}",
                )
        finally:
            engine.dispose()
    assert script is not None
    assert not isinstance(script, list)
    return Path(script.path)
