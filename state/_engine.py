"""The SQLite engine: WAL, busy timeout, foreign keys, and explicit BEGINs.

The sqlite3 module is put in autocommit mode and SQLAlchemy emits BEGIN itself, so that
write transactions can start with BEGIN IMMEDIATE: they take SQLite's write lock up front,
which makes a read-then-write (e.g. "is the lock free? then take it") atomic across
processes and avoids the deadlock of two deferred transactions upgrading to writers at once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

# Connection execution option that marks a write transaction (see _begin).
WRITE_OPTION = "kubeferry_ledger_write"


def create_ledger_engine(path: Path, busy_timeout: float) -> Engine:
    """One engine per ledger, shared by every thread (each session takes its own connection)."""
    engine = sa.create_engine(
        f"sqlite:///{path}",
        # connections move between worker threads; each is used by one session at a time
        connect_args={"check_same_thread": False},
        # threads never wait on the pool: SQLite itself serializes the writers
        pool_size=5,
        max_overflow=-1,
    )
    busy_ms = max(0, int(busy_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = bool(connection.get_execution_options().get(WRITE_OPTION))
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (same pool, same events) whose transactions begin IMMEDIATE."""
    return engine.execution_options(**{WRITE_OPTION: True})


def set_foreign_keys(connection: Connection, enabled: bool) -> None:
    """Switch foreign-key enforcement on one connection; SQLite ignores it inside a transaction."""
    if connection.in_transaction():
        raise RuntimeError("PRAGMA foreign_keys has no effect inside a transaction")
    raw: Any = connection.connection.driver_connection
    raw.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")
