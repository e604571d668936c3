"""The repository layer on both backends: the marker, and snapshots visible only when complete."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.errors import KubeferryError
from reconciler.repository import (
    FORMAT_VERSION,
    MARKER_KEY,
    Availability,
    ObjectInfo,
    Repository,
    RepositoryBackend,
    RepositoryError,
    RepositoryNotInitialized,
    SnapshotExists,
    SnapshotNotFound,
)


class Crash(Exception):
    """Stands in for the process dying mid-operation."""


class Recording:
    """A backend wrapper that records writes and deletes and can crash on the Nth one."""

    def __init__(self, inner: RepositoryBackend, crash_after: int | None = None) -> None:
        self.inner = inner
        self.ops: list[tuple[str, str]] = []
        self.crash_after = crash_after

    def _record(self, op: str, key: str) -> None:
        if self.crash_after is not None and len(self.ops) >= self.crash_after:
            raise Crash(f"crashed before {op} {key}")
        self.ops.append((op, key))

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, key: str, data: bytes) -> None:
        self._record("put", key)
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._record("put_if_absent", key)
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self._record("delete", key)
        self.inner.delete(key)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def check(self) -> Availability:
        return self.inner.check()


PARTS = {"resources.tar": b"tarball bytes", "volumes/data-0.idx": b"index", "checksums": b"c"}


# -- marker ------------------------------------------------------------------------------


def test_uninitialized_repository(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    assert not repository.is_initialized()
    with pytest.raises(RepositoryNotInitialized) as caught:
        repository.read_marker()
    assert isinstance(caught.value, KubeferryError)
    assert MARKER_KEY in str(caught.value)


def test_initialize_writes_the_marker_and_is_idempotent(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    marker = repository.initialize("repo-1", now=created)
    assert repository.is_initialized()
    document = json.loads(backend.get(MARKER_KEY))
    assert document == {
        "format": "kubeferry-repository",
        "formatVersion": FORMAT_VERSION,
        "id": "repo-1",
        "created": "2026-01-02T03:04:05+00:00",
    }
    assert repository.read_marker() == marker
    assert repository.initialize("repo-1") == marker  # same id: nothing changes
    with pytest.raises(RepositoryError, match="already initialized as repository 'repo-1'"):
        repository.initialize("repo-2")
    assert repository.read_marker().repository_id == "repo-1"


def test_concurrent_initialize_has_exactly_one_winner(backend: RepositoryBackend) -> None:
    barrier = threading.Barrier(6)

    def attempt(index: int) -> str:
        barrier.wait(timeout=30)
        try:
            return Repository(backend).initialize(f"repo-{index}").repository_id
        except RepositoryError:
            return "refused"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    winners = {outcome for outcome in outcomes if outcome != "refused"}
    assert len(winners) == 1
    assert Repository(backend).read_marker().repository_id == winners.pop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not a kubeferry repository marker"),
        (b'{"format": "something-else"}', "not a kubeferry repository marker"),
        (
            b'{"format": "kubeferry-repository", "formatVersion": 99, "id": "x",'
            b' "created": "2026-01-01T00:00:00+00:00"}',
            "upgrade kubeferry",
        ),
    ],
)
def test_bad_markers_are_clear_errors(
    backend: RepositoryBackend, content: bytes, message: str
) -> None:
    backend.put(MARKER_KEY, content)
    with pytest.raises(RepositoryError, match=message):
        Repository(backend).read_marker()


@pytest.mark.parametrize("bad_id", ["", "../x", "a/b", "-leading", "x" * 129, "spa ce"])
def test_invalid_ids_are_rejected(backend: RepositoryBackend, bad_id: str) -> None:
    repository = Repository(backend)
    with pytest.raises(RepositoryError, match="invalid"):
        repository.initialize(bad_id)
    with pytest.raises(RepositoryError, match="invalid"):
        repository.write_snapshot(bad_id, PARTS, b"{}")
    assert list(backend.list()) == []


# -- snapshots ---------------------------------------------------------------------------


def test_a_written_snapshot_is_listed_and_readable(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    repository.write_snapshot("2026-01-02T030405Z", PARTS, b'{"kind": "Snapshot"}')
    assert repository.list_snapshots() == ["2026-01-02T030405Z"]
    assert repository.snapshot_exists("2026-01-02T030405Z")
    assert repository.read_snapshot_metadata("2026-01-02T030405Z") == b'{"kind": "Snapshot"}'
    assert repository.list_snapshot_parts("2026-01-02T030405Z") == sorted(PARTS)
    for name, data in PARTS.items():
        assert repository.read_snapshot_part("2026-01-02T030405Z", name) == data
    keys = [info.key for info in backend.list("snapshots/")]
    assert "snapshots/2026-01-02T030405Z/metadata.json" in keys


def test_list_snapshots_is_sorted_by_id(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    for snapshot_id in ["b", "a-b", "a", "a.b", "A"]:
        repository.write_snapshot(snapshot_id, {"p": b"x"}, b"{}")
    assert repository.list_snapshots() == ["A", "a", "a-b", "a.b", "b"]


def test_parts_without_metadata_are_invisible(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    repository.write_snapshot("complete", PARTS, b"{}")
    backend.put("snapshots/half/resources.tar", b"parts only: the writer died")
    assert repository.list_snapshots() == ["complete"]
    assert not repository.snapshot_exists("half")
    with pytest.raises(SnapshotNotFound):
        repository.read_snapshot_part("half", "resources.tar")
    with pytest.raises(SnapshotNotFound):
        repository.read_snapshot_metadata("half")
    with pytest.raises(SnapshotNotFound):
        repository.list_snapshot_parts("half")


def test_metadata_is_written_last(backend: RepositoryBackend) -> None:
    recording = Recording(backend)
    Repository(recording).write_snapshot("s1", PARTS, b"{}")
    writes = [key for op, key in recording.ops if op.startswith("put")]
    assert sorted(writes[:-1]) == sorted(f"snapshots/s1/{name}" for name in PARTS)
    assert writes[-1] == "snapshots/s1/metadata.json"


@pytest.mark.parametrize("crash_after", [0, 1, 2, 3])
def test_a_crash_while_writing_leaves_nothing_visible(
    backend: RepositoryBackend, crash_after: int
) -> None:
    with pytest.raises(Crash):
        Repository(Recording(backend, crash_after)).write_snapshot("s1", PARTS, b"{}")
    repository = Repository(backend)
    assert repository.list_snapshots() == []
    # the retry with the same id publishes exactly the new parts
    repository.write_snapshot("s1", {"only-part": b"new"}, b"{}")
    assert repository.list_snapshot_parts("s1") == ["only-part"]


def test_snapshots_are_immutable(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    repository.write_snapshot("s1", PARTS, b"first")
    with pytest.raises(SnapshotExists):
        repository.write_snapshot("s1", {"other": b"x"}, b"second")
    assert repository.read_snapshot_metadata("s1") == b"first"
    assert repository.list_snapshot_parts("s1") == sorted(PARTS)


@pytest.mark.parametrize("name", ["metadata.json", "metadata.json/x", "../escape", "a//b", ""])
def test_reserved_or_unsafe_part_names_are_rejected(backend: RepositoryBackend, name: str) -> None:
    with pytest.raises(RepositoryError, match="invalid snapshot part name"):
        Repository(backend).write_snapshot("s1", {name: b"x"}, b"{}")
    assert list(backend.list()) == []


def test_delete_unpublishes_first_then_removes_parts(backend: RepositoryBackend) -> None:
    Repository(backend).write_snapshot("s1", PARTS, b"{}")
    Repository(backend).write_snapshot("s2", PARTS, b"{}")
    recording = Recording(backend)
    assert Repository(recording).delete_snapshot("s1")
    assert recording.ops[0] == ("delete", "snapshots/s1/metadata.json")
    assert sorted(key for _, key in recording.ops[1:]) == sorted(
        f"snapshots/s1/{name}" for name in PARTS
    )
    repository = Repository(backend)
    assert repository.list_snapshots() == ["s2"]
    assert [i.key for i in backend.list("snapshots/s1/")] == []
    assert not repository.delete_snapshot("s1")  # idempotent


def test_a_crash_while_deleting_leaves_an_invisible_remainder(backend: RepositoryBackend) -> None:
    Repository(backend).write_snapshot("s1", PARTS, b"{}")
    with pytest.raises(Crash):
        Repository(Recording(backend, crash_after=2)).delete_snapshot("s1")
    repository = Repository(backend)
    assert repository.list_snapshots() == []
    assert len(list(backend.list("snapshots/s1/"))) == len(PARTS) - 1
    later = datetime.now(UTC) + timedelta(hours=2)
    assert repository.gc_incomplete(timedelta(hours=1), now=later) == ["s1"]
    assert list(backend.list("snapshots/")) == []


def test_gc_removes_only_old_incomplete_snapshots(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    repository.write_snapshot("complete", PARTS, b"{}")
    backend.put("snapshots/crashed/resources.tar", b"x")
    backend.put("snapshots/crashed/volumes/v.idx", b"y")
    backend.put("snapshots/stray-file", b"not laid out by kubeferry")
    # everything is seconds old: a writer may still be busy, keep it
    assert repository.gc_incomplete(timedelta(hours=1)) == []
    assert len(list(backend.list("snapshots/crashed/"))) == 2
    later = datetime.now(UTC) + timedelta(hours=2)
    assert repository.gc_incomplete(timedelta(hours=1), now=later) == ["crashed"]
    assert list(backend.list("snapshots/crashed/")) == []
    assert repository.list_snapshots() == ["complete"]
    assert repository.list_snapshot_parts("complete") == sorted(PARTS)
    assert backend.exists("snapshots/stray-file")
    with pytest.raises(RepositoryError, match="negative"):
        repository.gc_incomplete(timedelta(seconds=-1))
