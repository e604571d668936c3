"""Per-job progress rows for the run screen: items and bytes, rate, ETA.

``JobProgress`` is one row (two lines at 80 columns): what runs and its state on the first,
a bar and ``12/40 items · 1.2 MiB · 4.0/s · 310 KiB/s · ETA 7s`` on the second. Rates are
measured over a sliding window (``RateMeter``), so a stall shows as a falling rate.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from tui.widgets.host import human_bytes, human_duration

_STATE_STYLES = {
    "pending": "dim",
    "not run": "dim",
    "running": "cyan",
    "done": "green",
    "Completed": "green",
    "PartiallyFailed": "yellow",
    "failed": "red",
    "Failed": "red",
    "blocked": "red",
    "interrupted": "yellow",
    "Interrupted": "yellow",
}


@dataclass
class RateMeter:
    """Items/s and bytes/s over the last ``window`` seconds of samples."""

    window: float = 10.0
    samples: deque[tuple[float, int, int]] = field(default_factory=deque)

    def reset(self) -> None:
        self.samples.clear()

    def add(self, at: float, items: int, size: int) -> None:
        self.samples.append((at, items, size))
        while len(self.samples) > 2 and at - self.samples[0][0] > self.window:
            self.samples.popleft()

    def rates(self) -> tuple[float | None, float | None]:
        """(items per second, bytes per second); None until two samples span some time."""
        if len(self.samples) < 2:
            return None, None
        (t0, i0, b0), (t1, i1, b1) = self.samples[0], self.samples[-1]
        span = t1 - t0
        if span <= 0:
            return None, None
        return max(i1 - i0, 0) / span, max(b1 - b0, 0) / span


def eta_seconds(done: int, total: int | None, rate: float | None) -> float | None:
    """Seconds left at ``rate`` per second; None when the total or the rate is unknown."""
    if not total or rate is None or rate <= 0 or done >= total:
        return None
    return (total - done) / rate


def progress_text(
    items_done: int,
    total_items: int | None,
    bytes_done: int,
    bytes_total: int | None,
    item_rate: float | None,
    byte_rate: float | None,
) -> str:
    """``12/40 items · 1.2 MiB · 4.0/s · 310 KiB/s · ETA 7s`` (parts left out when unknown)."""
    parts = [f"{items_done}/{total_items} items" if total_items else f"{items_done} items"]
    if bytes_done or bytes_total:
        parts.append(
            f"{human_bytes(bytes_done)}/{human_bytes(bytes_total)}"
            if bytes_total
            else human_bytes(bytes_done)
        )
    if item_rate is not None:
        parts.append(f"{item_rate:.1f}/s")
    if byte_rate:
        parts.append(f"{human_bytes(round(byte_rate))}/s")
    eta = eta_seconds(items_done, total_items, item_rate)
    if eta is None and bytes_total:
        eta = eta_seconds(bytes_done, bytes_total, byte_rate)
    if eta is not None:
        parts.append(f"ETA {human_duration(eta)}")
    return " · ".join(parts)


class JobProgress(Vertical):
    """One job (or action) of a run: title and state, a bar, counts, rate and ETA."""

    DEFAULT_CSS = """
    JobProgress {
        height: 2;
        width: 100%;
    }
    JobProgress > .job-title {
        height: 1;
        width: 100%;
    }
    JobProgress > Horizontal {
        height: 1;
        width: 100%;
    }
    JobProgress ProgressBar {
        width: 20;
        height: 1;
    }
    JobProgress ProgressBar Bar {
        width: 13;
    }
    JobProgress .job-stats {
        width: 1fr;
        height: 1;
    }
    """

    def __init__(self, address: str, symbol: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.address = address
        self.symbol = symbol
        self.operation = ""
        self.state = "pending"
        self.detail = ""
        self.run_id: int | None = None
        self.items_done = 0
        self.total_items: int | None = None
        self.bytes_done = 0
        self.bytes_total: int | None = None
        self.meter = RateMeter()

    def compose(self) -> ComposeResult:
        yield Static(self._title(), classes="job-title")
        with Horizontal():
            yield ProgressBar(total=None, show_eta=False, show_percentage=True)
            yield Static("", classes="job-stats", markup=False)

    # -- state --------------------------------------------------------------------------

    def _title(self) -> Text:
        title = Text()
        if self.symbol:
            title.append(f"{self.symbol:>3} ", style="bold")
        title.append(self.address, style="bold")
        if self.operation:
            title.append(f"  {self.operation}", style="dim")
        title.append(f"  {self.state}", style=_STATE_STYLES.get(self.state, ""))
        if self.detail:
            title.append(f": {self.detail}", style="dim")
        return title

    @property
    def stats_text(self) -> str:
        item_rate, byte_rate = self.meter.rates()
        if self.state not in ("running", "InProgress"):
            item_rate = byte_rate = None
        return progress_text(
            self.items_done,
            self.total_items,
            self.bytes_done,
            self.bytes_total,
            item_rate,
            byte_rate,
        )

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(".job-title", Static).update(self._title())
        self.query_one(".job-stats", Static).update(self.stats_text)
        bar = self.query_one(ProgressBar)
        if self.total_items:
            bar.update(total=self.total_items, progress=min(self.items_done, self.total_items))
        elif self.state not in ("running", "InProgress"):
            # nothing counted: full when done, empty otherwise (no busy animation)
            bar.update(total=1, progress=1 if self.state in ("done", "Completed") else 0)

    def on_mount(self) -> None:
        self._redraw()

    def set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.detail = detail
        self._redraw()

    def start_run(self, operation: str, run_id: int | None) -> None:
        """A new run (backup, then restore) of the same job starts from zero."""
        self.operation = operation
        self.run_id = run_id
        self.items_done = 0
        self.total_items = None
        self.bytes_done = 0
        self.bytes_total = None
        self.meter.reset()
        self.set_state("running")

    def update_counts(
        self,
        items_done: int,
        total_items: int | None,
        bytes_done: int = 0,
        bytes_total: int | None = None,
        *,
        at: float | None = None,
    ) -> None:
        self.items_done = items_done
        self.total_items = total_items or None
        self.bytes_done = bytes_done
        self.bytes_total = bytes_total or None
        self.meter.add(time.monotonic() if at is None else at, items_done, bytes_done)
        self._redraw()
