"""Deduplicated, compressed, encrypted chunk storage for volume data (format 1).

Layout inside the repository backend (see docs/repository-format.md, "Volume data")::

    volumes/packs/<2 hex>/<pack id>   chunks, each sealed on its own, then a sealed header
    volumes/index/<index id>          sealed binary index of the packs of one flush
    volumes/snapshots/<snapshot id>   sealed, zstd-compressed manifest: written LAST
    volumes/locks/<lock id>           sealed JSON lock (shared: backups, exclusive: prune)

A chunk is ``seal(zstd(data) or data, aad=b"chunk:" + id)`` and its id is the keyed
BLAKE3 of its plaintext, so a chunk moved to another id, a flipped byte or a foreign chunk
never comes back from `VolumeStore.get`.

The in-memory index maps a 32-byte chunk id to one int packing (pack number, offset,
length, raw length): about 150 bytes per chunk, 150 MB per million chunks (1 TB at 1 MiB).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import blake3
import zstandard

from reconciler.repository import (
    IntegrityError,
    ObjectInfo,
    ObjectNotFound,
    Repository,
    RepositoryCipher,
    RepositoryError,
    SnapshotExists,
    SnapshotNotFound,
)
from reconciler.repository._crypto import MAGIC, NONCE_SIZE, TAG_SIZE

log = logging.getLogger("kubeferry.volumes")

PACKS_PREFIX = "volumes/packs/"
INDEX_PREFIX = "volumes/index/"
SNAPSHOTS_PREFIX = "volumes/snapshots/"
LOCKS_PREFIX = "volumes/locks/"
CHUNK_AAD = b"chunk:"
SEAL_OVERHEAD = len(MAGIC) + NONCE_SIZE + TAG_SIZE
# level 2 stores within 0.2% of level 3's size on the bench's data at ~1.35x the speed
ZSTD_LEVEL = 2
DEFAULT_PACK_SIZE = 16 * 2**20
STALE_AFTER = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)
INDEX_EVERY_PACKS = 16
"""A backup writes an index file every this many packs (256 MiB by default), and at flush."""
MAX_INDEX_CHUNKS = 100_000
"""Chunks per index file written by prune/recover (a flush writes one file)."""

_ID_INFO = b"volume chunk id"
_PACK_MAGIC = b"KFP1"
_INDEX_MAGIC = b"KFI1"
_ENTRY = struct.Struct("<32sIII")  # chunk id, offset, sealed length, raw length
_PACK_RECORD = struct.Struct("<32sI")  # pack id, number of entries that follow
_TRAILER = struct.Struct("<I")  # sealed header length, the pack's last 4 bytes
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LOCK_ID = re.compile(r"[0-9a-f]{32}")
_MAX_CHUNK = 2**31
_M32 = 0xFFFFFFFF

Entry = tuple[bytes, int, int, int]
"""(chunk id, offset in the pack, sealed length, raw length)."""


class ChunkNotFound(RepositoryError):
    """No stored chunk with that id (or the pack that holds it is gone)."""


class RepositoryLocked(RepositoryError):
    """The volume data is locked by another process (a prune, or a backup during prune)."""


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A chunk of a file in a manifest: its id (64 hex) and raw length."""

    id: str
    length: int


@dataclass(frozen=True, slots=True)
class PruneStats:
    deleted_packs: int = 0
    """Packs without any referenced chunk, older than the grace period."""
    repacked_packs: int = 0
    """Mostly unused packs whose referenced chunks were copied into new packs."""
    orphan_packs: int = 0
    """Packs no index lists (left by interrupted backups), older than the grace period."""
    kept_packs: int = 0
    missing_packs: int = 0
    """Packs listed by an index but absent from the backend: dropped from the index."""
    written_packs: int = 0
    removed_chunks: int = 0
    freed_bytes: int = 0
    """Bytes of deleted packs minus bytes of new (repacked) packs."""
    index_files_written: int = 0
    index_files_deleted: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    packs: int
    stored_bytes: int
    """Total size of the pack objects (compressed, encrypted, with headers)."""
    chunks: int
    """Distinct chunks in the index."""
    raw_bytes: int
    """Total plaintext size of those chunks."""
    index_files: int
    snapshots: int


@dataclass(frozen=True, slots=True)
class LockInfo:
    key: str
    kind: str
    host: str
    pid: int
    created: datetime
    refreshed: datetime

    def stale(self, now: datetime) -> bool:
        return now - self.refreshed > STALE_AFTER

    def describe(self) -> str:
        return (
            f"{self.kind} lock {self.key} held by {self.host} pid {self.pid} since "
            f"{self.created.isoformat(timespec='seconds')}"
        )


def pack_key(pack_id: bytes) -> str:
    hexid = pack_id.hex()
    return f"{PACKS_PREFIX}{hexid[:2]}/{hexid}"


