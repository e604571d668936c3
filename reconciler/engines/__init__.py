"""Replication engines and the interfaces they plug into."""

from reconciler.engines._configmaps import ConfigMapReplicator
from reconciler.engines._protocols import (
    BackupResult,
    ClientFactory,
    ExistingResourcePolicy,
    JobSpec,
    ObjectReplicator,
    Reporter,
    RestoreResult,
    VolumeMover,
)

__all__ = [
    "BackupResult",
    "ClientFactory",
    "ConfigMapReplicator",
    "ExistingResourcePolicy",
    "JobSpec",
    "ObjectReplicator",
    "Reporter",
    "RestoreResult",
    "VolumeMover",
]
