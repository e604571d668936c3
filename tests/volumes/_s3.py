"""A local moto S3 server and repository backends on fresh buckets of it (no network)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

from reconciler.repository import S3Backend, S3Credentials

_buckets = itertools.count()


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free port (port 0: no race with other sessions); its endpoint."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def fresh_bucket_backend(endpoint: str, credentials: S3Credentials, name: str) -> S3Backend:
    """An S3Backend (prefix team/repo) on a new bucket ``NAME-PID-N`` of the moto server."""
    bucket = f"{name}-{os.getpid()}-{next(_buckets)}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
    ).create_bucket(Bucket=bucket)
    return S3Backend(
        bucket,
        prefix="team/repo",
        endpoint=endpoint,
        region="us-east-1",
        force_path_style=True,
        credentials=credentials,
    )
