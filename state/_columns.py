"""Column types shared by the ledger's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of time the ledger stores)."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A DATETIME stored as naive UTC and read back timezone-aware.

    SQLite has no time zones; storing every time in UTC keeps rows comparable and sortable,
    and refusing naive datetimes stops local times from slipping in unnoticed.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the ledger stores timezone-aware datetimes only, got {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def enum_type(enum_class: type[Enum]) -> sa.Enum:
    """Store an enum by its value as a short VARCHAR (readable with the sqlite3 shell).

    Not a native enum and no CHECK constraint, so adding a member later needs no table
    rebuild; SQLAlchemy still rejects unknown values on write.
    """
    return sa.Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )
