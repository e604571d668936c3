"""Repository maintenance outside the plan: init, keys, check, prune, stats.

The CLI (`kubeferry repo ...`) only renders what these functions return. Passphrases come
from the inventory (``spec.encryption.passphraseFrom``) or, for a new key, from a reference
(``env:VAR`` or ``file:PATH``); they are never returned, logged or put in messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.reconcile._actions import RetentionResult, describe_retention, expired_snapshots
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._ondemand import list_snapshots
from reconciler.reconcile._runner import locked_runner
from reconciler.reconcile._views import desired_job
from reconciler.repository import (
    KeyFile,
    Repository,
    RepositoryError,
    RepositoryMarker,
    add_key,
    list_key_files,
    remove_key,
)
from reconciler.volumes import PruneStats, StoreStats, VolumeManifest, VolumeStore
from reconciler.workspace import Workspace

__all__ = [
    "KeyInfo",
    "RepoCheck",
    "RepoInit",
    "RepoPrune",
    "RepoStats",
    "repo_check",
    "repo_init",
    "repo_key_add",
    "repo_key_remove",
    "repo_keys",
    "repo_prune",
    "repo_stats",
]

SNAPSHOTS_PREFIX = "snapshots/"
METADATA_NAME = "metadata.json"
DEFAULT_GRACE = timedelta(hours=1)
"""Incomplete object snapshots and unindexed/unreferenced packs younger than this survive."""


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoInit:
    name: str
    location: str
    repository_id: str
    encrypted: bool
    key_id: str | None
    """The first key's id (encrypted repositories)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.name,
            "location": self.location,
            "id": self.repository_id,
            "encrypted": self.encrypted,
            "keyId": self.key_id,
        }


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    created: datetime
    kdf: str
    """e.g. "scrypt n=32768 r=8 p=1"."""
    current: bool
    """Whether the inventory's passphrase opens this key."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "created": self.created.isoformat(),
            "kdf": self.kdf,
            "current": self.current,
        }


@dataclass(frozen=True)
class RepoCheck:
    name: str
    location: str
    read_data: bool
    snapshots: int
    """Complete object snapshots."""
    volume_snapshots: int
    packs: int | None
    """Volume packs (None when the store could not be read)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.name,
            "location": self.location,
            "ok": self.ok,
            "readData": self.read_data,
            "snapshots": self.snapshots,
            "volumeSnapshots": self.volume_snapshots,
            "packs": self.packs,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class RepoPrune:
    name: str
    dry_run: bool
    retention: list[RetentionResult]
    """Per job using the repository; with ``dry_run``, ``deleted`` lists what would go."""
    incomplete: list[str]
    """Object snapshots that never got their metadata, older than the grace period."""
    volume_snapshots: int
    volume: PruneStats | None
    """What the volume store's prune did (None: not run)."""
    unreferenced_chunks: int | None
    """Indexed chunks no remaining volume snapshot uses (dry run; None: unknown)."""
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [error for result in self.retention for error in result.errors]

    def to_dict(self) -> dict[str, Any]:
        volume = None
        if self.volume is not None:
            volume = {
                "deletedPacks": self.volume.deleted_packs,
                "repackedPacks": self.volume.repacked_packs,
                "orphanPacks": self.volume.orphan_packs,
                "keptPacks": self.volume.kept_packs,
                "missingPacks": self.volume.missing_packs,
                "writtenPacks": self.volume.written_packs,
                "removedChunks": self.volume.removed_chunks,
                "freedBytes": self.volume.freed_bytes,
            }
        return {
            "repository": self.name,
            "dryRun": self.dry_run,
            "retention": [
                {
                    "job": result.job,
                    "rules": result.rules,
                    "deleted": result.deleted,
                    "kept": result.kept,
                    "errors": result.errors,
                }
                for result in self.retention
            ],
            "incomplete": self.incomplete,
            "volumeSnapshots": self.volume_snapshots,
            "volume": volume,
            "unreferencedChunks": self.unreferenced_chunks,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class RepoStats:
    name: str
    location: str
    repository_id: str
    encrypted: bool
    keys: int
    snapshots: int
    snapshot_bytes: int
    """Bytes of the complete object snapshots as stored."""
    volume: StoreStats | None
    """None for an unencrypted repository (it cannot hold volume data)."""

    def to_dict(self) -> dict[str, Any]:
        volume = None
        if self.volume is not None:
            volume = {
                "snapshots": self.volume.snapshots,
                "packs": self.volume.packs,
                "storedBytes": self.volume.stored_bytes,
                "chunks": self.volume.chunks,
                "rawBytes": self.volume.raw_bytes,
                "indexFiles": self.volume.index_files,
            }
        return {
            "repository": self.name,
            "location": self.location,
            "id": self.repository_id,
            "encrypted": self.encrypted,
            "keys": self.keys,
            "snapshots": self.snapshots,
            "snapshotBytes": self.snapshot_bytes,
            "totalBytes": self.snapshot_bytes + (0 if volume is None else volume["storedBytes"]),
            "volume": volume,
        }


# -- opening ---------------------------------------------------------------------------------


def _require_repository(inventory: Inventory, name: str) -> None:
    if name not in inventory.repositories:
        known = ", ".join(sorted(inventory.repositories)) or "none"
        raise KubeferryError(
            f"no ReplicationRepository {name!r} in the inventory {inventory.path}",
            hint=f"repositories: {known}",
        )


@contextlib.contextmanager
def _connections(workspace: Workspace, name: str) -> Iterator[Connections]:
    inventory = workspace.load_inventory()
    _require_repository(inventory, name)
    connections = Connections(inventory)
    try:
        yield connections
    finally:
        connections.close()


def _opened(connections: Connections, name: str) -> tuple[Repository, RepositoryMarker]:
    """The initialized repository ``name``, unlocked when encrypted, and its marker."""
    repository = connections.repository(name)
    if not repository.is_initialized():
        raise KubeferryError(
            f"repository {name} ({repository.location}) is not initialized",
            hint=f"run `kubeferry repo init {name}` or `kubeferry apply`",
        )
    marker = repository.read_marker()
    if marker.encrypted and repository.cipher is None:
        raise KubeferryError(
            f"repository {name} ({repository.location}) is encrypted: "
            "set spec.encryption.passphraseFrom"
        )
    return repository, marker


def _encrypted(connections: Connections, name: str) -> tuple[Repository, RepositoryMarker, str]:
    """An encrypted repository, its marker and the inventory's passphrase for it."""
    repository, marker = _opened(connections, name)
    if not marker.encrypted:
        raise KubeferryError(
            f"repository {name} ({repository.location}) is not encrypted: it has no keys"
        )
    passphrase = connections.passphrase(name)
    assert passphrase is not None  # _opened unlocked it with this passphrase
    return repository, marker, passphrase


def _own_keys(repository: Repository, marker: RepositoryMarker) -> list[KeyFile]:
    return [k for k in list_key_files(repository) if k.key_check == marker.key_check]


def _current_key(keys: list[KeyFile], passphrase: str) -> str | None:
    for key in keys:
        if key.unwrap(passphrase) is not None:
            return key.key_id
    return None


def _key_info(key: KeyFile, current: str | None) -> KeyInfo:
    kdf = f"scrypt n={key.kdf.n} r={key.kdf.r} p={key.kdf.p}"
    return KeyInfo(key.key_id, key.created, kdf, key.key_id == current)


def resolve_passphrase_ref(reference: str) -> str:
    """The passphrase named by ``env:VAR`` or ``file:PATH`` (one trailing newline dropped).

    Errors name the variable or file, never the value.
    """
    kind, sep, target = reference.partition(":")
    if not sep or kind not in ("env", "file") or not target:
        raise KubeferryError(
            "--new-passphrase-from: use env:VAR or file:PATH (never the passphrase itself)"
        )
    if kind == "env":
        where = f"environment variable {target}"
        value = os.environ.get(target)
        if value is None:
            raise KubeferryError(f"new passphrase: {where} is not set")
    else:
        path = Path(target).expanduser()
        where = f"file {path}"
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise KubeferryError(f"new passphrase: cannot read {where}: {reason}") from None
        newline = "\r\n" if value.endswith("\r\n") else "\n"
        value = value.removesuffix(newline)
    if value == "":
        raise KubeferryError(f"new passphrase: {where} is empty")
    return value


# -- init and keys ---------------------------------------------------------------------------


def repo_init(workspace: Workspace, name: str) -> RepoInit:
    """Initialize repository ``name`` (encrypted when its spec says so); refuse a second time."""
    with _connections(workspace, name) as connections:
        repository = connections.repository(name)
        if repository.is_initialized():
            marker = repository.read_marker()
            kind = "encrypted " if marker.encrypted else ""
            raise KubeferryError(
                f"repository {name} ({repository.location}) is already initialized "
                f"({kind}repository {marker.repository_id})"
            )
        passphrase = connections.passphrase(name)
        marker = repository.initialize(str(uuid.uuid4()), passphrase=passphrase)
        key_id = None
        if marker.encrypted:
            keys = _own_keys(repository, marker)
            key_id = keys[0].key_id if len(keys) == 1 else None
        return RepoInit(name, repository.location, marker.repository_id, marker.encrypted, key_id)


def repo_keys(workspace: Workspace, name: str) -> list[KeyInfo]:
    """The keys of encrypted repository ``name`` (the inventory's passphrase must open one)."""
    with _connections(workspace, name) as connections:
        repository, marker, passphrase = _encrypted(connections, name)
        keys = _own_keys(repository, marker)
        current = _current_key(keys, passphrase)
        return [_key_info(key, current) for key in keys]


def repo_key_add(workspace: Workspace, name: str, *, new_passphrase_from: str) -> KeyInfo:
    """Add a key for the passphrase named by ``new_passphrase_from`` (env:VAR or file:PATH)."""
    new_passphrase = resolve_passphrase_ref(new_passphrase_from)
    with _connections(workspace, name) as connections:
        repository, marker, passphrase = _encrypted(connections, name)
        if new_passphrase == passphrase:
            raise KubeferryError(
                f"repository {name}: the new passphrase is the inventory's current one",
                hint="choose another passphrase",
            )
        cipher = repository.cipher
        assert cipher is not None
        key_id = add_key(repository, cipher, new_passphrase)
        for key in _own_keys(repository, marker):
            if key.key_id == key_id:
                return _key_info(key, None)
        raise KubeferryError(f"repository {name}: key {key_id} vanished after it was added")


def repo_key_remove(workspace: Workspace, name: str, key_id: str) -> KeyInfo:
    """Remove key ``key_id``; refuses the last key and the key the inventory uses."""
    with _connections(workspace, name) as connections:
        repository, marker, passphrase = _encrypted(connections, name)
        keys = _own_keys(repository, marker)
        found = {key.key_id: key for key in keys}.get(key_id)
        if found is None:
            known = ", ".join(key.key_id for key in keys) or "none"
            raise KubeferryError(f"repository {name} has no key {key_id!r}", hint=f"keys: {known}")
        if len(keys) == 1:
            raise KubeferryError(
                f"repository {name}: refusing to remove key {key_id}: it is the last key "
                "(the data could never be decrypted again)",
                hint="add another key first",
            )
        current = _current_key(keys, passphrase)
        if key_id == current:
            raise KubeferryError(
                f"repository {name}: refusing to remove key {key_id}: the inventory's "
                "passphrase opens it",
                hint="point spec.encryption.passphraseFrom at another key's passphrase first",
            )
        cipher = repository.cipher
        assert cipher is not None
        remove_key(repository, cipher, key_id)
        return _key_info(found, current)


# -- check -----------------------------------------------------------------------------------


def _check_snapshot(repository: Repository, snapshot_id: str) -> list[str]:
    """Problems of one object snapshot: metadata opens, every part opens and matches."""
    where = f"snapshot {snapshot_id}"
    try:
        document = json.loads(repository.read_snapshot_metadata(snapshot_id))
    except RepositoryError as error:
        return [f"{where}: {METADATA_NAME}: {error.message}"]
    except ValueError:
        return [f"{where}: {METADATA_NAME} is not JSON"]
    if not isinstance(document, dict):
        return [f"{where}: {METADATA_NAME} is not a JSON object"]
    digests = document.get("digests") or {}
    if not isinstance(digests, dict):
        return [f"{where}: {METADATA_NAME}: digests is not an object"]
    problems = []
    try:
        parts = repository.list_snapshot_parts(snapshot_id)
    except RepositoryError as error:
        return [f"{where}: {error.message}"]
    for part in sorted(set(digests) - set(parts)):
        problems.append(f"{where}: part {part} is missing")
    for part in parts:
        try:
            data = repository.read_snapshot_part(snapshot_id, part)
        except RepositoryError as error:
            problems.append(f"{where}: part {part}: {error.message}")
            continue
        expected = digests.get(part)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            problems.append(
                f"{where}: part {part} ({repository.location}/{SNAPSHOTS_PREFIX}{snapshot_id}/"
                f"{part}) does not match its recorded digest"
            )
    return problems


@dataclass(frozen=True)
class _VolumeRefs:
    ids: list[str]
    referenced: set[str]
    unloadable: list[str]
    """Manifests that do not load (the store's `check` names them)."""
    problems: list[str]
    """Manifests that load but do not parse."""


def _volume_references(store: VolumeStore) -> _VolumeRefs:
    """The volume snapshots and every chunk their manifests use."""
    refs = _VolumeRefs(store.list_snapshots(), set(), [], [])
    for snapshot_id in refs.ids:
        try:
            raw = store.load_manifest(snapshot_id)
        except RepositoryError:
            refs.unloadable.append(snapshot_id)
            continue
        try:
            refs.referenced.update(VolumeManifest.from_bytes(raw).chunk_ids())
        except RepositoryError as error:
            refs.problems.append(f"volume snapshot {snapshot_id}: {error.message}")
    return refs


def repo_check(workspace: Workspace, name: str, *, read_data: bool = False) -> RepoCheck:
    """Verify repository ``name``: object snapshots (always read and compared with their
    digests) and volume data (structure; ``read_data``: every chunk decrypted and re-hashed).
    """
    with _connections(workspace, name) as connections:
        repository, marker = _opened(connections, name)
        problems: list[str] = []
        snapshot_ids = repository.list_snapshots()
        for snapshot_id in snapshot_ids:
            problems.extend(_check_snapshot(repository, snapshot_id))
        volume_ids: list[str] = []
        packs: int | None = 0
        if marker.encrypted:
            store = VolumeStore(repository)
            refs = _volume_references(store)
            volume_ids = refs.ids
            problems.extend(refs.problems)
            problems.extend(store.check(read_data=read_data, referenced=refs.referenced))
            try:
                packs = store.stats().packs
            except RepositoryError as error:
                packs = None
                if not problems:
                    problems.append(f"volume data: {error.message}")
        return RepoCheck(
            name=name,
            location=repository.location,
            read_data=read_data,
            snapshots=len(snapshot_ids),
            volume_snapshots=len(volume_ids),
            packs=packs,
            problems=problems,
        )


# -- prune -----------------------------------------------------------------------------------


def _jobs_of(inventory: Inventory, name: str) -> list[str]:
    return sorted(
        job
        for job, declared in inventory.jobs.items()
        if desired_job(inventory, declared).repository == name
    )


def _incomplete(repository: Repository, cutoff: datetime) -> list[str]:
    """Ids of object snapshots without metadata whose newest part is older than ``cutoff``."""
    complete: set[str] = set()
    newest: dict[str, datetime] = {}
    for info in repository.backend.list(SNAPSHOTS_PREFIX):
        snapshot_id, _, rest = info.key[len(SNAPSHOTS_PREFIX) :].partition("/")
        if not rest:
            continue
        if rest == METADATA_NAME:
            complete.add(snapshot_id)
        newest[snapshot_id] = max(info.modified, newest.get(snapshot_id, info.modified))
    return sorted(i for i, moment in newest.items() if i not in complete and moment < cutoff)


def _planned_retention(
    workspace: Workspace, inventory: Inventory, name: str, jobs: list[str], now: datetime
) -> list[RetentionResult]:
    """What retention would delete, read-only (creates no ledger)."""
    snapshots = list_snapshots(workspace, repository=name)
    results = []
    for job in jobs:
        retention = inventory.jobs[job].spec.retention
        own = [s for s in snapshots if s.job == job]
        if retention is None:
            results.append(RetentionResult(job, name, "", [], [s.id for s in own], []))
            continue
        expired = expired_snapshots(own, retention, now)
        kept = [s.id for s in own if s.id not in set(expired)]
        results.append(RetentionResult(job, name, describe_retention(retention), expired, kept, []))
    return results


@dataclass(frozen=True)
class _VolumeOutcome:
    snapshots: int = 0
    stats: PruneStats | None = None
    unreferenced: int | None = None
    notes: tuple[str, ...] = ()


def _volume_prune(repository: Repository, *, dry_run: bool, grace: timedelta) -> _VolumeOutcome:
    """Prune (or, ``dry_run``, count) the volume data of an encrypted repository."""
    store = VolumeStore(repository)
    refs = _volume_references(store)
    if refs.unloadable or refs.problems:
        bad = refs.problems[0] if refs.problems else f"volume snapshot {refs.unloadable[0]}"
        raise KubeferryError(
            f"volume data not pruned: {bad} cannot be read",
            hint="run `kubeferry repo check`; prune never guesses which chunks are in use",
        )
    stats = store.stats()
    if dry_run:
        used = sum(1 for chunk_id in refs.referenced if store.has(chunk_id))
        return _VolumeOutcome(len(refs.ids), None, stats.chunks - used)
    if stats.packs == 0 and stats.index_files == 0:
        return _VolumeOutcome(len(refs.ids), None, 0, ("no volume data to prune",))
    pruned = store.prune(referenced=refs.referenced, grace=grace)
    return _VolumeOutcome(len(refs.ids), pruned, None)


def repo_prune(
    workspace: Workspace,
    name: str,
    *,
    dry_run: bool = False,
    lock_timeout: float = 0.0,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> RepoPrune:
    """Apply the retention of every job using repository ``name``, remove incomplete object
    snapshots older than ``grace``, then volume data no remaining volume snapshot uses
    (packs younger than ``grace`` survive, for a concurrent backup).

    Under the ledger lock like `backup` (LockBusyError when it is held); the volume store
    takes its own exclusive lock. ``dry_run`` reports what would go and changes nothing
    (no lock taken, no ledger created).
    """
    now = now or datetime.now(UTC)
    inventory = workspace.load_inventory()
    _require_repository(inventory, name)
    jobs = _jobs_of(inventory, name)
    if dry_run:
        with _connections(workspace, name) as connections:
            repository, marker = _opened(connections, name)
            results = _planned_retention(workspace, inventory, name, jobs, now)
            incomplete = _incomplete(repository, now - grace)
            volume = _VolumeOutcome(notes=("unencrypted repository: no volume data",))
            if marker.encrypted:
                volume = _volume_prune(repository, dry_run=True, grace=grace)
    else:
        with locked_runner(
            workspace,
            "prune",
            bus=None,
            engine=None,
            lock_timeout=lock_timeout,
            inventory=inventory,
        ) as runner:
            repository, marker = _opened(runner.connections, name)
            results = [runner.apply_retention(job, now=now) for job in jobs]
            incomplete = repository.gc_incomplete(grace, now=now)
            volume = _VolumeOutcome(notes=("unencrypted repository: no volume data",))
            if marker.encrypted:
                volume = _volume_prune(repository, dry_run=False, grace=grace)
    return RepoPrune(
        name=name,
        dry_run=dry_run,
        retention=results,
        incomplete=incomplete,
        volume_snapshots=volume.snapshots,
        volume=volume.stats,
        unreferenced_chunks=volume.unreferenced,
        notes=list(volume.notes),
    )


# -- stats -----------------------------------------------------------------------------------


def repo_stats(workspace: Workspace, name: str) -> RepoStats:
    """Sizes and counts of repository ``name``."""
    with _connections(workspace, name) as connections:
        repository, marker = _opened(connections, name)
        snapshot_ids = set(repository.list_snapshots())
        size = 0
        for info in repository.backend.list(SNAPSHOTS_PREFIX):
            if info.key[len(SNAPSHOTS_PREFIX) :].partition("/")[0] in snapshot_ids:
                size += info.size
        keys = len(_own_keys(repository, marker)) if marker.encrypted else 0
        volume = VolumeStore(repository).stats() if marker.encrypted else None
        return RepoStats(
            name=name,
            location=repository.location,
            repository_id=marker.repository_id,
            encrypted=marker.encrypted,
            keys=keys,
            snapshots=len(snapshot_ids),
            snapshot_bytes=size,
            volume=volume,
        )
