"""The snapshot tarball: Velero's layout, zstd-compressed, byte-for-byte deterministic.

```
resources/<group_resource>/namespaces/<namespace>/<name>.json
resources/<group_resource>/cluster/<name>.json
```

``group_resource`` is Velero's naming: the plural for the core group (``configmaps``), else
``<plural>.<group>`` (``deployments.apps``). Each member is one object as the source server
returned it, minus ``metadata.managedFields`` (status and uid are kept: the uid links owners
at restore time, the status helps inspection; :mod:`._sanitize` cleans at restore time).

Members are sorted by path, with mtime 0, uid/gid 0 and mode 0600, and JSON is written with
sorted keys: the same objects always give the same bytes. Reading is defensive (the archive
comes from a repository another party may write to): absolute paths, ``..``, links and
other non-regular members, oversized members, too many members or too much data are
refused with :class:`ArchiveError`.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

from reconciler.errors import KubeferryError
from reconciler.kube import Manifest

RESOURCES_DIR = "resources"
MAX_MEMBER_BYTES = 16 * 1024 * 1024
MAX_MEMBERS = 500_000
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
ZSTD_LEVEL = 3
_IGNORED_TOP_LEVEL = frozenset({"metadata"})  # Velero's metadata/version; not ours to read


class ArchiveError(KubeferryError):
    """A snapshot archive cannot be written or read safely (corrupt, hostile, oversized)."""


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """One object of a snapshot, addressed like a member of the tarball."""

    group_resource: str
    api_version: str
    kind: str
    namespace: str | None
    """None for cluster-scoped objects."""
    name: str
    manifest: Manifest = field(hash=False, repr=False)

    @classmethod
    def from_manifest(cls, group_resource: str, manifest: Manifest) -> ArchivedObject:
        """Wrap an object as listed from the source (managedFields are left out)."""
        metadata = manifest.get("metadata") or {}
        kept = {**manifest, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
        namespace = metadata.get("namespace")
        return cls(
            group_resource=group_resource,
            api_version=str(manifest.get("apiVersion", "")),
            kind=str(manifest.get("kind", "")),
            namespace=str(namespace) if namespace else None,
            name=str(metadata.get("name", "")),
            manifest=kept,
        )

    @property
    def group(self) -> str:
        """API group from ``group_resource`` (``""`` for the core group)."""
        return self.group_resource.partition(".")[2]

    @property
    def uid(self) -> str | None:
        """The object's uid on the source cluster."""
        uid = (self.manifest.get("metadata") or {}).get("uid")
        return str(uid) if uid else None

    @property
    def owner_uids(self) -> list[str]:
        refs = (self.manifest.get("metadata") or {}).get("ownerReferences") or []
        return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]

    @property
    def key(self) -> str:
        """``<group_resource>/<namespace>/<name>`` or ``<group_resource>/<name>``."""
        return "/".join(p for p in (self.group_resource, self.namespace, self.name) if p)

    @property
    def path(self) -> str:
        return member_path(self.group_resource, self.namespace, self.name)


def _check_segment(what: str, value: str) -> None:
    if not value or value in (".", "..") or "/" in value or "\x00" in value:
        raise ArchiveError(f"cannot archive an object with {what} {value!r}")


def member_path(group_resource: str, namespace: str | None, name: str) -> str:
    """The tarball path of one object (Velero's layout)."""
    _check_segment("resource", group_resource)
    _check_segment("name", name)
    if namespace is None:
        return f"{RESOURCES_DIR}/{group_resource}/cluster/{name}.json"
    _check_segment("namespace", namespace)
    return f"{RESOURCES_DIR}/{group_resource}/namespaces/{namespace}/{name}.json"


