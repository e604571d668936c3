"""What a broken inventory reports: one issue per problem, each with its source position."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import KubeferryError


@dataclass(frozen=True)
class InventoryIssue:
    """One problem in the inventory, located at ``file:line:column`` (1-based).

    ``line`` and ``column`` are None for problems with the file as a whole (missing,
    unreadable). ``field`` is the object and field path, e.g.
    ``ReplicationJob/web.spec.retention.keepLast``; empty for YAML syntax errors.
    Messages never contain secret values.
    """

    file: Path
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}:{self.column if self.column is not None else 1}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class InventoryError(KubeferryError):
    """The inventory is invalid; ``issues`` lists every problem found (never empty)."""

    def __init__(self, issues: Sequence[InventoryIssue]) -> None:
        if not issues:
            raise ValueError("InventoryError needs at least one issue")
        self.issues: tuple[InventoryIssue, ...] = tuple(issues)
        more = len(self.issues) - 1
        hint = f"{more} more; run 'kubeferry validate' to list all" if more else None
        super().__init__(str(self.issues[0]), hint=hint)
