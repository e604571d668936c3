"""Snapshots and volume data published straight into a repository, as the engines would."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

from reconciler.repository import Repository


def write_object_snapshot(repository: Repository, job: str, at: datetime) -> str:
    """Publish an object snapshot of ``job`` (namespace ``job``, cluster east) started ``at``,
    as the object engine does: parts first, metadata with their digests last."""
    snapshot_id = f"{job}-{at:%Y%m%d%H%M%S}-abcdef"
    parts = {"resources.tar": b"kind: ConfigMap\n" * 50, "resources.json": b"[]"}
    document = {
        "snapshotId": snapshot_id,
        "job": job,
        "namespace": job,
        "sourceCluster": "east",
        "startedAt": at.isoformat(),
        "digests": {name: hashlib.sha256(data).hexdigest() for name, data in parts.items()},
    }
    repository.write_snapshot(snapshot_id, parts, json.dumps(document).encode())
    return snapshot_id


def random_tree(root: Path, seed: int) -> Path:
    """``root`` holding one file of random data (several chunks) ending in ``seed`` bytes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "big.bin").write_bytes(os.urandom(300_000) + bytes([seed]) * 1000)
    return root
