"""The repository layout on top of a backend: the marker object and published snapshots.

Layout (keys relative to the backend root)::

    kubeferry-repository.json          marker: format version, repository id, created,
                                       and for an encrypted repository the scheme + key check
    keys/<key-id>.json                 encrypted repositories: the master key, wrapped
    snapshots/<id>/<part>...           snapshot parts, written first
    snapshots/<id>/metadata.json       written LAST: a snapshot exists iff this exists

The layer is content-agnostic (bytes in, bytes out; the tarball format belongs to the
callers). In an encrypted repository every snapshot object is sealed by the
`RepositoryCipher` with the object key as associated data; listing, deleting and gc need
no key.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.repository._crypto import (
    ENCRYPTION_SCHEME,
    RepositoryCipher,
    add_key,
    check_passphrase,
    generate_master_key,
    key_object,
    unlock,
)
from reconciler.repository._errors import (
    IntegrityError,
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
    encryption: str | None = None
    """The encryption scheme ("aes-256-gcm"), None for an unencrypted repository."""
    key_check: str | None = None
    """Public fingerprint of the master key (hex); identifies its key files."""

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    def to_json(self) -> bytes:
        document: dict[str, object] = {
            "format": _MARKER_FORMAT,
            "formatVersion": self.format_version,
            "id": self.repository_id,
            "created": self.created.astimezone(UTC).isoformat(timespec="seconds"),
        }
        if self.encryption is not None:  # absent: an unencrypted (or pre-encryption) marker
            document["encryption"] = self.encryption
            document["keyCheck"] = self.key_check
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
        encryption, key_check = document.get("encryption"), document.get("keyCheck")
        if encryption is None:
            return cls(version, repository_id, created)
        if encryption != ENCRYPTION_SCHEME:
            raise RepositoryError(
                f"{location}: unsupported repository encryption {encryption!r}",
                hint="upgrade kubeferry",
            )
        if not isinstance(key_check, str):
            raise RepositoryError(bad)
        return cls(version, repository_id, created, encryption, key_check)


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

    def __init__(self, backend: RepositoryBackend, cipher: RepositoryCipher | None = None) -> None:
        self._backend = backend
        self._cipher = cipher
        self._marker: RepositoryMarker | None = None  # cached: the marker is written once

    def __repr__(self) -> str:
        return f"Repository({self._backend!r}{', unlocked' if self._cipher else ''})"

    @property
    def backend(self) -> RepositoryBackend:
        return self._backend

    @property
    def location(self) -> str:
        return self._backend.location

    @property
    def cipher(self) -> RepositoryCipher | None:
        """The cipher of an unlocked repository (for engines that store their own objects)."""
        return self._cipher

    # -- marker --------------------------------------------------------------------------

    def initialize(
        self,
        repository_id: str,
        *,
        passphrase: str | None = None,
        now: datetime | None = None,
    ) -> RepositoryMarker:
        """Write the marker if absent; idempotent for the same id, an error for another.

        With a passphrase the repository is encrypted: a new master key and its first key
        file are stored before the marker, so a marker that says "encrypted" always has a
        key. The loser of a concurrent initialisation removes its own key file.
        """
        _check_id(repository_id, "repository id")
        # whole seconds, as stored: the returned marker equals what read_marker() gives
        created = (now or datetime.now(UTC)).replace(microsecond=0)
        if passphrase is None:
            marker = RepositoryMarker(FORMAT_VERSION, repository_id, created)
            if self._backend.put_if_absent(MARKER_KEY, marker.to_json()):
                log.info("%s: initialized repository %s", self.location, repository_id)
                return marker
        else:
            check_passphrase(passphrase)
            if self.is_initialized():  # do not leave a stray key file behind
                return self._existing(repository_id, passphrase)
            cipher = RepositoryCipher(generate_master_key())
            key_id = add_key(self._backend, cipher, passphrase)
            marker = RepositoryMarker(
                FORMAT_VERSION, repository_id, created, ENCRYPTION_SCHEME, cipher.key_check
            )
            if self._backend.put_if_absent(MARKER_KEY, marker.to_json()):
                log.info("%s: initialized encrypted repository %s", self.location, repository_id)
                return marker
            self._backend.delete(key_object(key_id))
        return self._existing(repository_id, passphrase)

    def _existing(self, repository_id: str, passphrase: str | None) -> RepositoryMarker:
        existing = self.read_marker()
        if existing.repository_id != repository_id:
            raise RepositoryError(
                f"{self.location}: already initialized as repository "
                f"{existing.repository_id!r}, not {repository_id!r}"
            )
        if passphrase is not None:
            self.unlock(passphrase)  # the same repository, but is it the same passphrase?
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
        marker = RepositoryMarker.from_json(data, self.location)
        self._marker = marker
        return marker

    @property
    def encrypted(self) -> bool:
        """Whether the marker says the repository is encrypted (`RepositoryNotInitialized`)."""
        return (self._marker or self.read_marker()).encrypted

    def unlock(self, passphrase: str) -> Repository:
        """A Repository on the same backend that encrypts and decrypts with the master key."""
        marker = self.read_marker()
        if not marker.encrypted:
            raise RepositoryError(
                f"repository {self.location} is not encrypted but a passphrase is configured",
                hint="remove spec.encryption or use a new, encrypted repository",
            )
        unlocked = Repository(
            self._backend, unlock(self._backend, passphrase, key_check=marker.key_check)
        )
        unlocked._marker = marker
        return unlocked

    def _checked_cipher(self) -> RepositoryCipher | None:
        """The cipher to use for snapshot objects, after checking it against the marker.

        An uninitialized repository is treated as unencrypted (without a cipher), so the
        transport-level tests and tools can use the layout without a marker.
        """
        marker = self._marker
        if marker is None:
            if not self.is_initialized():
                if self._cipher is not None:
                    raise RepositoryNotInitialized(
                        f"{self.location}: not a kubeferry repository (no {MARKER_KEY})"
                    )
                return None
            marker = self.read_marker()
        if marker.encrypted and self._cipher is None:
            raise RepositoryError(
                f"repository {self.location} is encrypted: set spec.encryption.passphraseFrom"
            )
        if not marker.encrypted and self._cipher is not None:
            raise RepositoryError(
                f"repository {self.location} is not encrypted but a passphrase is configured"
            )
        if self._cipher is not None and self._cipher.key_check != marker.key_check:
            raise RepositoryError(
                f"repository {self.location}: the key in use belongs to another repository"
            )
        return self._cipher

    def _seal(self, cipher: RepositoryCipher | None, key: str, data: bytes) -> bytes:
        return data if cipher is None else cipher.seal(data, aad=key.encode("utf-8"))

    def _open(self, cipher: RepositoryCipher | None, key: str, blob: bytes) -> bytes:
        if cipher is None:
            return blob
        try:
            return cipher.open(blob, aad=key.encode("utf-8"))
        except IntegrityError as error:
            raise IntegrityError(f"{self.location}: {key}: {error.message}") from None

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
        cipher = self._checked_cipher()
        if self._backend.exists(metadata_key):
            raise SnapshotExists(f"{self.location}: snapshot {snapshot_id!r} already exists")
        # parts left by an earlier, crashed attempt with this id must not be published
        wanted = set(keys.values())
        for info in self._backend.list(self._snapshot_prefix(snapshot_id)):
            if info.key not in wanted:
                self._backend.delete(info.key)
        for name, key in keys.items():
            self._backend.put(key, self._seal(cipher, key, parts[name]))
        if not self._backend.put_if_absent(
            metadata_key, self._seal(cipher, metadata_key, metadata)
        ):
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
        key = self._metadata_key(snapshot_id)
        cipher = self._checked_cipher()
        try:
            blob = self._backend.get(key)
        except ObjectNotFound:
            raise SnapshotNotFound(f"{self.location}: no snapshot {snapshot_id!r}") from None
        return self._open(cipher, key, blob)

    def list_snapshot_parts(self, snapshot_id: str) -> list[str]:
        """Part names of a complete snapshot, sorted; `SnapshotNotFound` if not published."""
        if not self.snapshot_exists(snapshot_id):
            raise SnapshotNotFound(f"{self.location}: no snapshot {snapshot_id!r}")
        prefix = self._snapshot_prefix(snapshot_id)
        names = (info.key[len(prefix) :] for info in self._backend.list(prefix))
        return sorted(name for name in names if name != METADATA_NAME)

    def read_snapshot_part(self, snapshot_id: str, name: str) -> bytes:
        key = self._part_key(snapshot_id, name)
        cipher = self._checked_cipher()
        if not self.snapshot_exists(snapshot_id):
            raise SnapshotNotFound(f"{self.location}: no snapshot {snapshot_id!r}")
        try:
            blob = self._backend.get(key)
        except ObjectNotFound:
            raise SnapshotNotFound(
                f"{self.location}: snapshot {snapshot_id!r} has no part {name!r}"
            ) from None
        return self._open(cipher, key, blob)

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
