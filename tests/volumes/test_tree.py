"""backup_tree / restore_tree: round trips, incremental backups, damage, interruption, safety."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.repository import (
    FilesystemBackend,
    IntegrityError,
    Repository,
    RepositoryError,
    S3Credentials,
    ScryptParams,
    _crypto,
)
from reconciler.volumes import _tree
from reconciler.volumes._tree import (
    MANIFEST_FORMAT,
    ChunkerParams,
    ManifestEntry,
    TreeProgress,
    VolumeManifest,
    backup_tree,
    restore_tree,
)
from tests.volumes._fake_store import FakeStore
from tests.volumes._s3 import fresh_bucket_backend, moto_server

PASSPHRASE = "volume tree test passphrase"
MB = 2**20
SMALL_CHUNKS = 64 * 1024  # avg; max 256 KiB, so files over 1 MiB take the parallel path
IS_ROOT = os.geteuid() == 0


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def real_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A VolumeStore on an encrypted filesystem repository (cheap scrypt)."""
    from reconciler.volumes import VolumeStore

    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))
    backend = FilesystemBackend(tmp_path / "repo")
    Repository(backend).initialize("volumes-test", passphrase=PASSPHRASE)
    return VolumeStore(Repository(backend).unlock(PASSPHRASE), pack_size=4 * MB)


S3_CREDENTIALS = S3Credentials("AKIATESTKUBEFERRY03", "volume-tree-test-secret")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def _s3_store(endpoint: str) -> Any:
    """A VolumeStore on an encrypted repository in a fresh bucket of the moto server."""
    from reconciler.volumes import VolumeStore

    backend = fresh_bucket_backend(endpoint, S3_CREDENTIALS, "kubeferry-tree")
    Repository(backend).initialize("volumes-s3-test", passphrase=PASSPHRASE)
    return VolumeStore(Repository(backend).unlock(PASSPHRASE), pack_size=1 * MB)


def _reopen(store: Any) -> Any:
    """A second VolumeStore on the same repository (another process, after a crash)."""
    from reconciler.volumes import VolumeStore

    repo = Repository(store._backend).unlock(PASSPHRASE)
    return VolumeStore(repo, pack_size=store.pack_size)


def _data(size: int, seed: int, compressible: bool = False) -> bytes:
    rng = random.Random(seed)
    if compressible:
        words = [rng.randbytes(rng.randint(3, 12)) for _ in range(64)]
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words)
        return bytes(out[:size])
    return rng.randbytes(size)


