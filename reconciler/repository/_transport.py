"""The transport contract every storage backend implements, and its small value types."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key (relative to the backend root), size in bytes, mtime (UTC)."""

    key: str
    size: int
    modified: datetime


class Phase(StrEnum):
    """Velero-like availability phase of a repository."""

    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"


@dataclass(frozen=True, slots=True)
class Availability:
    """The result of `RepositoryBackend.check()`: a phase plus a one-line message."""

    phase: Phase
    message: str

    @property
    def available(self) -> bool:
        return self.phase is Phase.AVAILABLE

    @classmethod
    def ok(cls, message: str) -> Availability:
        return cls(Phase.AVAILABLE, message)

    @classmethod
    def unavailable(cls, message: str) -> Availability:
        return cls(Phase.UNAVAILABLE, message)


@runtime_checkable
class RepositoryBackend(Protocol):
    """Byte storage under '/'-separated relative keys (see `validate_key`).

    Implementations are safe to share between threads. Failures raise
    `RepositoryError` subclasses whose messages never contain credentials.
    """

    @property
    def location(self) -> str:
        """Where the objects live, for messages: 'file:///srv/repo', 's3://bucket/prefix'."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object; readers see old or new, never part."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store `data` only if `key` does not exist; True if this call created it."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise `ObjectNotFound` if it does not exist."""
        ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes ``[start, start + length)`` of the object; `ObjectNotFound` if it does not
        exist, `RepositoryError` if it is shorter than that."""
        ...

    @property
    def cheap_ranges(self) -> bool:
        """Whether reading many small ranges costs about what reading whole objects does
        (local disks: yes; object stores, where each request costs a round trip: no)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object exists under exactly `key`."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size and mtime of one object; raise `ObjectNotFound` if it does not exist."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a plain string prefix), sorted by key."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def check(self) -> Availability:
        """Whether the repository is reachable and writable; never raises for I/O problems."""
        ...
