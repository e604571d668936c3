"""VirtualTable: a keyboard-driven table that renders only the rows on screen.

Textual's DataTable measures every cell of every row it is given (about 0.2 ms a row), so
refilling it with 5,000 filtered jobs on each keystroke would take a second. This table
keeps plain tuples of strings, fixed column widths and a header line, and draws lines on
demand (the Line API), so ``set_rows`` is O(rows) list work and a redraw is O(screen).

Keys: up/down (k/j), page up/down, home/end (g/G), left/right scroll sideways. Enter posts
``VirtualTable.Selected``; every cursor move posts ``VirtualTable.Highlighted``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

CellStyler = Callable[[int, str], str | None]
"""(column index, cell text) -> a component class name suffix (e.g. "bad") or None."""


@dataclass(frozen=True)
class Column:
    label: str
    width: int


class VirtualTable(ScrollView, can_focus=True):
    """Rows of strings with a fixed header; only visible lines are rendered."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--good",
        "virtual-table--warn",
        "virtual-table--bad",
        "virtual-table--muted",
        "virtual-table--empty",
    }
    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        background: $surface;
    }
    VirtualTable > .virtual-table--header {
        text-style: bold;
        background: $panel;
        color: $text;
    }
    VirtualTable > .virtual-table--cursor {
        background: $secondary 40%;
    }
    VirtualTable:focus > .virtual-table--cursor {
        background: $accent;
        color: $text;
        text-style: bold;
    }
    VirtualTable > .virtual-table--good { color: $success; }
    VirtualTable > .virtual-table--warn { color: $warning; }
    VirtualTable > .virtual-table--bad { color: $error; text-style: bold; }
    VirtualTable > .virtual-table--muted { color: $text-muted; }
    VirtualTable > .virtual-table--empty { color: $text-muted; text-style: italic; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        def __init__(self, table: VirtualTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Selected(Message):
        def __init__(self, table: VirtualTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        styler: CellStyler | None = None,
        empty_text: str = "nothing to show",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = tuple(columns)
        self.styler = styler
        self.empty_text = empty_text
        self._rows: list[tuple[str, ...]] = []
        self._keys: list[str] = []
        self._total_width = sum(column.width + 1 for column in self.columns)
        self._header = self._line(tuple(column.label for column in self.columns))

    # -- data ------------------------------------------------------------------------------

    def set_rows(self, rows: Sequence[tuple[str, ...]], keys: Sequence[str]) -> None:
        """Replace the rows; the cursor stays on the same key when it is still shown."""
        current = self.cursor_key
        self._rows = list(rows)
        self._keys = list(keys)
        self.virtual_size = Size(self._total_width, len(self._rows) + 1)
        index = self._keys.index(current) if current in self._keys else 0
        self._move_cursor(index, announce=current != self.cursor_key_at(index))
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[tuple[str, ...]]:
        return list(self._rows)

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def cursor_key_at(self, index: int) -> str | None:
        return self._keys[index] if 0 <= index < len(self._keys) else None

    @property
    def cursor_key(self) -> str | None:
        return self.cursor_key_at(self.cursor_row)

    def move_to_key(self, key: str) -> bool:
        if key not in self._keys:
            return False
        self._move_cursor(self._keys.index(key))
        return True

    # -- cursor ----------------------------------------------------------------------------

    def _move_cursor(self, index: int, *, announce: bool = True) -> None:
        index = max(0, min(index, len(self._rows) - 1)) if self._rows else 0
        changed = index != self.cursor_row
        self.cursor_row = index
        self._scroll_to_cursor()
        self.refresh()
        if changed or announce:
            self.post_message(self.Highlighted(self, self.cursor_key))

    @property
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        visible = self._page
        top = int(self.scroll_y)
        if self.cursor_row < top:
            top = self.cursor_row
        elif self.cursor_row > top + visible - 1:
            top = self.cursor_row - visible + 1
        if top != int(self.scroll_y):
            self.scroll_to(y=top, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self._move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move_cursor(self.cursor_row - self._page)

    def action_page_down(self) -> None:
        self._move_cursor(self.cursor_row + self._page)

    def action_first(self) -> None:
        self._move_cursor(0)

    def action_last(self) -> None:
        self._move_cursor(len(self._rows) - 1)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = int(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self._rows):
            self._move_cursor(index)
            if event.chain > 1:
                self.action_select()

    def on_resize(self) -> None:
        self._scroll_to_cursor()

    # -- rendering ---------------------------------------------------------------------------

    def _line(self, cells: tuple[str, ...]) -> list[tuple[str, str | None]]:
        """(text, style name) pieces of one line, each cell padded to its column width."""
        pieces: list[tuple[str, str | None]] = []
        for index, column in enumerate(self.columns):
            text = cells[index] if index < len(cells) else ""
            if cell_len(text) > column.width:
                text = set_cell_size(text, max(0, column.width - 1)) + "…"
            else:
                text = set_cell_size(text, column.width)
            style = self.styler(index, cells[index]) if self.styler and index < len(cells) else None
            pieces.append((text + " ", style))
        return pieces

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"virtual-table--{name}")

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = int(self.scroll_x)
        base = self.rich_style
        if y == 0:
            header = self._style("header")
            segments = [Segment(text, base + header) for text, _ in self._header]
            return self._crop(segments, scroll_x, width, base + header)
        index = int(self.scroll_y) + y - 1
        if not self._rows:
            if y == 1:
                return Strip(
                    [Segment(self.empty_text, base + self._style("empty"))]
                ).extend_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= len(self._rows):
            return Strip.blank(width, base)
        row_style = base
        if index == self.cursor_row:
            row_style = base + self._style("cursor")
        segments = []
        for text, style in self._line(self._rows[index]):
            cell_style = row_style
            if style is not None:
                cell_style = row_style + self._style(style)
                if index == self.cursor_row:
                    cell_style = cell_style + Style(bgcolor=row_style.bgcolor)
            segments.append(Segment(text, cell_style))
        return self._crop(segments, scroll_x, width, row_style)

    def _crop(self, segments: list[Segment], scroll_x: int, width: int, fill: Style) -> Strip:
        strip = Strip(segments).extend_cell_length(self._total_width, fill)
        strip = strip.crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, fill)
