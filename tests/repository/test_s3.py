"""S3-specific behaviour against moto over real HTTP: prefixes, paging, retries, health."""

from __future__ import annotations

import base64
import hashlib
import logging
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.errors import KubeferryError
from reconciler.repository import (
    ObjectNotFound,
    RepositoryUnavailable,
    S3Backend,
    S3Credentials,
)

MakeS3 = Callable[..., S3Backend]


def _raw_keys(s3_admin: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_admin.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_prefix_maps_keys_and_isolates_repositories(
    make_s3: MakeS3, s3_bucket: str, moto_endpoint: str, s3_admin: Any
) -> None:
    first = make_s3(s3_bucket, prefix="/team/one/")  # slashes around a prefix are ignored
    second = make_s3(s3_bucket, prefix="team/two")
    first.put("snapshots/a/metadata.json", b"1")
    second.put("snapshots/b/metadata.json", b"2")
    assert _raw_keys(s3_admin, s3_bucket) == [
        "team/one/snapshots/a/metadata.json",
        "team/two/snapshots/b/metadata.json",
    ]
    assert [i.key for i in first.list()] == ["snapshots/a/metadata.json"]
    assert [i.key for i in second.list("snapshots/")] == ["snapshots/b/metadata.json"]
    assert not first.exists("snapshots/b/metadata.json")
    assert first.location == f"s3://{s3_bucket}/team/one at {moto_endpoint}"


def test_listing_follows_pagination(make_s3: MakeS3, s3_bucket: str) -> None:
    backend = make_s3(s3_bucket, prefix="p", list_page_size=4)
    keys = sorted(f"chunks/{index:03d}" for index in range(23))
    for key in keys:
        backend.put(key, key.encode())
    requests: list[str] = []
    backend.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **_: requests.append("list")
    )
    assert [i.key for i in backend.list("chunks/")] == keys
    assert len(requests) == 6  # 23 keys, 4 per page


def test_client_retries_in_standard_mode_with_a_bounded_pool(
    make_s3: MakeS3, s3_bucket: str
) -> None:
    backend = make_s3(s3_bucket, max_pool_connections=7, max_attempts=4)
    config = backend.client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert config.max_pool_connections == 7
    assert config.connect_timeout == 5.0
    with pytest.raises(KubeferryError, match="max_pool_connections"):
        make_s3(s3_bucket, max_pool_connections=1000)


def test_puts_carry_content_md5_for_the_store_to_verify(make_s3: MakeS3, s3_bucket: str) -> None:
    # moto does not verify Content-MD5 (AWS and MinIO do): check that we send it
    backend = make_s3(s3_bucket)
    sent: list[str | None] = []
    backend.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(request.headers.get("Content-MD5")),
    )
    backend.put("a", b"hello")
    backend.put_if_absent("b", b"hello")
    expected = base64.b64encode(hashlib.md5(b"hello").digest()).decode()
    assert [value.decode() if isinstance(value, bytes) else value for value in sent] == [
        expected,
        expected,
    ]


def test_a_retried_conditional_put_that_landed_counts_as_won(
    make_s3: MakeS3, s3_bucket: str
) -> None:
    """The first PUT succeeds but botocore retries it (a lost response): the retry's 412
    is about our own object, so put_if_absent must still report True."""
    backend = make_s3(s3_bucket)
    forced: list[int] = []

    def retry_once_after_success(attempts: int, response: Any = None, **_: Any) -> int | None:
        if attempts == 1 and response is not None and response[0].status_code == 200:
            forced.append(attempts)
            return 0  # "retry now"
        return None

    backend.client.meta.events.register(
        "needs-retry.s3.PutObject", retry_once_after_success, unique_id="kubeferry-test"
    )
    assert backend.put_if_absent("locks/retried", b"mine")
    assert forced == [1]
    # a genuine conflict (no retry happened) is still a loss, even for equal content
    other = make_s3(s3_bucket)
    assert not other.put_if_absent("locks/retried", b"mine")
    assert not other.put_if_absent("locks/retried", b"theirs")
    assert other.get("locks/retried") == b"mine"


def test_check_reports_a_missing_bucket(make_s3: MakeS3) -> None:
    availability = make_s3("kubeferry-no-such-bucket").check()
    assert not availability.available
    assert availability.phase == "Unavailable"
    assert "bucket does not exist" in availability.message


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


def test_unreachable_endpoint_is_unavailable_quickly(s3_secret: str) -> None:
    endpoint = f"http://127.0.0.1:{_refused_port()}"
    backend = S3Backend(
        "bucket",
        endpoint=endpoint,
        force_path_style=True,
        credentials=S3Credentials("AKIAEXAMPLE0000", s3_secret),
    )
    started = time.monotonic()
    availability = backend.check()
    assert time.monotonic() - started < 5
    assert not availability.available
    assert endpoint in availability.message
    assert "unreachable" in availability.message
    assert "\n" not in availability.message
    assert s3_secret not in availability.message


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_hanging_endpoint_times_out_into_unavailable(silent_endpoint: str) -> None:
    backend = S3Backend(
        "bucket",
        endpoint=silent_endpoint,
        force_path_style=True,
        credentials=S3Credentials("AKIAEXAMPLE0000", "secret"),
        read_timeout=0.5,
        max_attempts=1,
    )
    started = time.monotonic()
    availability = backend.check()
    assert time.monotonic() - started < 8
    assert not availability.available
    assert "unreachable" in availability.message
    with pytest.raises(RepositoryUnavailable, match="unreachable"):
        backend.get("anything")


def test_errors_reprs_and_logs_never_contain_the_secret(
    make_s3: MakeS3, s3_bucket: str, s3_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs requests at DEBUG
    backend = make_s3(s3_bucket)
    missing_bucket = make_s3("kubeferry-absent-bucket", max_attempts=1)
    messages: list[str] = [repr(backend), str(backend.location)]
    backend.put("k", b"v")
    with pytest.raises(ObjectNotFound) as not_found:
        backend.get("absent")
    with pytest.raises(KubeferryError) as no_bucket:
        missing_bucket.put("k", b"v")
    messages += [str(not_found.value), str(no_bucket.value), missing_bucket.check().message]
    assert "NoSuchBucket" in str(no_bucket.value)
    assert all("\n" not in message for message in messages)
    for text in [*messages, caplog.text]:
        assert s3_secret not in text
    assert caplog.text  # the log capture did see botocore's debug output


def test_backend_survives_pickling_without_its_client(make_s3: MakeS3, s3_bucket: str) -> None:
    backend = make_s3(s3_bucket, prefix="pickled")
    backend.put("k", b"v")  # builds the client: not picklable itself
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.get("k") == b"v"
    assert clone.location == backend.location


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"endpoint": "http://user:hunter2@minio:9000"}, "must not be in the URL"),
        ({"endpoint": "ftp://minio"}, "expected http(s)://host"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "does not exist"),
        ({"prefix": "a/../b"}, "'..' segments are not allowed"),
    ],
)
def test_bad_settings_are_one_line_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(KubeferryError) as caught:
        S3Backend("bucket", **options)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_invalid_bucket_name_is_rejected() -> None:
    with pytest.raises(KubeferryError, match="invalid S3 bucket"):
        S3Backend("a/b")
