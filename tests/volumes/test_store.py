"""VolumeStore: packs, index, manifests, locks, prune, check — filesystem and S3 (moto)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.repository import (
    FilesystemBackend,
    IntegrityError,
    Repository,
    RepositoryBackend,
    RepositoryCipher,
    RepositoryError,
    S3Backend,
    S3Credentials,
    ScryptParams,
    SnapshotExists,
    SnapshotNotFound,
    _crypto,
    generate_master_key,
)
from reconciler.volumes import ChunkNotFound, RepositoryLocked, VolumeStore, _store
from tests.volumes._s3 import fresh_bucket_backend, moto_server

PASSPHRASE = "volume store test passphrase"
CREDENTIALS = S3Credentials("AKIATESTKUBEFERRY02", "volume-store-test-secret")


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def _s3_backend(endpoint: str) -> S3Backend:
    return fresh_bucket_backend(endpoint, CREDENTIALS, "kubeferry-volumes")


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> RepositoryBackend:
    if request.param == "filesystem":
        return FilesystemBackend(tmp_path / "repo")
    return _s3_backend(request.getfixturevalue("moto_endpoint"))


@pytest.fixture
def repository(backend: RepositoryBackend) -> Repository:
    Repository(backend).initialize("repo-1", passphrase=PASSPHRASE)
    return Repository(backend).unlock(PASSPHRASE)


@pytest.fixture
def fs_repository(tmp_path: Path) -> Repository:
    backend = FilesystemBackend(tmp_path / "fsrepo")
    Repository(backend).initialize("repo-fs", passphrase=PASSPHRASE)
    return Repository(backend).unlock(PASSPHRASE)


def _store_of(repository: Repository, pack_size: int = 64 * 1024) -> VolumeStore:
    return VolumeStore(repository, pack_size=pack_size)


def _chunk(seed: int, size: int = 20_000, *, compressible: bool = False) -> bytes:
    if compressible:
        return (f"line {seed} of a very compressible text\n" * (size // 30 + 1)).encode()[:size]
    return os.urandom(size)


def _add_all(store: VolumeStore, chunks: list[bytes]) -> list[str]:
    ids = [store.chunk_id(data) for data in chunks]
    for chunk_id, data in zip(ids, chunks, strict=True):
        store.add(chunk_id, data)
    return ids


def _keys(backend: RepositoryBackend, prefix: str) -> list[str]:
    return [info.key for info in backend.list(prefix)]


# -- keys and ids ---------------------------------------------------------------------------


def test_cipher_subkey_is_derived_per_purpose() -> None:
    master = generate_master_key()
    cipher = RepositoryCipher(master)
    key = cipher.subkey(b"volume chunk id")
    assert len(key) == 32
    assert key == RepositoryCipher(master).subkey(b"volume chunk id")
    assert key != cipher.subkey(b"another purpose")
    assert key != RepositoryCipher(generate_master_key()).subkey(b"volume chunk id")
    # the namespaced info never yields the object-encryption or content-id keys
    assert cipher.subkey(b"kubeferry/v1 content id") != cipher._id_key
    with pytest.raises(RepositoryError):
        cipher.subkey(b"")


def test_chunk_ids_are_keyed(fs_repository: Repository, tmp_path: Path) -> None:
    store = _store_of(fs_repository)
    other_backend = FilesystemBackend(tmp_path / "other")
    Repository(other_backend).initialize("repo-2", passphrase=PASSPHRASE)
    other = _store_of(Repository(other_backend).unlock(PASSPHRASE))
    data = b"same content"
    assert store.chunk_id(data) == store.chunk_id(data)
    assert len(store.chunk_id(data)) == 64
    assert store.chunk_id(data) != other.chunk_id(data)


def test_needs_an_encrypted_repository(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path / "plain")
    Repository(backend).initialize("plain")
    with pytest.raises(RepositoryError, match="needs an encrypted repository"):
        VolumeStore(Repository(backend))


def test_invalid_chunk_ids_are_refused(fs_repository: Repository) -> None:
    store = _store_of(fs_repository)
    for bad in ("abc", "z" * 64, ""):
        with pytest.raises(RepositoryError, match="invalid chunk id"):
            store.has(bad)


# -- add / get ------------------------------------------------------------------------------


def test_round_trip_dedup_and_reopen(repository: Repository) -> None:
    store = _store_of(repository)
    chunks = [_chunk(i, compressible=i % 2 == 0) for i in range(12)] + [b""]
    ids = _add_all(store, chunks)
    assert store.add(ids[0], chunks[0]) is False  # dedup
    assert all(store.has(chunk_id) for chunk_id in ids)
    # readable before the flush too (from the open pack or uploaded packs)
    assert store.get(ids[-2]) == chunks[-2]
    store.flush()
    assert [store.get(chunk_id) for chunk_id in ids] == chunks

    reopened = _store_of(repository)
    assert all(reopened.has(chunk_id) for chunk_id in ids)
    assert reopened.add(ids[3], chunks[3]) is False
    assert [reopened.get(chunk_id) for chunk_id in reversed(ids)] == chunks[::-1]
    stats = reopened.stats()
    assert stats.chunks == len(chunks)
    assert stats.raw_bytes == sum(map(len, chunks))
    assert stats.packs >= 2
    assert stats.index_files == 1
    assert reopened.check(read_data=True) == []


def test_compression_only_when_it_shrinks(fs_repository: Repository) -> None:
    store = _store_of(fs_repository, pack_size=2**20)
    text, noise = _chunk(1, 100_000, compressible=True), _chunk(2, 100_000)
    ids = _add_all(store, [text, noise])
    store.flush()
    lengths = {
        chunk_id: _store._decode(store._index[bytes.fromhex(chunk_id)])[2] for chunk_id in ids
    }
    assert lengths[ids[0]] < 10_000
    assert lengths[ids[1]] == len(noise) + _store.SEAL_OVERHEAD
    assert store.get(ids[0]) == text
    assert store.get(ids[1]) == noise


@pytest.fixture(scope="module")
def shared_fs_store(tmp_path_factory: pytest.TempPathFactory) -> VolumeStore:
    backend = FilesystemBackend(tmp_path_factory.mktemp("hypothesis") / "repo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))
        Repository(backend).initialize("repo-h", passphrase=PASSPHRASE)
        return VolumeStore(Repository(backend).unlock(PASSPHRASE), pack_size=8192)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=5000),
            st.builds(lambda n, b: b * n, st.integers(1, 4000), st.binary(min_size=1, max_size=3)),
        ),
        max_size=20,
    ),
    flush_at=st.integers(0, 20),
)
def test_add_get_property(shared_fs_store: VolumeStore, chunks: list[bytes], flush_at: int) -> None:
    store = shared_fs_store
    ids = []
    for position, data in enumerate(chunks):
        if position == flush_at:
            store.flush()
        chunk_id = store.chunk_id(data)
        store.add(chunk_id, data)
        ids.append(chunk_id)
    for chunk_id, data in zip(ids, chunks, strict=True):
        assert store.get(chunk_id) == data
    store.flush()
    fresh = VolumeStore(store._repository, pack_size=8192)
    for chunk_id, data in zip(ids, chunks, strict=True):
        assert fresh.get(chunk_id) == data


def test_threaded_adds(repository: Repository) -> None:
    store = _store_of(repository, pack_size=50_000)
    chunks = [_chunk(i, 7_000) for i in range(60)]
    work = chunks * 3  # every chunk offered three times, from different threads

    def add(data: bytes) -> bool:
        return store.add(store.chunk_id(data), data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        added = list(pool.map(add, work))
    assert sum(added) == len(chunks)
    store.flush()
    fresh = _store_of(repository)
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda data: fresh.get(fresh.chunk_id(data)), chunks)) == chunks
    assert fresh.stats().chunks == len(chunks)


def test_two_stores_writing_concurrently(repository: Repository) -> None:
    first, second = _store_of(repository), _store_of(repository)
    common = [_chunk(i, 9_000) for i in range(10)]
    own = {id(first): [_chunk(i, 9_000) for i in range(15)], id(second): []}
    own[id(second)] = [_chunk(i, 9_000) for i in range(15)]
    barrier = threading.Barrier(2)

    def backup(store: VolumeStore, name: str) -> None:
        barrier.wait()
        _add_all(store, common + own[id(store)])
        store.save_manifest(name.encode(), snapshot_id=name)

    threads = [
        threading.Thread(target=backup, args=(store, name))
        for store, name in ((first, "snap-a"), (second, "snap-b"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = _store_of(repository)
    assert reader.list_snapshots() == ["snap-a", "snap-b"]
    for data in common + own[id(first)] + own[id(second)]:
        assert reader.get(reader.chunk_id(data)) == data
    # a store opened earlier sees the other's chunks after a miss-triggered refresh
    data = own[id(second)][0]
    assert first.get(first.chunk_id(data)) == data
    assert reader.check(read_data=True) == []


def test_get_unknown_chunk(fs_repository: Repository) -> None:
    store = _store_of(fs_repository)
    with pytest.raises(ChunkNotFound):
        store.get(store.chunk_id(b"never stored"))


# -- integrity ------------------------------------------------------------------------------


def _flip(backend: RepositoryBackend, key: str, position: int) -> None:
    data = bytearray(backend.get(key))
    data[position] ^= 0x01
    backend.put(key, bytes(data))


def test_flipped_byte_in_a_pack(repository: Repository) -> None:
    store = _store_of(repository, pack_size=2**20)
    chunks = [_chunk(i, 5_000) for i in range(4)]
    ids = _add_all(store, chunks)
    store.flush()
    backend = repository.backend
    (key,) = _keys(backend, _store.PACKS_PREFIX)
    _flip(backend, key, 5_000 + 100)  # inside the second chunk

    fresh = _store_of(repository)
    assert fresh.get(ids[0]) == chunks[0]
    with pytest.raises(IntegrityError, match=ids[1]):
        fresh.get(ids[1])
    assert fresh.check() == []  # structure is intact
    problems = fresh.check(read_data=True)
    assert len(problems) == 1
    assert ids[1] in problems[0]
    assert "authentication failed" in problems[0]


def test_flipped_byte_in_pack_header_and_index(fs_repository: Repository) -> None:
    store = _store_of(fs_repository, pack_size=2**20)
    _add_all(store, [_chunk(i, 3_000) for i in range(3)])
    store.flush()
    backend = fs_repository.backend
    (pack,) = _keys(backend, _store.PACKS_PREFIX)
    _flip(backend, pack, backend.stat(pack).size - 10)
    problems = _store_of(fs_repository).check(read_data=True)
    assert any("pack header" in problem for problem in problems)

    (index,) = _keys(backend, _store.INDEX_PREFIX)
    _flip(backend, index, 40)
    problems = _store_of(fs_repository).check()
    assert any(problem.startswith(f"index {index}") for problem in problems)
    with pytest.raises(IntegrityError):
        _store_of(fs_repository).has("00" * 32)


def test_chunk_moved_to_another_id_does_not_open(fs_repository: Repository) -> None:
    store = _store_of(fs_repository)
    first, second = _chunk(1, 2_000), _chunk(2, 2_000)
    ids = _add_all(store, [first, second])
    store.flush()
    # an index pointing one id at the other chunk's bytes: the aad (chunk id) differs
    store._index[bytes.fromhex(ids[0])] = store._index[bytes.fromhex(ids[1])]
    with pytest.raises(IntegrityError, match="authentication failed"):
        store.get(ids[0])


def test_check_reports_missing_packs_and_unindexed_chunks(fs_repository: Repository) -> None:
    store = _store_of(fs_repository, pack_size=2**20)
    ids = _add_all(store, [_chunk(i, 3_000) for i in range(3)])
    store.flush()
    backend = fs_repository.backend
    (pack,) = _keys(backend, _store.PACKS_PREFIX)
    backend.delete(pack)
    unknown = store.chunk_id(b"not stored")
    problems = _store_of(fs_repository).check(referenced=[*ids, unknown])
    assert len(problems) == 2
    assert "missing (3 indexed chunks lost)" in problems[0]
    assert unknown in problems[1]
    with pytest.raises(ChunkNotFound, match="missing"):
        _store_of(fs_repository).get(ids[0])


def test_failed_upload_poisons_the_session(fs_repository: Repository, tmp_path: Path) -> None:
    class Failing(FilesystemBackend):
        def put(self, key: str, data: bytes) -> None:
            if key.startswith(_store.PACKS_PREFIX):
                raise RepositoryError("disk full")
            super().put(key, data)

    backend = Failing(tmp_path / "fsrepo")
    store = VolumeStore(Repository(backend, fs_repository.cipher), pack_size=1000)
    with pytest.raises(RepositoryError, match="disk full"):
        _add_all(store, [_chunk(1, 2_000)])
    with pytest.raises(RepositoryError, match="incomplete"):
        store.save_manifest(b"{}", snapshot_id="never")
    assert store.list_snapshots() == []


# -- manifests ------------------------------------------------------------------------------


def test_manifests(repository: Repository) -> None:
    store = _store_of(repository)
    ids = _add_all(store, [_chunk(1), _chunk(2)])
    manifest = json.dumps({"format": "kubeferry.volume/v1", "chunks": ids}).encode() * 50
    store.save_manifest(manifest, snapshot_id="vol-1")
    # flushed before the manifest: a fresh store finds the data
    fresh = _store_of(repository)
    assert all(fresh.has(chunk_id) for chunk_id in ids)
    assert fresh.load_manifest("vol-1") == manifest
    assert fresh.list_snapshots() == ["vol-1"]
    with pytest.raises(SnapshotExists):
        store.save_manifest(b"other", snapshot_id="vol-1")
    with pytest.raises(SnapshotNotFound):
        fresh.load_manifest("vol-2")
    with pytest.raises(RepositoryError, match="invalid volume snapshot id"):
        fresh.load_manifest("../x")
    (key,) = _keys(repository.backend, _store.SNAPSHOTS_PREFIX)
    assert manifest[:20] not in repository.backend.get(key)  # sealed
    fresh.delete_snapshot("vol-1")
    assert fresh.list_snapshots() == []
    assert fresh.stats().snapshots == 0


# -- locks ----------------------------------------------------------------------------------


def test_locks(repository: Repository) -> None:
    backup, other, pruner = (_store_of(repository) for _ in range(3))
    with backup.lock("shared"), other.lock("shared"):
        assert len(_keys(repository.backend, _store.LOCKS_PREFIX)) == 2
        with pytest.raises(RepositoryLocked, match=r"shared lock .* held by"):
            pruner.prune(referenced=set())
        with pytest.raises(RepositoryLocked), pruner.lock("exclusive"):
            pass
    assert _keys(repository.backend, _store.LOCKS_PREFIX) == []
    with pruner.lock("exclusive"):
        with pytest.raises(RepositoryLocked, match="exclusive lock"), backup.lock("shared"):
            pass
        pruner.prune(referenced=set())  # its own lock does not conflict
    assert _keys(repository.backend, _store.LOCKS_PREFIX) == []


def test_stale_lock_is_ignored_and_removed(fs_repository: Repository) -> None:
    store = _store_of(fs_repository)
    key = _store.LOCKS_PREFIX + "ab" * 16
    old = datetime.now(UTC) - timedelta(minutes=31)
    body = json.dumps(
        {
            "kind": "shared",
            "host": "gone",
            "pid": 1,
            "created": old.isoformat(),
            "refreshed": old.isoformat(),
        }
    ).encode()
    cipher = fs_repository.cipher
    assert cipher is not None
    fs_repository.backend.put(key, cipher.seal(body, aad=key.encode()))
    (lock,) = store.list_locks()
    assert lock.stale(datetime.now(UTC))
    store.prune(referenced=set())
    assert _keys(fs_repository.backend, _store.LOCKS_PREFIX) == []


def test_lock_refresh(fs_repository: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store, "REFRESH_EVERY", timedelta(seconds=0.05))
    store = _store_of(fs_repository)
    with store.lock("shared"):
        (first,) = store.list_locks()
        threading.Event().wait(0.3)
        (second,) = store.list_locks()
    assert second.refreshed > first.refreshed
    assert second.created == first.created


def test_lock_wait(fs_repository: Repository) -> None:
    holder, waiter = _store_of(fs_repository), _store_of(fs_repository)
    release = threading.Event()

    def hold() -> None:
        with holder.lock("shared"):
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        while not holder.list_locks():
            threading.Event().wait(0.01)
        threading.Timer(0.2, release.set).start()
        with waiter.lock("exclusive", wait=10):
            pass
    finally:
        release.set()
        thread.join()


# -- prune and recover ----------------------------------------------------------------------


def _backup(store: VolumeStore, snapshot_id: str, chunks: list[bytes]) -> list[str]:
    with store.lock("shared"):
        ids = _add_all(store, chunks)
        store.save_manifest(json.dumps(ids).encode(), snapshot_id=snapshot_id)
    return ids


def _referenced(store: VolumeStore) -> set[str]:
    return {
        chunk_id
        for snapshot_id in store.list_snapshots()
        for chunk_id in json.loads(store.load_manifest(snapshot_id))
    }


def test_prune_deletes_unreferenced_packs(repository: Repository) -> None:
    store = _store_of(repository, pack_size=30_000)
    old = _backup(store, "snap-1", [_chunk(i, 10_000) for i in range(6)])
    new_chunks = [_chunk(i, 10_000) for i in range(6)]
    new = _backup(_store_of(repository, pack_size=30_000), "snap-2", new_chunks)
    before = store.stats()
    store.delete_snapshot("snap-1")

    young = store.prune(referenced=_referenced(store))  # everything within the grace period
    assert young.deleted_packs == 0
    stats = store.prune(referenced=_referenced(store), grace=timedelta(0))
    assert stats.deleted_packs == 2
    assert stats.removed_chunks == 6
    assert stats.freed_bytes > 60_000
    after = store.stats()
    assert after.packs == before.packs - 2
    assert after.chunks == 6
    assert after.index_files == 1
    fresh = _store_of(repository)
    assert [fresh.get(chunk_id) for chunk_id in new] == new_chunks
    with pytest.raises(ChunkNotFound):
        fresh.get(old[0])
    assert fresh.check(read_data=True, referenced=new) == []


def test_prune_keeps_a_concurrent_backups_packs(fs_repository: Repository) -> None:
    writer = _store_of(fs_repository, pack_size=20_000)
    pruner = _store_of(fs_repository)
    chunks = [_chunk(i, 10_000) for i in range(8)]
    ids = _add_all(writer, chunks[:4])  # packs uploaded, no index yet
    assert _keys(fs_repository.backend, _store.PACKS_PREFIX)
    stats = pruner.prune(referenced=set())
    assert stats.deleted_packs == stats.orphan_packs == 0
    writer.flush()  # index written, manifest not yet: still unreferenced
    ids += _add_all(writer, chunks[4:])
    stats = pruner.prune(referenced=set())
    assert stats.deleted_packs == 0
    assert stats.kept_packs >= 2
    writer.save_manifest(json.dumps(ids).encode(), snapshot_id="late")
    fresh = _store_of(fs_repository)
    assert [fresh.get(chunk_id) for chunk_id in ids] == chunks
    assert fresh.check(read_data=True) == []


def test_prune_removes_old_orphans(fs_repository: Repository) -> None:
    crashed = _store_of(fs_repository, pack_size=10_000)
    _add_all(crashed, [_chunk(i, 12_000) for i in range(2)])  # never flushed
    assert len(_keys(fs_repository.backend, _store.PACKS_PREFIX)) == 2
    stats = _store_of(fs_repository).prune(referenced=set(), grace=timedelta(0))
    assert stats.orphan_packs == 2
    assert _keys(fs_repository.backend, _store.PACKS_PREFIX) == []


def test_prune_repacks_mostly_unused_packs(repository: Repository) -> None:
    store = _store_of(repository, pack_size=2**20)
    chunks = [_chunk(i, 10_000) for i in range(5)]
    ids = _backup(store, "snap-1", chunks)
    store.delete_snapshot("snap-1")
    kept = ids[2]
    stats = store.prune(referenced={kept}, grace=timedelta(0))
    assert (stats.repacked_packs, stats.written_packs, stats.removed_chunks) == (1, 1, 4)
    assert stats.freed_bytes > 35_000
    fresh = _store_of(repository)
    assert fresh.get(kept) == chunks[2]
    assert fresh.stats().chunks == 1
    assert fresh.check(read_data=True) == []
    # below the threshold (or disabled) the pack stays as it is
    assert store.prune(referenced={kept}, grace=timedelta(0)).kept_packs == 1


def test_prune_repacks_until_little_garbage_is_left(repository: Repository) -> None:
    # 10 packs of 5 chunks; the oldest snapshot's chunk in each pack goes: every pack is
    # 20% unused, which no per-pack threshold of one half would ever repack
    store = _store_of(repository, pack_size=50_000)
    chunks = [_chunk(i, 10_000) for i in range(50)]
    ids = _add_all(store, chunks)
    store.flush()
    with store.lock("shared"):
        store.save_manifest(json.dumps(ids[1::5]).encode(), snapshot_id="old")
        kept = [chunk_id for n, chunk_id in enumerate(ids) if n % 5 != 1]
        store.save_manifest(json.dumps(kept).encode(), snapshot_id="new")
    assert store.stats().packs == 10
    store.delete_snapshot("old")
    stats = store.prune(referenced=set(kept), grace=timedelta(0))
    # 10,000 unused bytes per pack against 40,000 used: repacking stops once at most 5% of
    # the 400,000 referenced bytes (20,000, two packs' worth) is left unused
    assert stats.repacked_packs == 8
    assert stats.removed_chunks == 8
    fresh = _store_of(repository)
    assert fresh.stats().chunks == 40 + 2  # two packs kept whole with their one spare chunk
    assert [fresh.get(chunk_id) for chunk_id in kept] == [
        data for n, data in enumerate(chunks) if n % 5 != 1
    ]
    assert fresh.check(read_data=True) == []
    # within the budget already: nothing is rewritten for it
    assert store.prune(referenced=set(kept), grace=timedelta(0)).repacked_packs == 0
    # and None never repacks
    again = _store_of(repository)
    assert (
        again.prune(referenced=set(kept[:20]), grace=timedelta(0), max_unused=None).repacked_packs
        == 0
    )


def test_prune_refuses_unflushed_store(fs_repository: Repository) -> None:
    store = _store_of(fs_repository)
    _add_all(store, [_chunk(1)])
    with pytest.raises(RepositoryError, match="flush first"):
        store.prune(referenced=set())


def test_recover_reindexes_packs(fs_repository: Repository) -> None:
    crashed = _store_of(fs_repository, pack_size=10_000)
    chunks = [_chunk(i, 12_000) for i in range(3)]
    ids = _add_all(crashed, chunks)  # two packs uploaded, the third still open: lost
    assert not _store_of(fs_repository).has(ids[0])
    store = _store_of(fs_repository)
    assert store.recover() == 3
    assert store.get(ids[0]) == chunks[0]
    # a damaged index file: its packs are re-indexed and the file removed
    backend = fs_repository.backend
    (index,) = _keys(backend, _store.INDEX_PREFIX)
    _flip(backend, index, 50)
    assert _store_of(fs_repository).check() != []
    assert _store_of(fs_repository).recover() == 3
    fresh = _store_of(fs_repository)
    assert fresh.check(read_data=True) == []
    assert [fresh.get(chunk_id) for chunk_id in ids] == chunks


def test_repository_layout(fs_repository: Repository) -> None:
    store = _store_of(fs_repository, pack_size=10_000)
    _backup(store, "snap-1", [_chunk(i, 12_000) for i in range(2)])
    keys = _keys(fs_repository.backend, "volumes/")
    for key in keys:
        parts = key.split("/")
        if parts[1] == "packs":
            assert len(parts[3]) == 64
            assert parts[2] == parts[3][:2]
        else:
            assert parts[1] in {"index", "snapshots"}
    assert {key.split("/")[1] for key in keys} == {"packs", "index", "snapshots"}


def test_long_backup_indexes_as_it_goes(
    fs_repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "INDEX_EVERY_PACKS", 2)
    crashed = _store_of(fs_repository, pack_size=10_000)
    chunks = [_chunk(i, 12_000) for i in range(5)]
    ids = _add_all(crashed, chunks)  # 5 packs uploaded, never flushed
    assert len(_keys(fs_repository.backend, _store.INDEX_PREFIX)) == 2
    retry = _store_of(fs_repository)
    assert [retry.has(chunk_id) for chunk_id in ids] == [True] * 4 + [False]
    assert retry.add(ids[0], chunks[0]) is False


# -- how chunks are read ---------------------------------------------------------------------


class _CountingBackend(FilesystemBackend):
    """A local backend that counts whole-pack and ranged reads (and may pose as remote)."""

    def __init__(self, root: Path, *, cheap: bool) -> None:
        super().__init__(root)
        self.cheap = cheap
        self.whole_pack_reads = 0
        self.range_reads = 0

    @property
    def cheap_ranges(self) -> bool:
        return self.cheap

    def get(self, key: str) -> bytes:
        if key.startswith(_store.PACKS_PREFIX):
            self.whole_pack_reads += 1
        return super().get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.range_reads += 1
        return super().get_range(key, start, length)


@pytest.mark.parametrize("cheap", [True, False], ids=["local-disk", "object-store"])
def test_chunks_are_read_by_range_only_where_ranges_are_cheap(tmp_path: Path, cheap: bool) -> None:
    backend = _CountingBackend(tmp_path / "repo", cheap=cheap)
    Repository(backend).initialize("repo-ranges", passphrase=PASSPHRASE)
    repository = Repository(backend).unlock(PASSPHRASE)
    chunks = [_chunk(seed) for seed in range(12)]
    writer = _store_of(repository)
    ids = _add_all(writer, chunks)
    writer.flush()
    packs = len(_keys(backend, _store.PACKS_PREFIX))
    assert packs >= 3  # several packs, so the reads below cross pack boundaries

    reader = _store_of(Repository(backend).unlock(PASSPHRASE))
    backend.whole_pack_reads = backend.range_reads = 0
    # a restore's order wanders between packs; every chunk twice
    for chunk_id, data in [
        *zip(ids, chunks, strict=True),
        *zip(ids[::-1], chunks[::-1], strict=True),
    ]:
        assert reader.get(chunk_id) == data
    if cheap:
        # a local disk: each chunk's bytes only, never a whole pack
        assert (backend.whole_pack_reads, backend.range_reads) == (0, 2 * len(chunks))
    else:
        # an object store: whole packs, each fetched once and then served from the cache
        assert (backend.whole_pack_reads, backend.range_reads) == (packs, 0)
