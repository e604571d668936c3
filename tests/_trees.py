"""A sample volume tree for the movers' end-to-end tests, and a description to compare trees."""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def fill_sample_tree(root: Path, seed: int) -> None:
    """Sizes (empty to 3 MB), modes, a nested unicode name, a symlink, a hardlink, fixed
    mtimes: what a mover must carry over."""
    rng = random.Random(seed)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello volume\n")
    (root / "big.bin").write_bytes(rng.randbytes(3 * MB + 123))
    (root / "text.log").write_bytes(b"line of a log file\n" * 60_000)
    nested = root / "deep" / "er" / "est"
    nested.mkdir(parents=True)
    (nested / "ünïcode name.dat").write_bytes(rng.randbytes(70_000))
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    private = root / "private"
    private.write_bytes(b"secret")
    private.chmod(0o600)
    (root / "link").symlink_to("deep/er/est/ünïcode name.dat")
    os.link(root / "small.txt", root / "small-hardlink.txt")
    (root / "deep").chmod(0o750)
    for index, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        moment = 1_600_000_000_000_000_000 + index * 1_000_000_007
        os.utime(path, ns=(moment, moment), follow_symlinks=False)


def describe_tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """relative path -> (type, mode, size, sha256 / link target, mtime_ns)."""
    found: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        relative = str(path.relative_to(root))
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            found[relative] = ("link", os.readlink(path), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            found[relative] = ("dir", mode, st.st_mtime_ns)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[relative] = ("file", mode, st.st_size, digest, st.st_mtime_ns)
    return found


def hardlink_groups(root: Path) -> list[list[str]]:
    """The sets of paths sharing an inode (sorted), so hardlinks can be compared."""
    groups: dict[int, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            groups.setdefault(path.stat().st_ino, []).append(str(path.relative_to(root)))
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)
