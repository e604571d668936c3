"""Back up and restore a directory tree through a volume store (format "kubeferry.volume/v1").

Backup walks the tree (never following symlinks), cuts regular files into content-defined
chunks (FastCDC 2020 through pyfastcdc, average `avg_chunk`, min avg/4, max avg*4), and hands
every chunk to the store (`chunk_id` = keyed hash, `add` = compress + encrypt + pack, deduplicated).
Files run in parallel on a thread pool; the chunks of a large file fan out to a second pool
so that one big file still uses every core. The bytes read but not yet stored are bounded
(`memory_limit`). With a `parent` snapshot, a file whose (size, mtime_ns, ctime_ns, inode) did
not change reuses the parent's chunk list without being read. The manifest (zstd-compressed
JSON, entries sorted by path) is saved last, after the store's `flush()`: a snapshot exists only
once everything it references is stored.

Restore validates the whole manifest first (relative paths without '.', '..' or empty
components; every parent a directory of the manifest), then creates directories, writes files
in parallel (each one under a temporary name in its final directory, renamed only when every
chunk was fetched and verified: a damaged chunk makes the restore fail loudly and never leaves
a wrong file under its final name), then hardlinks, symlinks and fifos, then directory modes
and mtimes, deepest first. Every path is resolved from the target with `O_NOFOLLOW` one
component at a time, so neither the manifest nor symlinks already in the target can make it
write outside the target. All-zero regions of sparse files stay holes.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import zstandard
from pyfastcdc import FastCDC

from reconciler.repository._errors import IntegrityError, RepositoryError

__all__ = [
    "DEFAULT_AVG_CHUNK",
    "DEFAULT_MEMORY_LIMIT",
    "MANIFEST_FORMAT",
    "ChunkerParams",
    "EntryType",
    "ManifestEntry",
    "TreeProgress",
    "TreeRestore",
    "TreeSnapshot",
    "TreeStore",
    "VolumeManifest",
    "backup_tree",
    "restore_tree",
]

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "kubeferry.volume/v1"
CHUNKER_ALGORITHM = "fastcdc-2020"
DEFAULT_AVG_CHUNK = 2**20
DEFAULT_MEMORY_LIMIT = 64 * 2**20
# manifests are small next to the data; a higher level costs little and keeps them smaller
_MANIFEST_ZSTD_LEVEL = 10
_MAX_MANIFEST = 2**31
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PROGRESS_INTERVAL = 0.1
# small files are batched (fewer task hand-offs); big ones get their own task whose chunks
# fan out to the chunk pool
_BATCH_FILES = 256
_BATCH_BYTES = 16 * 2**20
_SPARSE_BLOCK = 64 * 2**10
_CHUNK_ID = re.compile(r"[0-9a-f]{16,128}")
_TMP_PREFIX = ".kf-restore-"

EntryType = Literal["file", "dir", "symlink", "hardlink", "fifo"]
_ENTRY_TYPES: frozenset[str] = frozenset({"file", "dir", "symlink", "hardlink", "fifo"})

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | _O_CLOEXEC


class TreeStore(Protocol):
    """The part of `VolumeStore` that backup and restore use."""

    def chunk_id(self, data: bytes) -> str: ...

    def has(self, chunk_id: str) -> bool: ...

    def add(self, chunk_id: str, data: bytes) -> bool: ...

    def flush(self) -> None: ...

    def get(self, chunk_id: str) -> bytes: ...

    def save_manifest(self, manifest: bytes, *, snapshot_id: str) -> None: ...

    def load_manifest(self, snapshot_id: str) -> bytes: ...

    def lock(self, kind: Literal["shared", "exclusive"]) -> AbstractContextManager[Any]: ...


# -- the manifest ------------------------------------------------------------------------------


def _bad(message: str) -> RepositoryError:
    return RepositoryError(f"invalid volume manifest: {message}")


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """How files were cut; a later backup with other parameters still deduplicates whole files."""

    avg: int
    min: int
    max: int
    algorithm: str = CHUNKER_ALGORITHM

    @classmethod
    def for_average(cls, avg: int) -> ChunkerParams:
        return cls(avg=avg, min=avg // 4, max=avg * 4)

    def to_json(self) -> dict[str, object]:
        return {"algorithm": self.algorithm, "avg": self.avg, "max": self.max, "min": self.min}

    @classmethod
    def from_json(cls, raw: object) -> ChunkerParams:
        if not isinstance(raw, dict):
            raise _bad("chunker is not an object")
        try:
            return cls(
                avg=_int(raw["avg"], "chunker.avg"),
                min=_int(raw["min"], "chunker.min"),
                max=_int(raw["max"], "chunker.max"),
                algorithm=_str(raw["algorithm"], "chunker.algorithm"),
            )
        except KeyError as exc:
            raise _bad(f"chunker lacks {exc}") from None


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{what} is not an integer")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{what} is not a string")
    return value


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One tree entry. `path` is relative, '/'-separated; the root itself is ".".

    `mode` holds the permission bits (st_mode & 0o7777); `type` says what the entry is.
    Files: `size`, `chunks` ((id, raw length) in order), `inode`/`ctime_ns` (for the next
    incremental backup) and `sparse`. Symlinks: `target`. Hardlinks: `link`, the path of the
    first entry (a "file") of the same inode.
    """

    path: str
    type: EntryType
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    target: str = ""
    link: str = ""
    inode: int = 0
    ctime_ns: int = 0
    chunks: tuple[tuple[str, int], ...] = ()
    sparse: bool = False

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "path": self.path,
            "type": self.type,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "mtime_ns": self.mtime_ns,
        }
        if self.type == "file":
            out["size"] = self.size
            out["inode"] = self.inode
            out["ctime_ns"] = self.ctime_ns
            out["chunks"] = [[cid, length] for cid, length in self.chunks]
            if self.sparse:
                out["sparse"] = True
        elif self.type == "symlink":
            out["target"] = self.target
        elif self.type == "hardlink":
            out["link"] = self.link
        return out

    @classmethod
    def from_json(cls, raw: object) -> ManifestEntry:
        if not isinstance(raw, dict):
            raise _bad("an entry is not an object")
        try:
            path = _str(raw["path"], "path")
            kind = _str(raw["type"], f"type of {path!r}")
            if kind not in _ENTRY_TYPES:
                raise _bad(f"unknown entry type {kind!r} for {path!r}")
            chunks_raw = raw.get("chunks", [])
            if not isinstance(chunks_raw, list):
                raise _bad(f"chunks of {path!r} is not a list")
            chunks: list[tuple[str, int]] = []
            for item in chunks_raw:
                if not isinstance(item, list) or len(item) != 2:
                    raise _bad(f"a chunk of {path!r} is not [id, length]")
                cid = _str(item[0], f"chunk id of {path!r}")
                length = _int(item[1], f"chunk length of {path!r}")
                if not _CHUNK_ID.fullmatch(cid) or length <= 0:
                    raise _bad(f"chunk [{cid!r}, {length}] of {path!r}")
                chunks.append((cid, length))
            sparse = raw.get("sparse", False)
            if not isinstance(sparse, bool):
                raise _bad(f"sparse of {path!r} is not a boolean")
            entry = cls(
                path=path,
                type=kind,  # type: ignore[arg-type]  # checked against _ENTRY_TYPES above
                mode=_int(raw["mode"], f"mode of {path!r}"),
                uid=_int(raw["uid"], f"uid of {path!r}"),
                gid=_int(raw["gid"], f"gid of {path!r}"),
                mtime_ns=_int(raw["mtime_ns"], f"mtime_ns of {path!r}"),
                size=_int(raw.get("size", 0), f"size of {path!r}"),
                target=_str(raw.get("target", ""), f"target of {path!r}"),
                link=_str(raw.get("link", ""), f"link of {path!r}"),
                inode=_int(raw.get("inode", 0), f"inode of {path!r}"),
                ctime_ns=_int(raw.get("ctime_ns", 0), f"ctime_ns of {path!r}"),
                chunks=tuple(chunks),
                sparse=sparse,
            )
        except KeyError as exc:
            raise _bad(f"an entry lacks {exc}") from None
        if not 0 <= entry.mode <= 0o7777:
            raise _bad(f"mode {entry.mode:o} of {path!r}")
        if entry.size < 0 or entry.size != sum(length for _, length in entry.chunks):
            raise _bad(f"size of {path!r} does not match its chunks")
        if entry.type == "symlink" and (not entry.target or "\0" in entry.target):
            raise _bad(f"symlink {path!r} has no usable target")
        return entry


