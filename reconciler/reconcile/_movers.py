"""Which volume mover a cluster uses: its Cluster's ``spec.volumeMover`` (docs/volume-data.md).

``hostPath`` (the default) reads and writes PV directories from the machine running kubeferry;
``job`` runs one Kubernetes Job per PVC in the cluster, the repository described to its pod
in a Secret. A backup uses the source cluster's mover, a restore the destination's.
"""

from __future__ import annotations

import ipaddress
from typing import Final, Literal
from urllib.parse import urlsplit

from reconciler.engines import VolumeMover
from reconciler.inventory import Inventory, VolumeMoverSpec
from reconciler.reconcile._connect import Connections
from reconciler.volumes import (
    DEFAULT_IMAGE,
    HostPathMover,
    JobMover,
    MoverRepository,
    MoverSettings,
)

MoverType = Literal["hostPath", "job"]
FROM_INVENTORY: Final = "inventory"
"""ActionRunner.mover's default: each cluster's declared mover."""
MoverChoice = VolumeMover | None | Literal["inventory"]
"""A mover for every cluster, None (objects only), or FROM_INVENTORY."""


def declared_mover_type(inventory: Inventory, cluster: str) -> MoverType:
    declared = inventory.clusters.get(cluster)
    spec = None if declared is None else declared.spec.volume_mover
    return "hostPath" if spec is None else spec.type


def mover_settings(spec: VolumeMoverSpec) -> MoverSettings:
    """The Job mover's settings from ``volumeMover`` (unset fields keep MoverSettings')."""
    defaults = MoverSettings()
    return MoverSettings(
        image=spec.image or DEFAULT_IMAGE,
        image_pull_policy=spec.image_pull_policy or defaults.image_pull_policy,
        timeout=spec.timeout.total_seconds() if spec.timeout else defaults.timeout,
        service_account=spec.service_account_name,
        tolerations=tuple(
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in spec.tolerations
        ),
        resources=defaults.resources
        if spec.resources is None
        else spec.resources.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def cluster_mover(
    inventory: Inventory, connections: Connections, cluster: str, repository: str
) -> VolumeMover:
    """The mover that reads or writes volume data on ``cluster`` through ``repository``."""
    declared = inventory.clusters.get(cluster)
    spec = None if declared is None else declared.spec.volume_mover
    if spec is None or spec.type == "hostPath":
        return HostPathMover()
    passphrase = connections.passphrase(repository)
    if passphrase is None:  # no volume data there: the mover fails only if asked to copy some
        return JobMover(None, mover_settings(spec))
    # the pod opens the same repository: S3 settings and credentials as kubeferry resolved
    # them, or a filesystem repository's directory as a hostPath (see job_mover_notes)
    where = MoverRepository.from_backend(connections.backend(repository), passphrase=passphrase)
    return JobMover(where, mover_settings(spec))


def job_mover_notes(inventory: Inventory, cluster: str, repository: str) -> list[str]:
    """Why the job mover's pods on ``cluster`` may not reach ``repository`` (plan notes);
    empty for a host-path mover or a repository a pod can reach."""
    if declared_mover_type(inventory, cluster) != "job":
        return []
    declared = inventory.repositories.get(repository)
    if declared is None:
        return []
    path = declared.filesystem_path
    if path is not None:
        return [
            f"the job mover on {cluster} mounts filesystem repository {repository} into its "
            f"pods as hostPath {path}: that directory must exist at the same path on the "
            "cluster's nodes (a shared mount), else the pods cannot start; an S3 repository "
            "works from any node"
        ]
    s3, hosted = declared.spec.s3, declared.spec.hosted_in
    endpoint = s3.endpoint if s3 is not None else hosted.endpoint if hosted is not None else None
    host = urlsplit(endpoint).hostname if endpoint else None
    if host is not None and _loopback(host):
        return [
            f"repository {repository}'s endpoint {host} is a loopback address: the job "
            f"mover's pods on {cluster} reach their own, not this machine's; use an address "
            "the cluster's nodes can reach"
        ]
    return []


def _loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
