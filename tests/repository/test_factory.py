"""open_backend: settings to a working backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.repository import (
    CredentialsError,
    EnvCredentials,
    FileCredentials,
    FilesystemBackend,
    S3Backend,
    open_backend,
)


def test_open_filesystem_backend(tmp_path: Path) -> None:
    backend = open_backend("filesystem", path=tmp_path / "repo")
    assert isinstance(backend, FilesystemBackend)
    backend.put("k", b"v")
    assert (tmp_path / "repo" / "k").read_bytes() == b"v"


def test_open_s3_backend_resolves_a_credentials_file(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str, s3_secret: str
) -> None:
    credentials_file = tmp_path / "minio.env"
    credentials_file.write_text(f"AWS_ACCESS_KEY_ID=AKIDFILE\nAWS_SECRET_ACCESS_KEY={s3_secret}\n")
    backend = open_backend(
        "s3",
        bucket=s3_bucket,
        prefix="kf",
        endpoint=moto_endpoint,
        region="us-east-1",
        force_path_style=True,
        credentials=FileCredentials(credentials_file),
    )
    assert isinstance(backend, S3Backend)
    backend.put("k", b"v")
    assert backend.get("k") == b"v"
    assert s3_secret not in repr(backend)


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("nfs", {}, "unknown repository kind 'nfs'"),
        ("filesystem", {}, "'path' is required"),
        ("filesystem", {"path": "/x", "bucket": "b"}, "unknown setting(s): bucket"),
        ("s3", {}, "'bucket' is required"),
        ("s3", {"bucket": "b", "forcePathStyle": True}, "unknown setting(s): forcePathStyle"),
    ],
)
def test_bad_settings_are_one_line_errors(
    kind: str, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(KubeferryError) as caught:
        open_backend(kind, **settings)  # type: ignore[call-overload]
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_env_variable_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_ABSENT_VAR", raising=False)
    with pytest.raises(CredentialsError, match="KF_ABSENT_VAR is not set"):
        open_backend("s3", bucket="b", credentials=EnvCredentials("KF_ABSENT_VAR"))