def _encode(manifest: Manifest) -> bytes:
    metadata = manifest.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        manifest = {
            **manifest,
            "metadata": {k: v for k, v in metadata.items() if k != "managedFields"},
        }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_archive(items: Iterable[ArchivedObject], *, level: int = ZSTD_LEVEL) -> bytes:
    """The zstd-compressed tarball of ``items`` (deterministic: same objects, same bytes)."""
    members: dict[str, bytes] = {}
    for item in items:
        path = item.path
        if path in members:
            raise ArchiveError(f"two objects map to the same archive member {path}")
        members[path] = _encode(item.manifest)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(members):
            data = members[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o600
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(raw.getvalue())


class _LimitedReader:
    """Reads a decompressing stream, refusing to produce more than ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size if size >= 0 else self._limit + 1)
        self._read += len(data)
        if self._read > self._limit:
            raise ArchiveError(f"snapshot archive expands beyond {self._limit} bytes; refused")
        return data


def _parse_path(path: str) -> tuple[str, str | None, str] | None:
    """(group_resource, namespace, name) of a member path; None for ignored members."""
    if path.startswith("/") or path.startswith("\\"):
        raise ArchiveError(f"snapshot archive member {path!r} has an absolute path; refused")
    parts = path.split("/")
    if ".." in parts or any("\\" in p for p in parts):
        raise ArchiveError(f"snapshot archive member {path!r} escapes the archive; refused")
    if parts[0] in _IGNORED_TOP_LEVEL:
        return None
    if parts[0] != RESOURCES_DIR or not parts[-1].endswith(".json"):
        raise ArchiveError(f"snapshot archive member {path!r} is not in the resources layout")
    name = parts[-1][: -len(".json")]
    if len(parts) == 5 and parts[2] == "namespaces" and all(parts[1:4]) and name:
        return parts[1], parts[3], name
    if len(parts) == 4 and parts[2] == "cluster" and parts[1] and name:
        return parts[1], None, name
    raise ArchiveError(f"snapshot archive member {path!r} is not in the resources layout")


def _decode(path: str, data: bytes, namespace: str | None, name: str) -> Manifest:
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise ArchiveError(f"snapshot archive member {path} is not JSON: {error}") from None
    if not isinstance(manifest, dict) or not manifest.get("apiVersion") or not manifest.get("kind"):
        raise ArchiveError(f"snapshot archive member {path} is not a Kubernetes object")
    metadata = manifest.get("metadata")
    if (
        not isinstance(metadata, dict)
        or metadata.get("name") != name
        or (metadata.get("namespace") or None) != namespace
    ):
        raise ArchiveError(f"snapshot archive member {path} does not match its object's metadata")
    return manifest


def read_archive(
    data: bytes,
    *,
    max_members: int = MAX_MEMBERS,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> list[ArchivedObject]:
    """The objects of a tarball written by :func:`write_archive`, in member order."""
    objects: list[ArchivedObject] = []
    seen: set[str] = set()
    try:
        stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        limited = _LimitedReader(stream, max_total_bytes)
        with tarfile.open(fileobj=limited, mode="r|") as tar:  # type: ignore[call-overload]
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise ArchiveError(
                        f"snapshot archive has more than {max_members} members; refused"
                    )
                location = _parse_path(member.name)
                if not member.isreg():
                    raise ArchiveError(
                        f"snapshot archive member {member.name!r} is not a regular file; refused"
                    )
                if member.size > max_member_bytes:
                    raise ArchiveError(
                        f"snapshot archive member {member.name!r} is {member.size} bytes "
                        f"(limit {max_member_bytes}); refused"
                    )
                if location is None:
                    continue
                if member.name in seen:
                    raise ArchiveError(f"snapshot archive member {member.name!r} appears twice")
                seen.add(member.name)
                reader = tar.extractfile(member)
                if reader is None:  # pragma: no cover - isreg() members always have data
                    raise ArchiveError(f"snapshot archive member {member.name!r} has no data")
                body = reader.read()
                group_resource, namespace, name = location
                manifest = _decode(member.name, body, namespace, name)
                objects.append(
                    ArchivedObject(
                        group_resource=group_resource,
                        api_version=str(manifest["apiVersion"]),
                        kind=str(manifest["kind"]),
                        namespace=namespace,
                        name=name,
                        manifest=manifest,
                    )
                )
    except ArchiveError:
        raise
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as error:
        raise ArchiveError(f"snapshot archive is corrupt: {error}") from None
    return objects


def resource_list(objects: Sequence[ArchivedObject]) -> dict[str, list[str]]:
    """``{group_resource: ["<namespace>/<name>" or "<name>", ...]}``, sorted (Velero-like)."""
    listing: dict[str, list[str]] = {}
    for obj in objects:
        entry = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        listing.setdefault(obj.group_resource, []).append(entry)
    return {key: sorted(listing[key]) for key in sorted(listing)}
