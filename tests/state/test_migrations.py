"""The models and the migrations describe the same schema, and migrations run both ways."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from state import Ledger, head_revision
from state._engine import writer
from state._migrate import _config
from state._models import LEDGER_METADATA


def test_models_and_migrations_agree(ledger: Ledger) -> None:
    with ledger._engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, LEDGER_METADATA)
    assert differences == []


def test_a_new_ledger_is_at_the_head_and_has_a_serial_row(ledger: Ledger) -> None:
    assert head_revision() == "0002"
    assert ledger.schema_revision == "0002"
    assert ledger.serial == 0


def test_downgrade_to_base_and_upgrade_again(ledger_path: Path) -> None:
    ledger = Ledger.open(ledger_path)
    try:
        with writer(ledger._engine).connect() as connection, connection.begin():
            command.downgrade(_config(connection), "base")
        with ledger._engine.connect() as connection:
            tables = connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
            ).fetchall()
        assert tables == []
    finally:
        ledger.close()
    with Ledger.open(ledger_path) as again:  # opening migrates back up
        assert again.schema_revision == head_revision()
        again.upsert_cluster("east")
        assert again.serial == 1
