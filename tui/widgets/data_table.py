"""SettledDataTable: Textual's DataTable without rows stuck at stale column widths."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.widgets import DataTable


class SettledDataTable(DataTable[Any]):
    """A DataTable that repaints its rows once their column widths are known.

    DataTable (Textual 8.2) measures added rows when it is idle. A frame painted before that
    (a busy machine: seen on CI) draws the rows at the header's widths ("Compl" for
    "Completed"), and its line caches do not key on the widths, so the clipped rows stay on
    screen after the measurement. After a measurement that widened a column: drop the
    caches and repaint.
    """

    async def _on_idle(self, event: events.Idle) -> None:
        before = [column.get_render_width(self) for column in self.ordered_columns]
        # DataTable's own _on_idle runs after this one too; by then nothing is left to do
        await super()._on_idle(event)
        if [column.get_render_width(self) for column in self.ordered_columns] != before:
            self._clear_caches()
            self.refresh()
