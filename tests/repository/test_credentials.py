"""Credentials: env and file references, one-line errors that never show a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.repository import (
    CredentialsError,
    EnvCredentials,
    FileCredentials,
    S3Credentials,
    resolve_credentials,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"  # AWS's documented example secret


def _one_line_without_secret(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    assert SECRET not in text
    assert "EXAMPLEKEY" not in text
    return text


def test_repr_and_str_hide_the_secret() -> None:
    credentials = S3Credentials("AKIAIOSFODNN7EXAMPLE", SECRET, session_token="token-value")
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert SECRET not in text
        assert "token-value" not in text
        assert "AKIAIOSFODNN7EXAMPLE" not in text
    assert "MPLE" in repr(credentials)  # enough of the key id to tell keys apart


def test_none_means_the_default_chain_and_resolved_credentials_pass_through() -> None:
    assert resolve_credentials(None) is None
    credentials = S3Credentials("id", SECRET)
    assert resolve_credentials(credentials) is credentials


def test_env_reference_reads_the_named_variables() -> None:
    environ = {"MINIO_USER": "minio-id", "MINIO_PASSWORD": SECRET, "MINIO_TOKEN": "tok"}
    ref = EnvCredentials("MINIO_USER", "MINIO_PASSWORD", session_token_var="MINIO_TOKEN")
    assert resolve_credentials(ref, environ=environ) == S3Credentials("minio-id", SECRET, "tok")
    default = resolve_credentials(
        EnvCredentials(), environ={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": SECRET}
    )
    assert default == S3Credentials("a", SECRET)


def test_missing_env_variable_names_the_variable_only() -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(
            EnvCredentials("MINIO_USER", "MINIO_PASSWORD"), environ={"MINIO_USER": SECRET}
        )
    assert isinstance(caught.value, KubeferryError)
    text = _one_line_without_secret(caught.value)
    assert "MINIO_PASSWORD" in text
    assert "is not set" in text


def test_env_reference_defaults_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KF_TEST_ID", "from-env")
    monkeypatch.setenv("KF_TEST_SECRET", SECRET)
    resolved = resolve_credentials(EnvCredentials("KF_TEST_ID", "KF_TEST_SECRET"))
    assert resolved == S3Credentials("from-env", SECRET)


@pytest.mark.parametrize(
    "content",
    [
        f"AWS_ACCESS_KEY_ID=AKIDFILE\nAWS_SECRET_ACCESS_KEY={SECRET}\n",
        f"# exported\nexport AWS_ACCESS_KEY_ID='AKIDFILE'\nexport AWS_SECRET_ACCESS_KEY=\"{SECRET}\"\n",
        f"[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = {SECRET}\n"
        "[other]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n",
    ],
    ids=["env-style", "exported-and-quoted", "aws-credentials-file"],
)
def test_file_reference_reads_key_value_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "credentials"
    path.write_text(content)
    assert resolve_credentials(FileCredentials(path)) == S3Credentials("AKIDFILE", SECRET)


def test_missing_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.env"
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(FileCredentials(path))
    text = _one_line_without_secret(caught.value)
    assert str(path) in text
    assert "No such file" in text


def test_unreadable_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    # a directory cannot be read as a file, even by root
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(FileCredentials(tmp_path))
    assert str(tmp_path) in _one_line_without_secret(caught.value)


def test_file_without_the_secret_names_the_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "partial.env"
    path.write_text("AWS_ACCESS_KEY_ID=AKIDFILE\nAWS_SECRET_ACCESS_KEY=\n")
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(FileCredentials(path))
    text = _one_line_without_secret(caught.value)
    assert "AWS_SECRET_ACCESS_KEY" in text
    assert str(path) in text


def test_malformed_line_is_reported_by_number_never_by_content(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    # a pasted secret on its own line (no KEY=): must not be echoed back
    path.write_text(f"AWS_ACCESS_KEY_ID=AKIDFILE\n{SECRET.replace('/', '')}\n")
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(FileCredentials(path))
    text = _one_line_without_secret(caught.value)
    assert SECRET.replace("/", "") not in text
    assert "line 2" in text


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CredentialsError, match="not UTF-8"):
        resolve_credentials(FileCredentials(path))
