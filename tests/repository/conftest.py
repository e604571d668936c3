"""Backends under test: a temporary directory, and S3 served by moto over real HTTP."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer

from reconciler.repository import RepositoryBackend, S3Backend, S3Credentials, open_backend

ACCESS_KEY_ID = "AKIATESTKUBEFERRY01"
SECRET_ACCESS_KEY = "kubeferry-test-secret-never-printed"  # moto accepts any credentials
CREDENTIALS = S3Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    # Real S3 evaluates PutObject's If-None-Match atomically; moto checks, then writes,
    # without a lock, so its threaded server could (rarely) let two conditional PUTs win.
    # Serialize moto's PutObject handler: the race tests then check our client, not moto.
    lock = threading.Lock()
    original = S3Response.put_object

    def serialized_put_object(self: S3Response) -> Any:
        with lock:
            return original(self)

    # port 0: the kernel picks a free port, no race with other test sessions
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(S3Response, "put_object", serialized_put_object)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str) -> Any:
    """A plain boto3 client for test setup (creating a client is slow: share one)."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


@pytest.fixture
def s3_bucket(s3_admin: Any) -> str:
    """A fresh, empty bucket per test."""
    name = f"kubeferry-test-{os.getpid()}-{next(_buckets)}"
    s3_admin.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["filesystem", "s3"])
def backend_spec(
    request: pytest.FixtureRequest, tmp_path: Path, moto_endpoint: str
) -> dict[str, Any]:
    """Settings for `open_backend` (plus "kind"), so other processes can open the same one."""
    if request.param == "filesystem":
        return {"kind": "filesystem", "path": str(tmp_path / "repo")}
    bucket = request.getfixturevalue("s3_bucket")
    return {
        "kind": "s3",
        "bucket": bucket,
        "prefix": "team/repo",  # a non-empty prefix exercises the key mapping
        "endpoint": moto_endpoint,
        "region": "us-east-1",
        "force_path_style": True,
    }


def _open_spec(spec: dict[str, Any]) -> RepositoryBackend:
    settings = dict(spec)
    kind = settings.pop("kind")
    if kind == "s3":
        settings["credentials"] = CREDENTIALS
    backend: RepositoryBackend = open_backend(kind, **settings)
    return backend


@pytest.fixture
def open_spec() -> Callable[[dict[str, Any]], RepositoryBackend]:
    """Open another backend instance on the same storage as `backend_spec`."""
    return _open_spec


@pytest.fixture
def backend(backend_spec: dict[str, Any]) -> RepositoryBackend:
    return _open_spec(backend_spec)


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Environment for `_worker.py` processes: S3 credentials as AWS_* variables."""
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
    return env


@pytest.fixture
def make_s3(moto_endpoint: str) -> Callable[..., S3Backend]:
    """Build an `S3Backend` on the moto server (bucket positional, options as keywords)."""

    def make(bucket: str, **options: Any) -> S3Backend:
        options.setdefault("endpoint", moto_endpoint)
        options.setdefault("region", "us-east-1")
        options.setdefault("force_path_style", True)
        options.setdefault("credentials", CREDENTIALS)
        return S3Backend(bucket, **options)

    return make


@pytest.fixture
def s3_secret() -> str:
    return SECRET_ACCESS_KEY
