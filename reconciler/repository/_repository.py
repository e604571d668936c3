"""The repository layout on top of a backend: the marker object and published snapshots.

Layout (keys relative to the backend root)::

    kubeferry-repository.json          marker: format version, repository id, created
    snapshots/<id>/<part>...           snapshot parts, written first
    snapshots/<id>/metadata.json       written LAST: a snapshot exists iff this exists

The layer is content-agnostic (bytes in, bytes out): the tarball format and encryption
belong to the callers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.repository._errors import (
    ObjectNotFound,
    RepositoryError,
    RepositoryNotInitialized,
    SnapshotExists,
    SnapshotNotFound,
)
from reconciler.repository._keys import validate_key
from reconciler.repository._transport import RepositoryBackend

log = logging.getLogger("kubeferry.repository")

MARKER_KEY = "kubeferry-repository.json"
FORMAT_VERSION = 1
SNAPSHOTS_PREFIX = "snapshots/"
METADATA_NAME = "metadata.json"
_MARKER_FORMAT = "kubeferry-repository"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class RepositoryMarker:
    """The contents of `kubeferry-repository.json`."""

    format_version: int
    repository_id: str
    created: datetime

    def to_json(self) -> bytes:
        document = {
            "format": _MARKER_FORMAT,
            "formatVersion": self.format_version,
            "id": self.repository_id,
            "created": self.created.astimezone(UTC).isoformat(timespec="seconds"),
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, location: str) -> RepositoryMarker:
        bad = f"{location}: {MARKER_KEY} is not a kubeferry repository marker"
        try:
            document = json.loads(data)
        except ValueError:
            raise RepositoryError(bad) from None
        if not isinstance(document, dict) or document.get("format") != _MARKER_FORMAT:
            raise RepositoryError(bad)
        version, repository_id = document.get("formatVersion"), document.get("id")
        if not isinstance(version, int) or not isinstance(repository_id, str):
            raise RepositoryError(bad)
        if version > FORMAT_VERSION:
            raise RepositoryError(
                f"{location}: repository format {version} is newer than this kubeferry "
                f"supports ({FORMAT_VERSION})",
                hint="upgrade kubeferry",
            )
        try:
            created = datetime.fromisoformat(str(document.get("created")))
        except ValueError:
            raise RepositoryError(bad) from None
        return cls(version, repository_id, created)


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise RepositoryError(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


class Repository:
    """A replication repository: the marker plus snapshots that appear only when complete.

    Snapshot ids must be unique per write (the caller holds the repository lock); parts
    are written in order, the metadata document last, so readers (`list_snapshots`) never
    see a snapshot whose parts are not all stored.
    """

    def __init__(self, backend: RepositoryBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return f"Repository({self._backend!r})"

    @property
    def backend(self) -> RepositoryBackend:
        return self._backend

    @property
    def location(self) -> str:
        return self._backend.location

    # -- marker --------------------------------------------------------------------------

    def initialize(self, repository_id: str, *, now: datetime | None = None) -> RepositoryMarker:
        """Write the marker if absent; idempotent for the same id, an error for another."""
        _check_id(repository_id, "repository id")
        marker = RepositoryMarker(FORMAT_VERSION, repository_id, now or datetime.now(UTC))
        if self._backend.put_if_absent(MARKER_KEY, marker.to_json()):
            log.info("%s: initialized repository %s", self.location, repository_id)
            return marker
        existing = self.read_marker()
        if existing.repository_id != repository_id:
            raise RepositoryError(
                f"{self.location}: already initialized as repository "
                f"{existing.repository_id!r}, not {repository_id!r}"
            )
        return existing

    def is_initialized(self) -> bool:
        return self._backend.exists(MARKER_KEY)

    def read_marker(self) -> RepositoryMarker:
        try:
            data = self._backend.get(MARKER_KEY)
        except ObjectNotFound:
            raise RepositoryNotInitialized(
                f"{self.location}: not a kubeferry repository (no {MARKER_KEY})"
            ) from None
        return RepositoryMarker.from_json(data, self.location)

    # -- snapshots -----------------------------------------------------------------------

    @staticmethod
    def _snapshot_prefix(snapshot_id: str) -> str:
        return f"{SNAPSHOTS_PREFIX}{_check_id(snapshot_id, 'snapshot id')}/"

    def _metadata_key(self, snapshot_id: str) -> str:
        return self._snapshot_prefix(snapshot_id) + METADATA_NAME

    def _part_key(self, snapshot_id: str, name: str) -> str:
        validate_key(name, what="snapshot part name")
        if name.split("/", 1)[0] == METADATA_NAME:
            raise RepositoryError(f"invalid snapshot part name {name!r}: reserved")
        return self._snapshot_prefix(snapshot_id) + name

    def write_snapshot(self, snapshot_id: str, parts: Mapping[str, bytes], metadata: bytes) -> None:
        """Store `parts` under `snapshots/<id>/`, then `metadata.json` last (publishes it)."""
        metadata_key = self._metadata_key(snapshot_id)
        keys = {name: self._part_key(snapshot_id, name) for name in parts}  # validate all first
        if self._backend.exists(metadata_key):
            raise SnapshotExists(f"{self.location}: snapshot {snapshot_id!r} already exists")
        # parts left by an earlier, crashed attempt with this id must not be published
        wanted = set(keys.values())
        for info in self._backend.list(self._snapshot_prefix(snapshot_id)):
            if info.key not in wanted:
                self._backend.delete(info.key)
        for name, key in keys.items():
            self._backend.put(key, parts[name])
        if not self._backend.put_if_absent(metadata_key, metadata):
            raise SnapshotExists(f"{self.location}: snapshot {snapshot_id!r} already exists")
        log.info("%s: published snapshot %s (%d parts)", self.location, snapshot_id, len(parts))

    def list_snapshots(self) -> list[str]:
        """Ids of complete snapshots (those whose metadata.json exists), sorted."""
        ids = []
        for info in self._backend.list(SNAPSHOTS_PREFIX):
            snapshot_id, _, rest = info.key[len(SNAPSHOTS_PREFIX) :].partition("/")
            if rest == METADATA_NAME and _ID.fullmatch(snapshot_id):
                ids.append(snapshot_id)
        return sorted(ids)

    def snapshot_exists(self, snapshot_id: str) -> bool:
        return self._backend.exists(self._metadata_key(snapshot_id))

    def read_snapshot_metadata(self, snapshot_id: str) -> bytes:
        try:
            return self._backend.get(self._metadata_key(snapshot_id))
        except ObjectNotFound:
            raise SnapshotNotFound(f"{self.location}: no snapshot {snapshot_id!r}") from None

    def list_snapshot_parts(self, snapshot_id: str) -> list[str]:
        """Part names of a complete snapshot, sorted; `SnapshotNotFound` if not published."""
        if not self.snapshot_exists(snapshot_id):
            raise SnapshotNotFound(f"{self.location}: no snapshot {snapshot_id!r}")
        prefix = self._snapshot_prefix(snapshot_id)
        names = (info.key[len(prefix) :] for info in self._backend.list(prefix))
        return sorted(name for name in names if name != METADATA_NAME)

    def read_snapshot_part(self, snapshot_id: str, name: str) -> bytes:
        key = self._part_key(snapshot_id, name)
        if not self.snapshot_exists(snapshot_id):
            raise SnapshotNotFound(f"{self.location}: no snapshot {snapshot_id!r}")
        try:
            return self._backend.get(key)
        except ObjectNotFound:
            raise SnapshotNotFound(
                f"{self.location}: snapshot {snapshot_id!r} has no part {name!r}"
            ) from None

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Unpublish (metadata first), then delete the parts; True if it was visible.

        A crash midway leaves parts without metadata: invisible, and `gc_incomplete`
        removes them later.
        """
        metadata_key = self._metadata_key(snapshot_id)
        existed = self._backend.exists(metadata_key)
        self._backend.delete(metadata_key)
        for info in list(self._backend.list(self._snapshot_prefix(snapshot_id))):
            self._backend.delete(info.key)
        return existed

    def gc_incomplete(self, older_than: timedelta, *, now: datetime | None = None) -> list[str]:
        """Delete parts of snapshots that never got metadata; return their ids.

        Only snapshots whose newest part is older than `older_than` are touched, so a write
        in progress survives as long as `older_than` exceeds the time between two of its
        puts (run gc under the repository lock to rule out the race entirely).
        """
        if older_than < timedelta(0):
            raise RepositoryError("gc_incomplete: older_than must not be negative")
        cutoff = (now or datetime.now(UTC)) - older_than
        complete: set[str] = set()
        newest: dict[str, datetime] = {}
        keys: dict[str, list[str]] = {}
        for info in self._backend.list(SNAPSHOTS_PREFIX):
            snapshot_id, _, rest = info.key[len(SNAPSHOTS_PREFIX) :].partition("/")
            if not rest or not _ID.fullmatch(snapshot_id):
                continue  # not laid out by us: leave it alone
            if rest == METADATA_NAME:
                complete.add(snapshot_id)
            keys.setdefault(snapshot_id, []).append(info.key)
            newest[snapshot_id] = max(info.modified, newest.get(snapshot_id, info.modified))
        removed = []
        for snapshot_id, snapshot_keys in keys.items():
            if snapshot_id in complete or newest[snapshot_id] >= cutoff:
                continue
            # re-check: a slow writer may have published it since we listed
            if self.snapshot_exists(snapshot_id):
                continue
            for key in snapshot_keys:
                self._backend.delete(key)
            log.info("%s: removed incomplete snapshot %s", self.location, snapshot_id)
            removed.append(snapshot_id)
        return sorted(removed)
