"""Replication repositories: where snapshots (and later deduplicated volume data) live.

Two layers, like httpx's client over its transports:

- a transport, `RepositoryBackend` (`FilesystemBackend`, `S3Backend`): atomic byte
  objects under '/'-separated keys;
- `Repository`: the marker object and snapshots that become visible only when complete;
  optionally encrypted (`Repository.unlock(passphrase)` -> a `RepositoryCipher`, see
  `_crypto`).

`open_backend()` builds a backend from settings (the reconciler maps the inventory's).
"""

from __future__ import annotations

from reconciler.repository._credentials import (
    CredentialsRef,
    EnvCredentials,
    FileCredentials,
    S3Credentials,
    resolve_credentials,
)
from reconciler.repository._crypto import (
    DEFAULT_SCRYPT,
    ENCRYPTION_SCHEME,
    KEYS_PREFIX,
    KeyFile,
    RepositoryCipher,
    ScryptParams,
    add_key,
    generate_master_key,
    list_key_files,
    remove_key,
    unlock,
)
from reconciler.repository._errors import (
    CredentialsError,
    IntegrityError,
    InvalidKey,
    ObjectNotFound,
    RepositoryError,
    RepositoryNotInitialized,
    RepositoryUnavailable,
    SnapshotExists,
    SnapshotNotFound,
    WrongPassphrase,
)
from reconciler.repository._factory import BackendKind, open_backend
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
    "DEFAULT_SCRYPT",
    "ENCRYPTION_SCHEME",
    "FORMAT_VERSION",
    "KEYS_PREFIX",
    "MARKER_KEY",
    "Availability",
    "BackendKind",
    "CredentialsError",
    "CredentialsRef",
    "EnvCredentials",
    "FileCredentials",
    "FilesystemBackend",
    "IntegrityError",
    "InvalidKey",
    "KeyFile",
    "ObjectInfo",
    "ObjectNotFound",
    "Phase",
    "Repository",
    "RepositoryBackend",
    "RepositoryCipher",
    "RepositoryError",
    "RepositoryMarker",
    "RepositoryNotInitialized",
    "RepositoryUnavailable",
    "S3Backend",
    "S3Credentials",
    "ScryptParams",
    "SnapshotExists",
    "SnapshotNotFound",
    "WrongPassphrase",
    "add_key",
    "generate_master_key",
    "list_key_files",
    "open_backend",
    "remove_key",
    "resolve_credentials",
    "unlock",
    "validate_key",
    "validate_prefix",
]
