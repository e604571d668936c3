"""Open a backend from the settings of a `ReplicationRepository` inventory object."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, overload

from reconciler.errors import KubeferryError
from reconciler.repository._credentials import (
    CredentialsRef,
    EnvCredentials,
    FileCredentials,
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
_S3_SPEC_FIELDS = {
    "bucket": "bucket",
    "prefix": "prefix",
    "endpoint": "endpoint",
    "region": "region",
    "forcePathStyle": "force_path_style",
    "caBundle": "ca_bundle",
    "credentials": "credentials",
}


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


def open_backend_from_spec(
    spec: Mapping[str, Any],
    *,
    credentials: S3Credentials | None = None,
    base_dir: Path | None = None,
) -> RepositoryBackend:
    """Open the backend of a ReplicationRepository `spec` (inventory spelling).

    `spec` holds exactly one of `filesystem: {path}` or `s3: {bucket, prefix, endpoint,
    region, forcePathStyle, caBundle, credentials}`. S3 `credentials` in the spec may be
    `{env: {accessKeyId: VAR, secretAccessKey: VAR, sessionToken: VAR}}` or
    `{file: PATH}`; a `secretRef` must be resolved by the caller and passed as
    `credentials=`, which also overrides the spec. Relative paths are taken from `base_dir`
    (the inventory's directory).
    """
    kinds = [kind for kind in ("filesystem", "s3") if spec.get(kind) is not None]
    if len(kinds) != 1:
        raise KubeferryError("repository spec needs exactly one of 'filesystem' or 's3'")
    settings = spec[kinds[0]]
    if not isinstance(settings, Mapping):
        raise KubeferryError(f"repository spec: '{kinds[0]}' must be a mapping")

    def resolve_path(value: Any) -> Path:
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path

    if kinds[0] == "filesystem":
        _reject_unknown("filesystem", settings, _FILESYSTEM_SETTINGS)
        if not settings.get("path"):
            raise KubeferryError("filesystem repository: 'path' is required")
        return open_backend("filesystem", path=resolve_path(settings["path"]))

    _reject_unknown("s3", settings, set(_S3_SPEC_FIELDS))
    options = {_S3_SPEC_FIELDS[name]: value for name, value in settings.items()}
    if options.get("ca_bundle"):
        options["ca_bundle"] = resolve_path(options["ca_bundle"])
    reference = options.pop("credentials", None)
    options["credentials"] = (
        credentials if credentials is not None else _credentials_ref(reference, resolve_path)
    )
    return open_backend("s3", **options)


def _credentials_ref(reference: Any, resolve_path: Callable[[Any], Path]) -> CredentialsRef:
    if reference is None:
        return None
    if not isinstance(reference, Mapping) or len(reference) != 1:
        raise KubeferryError("s3 credentials: expected exactly one of 'env', 'file', 'secretRef'")
    (source, value), *_ = reference.items()
    if source == "env":
        names = value if isinstance(value, Mapping) else {}
        _reject_unknown(
            "s3 credentials env", names, {"accessKeyId", "secretAccessKey", "sessionToken"}
        )
        defaults = EnvCredentials()
        return EnvCredentials(
            names.get("accessKeyId", defaults.access_key_id_var),
            names.get("secretAccessKey", defaults.secret_access_key_var),
            names.get("sessionToken"),
        )
    if source == "file":
        if not value:
            raise KubeferryError("s3 credentials: 'file' needs a path")
        return FileCredentials(resolve_path(value))
    if source == "secretRef":
        raise KubeferryError(
            "s3 credentials: a secretRef must be resolved from the cluster before opening "
            "the repository"
        )
    raise KubeferryError(f"s3 credentials: unknown source {source!r} (env, file or secretRef)")
