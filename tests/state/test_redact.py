"""The second line of defence against credentials in the ledger's JSON columns."""

from __future__ import annotations

from typing import Any

import pytest

from state._redact import REDACTED, redact


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "secretAccessKey",
        "aws_secret_access_key",
        "accessKeyId",
        "AWS_ACCESS_KEY_ID",
        "token",
        "bearerToken",
        "client-secret",
        "credentials",
        "private_key",
        "client-key-data",
        "MINIO_ROOT_PASSWORD",
    ],
)
def test_string_values_under_credential_keys_are_redacted(key: str) -> None:
    assert redact({key: "s3cr3t"}) == {key: REDACTED}


def test_other_keys_and_non_string_values_are_kept() -> None:
    data: dict[str, Any] = {
        "secrets": {"get": True, "list": False},
        "serviceaccounts/token": {"create": True},
        "token": 3,
        "bucket": "backups",
        "items": [{"name": "a", "password": "x"}, "plain"],
    }
    assert redact(data) == {
        "secrets": {"get": True, "list": False},
        "serviceaccounts/token": {"create": True},
        "token": 3,
        "bucket": "backups",
        "items": [{"name": "a", "password": REDACTED}, "plain"],
    }
    assert data["items"][0]["password"] == "x"  # the caller's data is not modified
