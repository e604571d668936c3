"""A small inventory with a filesystem repository holding real snapshots, no cluster needed.

Snapshots are written through ``Repository.write_snapshot`` (what a backup publishes) with
metadata that names their job, so ``list_snapshots`` and ``delete_snapshot`` treat them as
any backup's. Nothing here reaches a network: the inventory has no S3 repository.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from reconciler.reconcile import Connections, Workspace, repo_init

INVENTORY = """\
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {name: worker-1}
spec: {context: worker-1, role: worker}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationRepository
metadata: {name: local}
spec:
  filesystem: {path: ./repository}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationSlice
metadata: {name: w1-backup}
spec: {sourceCluster: worker-1, destinationCluster: worker-1, repository: local}
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationJob
metadata: {name: web}
spec: {replicationSliceName: w1-backup, namespace: shop}
"""

OLDEST = "web-20260314100000-aa0001"
MIDDLE = "web-20260314110000-aa0002"
NEWEST = "web-20260314115000-aa0003"


def snapshot_workspace(directory: Path) -> Workspace:
    """kubeferry.yaml + an initialized repository with three snapshots of job web."""
    inventory = directory / "kubeferry.yaml"
    inventory.write_text(INVENTORY)
    workspace = Workspace(inventory, directory / ".kubeferry" / "ledger.sqlite")
    repo_init(workspace, "local")
    for snapshot_id in (OLDEST, MIDDLE, NEWEST):
        write_snapshot(workspace, snapshot_id)
    return workspace


def write_snapshot(workspace: Workspace, snapshot_id: str, job: str = "web") -> None:
    stamp = snapshot_id.rsplit("-", 2)[1]
    created = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    metadata = {
        "job": job,
        "namespace": "shop",
        "sourceCluster": "worker-1",
        "startedAt": created.isoformat(),
        "items": 2,
    }
    connections = Connections(workspace.load_inventory())
    try:
        connections.repository("local").write_snapshot(
            snapshot_id,
            {"objects/v1/ConfigMap/settings.json": b"{}"},
            json.dumps(metadata).encode(),
        )
    finally:
        connections.close()


def repository_ids(workspace: Workspace) -> list[str]:
    """The snapshot ids the repository itself lists (the truth)."""
    connections = Connections(workspace.load_inventory())
    try:
        return connections.repository("local").list_snapshots()
    finally:
        connections.close()
