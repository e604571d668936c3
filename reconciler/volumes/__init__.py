"""Volume data: deduplicated, compressed, encrypted file-system backups in a repository."""

from __future__ import annotations

from reconciler.volumes._store import (
    ChunkNotFound,
    ChunkRef,
    LockInfo,
    PruneStats,
    RepositoryLocked,
    StoreStats,
    VolumeStore,
)
from reconciler.volumes._tree import (
    MANIFEST_FORMAT,
    ChunkerParams,
    ManifestEntry,
    TreeProgress,
    TreeRestore,
    TreeSnapshot,
    TreeStore,
    VolumeManifest,
    backup_tree,
    restore_tree,
)

__all__ = [
    "MANIFEST_FORMAT",
    "ChunkNotFound",
    "ChunkRef",
    "ChunkerParams",
    "LockInfo",
    "ManifestEntry",
    "PruneStats",
    "RepositoryLocked",
    "StoreStats",
    "TreeProgress",
    "TreeRestore",
    "TreeSnapshot",
    "TreeStore",
    "VolumeManifest",
    "VolumeStore",
    "backup_tree",
    "restore_tree",
]
