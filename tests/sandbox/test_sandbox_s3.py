"""The sandbox's S3 endpoint works with boto3; its secret stays in a 0600 file."""

from __future__ import annotations

import boto3
import pytest

from reconciler.sandbox import S3_BUCKET, SandboxInfo

pytestmark = pytest.mark.sandbox


def test_boto3_puts_and_gets_an_object(sandbox: SandboxInfo, name_prefix: str) -> None:
    credentials = sandbox.s3.credentials()
    s3 = boto3.client(
        "s3",
        endpoint_url=sandbox.s3.endpoint_url,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=credentials.region,
    )
    assert sandbox.s3.bucket == S3_BUCKET
    key = f"{name_prefix}/object"
    s3.put_object(Bucket=sandbox.s3.bucket, Key=key, Body=b"ferried bytes")
    try:
        assert s3.get_object(Bucket=sandbox.s3.bucket, Key=key)["Body"].read() == b"ferried bytes"
    finally:
        s3.delete_object(Bucket=sandbox.s3.bucket, Key=key)


def test_s3_credentials_file_is_private_and_secret_never_in_repr(sandbox: SandboxInfo) -> None:
    path = sandbox.s3.credentials_file
    assert path.stat().st_mode & 0o777 == 0o600
    lines = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert lines["AWS_ACCESS_KEY_ID"].startswith("AKIA")
    assert len(lines["AWS_SECRET_ACCESS_KEY"]) >= 30
    assert lines["AWS_ENDPOINT_URL_S3"] == sandbox.s3.endpoint_url
    credentials = sandbox.s3.credentials()
    assert credentials.secret_access_key == lines["AWS_SECRET_ACCESS_KEY"]
    assert credentials.secret_access_key not in repr(credentials)
    assert credentials.secret_access_key not in repr(sandbox)