def _decode(value: int) -> tuple[int, int, int, int]:
    return value >> 96, (value >> 64) & _M32, (value >> 32) & _M32, value & _M32


def _id_bytes(chunk_id: str) -> bytes:
    if not isinstance(chunk_id, str) or len(chunk_id) != 64:
        raise RepositoryError(f"invalid chunk id {chunk_id!r}: 64 hex digits expected")
    try:
        return bytes.fromhex(chunk_id)
    except ValueError:
        raise RepositoryError(f"invalid chunk id {chunk_id!r}: 64 hex digits expected") from None


def _now() -> datetime:
    return datetime.now(UTC)


class _PackWriter:
    """A pack being filled: sealed chunk blobs in order, and their header entries."""

    __slots__ = ("blobs", "entries", "pack_id", "positions", "size")

    def __init__(self) -> None:
        self.pack_id = secrets.token_bytes(32)
        self.blobs: list[bytes] = []
        self.entries: list[Entry] = []
        self.positions: dict[bytes, int] = {}
        self.size = 0

    def append(self, chunk_id: bytes, blob: bytes, raw_length: int) -> None:
        self.positions[chunk_id] = len(self.blobs)
        self.entries.append((chunk_id, self.size, len(blob), raw_length))
        self.blobs.append(blob)
        self.size += len(blob)

    def build(self, cipher: RepositoryCipher) -> bytes:
        header = _PACK_MAGIC + b"".join(_ENTRY.pack(*entry) for entry in self.entries)
        sealed = cipher.seal(header, aad=pack_key(self.pack_id).encode())
        return b"".join([*self.blobs, sealed, _TRAILER.pack(len(sealed))])


