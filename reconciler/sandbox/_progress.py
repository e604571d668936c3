"""How the sandbox tells its caller what it is doing (the CLI renders it with rich)."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress; implementations must be cheap, they are called per output line."""

    def step(self, message: str) -> None:
        """A new step begins (e.g. "Compiling kube-apiserver")."""

    def detail(self, message: str) -> None:
        """A line of output of the current step (e.g. the build tool's latest line)."""


class SilentReporter:
    """Discards progress (the default for library callers and tests)."""

    def step(self, message: str) -> None:
        return None

    def detail(self, message: str) -> None:
        return None