def describe(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a restore must reproduce, by relative path (hardlinks as inode groups)."""
    found: list[tuple[str, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            found.append((os.path.relpath(full, root), os.lstat(full)))
    found.sort()
    first: dict[int, str] = {}
    out: dict[str, tuple[Any, ...]] = {}
    for rel, s in found:
        owner = (s.st_uid, s.st_gid)
        if stat.S_ISREG(s.st_mode):
            group = first.setdefault(s.st_ino, rel)
            digest = hashlib.sha256(Path(root, rel).read_bytes()).hexdigest()
            out[rel] = ("file", oct(s.st_mode), owner, s.st_mtime_ns, s.st_size, digest, group)
        elif stat.S_ISDIR(s.st_mode):
            out[rel] = ("dir", oct(s.st_mode), owner, s.st_mtime_ns)
        elif stat.S_ISLNK(s.st_mode):
            out[rel] = ("symlink", os.readlink(Path(root, rel)), owner, s.st_mtime_ns)
        else:
            out[rel] = ("other", oct(s.st_mode), owner, s.st_mtime_ns)
    s = os.stat(root)
    out["."] = ("root", oct(s.st_mode), (s.st_uid, s.st_gid), s.st_mtime_ns)
    return out


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(f"{_tree._TMP_PREFIX}*")]


def rmtree(root: Path) -> None:
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(root)


def round_trip(store: Any, src: Path, dst: Path, **kwargs: Any) -> Any:
    snap = backup_tree(store, src, workers=3, **kwargs)
    restored = restore_tree(store, snap.snapshot_id, dst, workers=3)
    assert describe(dst) == describe(src)
    assert leftovers(dst) == []
    assert restored.bytes == snap.bytes
    return snap


# -- hypothesis trees ---------------------------------------------------------------------------

NAMES = st.text(
    alphabet=st.sampled_from(list("abcxyzABC019_-. éüß日本語🙂")), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
FILE_MODES = st.sampled_from([0o644, 0o600, 0o755, 0o400, 0o000, 0o4755, 0o640])
DIR_MODES = st.sampled_from([0o755, 0o700, 0o555, 0o1777, 0o2750])
MTIMES = st.integers(min_value=0, max_value=4 * 10**18)
IDS = st.integers(min_value=0, max_value=70000)


@st.composite
def tree_specs(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    dirs = [""]
    used: set[str] = set()
    ops: list[tuple[Any, ...]] = []

    def fresh(parent: str, name: str) -> str | None:
        path = f"{parent}/{name}" if parent else name
        if path in used:
            return None
        used.add(path)
        return path

    for _ in range(draw(st.integers(0, 5))):
        path = fresh(draw(st.sampled_from(dirs)), draw(NAMES))
        if path:
            dirs.append(path)
            ops.append(("dir", path, draw(DIR_MODES), draw(MTIMES), draw(IDS)))
    if draw(st.booleans()):  # a deep path
        parent = draw(st.sampled_from(dirs))
        for depth in range(draw(st.integers(8, 40))):
            path = fresh(parent, f"deep{depth}")
            if not path:
                break
            dirs.append(path)
            ops.append(("dir", path, 0o755, draw(MTIMES), 0))
            parent = path
    files: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        path = fresh(draw(st.sampled_from(dirs)), draw(NAMES))
        if not path:
            continue
        size = draw(
            st.one_of(
                st.just(0),
                st.integers(1, 4000),
                st.integers(4000, 400_000),
                st.integers(1 * MB, 5 * MB) if len(files) < 1 else st.just(10),
            )
        )
        content = (size, draw(st.integers(0, 2**32)), draw(st.booleans()))
        ops.append(("file", path, content, draw(FILE_MODES), draw(MTIMES), draw(IDS)))
        files.append(path)
    if draw(st.booleans()):
        path = fresh(draw(st.sampled_from(dirs)), "sparse")
        if path:
            ops.append(("sparse", path, draw(st.integers(0, 2**32)), draw(MTIMES)))
            files.append(path)
    for _ in range(draw(st.integers(0, 3))):
        path = fresh(draw(st.sampled_from(dirs)), draw(NAMES))
        targets = ["does-not-exist", "/etc/passwd", "../../../outside", "日本/🙂", *files]
        if path:
            ops.append(("symlink", path, draw(st.sampled_from(targets)), draw(MTIMES)))
    if files:
        for _ in range(draw(st.integers(0, 3))):
            path = fresh(draw(st.sampled_from(dirs)), draw(NAMES))
            if path:
                ops.append(("hardlink", path, draw(st.sampled_from(files))))
    ops.append(("root", draw(DIR_MODES), draw(MTIMES)))
    return ops


def build(root: Path, ops: list[tuple[Any, ...]]) -> None:
    dir_meta: list[tuple[str, int, int, int]] = []
    for op in ops:
        kind, path = op[0], op[1]
        full = root / path if kind != "root" else root
        if kind == "dir":
            full.mkdir()
            dir_meta.append((path, op[2], op[3], op[4]))
        elif kind == "file":
            size, seed, compressible = op[2]
            full.write_bytes(_data(size, seed, compressible))
            if IS_ROOT:
                os.chown(full, op[5], op[5] + 1)
            os.chmod(full, op[3])
            os.utime(full, ns=(op[4], op[4]))
        elif kind == "sparse":
            with open(full, "wb") as f:
                f.truncate(9 * MB)
                f.seek(3 * MB + 12345)
                f.write(_data(100_000, op[2]))
            os.utime(full, ns=(op[3], op[3]))
        elif kind == "symlink":
            os.symlink(op[2], full)
            os.utime(full, ns=(op[3], op[3]), follow_symlinks=False)
        elif kind == "hardlink":
            os.link(root / op[2], full)
    for path, mode, mtime, owner in sorted(dir_meta, key=lambda d: -d[0].count("/")):
        if IS_ROOT:
            os.chown(root / path, owner, owner)
        os.chmod(root / path, mode)
        os.utime(root / path, ns=(mtime, mtime))
    _, mode, mtime = ops[-1]
    os.chmod(root, mode)
    os.utime(root, ns=(mtime, mtime))


@pytest.fixture
def scratch() -> Iterator[Callable[[], Path]]:
    made: list[Path] = []

    def make() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="kf-tree-")))
        return made[-1]

    yield make
    for path in made:
        if path.exists():
            rmtree(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=tree_specs())
def test_random_trees_round_trip_fake_store(
    ops: list[tuple[Any, ...]], scratch: Callable[[], Path]
) -> None:
    src, dst = scratch() / "src", scratch() / "dst"
    src.mkdir()
    build(src, ops)
    store = FakeStore()
    round_trip(store, src, dst, avg_chunk=SMALL_CHUNKS)
    assert store.locks == ["shared", "shared"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=tree_specs())
def test_random_trees_round_trip_real_store(
    ops: list[tuple[Any, ...]], scratch: Callable[[], Path], real_store: Any
) -> None:
    src, dst = scratch() / "src", scratch() / "dst"
    src.mkdir()
    build(src, ops)
    round_trip(real_store, src, dst, avg_chunk=SMALL_CHUNKS)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=tree_specs())
def test_random_trees_round_trip_s3_store(
    ops: list[tuple[Any, ...]], scratch: Callable[[], Path], moto_endpoint: str
) -> None:
    src, dst = scratch() / "src", scratch() / "dst"
    src.mkdir()
    build(src, ops)
    store = _s3_store(moto_endpoint)
    first = round_trip(store, src, dst, avg_chunk=SMALL_CHUNKS)
    # and an incremental backup over S3 after an edit restores the edited tree
    os.chmod(src, 0o755)  # the drawn root mode may be read-only for a non-root user
    (src / "added-after-first.bin").write_bytes(_data(300_000, 7))
    second = backup_tree(store, src, parent=first.snapshot_id, workers=3, avg_chunk=SMALL_CHUNKS)
    again = scratch() / "again"
    restore_tree(store, second.snapshot_id, again, workers=3)
    assert describe(again) == describe(src)


# -- fixed trees --------------------------------------------------------------------------------


def _mixed_tree(root: Path) -> None:
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "big.bin").write_bytes(_data(3 * MB, 1))
    (root / "text.log").write_bytes(_data(2 * MB, 2, compressible=True))
    for i in range(40):
        (root / "docs" / f"note-{i}.txt").write_bytes(_data(i * 100, 100 + i))
    (root / "docs" / "deep" / "er" / "ünïcødé 文件.txt").write_bytes(b"hello")
    os.link(root / "big.bin", root / "docs" / "big-again.bin")
    os.symlink("../big.bin", root / "docs" / "to-big")
    os.symlink("/nonexistent/dangling", root / "dangling")
    os.chmod(root / "docs" / "note-1.txt", 0o4711)


def test_sparse_file_stays_sparse(real_store: Any, scratch: Callable[[], Path]) -> None:
    src, dst = scratch() / "src", scratch() / "dst"
    src.mkdir()
    with open(src / "disk.img", "wb") as f:
        f.truncate(64 * MB)
        f.seek(20 * MB)
        f.write(_data(300_000, 5))
        f.seek(40 * MB + 4096)
        f.write(b"tail")
    source_blocks = os.stat(src / "disk.img").st_blocks
    if source_blocks * 512 > 8 * MB:
        pytest.skip("this filesystem does not keep holes")
    snap = round_trip(real_store, src, dst)
    assert snap.bytes == 64 * MB
    assert snap.new_bytes < 16 * MB  # the holes deduplicate to one zero chunk
    restored = os.stat(dst / "disk.img")
    assert restored.st_size == 64 * MB
    assert restored.st_blocks * 512 < 2 * MB, "the holes were written out"
    manifest = VolumeManifest.from_bytes(real_store.load_manifest(snap.snapshot_id))
    assert [e.sparse for e in manifest.entries] == [True]


def test_fifo_and_undecodable_names(scratch: Callable[[], Path]) -> None:
    src, dst = scratch() / "src", scratch() / "dst"
    src.mkdir()
    os.mkfifo(src / "pipe", 0o640)
    raw = os.fsencode(src) + b"/caf\xe9-\xff"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    round_trip(FakeStore(), src, dst)
    assert os.path.exists(os.fsencode(dst) + b"/caf\xe9-\xff")
    assert stat.S_ISFIFO(os.lstat(dst / "pipe").st_mode)


def test_progress_and_result_counts(real_store: Any, scratch: Callable[[], Path]) -> None:
    src, dst = scratch() / "src", scratch() / "dst"
    src.mkdir()
    _mixed_tree(src)
    seen: list[TreeProgress] = []
    snap = backup_tree(real_store, src, on_progress=seen.append, avg_chunk=SMALL_CHUNKS)
    assert snap.files == 44  # 43 files + 1 hardlink
    assert snap.dirs == 3
    assert snap.symlinks == 2
    assert snap.bytes == 3 * MB + 2 * MB + sum(i * 100 for i in range(40)) + 5
    assert snap.new_bytes == snap.bytes  # raw bytes of new chunks; the hardlink counts once
    assert snap.new_chunks > 0
    assert snap.reused_files == 0
    last = seen[-1]
    assert (last.files_done, last.bytes_done) == (last.files_total, last.bytes_total)
    assert last.bytes_total == snap.bytes
    seen.clear()
    restored = restore_tree(real_store, snap.snapshot_id, dst, on_progress=seen.append)
    assert seen[-1].bytes_done == seen[-1].bytes_total == snap.bytes
    assert (restored.files, restored.dirs, restored.hardlinks) == (44, 3, 1)
    assert describe(dst) == describe(src)
    assert os.stat(dst / "big.bin").st_ino == os.stat(dst / "docs" / "big-again.bin").st_ino


def test_manifest_format_is_small_and_deterministic(scratch: Callable[[], Path]) -> None:
    src = scratch()
    _mixed_tree(src)
    store = FakeStore()
    first = backup_tree(store, src, avg_chunk=SMALL_CHUNKS)
    second = backup_tree(store, src, avg_chunk=SMALL_CHUNKS)
    assert second.new_chunks == 0
    one = json.loads(store.load_manifest(first.snapshot_id))
    two = json.loads(store.load_manifest(second.snapshot_id))
    assert one["format"] == MANIFEST_FORMAT
    assert one["chunker"] == {
        "algorithm": "fastcdc-2020",
        "avg": SMALL_CHUNKS,
        "min": SMALL_CHUNKS // 4,
        "max": SMALL_CHUNKS * 4,
    }
    one.pop("created"), two.pop("created")
    assert one == two
    paths = [e["path"] for e in one["entries"]]
    assert paths == sorted(paths)
    by_path = {e["path"]: e for e in one["entries"]}
    assert by_path["docs/big-again.bin"] == {
        "path": "docs/big-again.bin",
        "type": "hardlink",
        "link": "big.bin",
        "mode": 0o644,
        "uid": os.geteuid(),
        "gid": os.getegid(),
        "mtime_ns": os.stat(src / "big.bin").st_mtime_ns,
    }
    assert by_path["dangling"]["target"] == "/nonexistent/dangling"
    assert by_path["docs/note-1.txt"]["mode"] == 0o4711
    manifest = VolumeManifest.from_bytes(store.load_manifest(first.snapshot_id))
    assert VolumeManifest.from_bytes(manifest.to_bytes()) == manifest
    assert len(manifest.to_bytes()) < len(manifest.to_json_bytes()) / 2


# -- incremental --------------------------------------------------------------------------------


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    original = _tree._open_for_read

    def counting(path: str) -> int:
        opened.append(os.path.basename(path))
        return original(path)

    monkeypatch.setattr(_tree, "_open_for_read", counting)
    return opened


def test_incremental_backup_reads_and_stores_only_changes(
    real_store: Any, scratch: Callable[[], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = scratch()
    (src / "big.bin").write_bytes(_data(20 * MB, 7))
    (src / "middle.bin").write_bytes(_data(6 * MB, 8))
    for i in range(30):
        (src / f"small-{i}").write_bytes(_data(2000 + i, 9 + i))
    first = backup_tree(real_store, src)
    assert first.new_bytes == first.bytes == 26 * MB + sum(2000 + i for i in range(30))

    opened = _count_opens(monkeypatch)
    same = backup_tree(real_store, src, parent=first.snapshot_id)
    assert (same.new_bytes, same.new_chunks, same.reused_files) == (0, 0, 32)
    assert opened == []

    with open(src / "big.bin", "ab") as f:
        f.write(_data(MB, 10))
    with open(src / "middle.bin", "r+b") as f:
        f.seek(3 * MB)
        f.write(b"an edit in the middle")
    store = _reopen(real_store)  # a later run: the index comes from the repository
    edited = backup_tree(store, src, parent=same.snapshot_id)
    assert sorted(opened) == ["big.bin", "middle.bin"]
    assert edited.reused_files == 30
    assert edited.bytes == first.bytes + MB
    # the appended MB plus the re-cut last chunk(s) of big.bin and the chunk(s) around the edit
    assert edited.new_bytes < 10 * MB, edited
    dst = scratch() / "dst"
    restore_tree(store, edited.snapshot_id, dst)
    assert describe(dst) == describe(src)


def test_changed_metadata_alone_rereads_without_storing(scratch: Callable[[], Path]) -> None:
    src = scratch()
    (src / "a").write_bytes(_data(300_000, 1))
    store = FakeStore()
    first = backup_tree(store, src, avg_chunk=SMALL_CHUNKS)
    os.chmod(src / "a", 0o600)  # ctime changes: read again, nothing new stored
    second = backup_tree(store, src, parent=first.snapshot_id, avg_chunk=SMALL_CHUNKS)
    assert (second.reused_files, second.new_bytes) == (0, 0)
    entry = VolumeManifest.from_bytes(store.load_manifest(second.snapshot_id)).entries[0]
    assert entry.mode == 0o600


# -- damage and interruption --------------------------------------------------------------------


@pytest.mark.parametrize("size", [200_000, 3 * MB], ids=["small-file", "parallel-file"])
def test_tampered_chunk_fails_restore_without_wrong_file(
    size: int, scratch: Callable[[], Path]
) -> None:
    src, dst = scratch(), scratch() / "dst"
    (src / "victim").write_bytes(_data(size, 3))
    (src / "other").write_bytes(b"fine")
    store = FakeStore()
    snap = backup_tree(store, src, avg_chunk=SMALL_CHUNKS)
    manifest = VolumeManifest.from_bytes(store.load_manifest(snap.snapshot_id))
    victim = next(e for e in manifest.entries if e.path == "victim")
    assert len(victim.chunks) > 2
    store.tamper(victim.chunks[-2][0])
    dst.mkdir()
    (dst / "victim").write_bytes(b"previous content")
    with pytest.raises(IntegrityError):
        restore_tree(store, snap.snapshot_id, dst)
    assert (dst / "victim").read_bytes() == b"previous content"
    assert leftovers(dst) == []


def test_flipped_byte_in_a_pack_fails_restore(
    real_store: Any, scratch: Callable[[], Path], tmp_path: Path
) -> None:
    src, dst = scratch(), scratch() / "dst"
    (src / "data").write_bytes(_data(2 * MB, 4))
    snap = backup_tree(real_store, src, avg_chunk=SMALL_CHUNKS)
    packs = [p for p in (tmp_path / "repo").rglob("*") if p.is_file() and "packs" in p.parts]
    assert packs
    blob = bytearray(packs[0].read_bytes())
    blob[len(blob) // 3] ^= 0x40
    packs[0].write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        restore_tree(_reopen(real_store), snap.snapshot_id, dst)
    assert not (dst / "data").exists()
    assert leftovers(dst) == []


class Cancelled(Exception):
    pass


def test_interrupted_backup_then_retry_reuses_stored_data(
    real_store: Any, scratch: Callable[[], Path]
) -> None:
    src = scratch()
    for i in range(8):
        (src / f"file-{i}").write_bytes(_data(2 * MB, 50 + i))
    added: list[int] = []
    original_add = real_store.add

    def counting_add(chunk_id: str, data: bytes) -> bool:
        stored: bool = original_add(chunk_id, data)
        added.append(len(data))
        return stored

    real_store.add = counting_add

    def cancel_half_way() -> None:
        if sum(added) >= 6 * MB:
            raise Cancelled

    with pytest.raises(Cancelled):
        backup_tree(real_store, src, avg_chunk=SMALL_CHUNKS, check_cancelled=cancel_half_way)
    assert real_store.list_snapshots() == []

    store = _reopen(real_store)  # a new process
    retry = backup_tree(store, src, avg_chunk=SMALL_CHUNKS)
    assert retry.bytes == 16 * MB
    assert retry.new_bytes <= 16 * MB - 6 * MB + 2 * MB, retry
    assert store.list_snapshots() == [retry.snapshot_id]
    dst = scratch() / "dst"
    restore_tree(store, retry.snapshot_id, dst)
    assert describe(dst) == describe(src)


def test_cancelled_restore_leaves_no_temporary_files(scratch: Callable[[], Path]) -> None:
    src, dst = scratch(), scratch() / "dst"
    for i in range(600):
        (src / f"f{i}").write_bytes(_data(1000, i))
    store = FakeStore()
    snap = backup_tree(store, src)
    calls = iter(range(10**6))

    def cancel() -> None:
        if next(calls) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        restore_tree(store, snap.snapshot_id, dst, workers=2, check_cancelled=cancel)
    assert leftovers(dst) == []


# -- never outside the target -------------------------------------------------------------------


def _save(store: FakeStore, entries: list[ManifestEntry], name: str = "crafted") -> str:
    root = ManifestEntry(path=".", type="dir", mode=0o755, uid=0, gid=0, mtime_ns=0)
    manifest = VolumeManifest(
        created="2024-01-01T00:00:00Z",
        root=root,
        entries=tuple(entries),
        chunker=ChunkerParams.for_average(MB),
    )
    store.manifests[name] = manifest.to_json_bytes()
    return name


def _entry(path: str, kind: str = "file", **extra: Any) -> ManifestEntry:
    return ManifestEntry(path=path, type=kind, mode=0o644, uid=0, gid=0, mtime_ns=0, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("../escape")],
        [_entry("/etc/evil")],
        [_entry("a", "dir"), _entry("a/../../escape")],
        [_entry("./x")],
        [_entry("a//b")],
        [_entry("link", "symlink", target="/tmp"), _entry("link/evil")],
        [_entry("x"), _entry("x/y")],
        [_entry("a"), _entry("a")],
        [_entry("h", "hardlink", link="../../etc/passwd")],
        [_entry("h", "hardlink", link="missing")],
    ],
    ids=[
        "dotdot",
        "absolute",
        "nested-dotdot",
        "dot",
        "empty-component",
        "through-symlink",
        "under-a-file",
        "duplicate",
        "hardlink-outside",
        "hardlink-missing",
    ],
)
def test_unsafe_manifests_are_rejected_before_writing(
    entries: list[ManifestEntry], scratch: Callable[[], Path]
) -> None:
    store = FakeStore()
    outside = scratch()
    target = outside / "target"
    name = _save(store, entries)
    with pytest.raises(RepositoryError, match="invalid volume manifest"):
        restore_tree(store, name, target)
    assert sorted(os.listdir(outside)) == []  # not even the target was created


def test_symlinks_already_in_the_target_are_not_followed(scratch: Callable[[], Path]) -> None:
    src, target, outside = scratch(), scratch(), scratch()
    (src / "a").mkdir()
    (src / "a" / "x").write_bytes(b"inside")
    (src / "f").write_bytes(b"new")
    (outside / "secret").write_bytes(b"keep me")
    os.symlink(outside, target / "a")
    os.symlink(outside / "secret", target / "f")
    store = FakeStore()
    snap = backup_tree(store, src)
    restore_tree(store, snap.snapshot_id, target)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"keep me"
    assert not (target / "a").is_symlink()
    assert (target / "a" / "x").read_bytes() == b"inside"
    assert not (target / "f").is_symlink()
    assert (target / "f").read_bytes() == b"new"


def test_corrupt_manifest_is_rejected() -> None:
    with pytest.raises(RepositoryError, match="invalid volume manifest"):
        VolumeManifest.from_bytes(b'{"format": "other/v9", "entries": []}')
    with pytest.raises(RepositoryError, match="invalid volume manifest"):
        VolumeManifest.from_bytes(b"\x28\xb5\x2f\xfdgarbage")
    entry = _entry("f", size=5, chunks=(("ab" * 32, 4),)).to_json()
    with pytest.raises(RepositoryError, match="does not match its chunks"):
        ManifestEntry.from_json(entry)
