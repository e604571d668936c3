"""Comparing a drill's restore with its snapshot (pure): objects field by field after the
restore's sanitising, workload specs, and volume trees against their manifests."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyfastcdc import FastCDC

from reconciler.engines.objects import (
    api_group,
    sanitize_for_restore,
)
from reconciler.kube import Manifest
from reconciler.reconcile._drill_report import Mismatch, WorkloadCheck
from reconciler.volumes import (
    ManifestEntry,
    VolumeManifest,
)

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
_WORKLOAD_GROUPS = frozenset({"apps", "batch"})
_KUBEFERRY_LABEL = "kubeferry.io/"
_IGNORED_ROOT_ENTRIES = frozenset({"lost+found"})
_MAX_VALUE = 60


# -- comparing objects (pure) ----------------------------------------------------------------


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def field_differences(
    desired: Any, existing: Any, path: str = "", *, show_values: bool = True
) -> Iterator[tuple[str, str]]:
    """(field path, problem) for every field of ``desired`` that ``existing`` lacks or holds
    otherwise; the semantics of ``is_subset`` (extra fields in ``existing`` are fine, an empty
    or null desired value matches an absent field, lists match element by element)."""
    if isinstance(desired, dict):
        if not isinstance(existing, dict):
            yield path or "(object)", f"expected an object, found {type(existing).__name__}"
            return
        for key, value in desired.items():
            sub = _key_path(path, str(key))
            if key not in existing:
                if value is None or value == {} or value == []:
                    continue
                yield sub, "missing"
            else:
                yield from field_differences(value, existing[key], sub, show_values=show_values)
        return
    if isinstance(desired, list):
        if not isinstance(existing, list):
            yield path, f"expected a list, found {type(existing).__name__}"
            return
        if len(desired) != len(existing):
            yield path, f"{len(existing)} item(s), expected {len(desired)}"
            return
        for index, (d, e) in enumerate(zip(desired, existing, strict=True)):
            yield from field_differences(d, e, f"{path}[{index}]", show_values=show_values)
        return
    same = (
        type(desired) is type(existing) and desired == existing
        if isinstance(desired, bool) or isinstance(existing, bool)
        else desired == existing
    )
    if not same:
        if show_values:
            yield path, f"differs: expected {_short(desired)}, found {_short(existing)}"
        else:
            yield path, "differs (value not shown)"


def _without_owner_uids(obj: Manifest) -> Manifest:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return obj
    refs = metadata.get("ownerReferences")
    if not isinstance(refs, list):
        return obj
    cleaned = [
        {k: v for k, v in r.items() if k != "uid"} if isinstance(r, dict) else r for r in refs
    ]
    return {**obj, "metadata": {**metadata, "ownerReferences": cleaned}}


def _comparable_desired(obj: Manifest) -> Manifest:
    """The restore's object without kubeferry's own labels (an object the scratch namespace
    already had, such as the default ServiceAccount, never got them)."""
    obj = _without_owner_uids(obj)
    metadata = dict(obj.get("metadata") or {})
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        kept = {k: v for k, v in labels.items() if not str(k).startswith(_KUBEFERRY_LABEL)}
        if kept:
            metadata["labels"] = kept
        else:
            metadata.pop("labels", None)
    return {**obj, "metadata": metadata}


def object_label(obj: Manifest) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def compare_object(
    archived: Manifest,
    live: Manifest | None,
    *,
    source_namespace: str,
    target_namespace: str,
    storage_class_mapping: Mapping[str, str],
    snapshot_id: str,
    job: str,
) -> list[Mismatch]:
    """How the live object differs from what restoring ``archived`` creates (empty: equal)."""
    desired = sanitize_for_restore(
        archived,
        source_namespace=source_namespace,
        target_namespace=target_namespace,
        storage_class_mapping=storage_class_mapping,
        snapshot_id=snapshot_id,
        job=job,
    )
    item = object_label(desired)
    if live is None:
        return [Mismatch(item, "", "missing from the scratch namespace")]
    show = not (
        archived.get("kind") == "Secret" and api_group(str(archived.get("apiVersion"))) == ""
    )
    return [
        Mismatch(item, path, problem)
        for path, problem in field_differences(
            _comparable_desired(desired), _without_owner_uids(live), show_values=show
        )
    ]


def is_workload(obj: Manifest) -> bool:
    return (
        obj.get("kind") in WORKLOAD_KINDS
        and api_group(str(obj.get("apiVersion", ""))) in _WORKLOAD_GROUPS
    )


def workload_checks(
    archived: Sequence[Manifest], mismatches: Sequence[Mismatch]
) -> list[WorkloadCheck]:
    """Workloads of the snapshot and whether their spec came back equal."""
    differing = {m.item for m in mismatches if m.path == "" or m.path.startswith("spec")}
    checks = []
    for obj in archived:
        if is_workload(obj):
            item = object_label(obj)
            checks.append(WorkloadCheck(item, item not in differing))
    return sorted(checks, key=lambda c: c.item)


# -- comparing volume data -------------------------------------------------------------------


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
    *,
    item: str,
) -> tuple[list[Mismatch], int, int]:
    """Compare directory ``root`` with a volume manifest: (mismatches, files, bytes checked).

    Types, permission bits, sizes, symlink targets, hardlinks and file contents (chunk by
    chunk, keyed BLAKE3 through ``chunk_id``). Entries under ``root`` the manifest lacks are
    mismatches (``lost+found`` at the top is ignored). Owners and mtimes are not compared.
    """
    found: list[Mismatch] = []
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
            found.append(Mismatch(item, entry.path, "missing"))
            unusable.add(entry.path)
            continue
        wanted = "file" if entry.type == "hardlink" else entry.type
        actual = _entry_type(st.st_mode)
        if actual != wanted:
            found.append(Mismatch(item, entry.path, f"is a {actual}, expected a {wanted}"))
            unusable.add(entry.path)
            continue
        if entry.type != "symlink" and stat.S_IMODE(st.st_mode) != entry.mode:
            found.append(
                Mismatch(
                    item,
                    entry.path,
                    f"mode {stat.S_IMODE(st.st_mode):04o}, expected {entry.mode:04o}",
                )
            )
        if entry.type == "symlink":
            target = os.readlink(path)
            if target != entry.target:
                found.append(Mismatch(item, entry.path, "symlink target differs"))
        elif entry.type == "hardlink":
            files += 1
            if inodes.get(entry.link) != st.st_ino:
                found.append(Mismatch(item, entry.path, f"not a hardlink of {entry.link}"))
        elif entry.type == "file":
            files += 1
            inodes[entry.path] = st.st_ino
            found.extend(_compare_file(entry, path, st.st_size, manifest, chunk_id, item))
            checked_bytes += st.st_size
    known = {e.path for e in manifest.entries}
    for extra in _walk(root):
        if extra in known or extra.split("/", 1)[0] in _IGNORED_ROOT_ENTRIES:
            continue
        if extra.rpartition("/")[0] not in unusable:
            found.append(Mismatch(item, extra, "not in the snapshot"))
    return found, files, checked_bytes


def _compare_file(
    entry: ManifestEntry,
    path: Path,
    size: int,
    manifest: VolumeManifest,
    chunk_id: Callable[[bytes], str],
    item: str,
) -> list[Mismatch]:
    if size != entry.size:
        return [Mismatch(item, entry.path, f"size {size}, expected {entry.size}")]
    if _chunks_of(path, size, manifest, chunk_id) != list(entry.chunks):
        return [Mismatch(item, entry.path, "content differs (BLAKE3 chunk digests)")]
    return []


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of everything under ``root`` (symlinks not followed), sorted."""
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        relative = os.path.relpath(directory, root)
        for name in sorted([*dirs, *names]):
            yield name if relative == "." else f"{relative}/{name}"
