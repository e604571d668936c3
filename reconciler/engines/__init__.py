"""Replication engines and the interfaces they plug into.

``ObjectEngine`` (every resource type, Velero-layout snapshots, ordered parallel restore) is
the default object engine; ``ConfigMapReplicator`` is a minimal one kept for tests.
"""

from reconciler.engines._configmaps import ConfigMapReplicator
from reconciler.engines._protocols import (
    BackupResult,
    ClientFactory,
    Compatibility,
    ExistingResourcePolicy,
    JobSpec,
    ObjectReplicator,
    PrecheckFailed,
    PreCheckFlag,
    PrecheckReport,
    PrecheckResult,
    Reporter,
    RestoreRequirements,
    RestoreResult,
    SourceObservation,
    VolumeMover,
)
from reconciler.engines.objects._engine import ObjectEngine, SnapshotFormatError

__all__ = [
    "BackupResult",
    "ClientFactory",
    "Compatibility",
    "ConfigMapReplicator",
    "ExistingResourcePolicy",
    "JobSpec",
    "ObjectEngine",
    "ObjectReplicator",
    "PreCheckFlag",
    "PrecheckFailed",
    "PrecheckReport",
    "PrecheckResult",
    "Reporter",
    "RestoreRequirements",
    "RestoreResult",
    "SnapshotFormatError",
    "SourceObservation",
    "VolumeMover",
]
