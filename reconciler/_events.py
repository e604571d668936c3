"""Typed events that the CLI progress display, the ledger and the TUI all consume."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Level = Literal["info", "warning", "error"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event; ``address`` is the inventory object it concerns (``Kind/name``)."""

    address: str = ""
    run_id: int | None = None
    at: datetime = field(default_factory=_now)

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def level(self) -> Level:
        return "info"

    def message(self) -> str:
        return self.kind

    def data(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("at")
        return values


@dataclass(frozen=True, kw_only=True)
class ActionStarted(Event):
    symbol: str
    action: str

    def message(self) -> str:
        return f"{self.symbol} {self.address}: {self.action} started"


@dataclass(frozen=True, kw_only=True)
class ActionFinished(Event):
    symbol: str
    action: str
    outcome: Literal["done", "failed", "blocked", "interrupted"]
    detail: str = ""

    @property
    def level(self) -> Level:
        return "info" if self.outcome == "done" else "error"

    def message(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.symbol} {self.address}: {self.action} {self.outcome}{tail}"


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    operation: str
    total_items: int = 0

    def message(self) -> str:
        return f"{self.address}: {self.operation} run started"


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    items_done: int
    total_items: int
    bytes_done: int = 0
    bytes_total: int = 0

    def message(self) -> str:
        return f"{self.address}: {self.items_done}/{self.total_items} items"


@dataclass(frozen=True, kw_only=True)
class ItemDone(Event):
    item: str

    def message(self) -> str:
        return f"{self.address}: {self.item}"


@dataclass(frozen=True, kw_only=True)
class ItemWarning(Event):
    text: str
    item: str = ""

    @property
    def level(self) -> Level:
        return "warning"

    def message(self) -> str:
        where = f" ({self.item})" if self.item else ""
        return f"{self.address}: {self.text}{where}"


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    operation: str
    phase: str
    detail: str = ""

    @property
    def level(self) -> Level:
        return "info" if self.phase == "Completed" else "error"

    def message(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.address}: {self.operation} {self.phase}{tail}"


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers; thread-safe because engines run in worker threads."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(event)