class VolumeStore:
    """Chunks in packs, an index, manifests and locks under ``volumes/`` of a repository.

    `add`, `has` and `get` are thread-safe. A backup holds ``lock("shared")`` for its
    duration, adds chunks, then `save_manifest` (which flushes first). `prune` takes the
    exclusive lock itself; do not prune through a store that has unflushed chunks.
    """

    def __init__(
        self,
        repository: Repository,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        cache_bytes: int | None = None,
    ) -> None:
        cipher = repository.cipher
        if cipher is None:
            raise RepositoryError(
                "volume data needs an encrypted repository: set spec.encryption.passphraseFrom"
            )
        if not 1 <= pack_size <= _MAX_CHUNK:
            raise RepositoryError(f"pack size must be between 1 and {_MAX_CHUNK} bytes")
        self._repository = repository
        self._backend = repository.backend
        self._cipher = cipher
        self._id_key = cipher.subkey(_ID_INFO)
        self._pack_size = pack_size
        self._cache_bytes = cache_bytes if cache_bytes is not None else 4 * pack_size
        self._local = threading.local()
        # index state, guarded by _lock (reads of the dicts alone rely on the GIL)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._index: dict[bytes, int] = {}
        self._pack_ids: list[bytes] = []
        self._pack_numbers: dict[bytes, int] = {}
        self._seen_index: set[str] = set()
        self._loaded = False
        self._load_lock = threading.Lock()
        # this session's writes
        self._open: _PackWriter | None = None
        self._pending: dict[bytes, _PackWriter] = {}
        self._inflight: set[bytes] = set()
        self._uploading = 0
        self._unindexed: list[tuple[bytes, list[Entry]]] = []
        self._failed: str | None = None
        self._flush_lock = threading.Lock()
        # pack cache for get()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._loading: dict[int, threading.Event] = {}
        self._own_locks: set[str] = set()

    def __repr__(self) -> str:
        return f"VolumeStore({self._backend.location})"

    @property
    def location(self) -> str:
        return self._backend.location

    @property
    def pack_size(self) -> int:
        return self._pack_size

    # -- chunk ids, compression, sealing ------------------------------------------------

    def chunk_id(self, data: bytes) -> str:
        """The keyed BLAKE3 of `data` (64 hex): reveals nothing about it without the key."""
        return blake3.blake3(data, key=self._id_key).hexdigest()

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "cctx", None)
        if compressor is None:
            compressor = self._local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "dctx", None)
        if decompressor is None:
            decompressor = self._local.dctx = zstandard.ZstdDecompressor()
        return decompressor

    def _seal_chunk(self, chunk_id: bytes, data: bytes) -> bytes:
        compressed = self._compressor().compress(data)
        # stored uncompressed when zstd does not shrink it: the reader tells the two apart
        # by comparing the sealed plaintext's length with the raw length
        payload = compressed if len(compressed) < len(data) else data
        return self._cipher.seal(payload, aad=CHUNK_AAD + chunk_id)

    def _open_chunk(
        self, chunk_id: bytes, blob: bytes | memoryview, raw_length: int, where: str
    ) -> bytes:
        try:
            payload = self._cipher.open(blob, aad=CHUNK_AAD + chunk_id)
        except IntegrityError as error:
            raise IntegrityError(f"{where}: chunk {chunk_id.hex()}: {error.message}") from None
        if len(payload) < raw_length:
            try:
                data = self._decompressor().decompress(payload, max_output_size=raw_length)
            except zstandard.ZstdError as error:
                raise IntegrityError(
                    f"{where}: chunk {chunk_id.hex()} does not decompress: {error}"
                ) from None
        else:
            data = payload
        if len(data) != raw_length or blake3.blake3(data, key=self._id_key).digest() != chunk_id:
            raise IntegrityError(f"{where}: chunk {chunk_id.hex()} does not match its id")
        return data

    # -- index ----------------------------------------------------------------------------

    def _pack_number(self, pack_id: bytes) -> int:
        """Caller holds _lock."""
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = self._pack_numbers[pack_id] = len(self._pack_ids)
            self._pack_ids.append(pack_id)
        return number

    def _read_index_file(self, key: str) -> list[tuple[bytes, list[Entry]]]:
        where = f"{self.location}/{key}"
        try:
            plain = self._cipher.open(self._backend.get(key), aad=key.encode())
        except IntegrityError as error:
            raise IntegrityError(f"{where}: {error.message}") from None
        if plain[:4] != _INDEX_MAGIC:
            raise IntegrityError(f"{where}: not a volume index file")
        view = memoryview(plain)
        packs = []
        position = 4
        while position < len(plain):
            if position + _PACK_RECORD.size > len(plain):
                raise IntegrityError(f"{where}: truncated index file")
            pack_id, count = _PACK_RECORD.unpack_from(plain, position)
            position += _PACK_RECORD.size
            end = position + count * _ENTRY.size
            if end > len(plain):
                raise IntegrityError(f"{where}: truncated index file")
            packs.append((pack_id, list(_ENTRY.iter_unpack(view[position:end]))))
            position = end
        return packs

    def _index_files(self) -> list[ObjectInfo]:
        return [
            info
            for info in self._backend.list(INDEX_PREFIX)
            if _HEX64.fullmatch(info.key[len(INDEX_PREFIX) :])
        ]

    def _read_index_files(
        self, infos: list[ObjectInfo]
    ) -> Iterator[tuple[ObjectInfo, list[tuple[bytes, list[Entry]]] | RepositoryError]]:
        """Read index files in parallel; yields (info, packs or the error), in order."""

        def read(info: ObjectInfo) -> list[tuple[bytes, list[Entry]]] | RepositoryError:
            try:
                return self._read_index_file(info.key)
            except RepositoryError as error:  # ObjectNotFound included
                return error

        if len(infos) <= 1:
            yield from ((info, read(info)) for info in infos)
            return
        with ThreadPoolExecutor(max_workers=min(8, len(infos))) as pool:
            yield from zip(infos, pool.map(read, infos), strict=True)

    def _merge(self, packs: list[tuple[bytes, list[Entry]]]) -> None:
        index = self._index
        with self._lock:
            for pack_id, entries in packs:
                number = self._pack_number(pack_id) << 96
                for chunk_id, offset, length, raw in entries:
                    if chunk_id not in index:
                        index[chunk_id] = number | offset << 64 | length << 32 | raw

    def _refresh_index(self) -> None:
        """Load the index files not loaded yet (all of them the first time)."""
        new = [info for info in self._index_files() if info.key not in self._seen_index]
        for info, result in self._read_index_files(new):
            if isinstance(result, ObjectNotFound):
                continue  # replaced by a prune since the listing
            if isinstance(result, RepositoryError):
                raise result
            self._merge(result)
            self._seen_index.add(info.key)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                self._refresh_index()
                self._loaded = True

    def load_index(self) -> None:
        """(Re)load the whole index from the repository."""
        with self._load_lock:
            with self._lock:
                self._index = {}
                self._pack_ids = []
                self._pack_numbers = {}
                self._seen_index = set()
            with self._cache_lock:
                self._cache.clear()
                self._cached_bytes = 0
            self._refresh_index()
            self._loaded = True

    # -- writing --------------------------------------------------------------------------

    def has(self, chunk_id: str) -> bool:
        """Whether the chunk is stored (loaded index) or being stored by this session."""
        key = _id_bytes(chunk_id)
        self._ensure_loaded()
        return key in self._index or key in self._pending or key in self._inflight

    def add(self, chunk_id: str, data: bytes) -> bool:
        """Store a chunk (compressed, sealed, in a pack); False if it is already stored.

        `chunk_id` must be `chunk_id(data)` (`get` verifies it). A full pack is uploaded
        by the thread whose chunk filled it.
        """
        key = _id_bytes(chunk_id)
        if len(data) >= _MAX_CHUNK:
            raise RepositoryError(f"chunk of {len(data)} bytes is too large")
        self._ensure_loaded()
        with self._lock:
            self._raise_if_failed()
            if key in self._index or key in self._pending or key in self._inflight:
                return False
            self._inflight.add(key)
        try:
            blob = self._seal_chunk(key, data)
        except BaseException as error:
            with self._changed:
                self._inflight.discard(key)
                self._failed = f"storing chunk {chunk_id} failed: {error}"
                self._changed.notify_all()
            raise
        full = None
        with self._changed:
            self._inflight.discard(key)
            writer = self._open
            if writer is None:
                writer = self._open = _PackWriter()
            writer.append(key, blob, len(data))
            self._pending[key] = writer
            if writer.size >= self._pack_size:
                self._open = None
                self._uploading += 1
                full = writer
            self._changed.notify_all()
        if full is not None:
            self._upload(full)
        return True

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            raise RepositoryError(
                f"{self.location}: volume data of this session is incomplete ({self._failed})"
            )

    def _upload(self, writer: _PackWriter) -> None:
        """Store one pack (the caller counted it in _uploading)."""
        try:
            self._backend.put(pack_key(writer.pack_id), writer.build(self._cipher))
        except BaseException as error:
            with self._changed:
                self._uploading -= 1
                for chunk_id, *_ in writer.entries:
                    self._pending.pop(chunk_id, None)
                self._failed = f"uploading pack {writer.pack_id.hex()} failed: {error}"
                self._changed.notify_all()
            raise
        batch: list[tuple[bytes, list[Entry]]] = []
        with self._changed:
            number = self._pack_number(writer.pack_id) << 96
            index = self._index
            for chunk_id, offset, length, raw in writer.entries:
                if chunk_id not in index:
                    index[chunk_id] = number | offset << 64 | length << 32 | raw
                self._pending.pop(chunk_id, None)
            self._unindexed.append((writer.pack_id, writer.entries))
            if len(self._unindexed) >= INDEX_EVERY_PACKS:
                batch, self._unindexed = self._unindexed, []
        try:
            if batch:  # a long backup indexes as it goes: a retry after a crash reuses it
                keys = self._write_index(batch, split=False)
                with self._lock:
                    self._seen_index.update(keys)
        except BaseException:
            with self._lock:
                self._unindexed = batch + self._unindexed
            raise
        finally:
            with self._changed:
                self._uploading -= 1
                self._changed.notify_all()

    def flush(self) -> None:
        """Upload the open pack and write one index file for the packs stored since the
        last flush. Waits for chunks other threads are adding."""
        with self._flush_lock:
            with self._changed:
                while self._inflight or self._uploading:
                    self._changed.wait()
                self._raise_if_failed()
                writer, self._open = self._open, None
                if writer is not None:
                    self._uploading += 1
            if writer is not None:
                self._upload(writer)
            with self._lock:
                packs, self._unindexed = self._unindexed, []
            if not packs:
                return
            try:
                keys = self._write_index(packs, split=False)
            except BaseException:
                with self._lock:
                    self._unindexed = packs + self._unindexed
                raise
            with self._lock:
                self._seen_index.update(keys)

    def _write_index(self, packs: list[tuple[bytes, list[Entry]]], *, split: bool) -> list[str]:
        groups: list[list[tuple[bytes, list[Entry]]]] = [[]]
        count = 0
        for pack in packs:
            if split and count and count + len(pack[1]) > MAX_INDEX_CHUNKS:
                groups.append([])
                count = 0
            groups[-1].append(pack)
            count += len(pack[1])
        keys = []
        for group in groups:
            if not group:
                continue
            parts = [_INDEX_MAGIC]
            for pack_id, entries in group:
                parts.append(_PACK_RECORD.pack(pack_id, len(entries)))
                parts.extend(_ENTRY.pack(*entry) for entry in entries)
            key = INDEX_PREFIX + secrets.token_hex(32)
            self._backend.put(key, self._cipher.seal(b"".join(parts), aad=key.encode()))
            keys.append(key)
        return keys

    # -- reading --------------------------------------------------------------------------

    def get(self, chunk_id: str) -> bytes:
        """The chunk's data, verified against its id (`IntegrityError` otherwise)."""
        key = _id_bytes(chunk_id)
        self._ensure_loaded()
        value = self._index.get(key)
        if value is None:
            with self._lock:
                writer = self._pending.get(key)
                if writer is not None:
                    position = writer.positions[key]
                    blob, raw = writer.blobs[position], writer.entries[position][3]
            if writer is not None:
                return self._open_chunk(key, blob, raw, f"{self.location} (unsaved pack)")
            self._refresh_index()  # another backup may have stored it since we loaded
            value = self._index.get(key)
            if value is None:
                raise ChunkNotFound(f"{self.location}: no chunk {chunk_id} in the volume index")
        number, offset, length, raw = _decode(value)
        pack_id = self._pack_ids[number]
        where = f"{self.location}/{pack_key(pack_id)}"
        if self._backend.cheap_ranges:
            # a local disk: read just the chunk (whole packs re-read as a restore's access
            # order wandered between them cost 4x the pack bytes in the bench)
            return self._open_chunk(key, self._chunk_range(pack_id, offset, length), raw, where)
        data = self._pack_data(number, pack_id)
        if offset + length > len(data):
            raise IntegrityError(f"{where}: chunk {chunk_id} lies outside the pack (truncated?)")
        # a view, not a copy: the pack stays cached and the cipher reads the slice in place
        return self._open_chunk(key, memoryview(data)[offset : offset + length], raw, where)

    def _chunk_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        key = pack_key(pack_id)
        try:
            return self._backend.get_range(key, offset, length)
        except ObjectNotFound:
            raise ChunkNotFound(
                f"{self.location}: pack {pack_id.hex()} is missing (deleted or never uploaded)"
            ) from None

    def _pack_data(self, number: int, pack_id: bytes) -> bytes:
        while True:
            with self._cache_lock:
                data = self._cache.get(number)
                if data is not None:
                    self._cache.move_to_end(number)
                    return data
                event = self._loading.get(number)
                loader = event is None
                if event is None:
                    event = self._loading[number] = threading.Event()
            if not loader:
                event.wait()
                continue  # cached now, or the loader failed: try (and fail) ourselves
            try:
                try:
                    data = self._backend.get(pack_key(pack_id))
                except ObjectNotFound:
                    raise ChunkNotFound(
                        f"{self.location}: pack {pack_id.hex()} is missing "
                        "(deleted or never uploaded)"
                    ) from None
                with self._cache_lock:
                    self._cache[number] = data
                    self._cached_bytes += len(data)
                    while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                        _, evicted = self._cache.popitem(last=False)
                        self._cached_bytes -= len(evicted)
                return data
            finally:
                with self._cache_lock:
                    del self._loading[number]
                event.set()

    def _pack_entries(self, pack_id: bytes, data: bytes) -> list[Entry]:
        """The entries of a pack's own header (verifies header and trailer)."""
        key = pack_key(pack_id)
        where = f"{self.location}/{key}"
        if len(data) < _TRAILER.size:
            raise IntegrityError(f"{where}: truncated pack")
        (header_length,) = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
        start = len(data) - _TRAILER.size - header_length
        if start < 0:
            raise IntegrityError(f"{where}: bad pack trailer")
        try:
            header = self._cipher.open(data[start : len(data) - _TRAILER.size], aad=key.encode())
        except IntegrityError as error:
            raise IntegrityError(f"{where}: pack header: {error.message}") from None
        if header[:4] != _PACK_MAGIC or (len(header) - 4) % _ENTRY.size:
            raise IntegrityError(f"{where}: malformed pack header")
        entries: list[Entry] = list(_ENTRY.iter_unpack(memoryview(header)[4:]))
        if any(offset + length > start for _, offset, length, _ in entries):
            raise IntegrityError(f"{where}: pack header points outside the pack")
        return entries

    # -- manifests ------------------------------------------------------------------------

    @staticmethod
    def _snapshot_key(snapshot_id: str) -> str:
        if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.fullmatch(snapshot_id):
            raise RepositoryError(f"invalid volume snapshot id {snapshot_id!r}")
        return SNAPSHOTS_PREFIX + snapshot_id

    def save_manifest(self, manifest: bytes, *, snapshot_id: str) -> None:
        """Flush, then publish the manifest (zstd-compressed here, then sealed)."""
        key = self._snapshot_key(snapshot_id)
        self.flush()
        body = self._compressor().compress(manifest)
        if not self._backend.put_if_absent(key, self._cipher.seal(body, aad=key.encode())):
            raise SnapshotExists(f"{self.location}: volume snapshot {snapshot_id!r} exists")

    def load_manifest(self, snapshot_id: str) -> bytes:
        key = self._snapshot_key(snapshot_id)
        try:
            blob = self._backend.get(key)
        except ObjectNotFound:
            raise SnapshotNotFound(f"{self.location}: no volume snapshot {snapshot_id!r}") from None
        try:
            body = self._cipher.open(blob, aad=key.encode())
            return self._decompressor().decompressobj().decompress(body)
        except IntegrityError as error:
            raise IntegrityError(f"{self.location}/{key}: {error.message}") from None
        except zstandard.ZstdError as error:
            raise IntegrityError(f"{self.location}/{key}: does not decompress: {error}") from None

    def list_snapshots(self) -> list[str]:
        names = (info.key[len(SNAPSHOTS_PREFIX) :] for info in self._backend.list(SNAPSHOTS_PREFIX))
        return sorted(name for name in names if _SNAPSHOT_ID.fullmatch(name))

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a manifest; its data goes with the next `prune`."""
        self._backend.delete(self._snapshot_key(snapshot_id))

    # -- locks ----------------------------------------------------------------------------

    def _put_lock(self, key: str, kind: str, created: datetime) -> None:
        document = {
            "kind": kind,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "created": created.isoformat(),
            "refreshed": _now().isoformat(),
        }
        body = json.dumps(document).encode()
        self._backend.put(key, self._cipher.seal(body, aad=key.encode()))

    def list_locks(self) -> list[LockInfo]:
        """Every lock object; one that does not open counts as an exclusive lock."""
        locks = []
        for info in self._backend.list(LOCKS_PREFIX):
            if not _LOCK_ID.fullmatch(info.key[len(LOCKS_PREFIX) :]):
                continue
            try:
                document = json.loads(
                    self._cipher.open(self._backend.get(info.key), aad=info.key.encode())
                )
                locks.append(
                    LockInfo(
                        info.key,
                        str(document["kind"]),
                        str(document["host"]),
                        int(document["pid"]),
                        datetime.fromisoformat(document["created"]),
                        datetime.fromisoformat(document["refreshed"]),
                    )
                )
            except ObjectNotFound:
                continue
            except (IntegrityError, ValueError, KeyError, TypeError):
                locks.append(LockInfo(info.key, "exclusive", "?", 0, info.modified, info.modified))
        return locks

    def _acquire(self, kind: str, wait: float) -> tuple[str, datetime]:
        deadline = time.monotonic() + wait
        while True:
            key = LOCKS_PREFIX + secrets.token_hex(16)
            created = _now()
            self._put_lock(key, kind, created)
            self._own_locks.add(key)
            now = _now()
            others = [lock for lock in self.list_locks() if lock.key not in self._own_locks]
            conflicts = [
                lock
                for lock in others
                if not lock.stale(now) and (kind == "exclusive" or lock.kind == "exclusive")
            ]
            if not conflicts:
                if kind == "exclusive":
                    for lock in others:
                        if lock.stale(now):
                            log.info("%s: removing stale %s", self.location, lock.describe())
                            self._backend.delete(lock.key)
                return key, created
            self._backend.delete(key)
            self._own_locks.discard(key)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = "prune" if kind == "exclusive" else "backup"
                raise RepositoryLocked(
                    f"{self.location}: cannot {what} volume data now: "
                    f"{conflicts[0].describe()}"
                    + (f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""),
                    hint="wait for it to finish; a lock not refreshed for 30 minutes is stale "
                    f"(remove {conflicts[0].key} only if that process is gone)",
                )
            time.sleep(min(2.0, remaining))

    def lock(
        self, kind: Literal["shared", "exclusive"], *, wait: float = 0.0
    ) -> AbstractContextManager[str]:
        """Hold a lock for the block (yields its key); refreshed every 5 minutes.

        Shared locks (backups) coexist; an exclusive lock (prune) excludes every other
        non-stale lock. Conflicts are retried for `wait` seconds, then `RepositoryLocked`.
        Locks held by this store do not conflict with each other.
        """
        if kind not in ("shared", "exclusive"):
            raise RepositoryError(f"unknown lock kind {kind!r}")
        return self._locked(kind, wait)

    @contextmanager
    def _locked(self, kind: str, wait: float) -> Iterator[str]:
        key, created = self._acquire(kind, wait)
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(REFRESH_EVERY.total_seconds()):
                try:
                    self._put_lock(key, kind, created)
                except RepositoryError as error:
                    log.warning("%s: could not refresh lock: %s", self.location, error)

        thread = threading.Thread(target=refresh, name="kubeferry-volume-lock", daemon=True)
        thread.start()
        try:
            yield key
        finally:
            stop.set()
            thread.join()
            try:
                self._backend.delete(key)
            finally:
                self._own_locks.discard(key)

    # -- maintenance ----------------------------------------------------------------------

    def _pack_objects(self) -> dict[bytes, ObjectInfo]:
        packs = {}
        for info in self._backend.list(PACKS_PREFIX):
            name = info.key[len(PACKS_PREFIX) :]
            if len(name) == 67 and _HEX64.fullmatch(name[3:]) and name[:3] == name[3:5] + "/":
                packs[bytes.fromhex(name[3:])] = info
        return packs

    def prune(
        self,
        *,
        referenced: Iterable[str],
        grace: timedelta = timedelta(hours=1),
        max_unused: float | None = 0.05,
    ) -> PruneStats:
        """Delete data no snapshot references, under the exclusive lock.

        `referenced`: every chunk id the remaining manifests use. A pack is deleted when
        none of its chunks is referenced and neither the pack nor any index file listing it
        is younger than `grace`. Partly used packs are repacked (their referenced chunks
        copied, still sealed, into new packs, the old pack deleted), most wasteful first,
        until the unreferenced bytes left are at most `max_unused` of the referenced ones
        (restic's --max-unused; None: never repack): a little garbage is not worth
        rewriting whole packs for. Packs no index lists and older than `grace` are deleted.
        New index files are written before the old ones and the packs are deleted.
        """
        if grace < timedelta(0):
            raise RepositoryError("prune: grace must not be negative")
        wanted = {_id_bytes(chunk_id) for chunk_id in referenced}
        with self._lock:
            if self._open is not None or self._pending or self._unindexed:
                raise RepositoryError("prune: this store has unsaved chunks; flush first")
        with self.lock("exclusive"):
            stats = self._prune(wanted, grace, max_unused)
        self.load_index()
        return stats

    def _prune(self, wanted: set[bytes], grace: timedelta, max_unused: float | None) -> PruneStats:
        cutoff = _now() - grace
        index_infos = self._index_files()
        listed: dict[bytes, list[Entry]] = {}
        protected: set[bytes] = set()
        for info, result in self._read_index_files(index_infos):
            if isinstance(result, RepositoryError):
                raise RepositoryError(
                    f"prune: cannot read {info.key}: {result.message}",
                    hint="run check; recover() re-indexes the packs of a damaged index file",
                )
            for pack_id, entries in result:
                listed.setdefault(pack_id, entries)
                if info.modified >= cutoff:
                    protected.add(pack_id)
        objects = self._pack_objects()
        protected.update(pack_id for pack_id, info in objects.items() if info.modified >= cutoff)

        keep: dict[bytes, list[Entry]] = {}
        repack: list[bytes] = []
        delete: list[bytes] = []
        partial: list[tuple[float, int, bytes]] = []  # (unused share, unused bytes, pack)
        missing = removed = 0
        used_bytes = unused_bytes = 0
        for pack_id, entries in listed.items():
            if pack_id not in objects:
                missing += 1
                log.warning("%s: indexed pack %s is missing", self.location, pack_id.hex())
                continue
            unused = sum(length for chunk_id, _, length, _ in entries if chunk_id not in wanted)
            total = sum(length for _, _, length, _ in entries)
            used_bytes += total - unused
            if pack_id in protected:
                keep[pack_id] = entries
                unused_bytes += unused
            elif unused == total:
                delete.append(pack_id)
                removed += len(entries)
            else:
                keep[pack_id] = entries
                if unused:
                    unused_bytes += unused
                    partial.append((unused / total, unused, pack_id))
        if max_unused is not None:
            # the most wasteful packs first, until what is left is within the budget
            for _, unused, pack_id in sorted(partial, reverse=True):
                if unused_bytes <= max_unused * used_bytes:
                    break
                repack.append(pack_id)
                del keep[pack_id]
                unused_bytes -= unused
        orphans = [
            pack_id
            for pack_id, info in objects.items()
            if pack_id not in listed and pack_id not in protected
        ]

        # copy the still-needed chunks of mostly-unused packs (sealed blobs move as they
        # are: their aad is the chunk id, not the pack)
        kept_chunks = {chunk_id for entries in keep.values() for chunk_id, *_ in entries}
        new_packs: list[tuple[bytes, list[Entry]]] = []
        written_bytes = 0
        writer = _PackWriter()

        def store(writer: _PackWriter) -> None:
            nonlocal written_bytes
            data = writer.build(self._cipher)
            self._backend.put(pack_key(writer.pack_id), data)
            written_bytes += len(data)
            new_packs.append((writer.pack_id, writer.entries))

        for pack_id in repack:
            data = self._backend.get(pack_key(pack_id))
            where = f"{self.location}/{pack_key(pack_id)}"
            for chunk_id, offset, length, raw in listed[pack_id]:
                if chunk_id not in wanted or chunk_id in kept_chunks:
                    removed += chunk_id not in wanted
                    continue
                blob = data[offset : offset + length]
                self._open_chunk(chunk_id, blob, raw, where)  # never copy damaged data
                writer.append(chunk_id, blob, raw)
                kept_chunks.add(chunk_id)
                if writer.size >= self._pack_size:
                    store(writer)
                    writer = _PackWriter()
        if writer.entries:
            store(writer)

        new_index = [*keep.items(), *new_packs]
        written = self._write_index(new_index, split=True) if new_index else []
        for info in index_infos:
            self._backend.delete(info.key)
        freed = 0
        for pack_id in (*delete, *repack, *orphans):
            freed += objects[pack_id].size
            self._backend.delete(pack_key(pack_id))
        stats = PruneStats(
            deleted_packs=len(delete),
            repacked_packs=len(repack),
            orphan_packs=len(orphans),
            kept_packs=len(keep),
            missing_packs=missing,
            written_packs=len(new_packs),
            removed_chunks=removed,
            freed_bytes=freed - written_bytes,
            index_files_written=len(written),
            index_files_deleted=len(index_infos),
        )
        log.info("%s: pruned volume data: %s", self.location, stats)
        return stats

    def recover(self) -> int:
        """Re-index packs no readable index file lists (interrupted backups, a damaged
        index file), then delete the unreadable index files; returns the packs indexed."""
        with self.lock("shared"):
            infos = self._index_files()
            listed: set[bytes] = set()
            damaged = []
            for info, result in self._read_index_files(infos):
                if isinstance(result, ObjectNotFound):
                    continue
                if isinstance(result, RepositoryError):
                    log.warning("%s: %s", self.location, result.message)
                    damaged.append(info.key)
                    continue
                listed.update(pack_id for pack_id, _ in result)
            found = []
            for pack_id in self._pack_objects():
                if pack_id in listed:
                    continue
                try:
                    data = self._backend.get(pack_key(pack_id))
                    found.append((pack_id, self._pack_entries(pack_id, data)))
                except ObjectNotFound:
                    continue
                except IntegrityError as error:
                    log.warning("%s: cannot recover: %s", self.location, error.message)
            if found:
                self._write_index(found, split=True)
            for key in damaged:
                self._backend.delete(key)
        self.load_index()
        return len(found)

    def check(self, *, read_data: bool = False, referenced: Iterable[str] = ()) -> list[str]:
        """Problems found (one line each; empty: healthy).

        Structure: every index file opens, every indexed pack exists and holds its chunks'
        byte ranges, every manifest opens, every `referenced` chunk is indexed. With
        `read_data`: every pack's header matches the index and every chunk decrypts,
        decompresses and re-hashes to its id.
        """
        problems: list[str] = []
        objects = self._pack_objects()
        listed: dict[bytes, list[Entry]] = {}
        for info, result in self._read_index_files(self._index_files()):
            if isinstance(result, ObjectNotFound):
                continue
            if isinstance(result, RepositoryError):
                problems.append(f"index {info.key}: {result.message}")
                continue
            for pack_id, entries in result:
                listed.setdefault(pack_id, entries)
        chunks: set[bytes] = set()
        for pack_id, entries in listed.items():
            chunks.update(chunk_id for chunk_id, *_ in entries)
            pack_info = objects.get(pack_id)
            if pack_info is None:
                problems.append(
                    f"pack {pack_id.hex()} is missing ({len(entries)} indexed chunks lost)"
                )
                continue
            outside = sum(1 for _, off, length, _ in entries if off + length > pack_info.size - 4)
            if outside:
                problems.append(
                    f"pack {pack_id.hex()}: {outside} indexed chunks lie outside the pack "
                    f"({pack_info.size} bytes)"
                )
        for snapshot_id in self.list_snapshots():
            try:
                self.load_manifest(snapshot_id)
            except RepositoryError as error:
                problems.append(f"volume snapshot {snapshot_id}: {error.message}")
        unindexed = {_id_bytes(chunk_id) for chunk_id in referenced} - chunks
        if unindexed:
            problems.append(
                f"{len(unindexed)} chunks used by snapshots are not in the index "
                f"(e.g. {min(unindexed).hex()})"
            )
        if read_data:
            todo = [(pack_id, entries) for pack_id, entries in listed.items() if pack_id in objects]
            with ThreadPoolExecutor(max_workers=4) as pool:
                for found in pool.map(lambda item: self._check_pack(*item), todo):
                    problems.extend(found)
        return problems

    def _check_pack(self, pack_id: bytes, entries: list[Entry]) -> list[str]:
        name = f"pack {pack_id.hex()}"
        try:
            data = self._backend.get(pack_key(pack_id))
            header = set(self._pack_entries(pack_id, data))
        except RepositoryError as error:
            return [f"{name}: {error.message}"]
        problems = []
        if not header.issuperset(entries):
            problems.append(f"{name}: the index does not match the pack header")
        bad = []
        for chunk_id, offset, length, raw in entries:
            try:
                self._open_chunk(chunk_id, data[offset : offset + length], raw, name)
            except IntegrityError as error:
                bad.append(error.message)
        problems.extend(bad[:5])
        if len(bad) > 5:
            problems.append(f"{name}: {len(bad) - 5} more damaged chunks")
        return problems

    def stats(self) -> StoreStats:
        objects = self._pack_objects()
        self._refresh_index()
        self._loaded = True
        raw = sum(value & _M32 for value in self._index.values())
        return StoreStats(
            packs=len(objects),
            stored_bytes=sum(info.size for info in objects.values()),
            chunks=len(self._index),
            raw_bytes=raw,
            index_files=len(self._index_files()),
            snapshots=len(self.list_snapshots()),
        )
