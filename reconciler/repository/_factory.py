"""Open a backend from the settings of a `ReplicationRepository` inventory object."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

from reconciler.errors import KubeferryError
from reconciler.repository._credentials import (
    CredentialsRef,
    S3Credentials,
    resolve_credentials,
)
from reconciler.repository._filesystem import FilesystemBackend
from reconciler.repository._s3 import S3Backend
from reconciler.repository._transport import RepositoryBackend

BackendKind = Literal["filesystem", "s3"]

_FILESYSTEM_SETTINGS = {"path"}
_S3_SETTINGS = {
    "bucket",
    "prefix",
    "endpoint",
    "region",
    "force_path_style",
    "ca_bundle",
    "credentials",
    "max_pool_connections",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
    "list_page_size",
}
# inventory spelling (camelCase) -> open_backend() keyword


@overload
def open_backend(kind: Literal["filesystem"], *, path: str | Path) -> FilesystemBackend: ...


@overload
def open_backend(
    kind: Literal["s3"],
    *,
    bucket: str,
    prefix: str = "",
    endpoint: str | None = None,
    region: str | None = None,
    force_path_style: bool = False,
    ca_bundle: str | Path | None = None,
    credentials: S3Credentials | CredentialsRef = None,
    max_pool_connections: int = 10,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 5,
    list_page_size: int = 1000,
) -> S3Backend: ...


def open_backend(kind: BackendKind, **settings: Any) -> RepositoryBackend:
    """Build the backend for `kind`; S3 credentials may be resolved or a reference.

    `credentials` for S3: `S3Credentials` (e.g. from a Kubernetes Secret, resolved by the
    caller), `EnvCredentials`, `FileCredentials`, or None for boto3's default chain.
    """
    if kind == "filesystem":
        _reject_unknown(kind, settings, _FILESYSTEM_SETTINGS)
        if not settings.get("path"):
            raise KubeferryError("filesystem repository: 'path' is required")
        return FilesystemBackend(Path(settings["path"]))
    if kind == "s3":
        _reject_unknown(kind, settings, _S3_SETTINGS)
        if not settings.get("bucket"):
            raise KubeferryError("s3 repository: 'bucket' is required")
        options = dict(settings)
        options["credentials"] = resolve_credentials(options.get("credentials"))
        return S3Backend(**options)
    raise KubeferryError(f"unknown repository kind {kind!r} (expected 'filesystem' or 's3')")


def _reject_unknown(kind: str, settings: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(settings) - known)
    if unknown:
        raise KubeferryError(f"{kind} repository: unknown setting(s): {', '.join(unknown)}")
