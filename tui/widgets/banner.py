"""The banner: one line on top of every full screen.

Shows the inventory path, which clusters are production (``protected: true``) and the
``[read-only]`` marker. The app keeps it current (``KubeferryApp.banner_parts``) and mounts one
into every full screen that does not compose its own, so screens need not know about it.
The markers always fit: when the line is too long, the path is shortened from the left.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Static

_SEPARATOR = "  |  "


def banner_line(path: str, markers: list[str], width: int) -> str:
    """'kubeferry  PATH  |  MARKER ...' in ``width`` cells, the path shortened first."""
    tail = "".join(f"{_SEPARATOR}{marker}" for marker in markers)
    head = "kubeferry  "
    room = width - cell_len(head) - cell_len(tail) - 2  # padding of the widget
    if room < cell_len(path):
        path = "…" + path[len(path) - max(room - 1, 0) :] if room > 1 else ""
    return f"{head}{path}{tail}"


class Banner(Static):
    """Inventory path, PROTECTED clusters, [read-only]; text comes from the app."""

    DEFAULT_CSS = """
    Banner {
        dock: top;
        height: 1;
        width: 100%;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self) -> None:
        super().__init__("", markup=False, classes="banner")

    def on_mount(self) -> None:
        self.refresh_text()

    def on_resize(self) -> None:
        self.refresh_text()

    def refresh_text(self) -> None:
        path, markers = getattr(self.app, "banner_parts", ("", []))
        protected = bool(getattr(self.app, "protected_clusters", ()))
        self.set_class(protected, "-protected")
        width = self.size.width or self.app.size.width
        self.update(banner_line(path, markers, width))
