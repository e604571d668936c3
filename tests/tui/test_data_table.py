"""SettledDataTable: rows painted before DataTable measured them are repainted at full width.

On a busy machine the history table was seen stuck at the header's widths ("Compl" for
"Completed") until the cursor moved over a row: DataTable measures new rows when idle and
its line cache outlives the measurement. The paint-before-idle order is forced here.
"""

from __future__ import annotations

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.widgets.data_table import SettledDataTable

pytestmark = pytest.mark.anyio


class _TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield SettledDataTable(id="table")


async def test_rows_painted_before_measuring_are_repainted_at_their_widths() -> None:
    app = _TableApp()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one("#table", DataTable)
        table.add_columns("ID", "Phase")
        await pilot.pause()
        table.add_row("12", "Completed")
        table.add_row("7", "PartiallyFailed")
        painted_early = [table.render_line(y).text.rstrip() for y in (1, 2)]
        assert painted_early == [" 12  Compl", " 7   Parti"]  # the header's widths

        await table._on_idle(events.Idle())  # the measurement DataTable does when idle

        assert [table.render_line(y).text.split() for y in (1, 2)] == [
            ["12", "Completed"],
            ["7", "PartiallyFailed"],
        ]
