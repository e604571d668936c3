"""The sandbox's local S3 endpoint: a moto server in its own detached interpreter."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
from botocore.config import Config

from reconciler.errors import KubeferryError
from reconciler.sandbox._credentials import S3Credentials

_QUICK = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1})


def moto_command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def s3_responds(endpoint: str, *, timeout: float = 2.0) -> bool:
    """Any HTTP answer counts: moto is serving."""
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout):  # noqa: S310 - our own http URL
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def ensure_bucket(endpoint: str, bucket: str, credentials: S3Credentials) -> None:
    """Create the bucket unless it exists (moto keeps buckets in memory: a restart loses them)."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=credentials.region,
        config=_QUICK,
    )
    try:
        client.head_bucket(Bucket=bucket)
        return
    except botocore.exceptions.ClientError:
        pass  # 404: create it below
    except botocore.exceptions.BotoCoreError as error:
        raise KubeferryError(f"the S3 endpoint {endpoint} does not answer: {error}") from error
    client.create_bucket(Bucket=bucket)
