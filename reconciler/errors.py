"""Errors that reach the user as one clear line (no traceback)."""

from __future__ import annotations


class KubeferryError(Exception):
    """An expected failure: bad input, a missing prerequisite, an unreachable peer.

    The CLI prints ``str(error)`` on one line (plus the hint, if any) and exits with
    ``exit_code``. Messages never contain credentials or secret values.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class PrerequisiteError(KubeferryError):
    """Something this machine lacks (a package, root, disk space); the hint says how to fix it."""
