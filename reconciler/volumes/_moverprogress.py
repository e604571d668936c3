"""Live progress of a Job mover, passed through the repository.

A mover pod can reach only the repository, and kubeferry reads the pod's result only once it
has ended (the termination message). So while it copies, the pod replaces one small sealed
object, ``volumes/progress/<mover job name>.json`` (associated data: the key), with its
counters; the waiting side reads it on every poll and hands the bytes to the run's reporter.

Progress is cosmetic: the writer never fails the copy (a write that fails is reported once
on stderr; after a few in a row it stops trying), and the reader turns a missing, foreign or
unreadable object into "no progress". The object holds counters and names only, no secret.
The Job mover deletes it with the Job; objects left behind (kubeferry died, a pod killed in
the middle of a write) are swept once nothing has rewritten them for an hour.

Kept free of the Kubernetes client: the pod imports it on its fast path.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.errors import KubeferryError
from reconciler.repository import ObjectNotFound, Repository
from reconciler.volumes._tree import TreeProgress

log = logging.getLogger("kubeferry.volumes.progress")

PROGRESS_PREFIX = "volumes/progress/"
PROGRESS_FORMAT = "kubeferry.mover-progress/v1"
DEFAULT_PROGRESS_INTERVAL = 2.0
# a live pod rewrites its object every few seconds: one untouched this long is a leftover
STALE_PROGRESS = timedelta(hours=1)
_MAX_FAILURES = 3
_JOB_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def progress_key(job: str) -> str:
    """``volumes/progress/<job>.json``; ``job`` must be a Job name (a DNS label)."""
    if not _JOB_NAME.fullmatch(job):
        raise KubeferryError(f"mover progress: {job!r} is not a Job name")
    return f"{PROGRESS_PREFIX}{job}.json"


@dataclass(frozen=True)
class MoverProgress:
    """One progress object: counters of the copy so far (totals 0 while unknown)."""

    job: str
    operation: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    updated_at: str = ""
    final: bool = False
    """The last object the pod writes, once the copy is complete."""

    def to_json(self) -> bytes:
        document = {
            "format": PROGRESS_FORMAT,
            "job": self.job,
            "operation": self.operation,
            "filesDone": self.files_done,
            "filesTotal": self.files_total,
            "bytesDone": self.bytes_done,
            "bytesTotal": self.bytes_total,
            "updatedAt": self.updated_at,
            "final": self.final,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> MoverProgress:
        """Raises ValueError for anything but a progress document."""
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != PROGRESS_FORMAT:
            raise ValueError(f"not a {PROGRESS_FORMAT} document")
        try:
            progress = cls(
                job=str(document["job"]),
                operation=str(document["operation"]),
                files_done=_count(document, "filesDone"),
                files_total=_count(document, "filesTotal"),
                bytes_done=_count(document, "bytesDone"),
                bytes_total=_count(document, "bytesTotal"),
                updated_at=str(document.get("updatedAt") or ""),
                final=document.get("final") is True,
            )
        except KeyError as error:
            raise ValueError(f"no {error}") from None
        return progress


def _count(document: dict[str, Any], name: str) -> int:
    value = document.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} is not a count")
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProgressWriter:
    """The pod's side: an ``on_progress`` callback for `backup_tree`/`restore_tree`.

    Writes at once, then at most once per ``interval`` seconds (``clock``), and once more
    from :meth:`finish`. Each write replaces the whole object (one atomic put).
    """

    def __init__(
        self,
        repository: Repository,
        job: str,
        operation: str,
        *,
        interval: float = DEFAULT_PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.repository = repository
        self.key = progress_key(job)
        self.job = job
        self.operation = operation
        self.interval = max(0.0, interval)
        self.clock = clock
        self.warn = warn
        self.writes = 0
        """Objects written so far."""
        self._last_write: float | None = None
        self._latest = TreeProgress()
        self._failures = 0
        self._warned = False
        if repository.cipher is None:  # never written in the clear (and volume data needs one)
            self._failures = _MAX_FAILURES

    def __call__(self, progress: TreeProgress) -> None:
        self._latest = TreeProgress(
            progress.files_done, progress.files_total, progress.bytes_done, progress.bytes_total
        )
        now = self.clock()
        if self._last_write is not None and now - self._last_write < self.interval:
            return
        self._last_write = now
        self._write(final=False)

    def finish(self) -> None:
        """The last object: the counters the copy ended with."""
        self._write(final=True)

    def _write(self, *, final: bool) -> None:
        if self._failures >= _MAX_FAILURES:
            return  # a store that keeps refusing: do not slow the copy down any further
        latest = self._latest
        document = MoverProgress(
            job=self.job,
            operation=self.operation,
            files_done=latest.files_done,
            files_total=latest.files_total,
            bytes_done=latest.bytes_done,
            bytes_total=latest.bytes_total,
            updated_at=_now(),
            final=final,
        )
        cipher = self.repository.cipher
        assert cipher is not None  # writing is off without one (__init__)
        try:
            sealed = cipher.seal(document.to_json(), aad=self.key.encode())
            self.repository.backend.put(self.key, sealed)
        except Exception as error:  # noqa: BLE001 - progress must never fail the copy
            self._failures += 1
            if not self._warned and self.warn is not None:
                self._warned = True
                self.warn(f"cannot write progress {self.key}: {_one_line(error)}")
            return
        self._failures = 0
        self.writes += 1


def read_progress(repository: Repository, job: str) -> MoverProgress | None:
    """The waiting side: the progress object of mover Job ``job``, or None.

    None when there is none yet, or it does not open (foreign, damaged, wrong key), or it is
    not a progress document of that Job; never raises for those.
    """
    cipher = repository.cipher
    if cipher is None:
        return None
    key = progress_key(job)
    try:
        blob = repository.backend.get(key)
    except ObjectNotFound:
        return None
    except Exception as error:  # noqa: BLE001 - progress is cosmetic: no progress then
        log.debug("cannot read %s: %s", key, _one_line(error))
        return None
    try:
        progress = MoverProgress.from_json(cipher.open(blob, aad=key.encode()))
    except (KubeferryError, ValueError) as error:
        log.debug("ignoring %s: %s", key, _one_line(error))
        return None
    return progress if progress.job == job else None


def delete_progress(repository: Repository, job: str) -> None:
    """Delete the progress object of mover Job ``job`` (absent is fine)."""
    repository.backend.delete(progress_key(job))


def sweep_stale_progress(
    repository: Repository, *, older_than: timedelta = STALE_PROGRESS, now: datetime | None = None
) -> int:
    """Delete progress objects nothing rewrote for ``older_than``; returns how many."""
    limit = (now or datetime.now(UTC)) - older_than
    removed = 0
    for info in list(repository.backend.list(PROGRESS_PREFIX)):
        if info.modified < limit:
            repository.backend.delete(info.key)
            removed += 1
    return removed


def _one_line(error: BaseException) -> str:
    text = str(error) if isinstance(error, KubeferryError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())