def _check_path(path: str) -> None:
    """Only plain relative paths: no absolute path, no '.', '..' or empty component, no NUL."""
    if not path or path.startswith("/") or "\0" in path:
        raise _bad(f"unsafe path {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise _bad(f"unsafe path {path!r}")


def _parent_of(path: str) -> str:
    head, _, _ = path.rpartition("/")
    return head or "."


@dataclass(frozen=True, slots=True)
class VolumeManifest:
    """A snapshot of one tree: zstd-compressed JSON, entries sorted by path, deterministic."""

    created: str
    root: ManifestEntry
    entries: tuple[ManifestEntry, ...]
    chunker: ChunkerParams
    parent: str | None = None
    format: str = MANIFEST_FORMAT

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries if e.type in ("file", "hardlink"))

    @property
    def dirs(self) -> int:
        return sum(1 for e in self.entries if e.type == "dir")

    @property
    def bytes(self) -> int:
        """Data bytes (each hardlinked inode once)."""
        return sum(e.size for e in self.entries if e.type == "file")

    def chunk_ids(self) -> set[str]:
        """Every chunk this snapshot references (for prune)."""
        return {cid for e in self.entries for cid, _ in e.chunks}

    def to_json(self) -> dict[str, object]:
        return {
            "format": self.format,
            "created": self.created,
            "parent": self.parent,
            "chunker": self.chunker.to_json(),
            "root": self.root.to_json(),
            "stats": {"files": self.files, "dirs": self.dirs, "bytes": self.bytes},
            "entries": [e.to_json() for e in self.entries],
        }

    def to_json_bytes(self) -> builtins.bytes:
        """Canonical JSON (sorted keys, no spaces); ASCII so that undecodable names
        (surrogate escapes) survive."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode("ascii")

    def to_bytes(self) -> builtins.bytes:
        """The zstd-compressed canonical JSON."""
        compressor = zstandard.ZstdCompressor(level=_MANIFEST_ZSTD_LEVEL)
        return compressor.compress(self.to_json_bytes())

    @classmethod
    def from_bytes(cls, data: builtins.bytes) -> VolumeManifest:
        """Parse and validate a manifest, plain JSON or zstd-compressed."""
        try:
            if data[:4] == _ZSTD_MAGIC:
                data = zstandard.ZstdDecompressor().decompress(data, max_output_size=_MAX_MANIFEST)
            raw = json.loads(data)
        except (zstandard.ZstdError, ValueError) as exc:
            raise _bad(f"cannot decode ({exc})") from None
        if not isinstance(raw, dict):
            raise _bad("not an object")
        if raw.get("format") != MANIFEST_FORMAT:
            raise _bad(f"unsupported format {raw.get('format')!r} (expected {MANIFEST_FORMAT!r})")
        entries_raw = raw.get("entries")
        if not isinstance(entries_raw, list):
            raise _bad("entries is not a list")
        parent = raw.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise _bad("parent is not a string")
        manifest = cls(
            created=_str(raw.get("created"), "created"),
            root=ManifestEntry.from_json(raw.get("root")),
            entries=tuple(ManifestEntry.from_json(e) for e in entries_raw),
            chunker=ChunkerParams.from_json(raw.get("chunker")),
            parent=parent,
        )
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Raise `RepositoryError` unless every path is safe and every reference resolves."""
        if self.root.path != "." or self.root.type != "dir":
            raise _bad("the root entry is not the directory '.'")
        kinds: dict[str, str] = {".": "dir"}
        for entry in self.entries:
            _check_path(entry.path)
            if entry.path in kinds:
                raise _bad(f"duplicate path {entry.path!r}")
            # sorted order puts a directory before everything inside it
            if kinds.get(_parent_of(entry.path)) != "dir":
                raise _bad(f"the parent of {entry.path!r} is not a directory of the manifest")
            if entry.type == "hardlink" and kinds.get(entry.link) != "file":
                raise _bad(
                    f"hardlink {entry.path!r} refers to {entry.link!r}, not a file before it"
                )
            if entry.type != "file" and entry.chunks:
                raise _bad(f"{entry.type} {entry.path!r} has chunks")
            kinds[entry.path] = entry.type


