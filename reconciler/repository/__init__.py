"""Replication repositories: where snapshots (and later deduplicated volume data) live.

Two layers, like httpx's client over its transports:

- a transport, `RepositoryBackend` (`FilesystemBackend`, `S3Backend`): atomic byte
  objects under '/'-separated keys;
- `Repository`: the marker object and snapshots that become visible only when complete.

`open_backend()` / `open_backend_from_spec()` build a backend from inventory settings.
"""

from __future__ import annotations

from reconciler.repository._credentials import (
    CredentialsRef,
    EnvCredentials,
    FileCredentials,
    S3Credentials,
    resolve_credentials,
)
from reconciler.repository._errors import (
    CredentialsError,
    InvalidKey,
    ObjectNotFound,
    RepositoryError,
    RepositoryNotInitialized,
    RepositoryUnavailable,
    SnapshotExists,
    SnapshotNotFound,
)
from reconciler.repository._factory import BackendKind, open_backend, open_backend_from_spec
from reconciler.repository._filesystem import FilesystemBackend
from reconciler.repository._keys import validate_key, validate_prefix
from reconciler.repository._repository import (
    FORMAT_VERSION,
    MARKER_KEY,
    Repository,
    RepositoryMarker,
)
from reconciler.repository._s3 import S3Backend
from reconciler.repository._transport import Availability, ObjectInfo, Phase, RepositoryBackend

__all__ = [
    "FORMAT_VERSION",
    "MARKER_KEY",
    "Availability",
    "BackendKind",
    "CredentialsError",
    "CredentialsRef",
    "EnvCredentials",
    "FileCredentials",
    "FilesystemBackend",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "Phase",
    "Repository",
    "RepositoryBackend",
    "RepositoryError",
    "RepositoryMarker",
    "RepositoryNotInitialized",
    "RepositoryUnavailable",
    "S3Backend",
    "S3Credentials",
    "SnapshotExists",
    "SnapshotNotFound",
    "open_backend",
    "open_backend_from_spec",
    "resolve_credentials",
    "validate_key",
    "validate_prefix",
]
