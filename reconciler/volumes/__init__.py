"""Volume data: deduplicated, compressed, encrypted file-system backups in a repository.

The chunk store and the tree engine load without the Kubernetes client, so the movers'
in-pod path and `kubeferry repo` start fast; the names that talk to clusters (the host-path
mover, quiesce) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reconciler.volumes._moverprogress import ProgressWriter
from reconciler.volumes._selection import (
    EXCLUDE_ANNOTATION,
    VOLUMES_ANNOTATION,
    PodVolume,
    VolumeSelection,
    claim_volume_dir,
    is_excluded,
    requested_volumes,
    select_volumes,
)
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
from reconciler.volumes._verify import TreeMismatch, TreeVerification, verify_tree

if TYPE_CHECKING:
    from reconciler.volumes._hostpath import (
        SET_FORMAT,
        SETS_PREFIX,
        HostPathMover,
        VolumeEntry,
        VolumeSet,
        delete_volume_set,
        previous_volume_set,
        read_volume_set,
        set_key,
        write_volume_set,
    )
    from reconciler.volumes._jobmover import (
        DEFAULT_IMAGE,
        JobMover,
        MoverRepository,
        MoverSettings,
    )
    from reconciler.volumes._quiesce import QUIESCED_ANNOTATION, quiesce, quiesced, resume

_LAZY = {
    **dict.fromkeys(
        (
            "SET_FORMAT",
            "SETS_PREFIX",
            "HostPathMover",
            "VolumeEntry",
            "VolumeSet",
            "delete_volume_set",
            "previous_volume_set",
            "read_volume_set",
            "set_key",
            "write_volume_set",
        ),
        "reconciler.volumes._hostpath",
    ),
    **dict.fromkeys(
        ("QUIESCED_ANNOTATION", "quiesce", "quiesced", "resume"), "reconciler.volumes._quiesce"
    ),
    **dict.fromkeys(
        ("DEFAULT_IMAGE", "JobMover", "MoverRepository", "MoverSettings"),
        "reconciler.volumes._jobmover",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_IMAGE",
    "EXCLUDE_ANNOTATION",
    "MANIFEST_FORMAT",
    "QUIESCED_ANNOTATION",
    "SETS_PREFIX",
    "SET_FORMAT",
    "VOLUMES_ANNOTATION",
    "ChunkNotFound",
    "ChunkRef",
    "ChunkerParams",
    "HostPathMover",
    "JobMover",
    "LockInfo",
    "ManifestEntry",
    "MoverRepository",
    "MoverSettings",
    "PodVolume",
    "ProgressWriter",
    "PruneStats",
    "RepositoryLocked",
    "StoreStats",
    "TreeMismatch",
    "TreeProgress",
    "TreeRestore",
    "TreeSnapshot",
    "TreeStore",
    "TreeVerification",
    "VolumeEntry",
    "VolumeManifest",
    "VolumeSelection",
    "VolumeSet",
    "VolumeStore",
    "backup_tree",
    "claim_volume_dir",
    "delete_volume_set",
    "is_excluded",
    "previous_volume_set",
    "quiesce",
    "quiesced",
    "read_volume_set",
    "requested_volumes",
    "restore_tree",
    "resume",
    "select_volumes",
    "set_key",
    "verify_tree",
    "write_volume_set",
]
