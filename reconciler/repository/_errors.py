"""Typed repository failures; all are one-line `KubeferryError`s without credentials."""

from __future__ import annotations

from reconciler.errors import KubeferryError


class RepositoryError(KubeferryError):
    """A replication repository operation failed (I/O error, refused request, bad data)."""


class InvalidKey(RepositoryError):
    """A key is not a safe '/'-separated relative path (absolute, '..', empty segment...)."""


class ObjectNotFound(RepositoryError):
    """The object does not exist (or is not a regular object) in the repository."""

    def __init__(self, location: str, key: str) -> None:
        super().__init__(f"{location}: no object {key!r}")
        self.key = key


class RepositoryUnavailable(RepositoryError):
    """The repository cannot be reached (endpoint down, DNS, TLS, timeout)."""


class CredentialsError(KubeferryError):
    """Credentials could not be resolved; names the variable or file, never the value."""


class RepositoryNotInitialized(RepositoryError):
    """The repository has no `kubeferry-repository.json` marker."""


class SnapshotNotFound(RepositoryError):
    """No complete (visible) snapshot with that id."""


class SnapshotExists(RepositoryError):
    """A complete snapshot with that id already exists; snapshots are immutable."""


class IntegrityError(RepositoryError):
    """An encrypted object failed authentication: modified, truncated, moved or foreign."""


class WrongPassphrase(RepositoryError):
    """No key file of an encrypted repository opens with the configured passphrase."""
