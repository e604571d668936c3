"""Reusable widgets of the kubeferry TUI."""

from tui.widgets.banner import Banner
from tui.widgets.confirm import ConfirmScreen

__all__ = ["Banner", "ConfirmScreen"]
