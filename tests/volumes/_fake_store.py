"""An in-memory stand-in for `VolumeStore` (same methods), for tree tests without a repository."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Literal

import blake3

from reconciler.repository import IntegrityError, SnapshotNotFound
from reconciler.repository._errors import RepositoryError

_KEY = bytes(range(32))


class FakeStore:
    """Dict-backed chunks and manifests; `get` verifies like the real store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.chunks: dict[str, bytes] = {}
        self.durable: set[str] = set()  # chunks covered by a flush
        self.manifests: dict[str, bytes] = {}
        self.adds = 0
        self.flushes = 0
        self.gets = 0
        self.locks: list[str] = []

    def chunk_id(self, data: bytes) -> str:
        return blake3.blake3(data, key=_KEY).hexdigest()

    def has(self, chunk_id: str) -> bool:
        return chunk_id in self.chunks

    def add(self, chunk_id: str, data: bytes) -> bool:
        with self._lock:
            self.adds += 1
            if chunk_id in self.chunks:
                return False
            self.chunks[chunk_id] = bytes(data)
            return True

    def flush(self) -> None:
        with self._lock:
            self.flushes += 1
            self.durable.update(self.chunks)

    def crash(self) -> None:
        """Forget what no flush covered (a killed process)."""
        with self._lock:
            self.chunks = {k: v for k, v in self.chunks.items() if k in self.durable}

    def get(self, chunk_id: str) -> bytes:
        with self._lock:
            self.gets += 1
            data = self.chunks.get(chunk_id)
        if data is None:
            raise RepositoryError(f"no chunk {chunk_id}")
        if self.chunk_id(data) != chunk_id:
            raise IntegrityError(f"chunk {chunk_id} does not match its id")
        return data

    def tamper(self, chunk_id: str) -> None:
        data = bytearray(self.chunks[chunk_id])
        data[len(data) // 2] ^= 0x01
        self.chunks[chunk_id] = bytes(data)

    def save_manifest(self, manifest: bytes, *, snapshot_id: str) -> None:
        self.flush()
        if snapshot_id in self.manifests:
            raise RepositoryError(f"snapshot {snapshot_id} exists")
        self.manifests[snapshot_id] = bytes(manifest)

    def load_manifest(self, snapshot_id: str) -> bytes:
        try:
            return self.manifests[snapshot_id]
        except KeyError:
            raise SnapshotNotFound(f"no volume snapshot {snapshot_id!r}") from None

    def list_snapshots(self) -> list[str]:
        return sorted(self.manifests)

    @contextlib.contextmanager
    def lock(self, kind: Literal["shared", "exclusive"]) -> Iterator[str]:
        self.locks.append(kind)
        yield kind
