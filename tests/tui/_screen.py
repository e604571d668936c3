"""What a person sees: the current screen of a running app as plain text lines."""

from __future__ import annotations

from textual.app import App


def screen_text(app: App[object]) -> str:
    """The whole terminal as text (modal screens included), one line per terminal row."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip).rstrip() for strip in strips)
