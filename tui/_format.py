"""Short, stable text for times, ages and sizes (80 columns leave little room)."""

from __future__ import annotations

from datetime import datetime


def duration(seconds: float) -> str:
    """45s, 12m, 3h5m (under 10 h), 14h, 3d, 6w."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        hours, rest = divmod(seconds, 3600)
        minutes = rest // 60
        return f"{hours}h{minutes}m" if hours < 10 and minutes else f"{hours}h"
    if seconds < 14 * 86400:
        return f"{seconds // 86400}d"
    return f"{seconds // (7 * 86400)}w"


def ago(now: datetime, then: datetime | None) -> str:
    """'5m ago', '-' when never."""
    if then is None:
        return "-"
    return f"{duration((now - then).total_seconds())} ago"


def until(now: datetime, then: datetime | None) -> str:
    """'in 10m', 'now' when due, '-' when not scheduled."""
    if then is None:
        return "-"
    seconds = (then - now).total_seconds()
    if seconds <= 0:
        return "now"
    return f"in {duration(seconds)}"


def size(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # unreachable


def timestamp(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")
