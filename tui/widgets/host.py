"""What the plan / run / history / snapshots screens need from the app, without importing it.

``KubeferryApp`` (``tui/app.py``) carries ``workspace``, ``read_only`` and ``poll_interval``;
screens reach them through ``self.app``. Reading them here (typed, with defaults) keeps the
screens free of an import cycle with the app module and lets tests host a screen in a small
app of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from textual.dom import DOMNode

from reconciler.workspace import Workspace


def workspace_of(node: DOMNode) -> Workspace:
    """The app's workspace (inventory + ledger paths)."""
    found = getattr(node.app, "workspace", None)
    if not isinstance(found, Workspace):
        raise RuntimeError("the app has no workspace")
    return found


def is_read_only(node: DOMNode) -> bool:
    """``kubeferry tui --read-only``: apply, restore, cancel and friends are hidden and refused."""
    return bool(getattr(node.app, "read_only", False))


def poll_interval_of(node: DOMNode, default: float = 2.0) -> float:
    """Seconds between ledger polls (tailing runs, refreshing history)."""
    value = getattr(node.app, "poll_interval", default)
    return float(value) if isinstance(value, int | float) and value > 0 else default


def human_bytes(count: int | None) -> str:
    """``1.5 MiB``; binary units as the CLI prints them; empty for None."""
    if count is None:
        return ""
    if count < 1024:
        return f"{count} B"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def human_duration(seconds: float | None) -> str:
    """``4s``, ``2m05s``, ``1h02m`` (the CLI's wording); empty for None."""
    if seconds is None:
        return ""
    minutes, secs = divmod(round(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def short_time(moment: datetime | None, *, now: datetime | None = None) -> str:
    """``13:02:11`` today, ``11-24 13:02`` otherwise (UTC, as the ledger stores it)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return moment.strftime("%H:%M:%S") if moment.date() == today else moment.strftime("%m-%d %H:%M")


def full_time(moment: datetime | None) -> str:
    """``2026-11-24 13:02:11Z``; empty for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
