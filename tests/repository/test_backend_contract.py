"""One contract, both backends: the filesystem and S3 (moto over real HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import KubeferryError
from reconciler.repository import (
    IntegrityError,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    RepositoryBackend,
)

WORKER = Path(__file__).with_name("_worker.py")


def test_put_get_roundtrip_and_overwrite(backend: RepositoryBackend) -> None:
    payload = bytes(range(256)) * 17
    backend.put("dir/object.bin", payload)
    assert backend.get("dir/object.bin") == payload
    backend.put("dir/object.bin", b"second")
    assert backend.get("dir/object.bin") == b"second"
    backend.put("empty", b"")
    assert backend.get("empty") == b""
    assert backend.exists("empty")


def test_get_range_reads_exactly_the_range(backend: RepositoryBackend) -> None:
    payload = bytes(range(256)) * 64  # 16 KiB
    backend.put("packs/p1", payload)
    assert backend.get_range("packs/p1", 0, 10) == payload[:10]
    assert backend.get_range("packs/p1", 1000, 5000) == payload[1000:6000]
    assert backend.get_range("packs/p1", len(payload) - 3, 3) == payload[-3:]
    assert backend.get_range("packs/p1", 5, 0) == b""


def test_get_range_past_the_end_is_an_integrity_error(backend: RepositoryBackend) -> None:
    backend.put("packs/short", b"0123456789")
    with pytest.raises(IntegrityError) as caught:
        backend.get_range("packs/short", 5, 10)
    assert "truncated" in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(IntegrityError):
        backend.get_range("packs/short", 10, 1)
    with pytest.raises(ObjectNotFound):
        backend.get_range("packs/none", 0, 1)


def test_missing_object_is_a_typed_one_line_error(backend: RepositoryBackend) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        backend.get("no/such/key")
    assert isinstance(caught.value, KubeferryError)
    assert caught.value.key == "no/such/key"
    assert "no/such/key" in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(ObjectNotFound):
        backend.stat("no/such/key")
    assert not backend.exists("no/such/key")


def test_a_prefix_is_not_an_object(backend: RepositoryBackend) -> None:
    backend.put("dir/inner", b"x")
    assert not backend.exists("dir")
    with pytest.raises(ObjectNotFound):
        backend.get("dir")


def test_stat_reports_size_and_recent_utc_mtime(backend: RepositoryBackend) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    backend.put("a/b", b"12345")
    info = backend.stat("a/b")
    assert info.key == "a/b"
    assert info.size == 5
    assert info.modified.tzinfo is not None
    assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)


def test_list_is_sorted_filtered_by_string_prefix_and_relative(
    backend: RepositoryBackend,
) -> None:
    keys = ["b", "a/c", "a-b", "a/b/d", "ab", "snapshots/x/1", "snapshots/xy/1", "z/.hidden"]
    for index, key in enumerate(keys):
        backend.put(key, b"x" * index)
    listed = list(backend.list())
    assert [info.key for info in listed] == sorted(keys)  # 'a-b' < 'a/b/d' as in S3
    assert all(isinstance(info, ObjectInfo) for info in listed)
    assert {info.key: info.size for info in listed} == {k: i for i, k in enumerate(keys)}
    assert [i.key for i in backend.list("a/")] == ["a/b/d", "a/c"]
    assert [i.key for i in backend.list("a")] == ["a-b", "a/b/d", "a/c", "ab"]
    assert [i.key for i in backend.list("snapshots/x")] == ["snapshots/x/1", "snapshots/xy/1"]
    assert [i.key for i in backend.list("snapshots/x/")] == ["snapshots/x/1"]
    assert list(backend.list("nothing/")) == []


def test_delete_is_idempotent_and_removes_from_listing(backend: RepositoryBackend) -> None:
    backend.put("snap/1/part", b"x")
    backend.put("snap/1/other", b"y")
    backend.delete("snap/1/part")
    backend.delete("snap/1/part")
    backend.delete("never/existed")
    assert not backend.exists("snap/1/part")
    assert [i.key for i in backend.list()] == ["snap/1/other"]
    backend.delete("snap/1/other")
    assert list(backend.list()) == []
    backend.put("snap/1/part", b"again")  # the pruned directories come back
    assert backend.get("snap/1/part") == b"again"


def test_put_if_absent_creates_once(backend: RepositoryBackend) -> None:
    assert backend.put_if_absent("locks/repo", b"first")
    assert not backend.put_if_absent("locks/repo", b"second")
    assert backend.get("locks/repo") == b"first"
    backend.delete("locks/repo")
    assert backend.put_if_absent("locks/repo", b"third")
    assert backend.get("locks/repo") == b"third"


def _race(backends: list[RepositoryBackend], key: str) -> list[int]:
    """Every backend calls put_if_absent(key) at once; return the indexes that won."""
    barrier = threading.Barrier(len(backends))

    def contend(index: int) -> bool:
        barrier.wait(timeout=30)
        return backends[index].put_if_absent(key, f"owner-{index}".encode())

    with ThreadPoolExecutor(max_workers=len(backends)) as pool:
        results = list(pool.map(contend, range(len(backends))))
    return [index for index, won in enumerate(results) if won]


def test_put_if_absent_race_between_threads_has_one_winner(
    backend_spec: dict[str, Any], open_spec: Callable[[dict[str, Any]], RepositoryBackend]
) -> None:
    # one backend instance per thread, like separate callers; same storage
    backends = [open_spec(backend_spec) for _ in range(8)]
    for round_ in range(5):
        key = f"locks/race-{round_}"
        winners = _race(backends, key)
        assert len(winners) == 1, f"round {round_}: winners {winners}"
        assert backends[0].get(key) == f"owner-{winners[0]}".encode()


def _start_workers(
    count: int, args: Callable[[int], list[str]], env: dict[str, str]
) -> list[subprocess.Popen[str]]:
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *args(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    return workers


def test_put_if_absent_race_between_processes_has_one_winner(
    backend_spec: dict[str, Any], backend: RepositoryBackend, worker_env: dict[str, str]
) -> None:
    spec = json.dumps(backend_spec)
    workers = _start_workers(4, lambda i: ["race", spec, "locks/proc", f"process-{i}"], worker_env)
    for worker in workers:  # release them together
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outcomes = [worker.communicate(timeout=60)[0].strip() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    assert backend.get("locks/proc") == f"process-{outcomes.index('won')}".encode()


def _poll_while_writing(
    read: Callable[[], bytes | None], size: int, min_duration: float, max_duration: float
) -> tuple[int, int]:
    """Read repeatedly; every read must be absent or one whole payload.

    Polls for at least `min_duration` and until both payloads were seen (so the object was
    replaced while we read), at most `max_duration`. Returns how often each was seen.
    """
    whole = (b"A" * size, b"B" * size)
    seen = {b"A": 0, b"B": 0}
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if elapsed > max_duration or (elapsed > min_duration and all(seen.values())):
            return seen[b"A"], seen[b"B"]
        data = read()
        if data is None:
            continue
        if data not in whole:  # not a bare assert: pytest would print megabytes of repr
            raise AssertionError(f"partial object: {len(data)} of {size} bytes")
        seen[data[:1]] += 1


def test_readers_never_see_a_partial_object(
    backend_spec: dict[str, Any], backend: RepositoryBackend, worker_env: dict[str, str]
) -> None:
    # the writer is another process, so reads truly overlap the writes
    size = 8 * 1024 * 1024 if backend_spec["kind"] == "filesystem" else 2 * 1024 * 1024
    (writer,) = _start_workers(
        1, lambda _: ["write", json.dumps(backend_spec), "big/object", str(size)], worker_env
    )
    assert writer.stdin is not None

    def read() -> bytes | None:
        try:
            return backend.get("big/object")
        except ObjectNotFound:
            return None

    try:
        writer.stdin.write("go\n")
        writer.stdin.flush()
        seen_a, seen_b = _poll_while_writing(read, size, min_duration=2.0, max_duration=30.0)
    finally:
        puts = int(writer.communicate(timeout=60)[0].strip() or 0)
    assert writer.returncode == 0
    # both versions were read, so the object was replaced while we polled
    assert seen_a > 0, f"never read the A version ({puts} puts)"
    assert seen_b > 0, f"never read the B version ({puts} puts)"
    assert backend.get("big/object") in (b"A" * size, b"B" * size)


def test_the_visibility_check_catches_a_torn_write(tmp_path: Path) -> None:
    """Guard for the test above: an in-place writer is caught by the same reader check."""
    path = tmp_path / "object"
    size = 1024 * 1024
    half_written = threading.Event()
    read_done = threading.Event()

    def naive_writer() -> None:
        with path.open("wb") as stream:  # truncates and writes in place: not atomic
            stream.write(b"B" * (size // 2))
            stream.flush()
            half_written.set()
            read_done.wait(timeout=10)
            stream.write(b"B" * (size - size // 2))

    def read() -> bytes | None:
        half_written.wait(timeout=10)
        data = path.read_bytes()
        read_done.set()
        return data

    thread = threading.Thread(target=naive_writer)
    thread.start()
    try:
        with pytest.raises(AssertionError, match="partial object"):
            _poll_while_writing(read, size, min_duration=1.0, max_duration=5.0)
    finally:
        read_done.set()
        thread.join()


INVALID_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "a/../../outside",
    "a/..",
    "a//b",
    "a/",
    ".",
    "a/./b",
    "a\\b",
    "nul\x00byte",
    ".kubeferry-tmp-abc",
    "x" * 1025,
]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_unsafe_keys_are_rejected_by_every_operation(backend: RepositoryBackend, key: str) -> None:
    operations: list[Callable[[], object]] = [
        lambda: backend.put(key, b"x"),
        lambda: backend.put_if_absent(key, b"x"),
        lambda: backend.get(key),
        lambda: backend.get_range(key, 0, 1),
        lambda: backend.exists(key),
        lambda: backend.stat(key),
        lambda: backend.delete(key),
    ]
    for operation in operations:
        with pytest.raises(InvalidKey) as caught:
            operation()
        assert "\n" not in str(caught.value.message)
    assert list(backend.list()) == []


@pytest.mark.parametrize("prefix", ["/", "/abs", "../", "a/../", "a//", "a\\"])
def test_unsafe_list_prefixes_are_rejected(backend: RepositoryBackend, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        list(backend.list(prefix))


def test_check_reports_available(backend: RepositoryBackend) -> None:
    availability = backend.check()
    assert availability.available, availability.message
    assert availability.phase == "Available"
    assert "writable" in availability.message
    assert list(backend.list()) == []  # the probe cleans up after itself


def test_location_and_repr_name_the_storage(backend: RepositoryBackend) -> None:
    assert backend.location.startswith(("file://", "s3://"))
    assert isinstance(backend, RepositoryBackend)
    assert backend.location in repr(backend) or str(getattr(backend, "root", "")) in repr(backend)
