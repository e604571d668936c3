"""Verifying a restored volume directory against its manifest (DR drills): the same check
on this machine (host-path mover) and inside a Job mover's pod (``kubeferry mover verify``)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyfastcdc import FastCDC

from reconciler.volumes._tree import ManifestEntry, VolumeManifest

_IGNORED_ROOT_ENTRIES = frozenset({"lost+found"})


@dataclass(frozen=True)
class TreeMismatch:
    """One difference between a volume manifest and a directory."""

    path: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.problem}


@dataclass(frozen=True)
class TreeVerification:
    """What :func:`verify_tree` found: mismatches, and the files and bytes it compared."""

    mismatches: tuple[TreeMismatch, ...]
    files: int
    bytes: int
    mismatch_count: int
    """How many there were: more than ``mismatches`` lists when a mover pod's result had to
    name fewer (a termination message keeps 4 KiB)."""

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.mismatches if limit is None else self.mismatches[:limit]
        return {
            "files": self.files,
            "bytes": self.bytes,
            "mismatchCount": self.mismatch_count,
            "mismatches": [m.to_dict() for m in shown],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> TreeVerification:
        mismatches = tuple(
            TreeMismatch(str(m["path"]), str(m["problem"])) for m in document["mismatches"]
        )
        return cls(
            mismatches,
            int(document["files"]),
            int(document["bytes"]),
            int(document.get("mismatchCount", len(mismatches))),
        )


def _chunks_of(
    path: Path, size: int, manifest: VolumeManifest, chunk_id: Callable[[bytes], str]
) -> list[tuple[str, int]]:
    """The file's chunks as the backup cut them (same chunker, same keyed hash)."""
    params = manifest.chunker
    with path.open("rb") as stream:
        if size <= params.min:
            data = stream.read()
            return [(chunk_id(data), len(data))] if data else []
        cdc = FastCDC(params.avg, min_size=params.min, max_size=params.max)
        return [(chunk_id(bytes(c.data)), len(c.data)) for c in cdc.cut_stream(stream)]


def _entry_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def verify_tree(
    manifest: VolumeManifest,
    root: Path,
    chunk_id: Callable[[bytes], str],
) -> TreeVerification:
    """Compare directory ``root`` with a volume manifest.

    Types, permission bits, sizes, symlink targets, hardlinks and file contents (chunk by
    chunk, keyed BLAKE3 through ``chunk_id``). Entries under ``root`` the manifest lacks are
    mismatches (``lost+found`` at the top is ignored). Owners and mtimes are not compared.
    """
    found: list[TreeMismatch] = []
    files = 0
    checked_bytes = 0
    inodes: dict[str, int] = {}
    unusable: set[str] = set()  # directories missing or of another type: not entered
    for entry in manifest.entries:
        parent = entry.path.rpartition("/")[0]
        if parent in unusable:
            unusable.add(entry.path)  # reported with its ancestor
            continue
        path = root / entry.path
        try:
            st = path.lstat()
        except FileNotFoundError:
            found.append(TreeMismatch(entry.path, "missing"))
            unusable.add(entry.path)
            continue
        wanted = "file" if entry.type == "hardlink" else entry.type
        actual = _entry_type(st.st_mode)
        if actual != wanted:
            found.append(TreeMismatch(entry.path, f"is a {actual}, expected a {wanted}"))
            unusable.add(entry.path)
            continue
        if entry.type != "symlink" and stat.S_IMODE(st.st_mode) != entry.mode:
            found.append(
                TreeMismatch(
                    entry.path,
                    f"mode {stat.S_IMODE(st.st_mode):04o}, expected {entry.mode:04o}",
                )
            )
        if entry.type == "symlink":
            target = os.readlink(path)
            if target != entry.target:
                found.append(TreeMismatch(entry.path, "symlink target differs"))
        elif entry.type == "hardlink":
            files += 1
            if inodes.get(entry.link) != st.st_ino:
                found.append(TreeMismatch(entry.path, f"not a hardlink of {entry.link}"))
        elif entry.type == "file":
            files += 1
            inodes[entry.path] = st.st_ino
            found.extend(_compare_file(entry, path, st.st_size, manifest, chunk_id))
            checked_bytes += st.st_size
    known = {e.path for e in manifest.entries}
    for extra in _walk(root):
        if extra in known or extra.split("/", 1)[0] in _IGNORED_ROOT_ENTRIES:
            continue
        if extra.rpartition("/")[0] not in unusable:
            found.append(TreeMismatch(extra, "not in the snapshot"))
    return TreeVerification(tuple(found), files, checked_bytes, len(found))


def _compare_file(
    entry: ManifestEntry,
    path: Path,
    size: int,
    manifest: VolumeManifest,
    chunk_id: Callable[[bytes], str],
) -> list[TreeMismatch]:
    if size != entry.size:
        return [TreeMismatch(entry.path, f"size {size}, expected {entry.size}")]
    if _chunks_of(path, size, manifest, chunk_id) != list(entry.chunks):
        return [TreeMismatch(entry.path, "content differs (BLAKE3 chunk digests)")]
    return []


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of everything under ``root`` (symlinks not followed), sorted."""
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        relative = os.path.relpath(directory, root)
        for name in sorted([*dirs, *names]):
            yield name if relative == "." else f"{relative}/{name}"