# -- results and progress ----------------------------------------------------------------------


@dataclass(slots=True)
class TreeProgress:
    """Counters handed to `on_progress` (at most ~10 times a second, and once at the end)."""

    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


@dataclass(frozen=True, slots=True)
class TreeSnapshot:
    """The result of `backup_tree`."""

    snapshot_id: str
    files: int
    dirs: int
    bytes: int
    new_bytes: int
    new_chunks: int
    reused_files: int
    seconds: float
    symlinks: int = 0
    skipped: tuple[str, ...] = ()

    @property
    def throughput(self) -> float:
        """Bytes of file data per second."""
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TreeRestore:
    """The result of `restore_tree`."""

    snapshot_id: str
    files: int
    dirs: int
    bytes: int
    seconds: float
    symlinks: int = 0
    hardlinks: int = 0

    @property
    def throughput(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """Raised inside workers once the run is being torn down (another task failed)."""


class _Progress:
    def __init__(
        self, files_total: int, bytes_total: int, callback: Callable[[TreeProgress], None] | None
    ) -> None:
        self._lock = threading.Lock()
        self._state = TreeProgress(files_total=files_total, bytes_total=bytes_total)
        self._callback = callback
        self._last = 0.0

    def add(self, *, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self._state.files_done += files
            self._state.bytes_done += nbytes

    def emit(self, *, final: bool = False) -> None:
        """Called from the coordinating thread only, so the callback never runs concurrently."""
        if self._callback is None:
            return
        now = time.monotonic()
        if not final and now - self._last < _PROGRESS_INTERVAL:
            return
        self._last = now
        with self._lock:
            snapshot = TreeProgress(
                self._state.files_done,
                self._state.files_total,
                self._state.bytes_done,
                self._state.bytes_total,
            )
        self._callback(snapshot)


class _ByteBudget:
    """A semaphore on bytes in flight; one oversized request passes when nothing else is."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self._limit = max(1, limit)
        self._used = 0
        self._cond = threading.Condition()
        self._stop = stop

    def acquire(self, n: int) -> None:
        with self._cond:
            while self._used and self._used + n > self._limit:
                if self._stop.is_set():
                    raise _Stopped
                self._cond.wait(0.1)
            self._used += n

    def release(self, n: int) -> None:
        with self._cond:
            self._used -= n
            self._cond.notify_all()


class _Runner:
    """A file pool + a chunk pool driven from the calling thread (progress, cancellation)."""

    def __init__(
        self,
        workers: int,
        memory_limit: int,
        progress: _Progress,
        check_cancelled: Callable[[], None] | None,
        name: str,
        chunk_workers: int | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.stop = threading.Event()
        self.budget = _ByteBudget(memory_limit, self.stop)
        self.progress = progress
        self.check_cancelled = check_cancelled
        self.files = ThreadPoolExecutor(self.workers, thread_name_prefix=f"kf-{name}-file")
        self.chunks = ThreadPoolExecutor(
            max(1, chunk_workers or self.workers), thread_name_prefix=f"kf-{name}-chunk"
        )

    def checkpoint(self) -> None:
        if self.check_cancelled is not None:
            self.check_cancelled()
        self.progress.emit()

    def run(self, tasks: Iterable[Callable[[], None]]) -> None:
        """Run every task (at most 2 per worker queued); the first failure stops them all."""
        pending: set[Future[None]] = set()
        done: set[Future[None]] = set()
        it = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < 2 * self.workers:
                    task = next(it, None)
                    if task is None:
                        exhausted = True
                        break
                    self.checkpoint()
                    pending.add(self.files.submit(task))
                if not pending:
                    break
                done, pending = wait(
                    pending, timeout=_PROGRESS_INTERVAL, return_when=FIRST_COMPLETED
                )
                for future in done:
                    future.result()
                self.checkpoint()
        except BaseException as exc:
            self.stop.set()
            for future in pending:
                future.cancel()
            self.close()
            if isinstance(exc, _Stopped):
                # report the failure that stopped the others, not a casualty
                for future in done | pending:
                    cause = None if future.cancelled() else future.exception()
                    if cause is not None and not isinstance(cause, _Stopped):
                        raise cause from None
            raise

    def close(self) -> None:
        self.files.shutdown(wait=True, cancel_futures=True)
        self.chunks.shutdown(wait=True, cancel_futures=True)


def _finish_futures(futures: Sequence[Future[Any]]) -> None:
    """Wait for every future (even after a failure: they may still use our fd), then raise
    the first real failure among them."""
    wait(futures)
    stopped: BaseException | None = None
    for future in futures:
        if future.cancelled():
            continue
        exc = future.exception()
        if isinstance(exc, _Stopped):
            stopped = exc
        elif exc is not None:
            raise exc
    if stopped is not None:
        raise stopped


# -- backup -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    path: str
    st: os.stat_result
    target: str = ""
    link: str = ""
    chunks: tuple[tuple[str, int], ...] = ()
    size: int = 0
    sparse: bool = False
    mtime_ns: int = 0
    ctime_ns: int = 0
    reused: bool = False
    vanished: bool = False


@dataclass(slots=True)
class _BackupCounters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    new_bytes: int = 0
    new_chunks: int = 0

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.new_bytes += nbytes
            self.new_chunks += 1


def _scan(root: str, skipped: list[str]) -> list[_Found]:
    """Every entry under `root` (lstat, never following symlinks), sorted by path."""
    found: list[_Found] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel) if rel else root)
        except FileNotFoundError:
            continue  # removed while we walked: it is still listed, empty
        with it:
            for de in it:
                path = f"{rel}/{de.name}" if rel else de.name
                try:
                    st = de.stat(follow_symlinks=False)
                    item = _Found(path, st)
                    if stat.S_ISLNK(st.st_mode):
                        item.target = os.readlink(de.path)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(path)
                elif not (
                    stat.S_ISREG(st.st_mode)
                    or stat.S_ISLNK(st.st_mode)
                    or stat.S_ISFIFO(st.st_mode)
                ):
                    skipped.append(path)  # sockets and device nodes are not volume data
                    continue
                found.append(item)
    found.sort(key=lambda f: f.path)
    return found


def _open_for_read(path: str) -> int:
    try:
        return os.open(path, _READ_FLAGS | _O_NOATIME)
    except PermissionError:
        if not _O_NOATIME:
            raise
        return os.open(path, _READ_FLAGS)  # O_NOATIME needs ownership of the file


def _read_exact(fd: int, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left > 0:
        block = os.read(fd, left)
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _LimitedReader:
    """`readinto` for pyfastcdc's stream chunker, stopping at the size seen by fstat."""

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._left = limit

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0:
            return 0
        n = os.readv(self._fd, [buf[: self._left] if len(buf) > self._left else buf])
        self._left -= n
        return n


class _Backup:
    def __init__(
        self,
        store: TreeStore,
        root: str,
        chunker: ChunkerParams,
        runner: _Runner,
        counters: _BackupCounters,
    ) -> None:
        self.store = store
        self.root = root
        self.chunker = chunker
        self.runner = runner
        self.counters = counters
        self.big = 4 * chunker.max

    def _cdc(self) -> FastCDC:
        # FastCDC objects are not thread-safe; building one is cheap
        return FastCDC(self.chunker.avg, min_size=self.chunker.min, max_size=self.chunker.max)

    def _store_chunk(self, data: bytes) -> tuple[str, int]:
        cid = self.store.chunk_id(data)
        if self.store.add(cid, data):
            self.counters.add(len(data))
        self.runner.progress.add(nbytes=len(data))
        return cid, len(data)

    def _open(self, item: _Found) -> tuple[int, os.stat_result] | None:
        try:
            fd = _open_for_read(os.path.join(self.root, item.path))
        except FileNotFoundError:
            item.vanished = True
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a symlink since the walk
                item.vanished = True
                return None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            item.vanished = True
            return None
        return fd, st

    def _record(self, item: _Found, st: os.stat_result, chunks: list[tuple[str, int]]) -> None:
        item.chunks = tuple(chunks)
        item.size = sum(length for _, length in chunks)
        # metadata from before the read: a change during the read shows at the next backup
        item.mtime_ns = st.st_mtime_ns
        item.ctime_ns = st.st_ctime_ns
        item.st = st
        item.sparse = st.st_blocks * 512 < st.st_size

    def small_files(self, batch: list[_Found]) -> None:
        cdc = self._cdc()
        for item in batch:
            if self.runner.stop.is_set():
                raise _Stopped
            opened = self._open(item)
            if opened is None:
                self.runner.progress.add(files=1)
                continue
            fd, st = opened
            try:
                data = _read_exact(fd, st.st_size)
            finally:
                os.close(fd)
            chunks: list[tuple[str, int]] = []
            if len(data) <= self.chunker.min:
                if data:
                    chunks.append(self._store_chunk(data))
            else:
                view = memoryview(data)
                for c in cdc.cut_buf(view):
                    chunks.append(self._store_chunk(bytes(c.data)))
            self._record(item, st, chunks)
            self.runner.progress.add(files=1)

    def big_file(self, item: _Found) -> None:
        opened = self._open(item)
        if opened is None:
            self.runner.progress.add(files=1)
            return
        fd, st = opened
        budget = self.runner.budget
        futures: list[Future[tuple[str, int]]] = []

        def store(data: bytes) -> tuple[str, int]:
            try:
                if self.runner.stop.is_set():
                    raise _Stopped
                return self._store_chunk(data)
            finally:
                budget.release(len(data))

        try:
            for c in self._cdc().cut_stream(_LimitedReader(fd, st.st_size)):
                if self.runner.stop.is_set():
                    raise _Stopped
                data = bytes(c.data)
                budget.acquire(len(data))
                try:
                    futures.append(self.runner.chunks.submit(store, data))
                except BaseException:
                    budget.release(len(data))
                    raise
        finally:
            os.close(fd)
            _finish_futures(futures)
        self._record(item, st, [f.result() for f in futures])
        self.runner.progress.add(files=1)

    def tasks(self, todo: list[_Found]) -> Iterator[Callable[[], None]]:
        batch: list[_Found] = []
        batch_bytes = 0
        for item in todo:
            if item.st.st_size > self.big:
                yield partial(self.big_file, item)
                continue
            batch.append(item)
            batch_bytes += item.st.st_size
            if len(batch) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
                yield partial(self.small_files, batch)
                batch, batch_bytes = [], 0
        if batch:
            yield partial(self.small_files, batch)


def _entry_of(item: _Found) -> ManifestEntry:
    st = item.st
    common: dict[str, Any] = {
        "path": item.path,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime_ns": st.st_mtime_ns,
    }
    if item.link:
        return ManifestEntry(type="hardlink", link=item.link, **common)
    if stat.S_ISREG(st.st_mode):
        common["mtime_ns"] = item.mtime_ns
        return ManifestEntry(
            type="file",
            size=item.size,
            inode=st.st_ino,
            ctime_ns=item.ctime_ns,
            chunks=item.chunks,
            sparse=item.sparse,
            **common,
        )
    if stat.S_ISDIR(st.st_mode):
        return ManifestEntry(type="dir", **common)
    if stat.S_ISLNK(st.st_mode):
        return ManifestEntry(type="symlink", target=item.target, **common)
    return ManifestEntry(type="fifo", **common)


def _new_snapshot_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def _flush_after_failure(store: TreeStore) -> None:
    """Keep what was stored so far (a retry deduplicates against it); never mask the error."""
    try:
        store.flush()
    except Exception:
        log.warning("could not flush the volume store after a failed backup", exc_info=True)


def backup_tree(
    store: TreeStore,
    root: Path,
    *,
    parent: str | None = None,
    workers: int = 4,
    avg_chunk: int = DEFAULT_AVG_CHUNK,
    on_progress: Callable[[TreeProgress], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    lock: bool = True,
) -> TreeSnapshot:
    """Back up the tree under `root` into `store`; the snapshot exists once this returns.

    `check_cancelled` is called between files (from the calling thread) and may raise to stop
    the backup: what was stored so far is flushed (a retry reuses it) and no manifest is
    written. `on_progress` is also called from the calling thread only.
    """
    started = time.monotonic()
    chunker = ChunkerParams.for_average(avg_chunk)
    FastCDC(chunker.avg, min_size=chunker.min, max_size=chunker.max)  # validates the sizes
    root_str = os.fspath(root)
    root_st = os.stat(root_str)
    if not stat.S_ISDIR(root_st.st_mode):
        raise RepositoryError(f"{root_str} is not a directory")
    guard = store.lock("shared") if lock else contextlib.nullcontext()
    with guard:
        parent_files: dict[str, ManifestEntry] = {}
        if parent is not None:
            previous = VolumeManifest.from_bytes(store.load_manifest(parent))
            parent_files = {e.path: e for e in previous.entries if e.type == "file"}

        skipped: list[str] = []
        found = _scan(root_str, skipped)
        first_of_inode: dict[tuple[int, int], str] = {}
        todo: list[_Found] = []
        reused = 0
        bytes_total = 0
        for item in found:
            st = item.st
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = first_of_inode.setdefault(key, item.path)
                if first != item.path:
                    item.link = first
                    continue
            prev = parent_files.get(item.path)
            if (
                prev is not None
                and prev.size == st.st_size
                and prev.mtime_ns == st.st_mtime_ns
                and prev.ctime_ns == st.st_ctime_ns
                and prev.inode == st.st_ino
                and all(store.has(cid) for cid, _ in prev.chunks)
            ):
                item.chunks = prev.chunks
                item.size = prev.size
                item.mtime_ns = st.st_mtime_ns
                item.ctime_ns = st.st_ctime_ns
                item.sparse = st.st_blocks * 512 < st.st_size
                item.reused = True
                reused += 1
            else:
                todo.append(item)
            bytes_total += st.st_size

        progress = _Progress(len(todo) + reused, bytes_total, on_progress)
        progress.add(files=reused, nbytes=sum(i.size for i in found if i.reused))
        counters = _BackupCounters()
        runner = _Runner(workers, memory_limit, progress, check_cancelled, "backup")
        backup = _Backup(store, root_str, chunker, runner, counters)
        # big files first: they take longest and parallelize internally
        todo.sort(key=lambda i: -i.st.st_size if i.st.st_size > backup.big else 0)
        try:
            runner.run(backup.tasks(todo))
        except BaseException:
            _flush_after_failure(store)
            raise
        finally:
            runner.close()

        gone = {i.path for i in found if i.vanished}
        entries: list[ManifestEntry] = []
        for item in found:
            if item.vanished or (item.link and item.link in gone):
                skipped.append(item.path)
                continue
            entries.append(_entry_of(item))
        root_entry = ManifestEntry(
            path=".",
            type="dir",
            mode=stat.S_IMODE(root_st.st_mode),
            uid=root_st.st_uid,
            gid=root_st.st_gid,
            mtime_ns=root_st.st_mtime_ns,
        )
        manifest = VolumeManifest(
            created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            root=root_entry,
            entries=tuple(entries),
            chunker=chunker,
            parent=parent,
        )
        manifest.validate()
        store.flush()
        snapshot_id = _new_snapshot_id()
        # the store compresses (zstd) and seals it
        store.save_manifest(manifest.to_json_bytes(), snapshot_id=snapshot_id)
        progress.emit(final=True)
    return TreeSnapshot(
        snapshot_id=snapshot_id,
        files=manifest.files,
        dirs=manifest.dirs,
        bytes=manifest.bytes,
        new_bytes=counters.new_bytes,
        new_chunks=counters.new_chunks,
        reused_files=reused,
        seconds=time.monotonic() - started,
        symlinks=sum(1 for e in entries if e.type == "symlink"),
        skipped=tuple(sorted(skipped)),
    )


# -- restore ----------------------------------------------------------------------------------


def _walk_dir(root_fd: int, rel: str, *, create: bool = False) -> int:
    """Open directory `rel` under `root_fd` one component at a time, never following a symlink.

    With `create`, a missing component is made (mode 0o700 until the final pass) and anything
    that is not a directory in its way is removed: it is replaced by the snapshot's directory.
    """
    fd = os.dup(root_fd)
    if rel == ".":
        return fd
    try:
        for part in rel.split("/"):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if not create or exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise RepositoryError(
                            f"refusing to restore through {rel!r}: {part!r} is not a directory"
                        ) from None
                    raise
                if exc.errno != errno.ENOENT:
                    os.unlink(part, dir_fd=fd)
                os.mkdir(part, 0o700, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_in_way(name: str, dir_fd: int) -> None:
    """Remove a non-directory at `name` (restoring over an existing tree)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise RepositoryError(f"cannot restore over the directory {name!r}")
    os.unlink(name, dir_fd=dir_fd)


def _apply_owner(
    entry: ManifestEntry, *, fd: int | None = None, name: str = "", dir_fd: int | None = None
) -> None:
    """chown when permitted: root sets both ids, others may only change the group."""
    euid = os.geteuid()
    if euid == 0:
        uid, gid = entry.uid, entry.gid
    elif entry.uid == euid:
        uid, gid = -1, entry.gid
    else:
        return
    try:
        if fd is not None:
            os.fchown(fd, uid, gid)
        else:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    except PermissionError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL):
            raise


def _is_zero(data: bytes | memoryview) -> bool:
    n = len(data)
    if not n or data[0] or data[-1] or data[n // 2]:
        return n == 0
    return bytes(data) == bytes(n)


class _Restore:
    def __init__(self, store: TreeStore, root_fd: int, runner: _Runner, owners: bool) -> None:
        self.store = store
        self.root_fd = root_fd
        self.runner = runner
        self.owners = owners
        self._zero_lock = threading.Lock()
        self._zero: set[str] = set()

    def fetch(self, cid: str, length: int) -> bytes:
        with self._zero_lock:
            if cid in self._zero:
                return bytes(length)
        data = self.store.get(cid)
        if len(data) != length:
            raise IntegrityError(f"chunk {cid} has {len(data)} bytes, the manifest says {length}")
        if _is_zero(data):
            with self._zero_lock:
                self._zero.add(cid)
        return data

    def write(self, fd: int, cid: str, length: int, offset: int, sparse: bool) -> None:
        data = self.fetch(cid, length)
        if sparse:
            _pwrite_sparse(fd, data, offset)
        else:
            _pwrite_all(fd, data, offset)
        self.runner.progress.add(nbytes=length)

    def _finish(self, fd: int, entry: ManifestEntry) -> None:
        os.ftruncate(fd, entry.size)  # trailing holes
        if self.owners:
            _apply_owner(entry, fd=fd)
        os.fchmod(fd, entry.mode)  # after chown, which clears set-id bits
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def _create_tmp(self, dir_fd: int) -> tuple[int, str]:
        while True:
            tmp = f"{_TMP_PREFIX}{secrets.token_hex(8)}.tmp"
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC
                return os.open(tmp, flags, 0o600, dir_fd=dir_fd), tmp
            except FileExistsError:
                continue

    def _file(self, dir_fd: int, entry: ManifestEntry, parallel: bool) -> None:
        name = entry.path.rpartition("/")[2]
        fd, tmp = self._create_tmp(dir_fd)
        try:
            try:
                if parallel:
                    self._chunks_parallel(fd, entry)
                else:
                    offset = 0
                    for cid, length in entry.chunks:
                        self.write(fd, cid, length, offset, entry.sparse)
                        offset += length
                self._finish(fd, entry)
            finally:
                os.close(fd)
            _remove_dir_in_way(name, dir_fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        self.runner.progress.add(files=1)

    def _chunks_parallel(self, fd: int, entry: ManifestEntry) -> None:
        budget = self.runner.budget
        stop = self.runner.stop
        failed = threading.Event()
        futures: list[Future[None]] = []

        def one(cid: str, length: int, offset: int) -> None:
            try:
                if stop.is_set() or failed.is_set():
                    raise _Stopped
                self.write(fd, cid, length, offset, entry.sparse)
            except BaseException:
                failed.set()
                raise
            finally:
                budget.release(length)

        try:
            offset = 0
            for cid, length in entry.chunks:
                if stop.is_set():
                    raise _Stopped
                budget.acquire(length)
                try:
                    futures.append(self.runner.chunks.submit(one, cid, length, offset))
                except BaseException:
                    budget.release(length)
                    raise
                offset += length
                if failed.is_set():
                    break  # a failed chunk stops the file early; _finish_futures raises it
        finally:
            _finish_futures(futures)

    def files(self, dir_path: str, batch: list[ManifestEntry], parallel: bool) -> None:
        dir_fd = _walk_dir(self.root_fd, dir_path)
        try:
            for entry in batch:
                if self.runner.stop.is_set():
                    raise _Stopped
                self._file(dir_fd, entry, parallel)
        finally:
            os.close(dir_fd)

    def tasks(self, files: list[ManifestEntry], big: int) -> Iterator[Callable[[], None]]:
        by_dir: dict[str, list[ManifestEntry]] = {}
        for entry in files:
            if entry.size > big:
                parent = _parent_of(entry.path)
                yield partial(self.files, parent, [entry], True)
            else:
                by_dir.setdefault(_parent_of(entry.path), []).append(entry)
        for dir_path, entries in by_dir.items():
            batch: list[ManifestEntry] = []
            batch_bytes = 0
            for entry in entries:
                batch.append(entry)
                batch_bytes += entry.size
                if len(batch) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
                    yield partial(self.files, dir_path, batch, False)
                    batch, batch_bytes = [], 0
            if batch:
                yield partial(self.files, dir_path, batch, False)


def _remove_dir_in_way(name: str, dir_fd: int) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise RepositoryError(f"cannot restore a file over the directory {name!r}")


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _pwrite_sparse(fd: int, data: bytes, offset: int) -> None:
    """Write `data` at `offset`, leaving aligned all-zero blocks as holes."""
    view = memoryview(data)
    n = len(data)
    zero = bytes(_SPARSE_BLOCK)
    pos = 0
    run_start = -1
    while pos < n:
        # blocks aligned on the file offset so that holes land on filesystem blocks
        end = min(n, pos + _SPARSE_BLOCK - (offset + pos) % _SPARSE_BLOCK)
        block = view[pos:end]
        if block == zero[: end - pos]:
            if run_start >= 0:
                _pwrite_all(fd, view[run_start:pos], offset + run_start)
                run_start = -1
        elif run_start < 0:
            run_start = pos
        pos = end
    if run_start >= 0:
        _pwrite_all(fd, view[run_start:], offset + run_start)


def restore_tree(
    store: TreeStore,
    snapshot_id: str,
    target: Path,
    *,
    workers: int = 4,
    on_progress: Callable[[TreeProgress], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    owners: bool = True,
    lock: bool = True,
) -> TreeRestore:
    """Restore snapshot `snapshot_id` into `target` (created if missing).

    Existing entries in `target` that the snapshot also has are replaced; others are left.
    Raises `IntegrityError` when a chunk does not verify (no wrong file is left under its
    final name) and `RepositoryError` for an unsafe manifest (nothing written then).
    `owners=False` skips chown even when permitted.
    """
    started = time.monotonic()
    guard = store.lock("shared") if lock else contextlib.nullcontext()
    with guard:
        manifest = VolumeManifest.from_bytes(store.load_manifest(snapshot_id))
        files = [e for e in manifest.entries if e.type == "file"]
        progress = _Progress(
            len(files), sum(e.size for e in files), on_progress
        )  # hardlinks are not counted
        target_str = os.fspath(target)
        os.makedirs(target_str, exist_ok=True)
        root_fd = os.open(target_str, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
        try:
            for entry in manifest.entries:
                if entry.type == "dir":
                    os.close(_walk_dir(root_fd, entry.path, create=True))
            # fetching a chunk waits on pack reads (or S3): more fetchers than cores pays off
            runner = _Runner(
                workers, memory_limit, progress, check_cancelled, "restore", 2 * max(1, workers)
            )
            restore = _Restore(store, root_fd, runner, owners)
            big = 4 * manifest.chunker.max
            # big files first: they take longest and parallelize internally
            files.sort(key=lambda e: -e.size if e.size > big else 0)
            try:
                runner.run(restore.tasks(files, big))
            finally:
                runner.close()
            _restore_links(manifest.entries, root_fd, owners)
            _restore_dir_metadata(manifest, root_fd, owners)
        finally:
            os.close(root_fd)
        progress.emit(final=True)
    return TreeRestore(
        snapshot_id=snapshot_id,
        files=manifest.files,
        dirs=manifest.dirs,
        bytes=manifest.bytes,
        seconds=time.monotonic() - started,
        symlinks=sum(1 for e in manifest.entries if e.type == "symlink"),
        hardlinks=sum(1 for e in manifest.entries if e.type == "hardlink"),
    )


def _restore_links(entries: Sequence[ManifestEntry], root_fd: int, owners: bool) -> None:
    """Hardlinks, symlinks and fifos, after every file is in place."""
    for entry in entries:
        if entry.type not in ("hardlink", "symlink", "fifo"):
            continue
        parent, _, name = entry.path.rpartition("/")
        dir_fd = _walk_dir(root_fd, parent or ".")
        try:
            _remove_in_way(name, dir_fd)
            if entry.type == "hardlink":
                src_parent, _, src_name = entry.link.rpartition("/")
                src_fd = _walk_dir(root_fd, src_parent or ".")
                try:
                    os.link(
                        src_name, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                    )
                finally:
                    os.close(src_fd)
                continue  # the inode's metadata came with the file
            if entry.type == "symlink":
                os.symlink(entry.target, name, dir_fd=dir_fd)
            else:
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
                os.chmod(name, entry.mode, dir_fd=dir_fd)
            if owners:
                _apply_owner(entry, name=name, dir_fd=dir_fd)
            os.utime(
                name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False
            )
        finally:
            os.close(dir_fd)


def _restore_dir_metadata(manifest: VolumeManifest, root_fd: int, owners: bool) -> None:
    """Modes, owners and mtimes of directories, deepest first, the root last."""
    dirs = [e for e in manifest.entries if e.type == "dir"]
    dirs.sort(key=lambda e: e.path.count("/"), reverse=True)
    for entry in [*dirs, manifest.root]:
        fd = _walk_dir(root_fd, entry.path)
        try:
            if owners:
                _apply_owner(entry, fd=fd)
            os.fchmod(fd, entry.mode)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)
