"""open_backend / open_backend_from_spec: inventory settings to a working backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.repository import (
    CredentialsError,
    FileCredentials,
    FilesystemBackend,
    S3Backend,
    S3Credentials,
    open_backend,
    open_backend_from_spec,
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


def test_from_spec_filesystem_resolves_relative_paths(tmp_path: Path) -> None:
    backend = open_backend_from_spec({"filesystem": {"path": "backups"}}, base_dir=tmp_path)
    assert isinstance(backend, FilesystemBackend)
    assert backend.root == tmp_path / "backups"


def test_from_spec_s3_uses_inventory_spelling_and_env_credentials(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, s3_bucket: str, s3_secret: str
) -> None:
    monkeypatch.setenv("MINIO_USER", "minio-id")
    monkeypatch.setenv("MINIO_PASSWORD", s3_secret)
    spec = {
        "s3": {
            "bucket": s3_bucket,
            "prefix": "clusters/controller",
            "endpoint": moto_endpoint,
            "region": "us-east-1",
            "forcePathStyle": True,
            "credentials": {
                "env": {"accessKeyId": "MINIO_USER", "secretAccessKey": "MINIO_PASSWORD"}
            },
        }
    }
    backend = open_backend_from_spec(spec)
    assert isinstance(backend, S3Backend)
    assert backend.force_path_style
    assert backend.prefix == "clusters/controller"
    assert backend.check().available


def test_from_spec_secret_ref_needs_resolved_credentials(
    moto_endpoint: str, s3_bucket: str
) -> None:
    spec = {
        "s3": {
            "bucket": s3_bucket,
            "endpoint": moto_endpoint,
            "forcePathStyle": True,
            "credentials": {"secretRef": {"name": "minio", "namespace": "kubeferry"}},
        }
    }
    with pytest.raises(KubeferryError, match="secretRef must be resolved"):
        open_backend_from_spec(spec)
    resolved = S3Credentials("minio-id", "resolved-by-the-kube-layer")
    backend = open_backend_from_spec(spec, credentials=resolved)
    backend.put("k", b"v")
    assert backend.get("k") == b"v"


def test_from_spec_missing_env_variable_is_a_credentials_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KF_ABSENT_VAR", raising=False)
    spec = {"s3": {"bucket": "b", "credentials": {"env": {"accessKeyId": "KF_ABSENT_VAR"}}}}
    with pytest.raises(CredentialsError, match="KF_ABSENT_VAR is not set"):
        open_backend_from_spec(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "exactly one of 'filesystem' or 's3'"),
        ({"filesystem": {"path": "/a"}, "s3": {"bucket": "b"}}, "exactly one of"),
        ({"filesystem": "path"}, "must be a mapping"),
        ({"s3": {"bucket": "b", "credentials": {"vault": {}}}}, "unknown source 'vault'"),
        ({"s3": {"bucket": "b", "force_path_style": True}}, "unknown setting(s)"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(KubeferryError) as caught:
        open_backend_from_spec(spec)
    assert message in str(caught.value)
