"""Filesystem-specific behaviour: containment, crash leftovers, permissions, pruning."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from reconciler.repository import FilesystemBackend, ObjectNotFound, RepositoryError
from reconciler.repository._keys import TEMP_PREFIX


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def backend(root: Path) -> FilesystemBackend:
    return FilesystemBackend(root)


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_traversal_attempts_touch_nothing_outside_the_root(
    tmp_path: Path, backend: FilesystemBackend
) -> None:
    (tmp_path / "outside").write_bytes(b"precious")
    before = _tree(tmp_path)
    for key in ["../outside", "a/../../outside", "/etc/hostname", str(tmp_path / "outside")]:
        with pytest.raises(RepositoryError):
            backend.put(key, b"overwritten")
        with pytest.raises(RepositoryError):
            backend.delete(key)
    assert (tmp_path / "outside").read_bytes() == b"precious"
    assert _tree(tmp_path) == before


def test_symlinked_directories_are_not_followed(tmp_path: Path, backend: FilesystemBackend) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_bytes(b"s")
    backend.put("real/object", b"x")
    (backend.root / "link").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(RepositoryError, match="outside the repository"):
        backend.put("link/planted", b"x")
    with pytest.raises(RepositoryError, match="outside the repository"):
        backend.get("link/secret")
    with pytest.raises(RepositoryError, match="outside the repository"):
        backend.put("link/new/deeper/planted", b"x")
    with pytest.raises(RepositoryError, match="outside the repository"):
        backend.exists("link/secret")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret"]  # nothing created there
    assert [info.key for info in backend.list()] == ["real/object"]
    assert list(backend.list("link/")) == []


def test_a_symlinked_object_is_refused(tmp_path: Path, backend: FilesystemBackend) -> None:
    (tmp_path / "target").write_bytes(b"t")
    backend.put("placeholder", b"p")
    (backend.root / "alias").symlink_to(tmp_path / "target")
    with pytest.raises(RepositoryError, match="symlink"):
        backend.get("alias")
    assert not backend.exists("alias")
    assert [info.key for info in backend.list()] == ["placeholder"]


def test_leftover_temporary_files_are_invisible(backend: FilesystemBackend) -> None:
    backend.put("snap/part", b"x")
    (backend.root / "snap" / f"{TEMP_PREFIX}deadbeef").write_bytes(b"half a wri")
    assert [info.key for info in backend.list()] == ["snap/part"]


def test_objects_and_directories_are_private(backend: FilesystemBackend) -> None:
    backend.put("secrets/ns/part", b"x")
    assert stat.S_IMODE((backend.root / "secrets/ns/part").stat().st_mode) == 0o600
    assert stat.S_IMODE((backend.root / "secrets/ns").stat().st_mode) & 0o077 == 0


def test_delete_prunes_empty_directories_but_keeps_the_root(backend: FilesystemBackend) -> None:
    backend.put("snapshots/one/deep/part", b"x")
    backend.put("snapshots/two/part", b"y")
    backend.delete("snapshots/one/deep/part")
    assert _tree(backend.root) == ["snapshots", "snapshots/two", "snapshots/two/part"]
    backend.delete("snapshots/two/part")
    assert backend.root.is_dir()
    assert _tree(backend.root) == []


def test_concurrent_delete_pruning_does_not_break_puts(backend: FilesystemBackend) -> None:
    errors: list[BaseException] = []

    def churn(name: str) -> None:
        try:
            for index in range(300):
                backend.put(f"shared/dir/{name}", str(index).encode())
                backend.delete(f"shared/dir/{name}")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=churn, args=(f"k{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_key_below_an_object_is_a_clear_error(backend: FilesystemBackend) -> None:
    backend.put("a", b"object")
    with pytest.raises(RepositoryError, match="'a' is an object, not a directory") as caught:
        backend.put("a/b", b"x")
    assert "\n" not in str(caught.value)
    with pytest.raises(ObjectNotFound):
        backend.get("a/b")


def test_put_if_absent_without_hard_links_falls_back_to_exclusive_create(
    backend: FilesystemBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_: object, **__: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert backend.put_if_absent("locks/l", b"first")
    assert not backend.put_if_absent("locks/l", b"second")
    assert backend.get("locks/l") == b"first"
    assert [info.key for info in backend.list()] == ["locks/l"]  # no temp file left


def test_check_creates_a_missing_root(root: Path, backend: FilesystemBackend) -> None:
    assert not root.exists()
    assert backend.check().available
    assert root.is_dir()
    assert backend.location == root.as_uri()


@pytest.mark.parametrize("layout", ["root-is-a-file", "parent-is-a-file"])
def test_check_reports_an_unusable_root(tmp_path: Path, layout: str) -> None:
    (tmp_path / "file").write_bytes(b"")
    root = tmp_path / "file" if layout == "root-is-a-file" else tmp_path / "file" / "repo"
    availability = FilesystemBackend(root).check()
    assert not availability.available
    assert availability.phase == "Unavailable"
    assert "\n" not in availability.message
    assert "directory" in availability.message.lower()


def test_check_reports_a_root_that_cannot_be_created() -> None:
    # /proc refuses new directories even to root
    availability = FilesystemBackend("/proc/kubeferry-test-repository").check()
    assert not availability.available
    assert "not writable" in availability.message
    assert "\n" not in availability.message
