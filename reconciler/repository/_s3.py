"""A repository in an S3 bucket (AWS, MinIO, Ceph RGW, moto...) through boto3.

boto3 is imported when the first client is built, so `import reconciler.repository` stays
cheap for commands that never touch S3. One client (thread-safe, pooled) per backend.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from reconciler.errors import KubeferryError
from reconciler.repository._credentials import S3Credentials
from reconciler.repository._errors import (
    CredentialsError,
    IntegrityError,
    ObjectNotFound,
    RepositoryError,
    RepositoryUnavailable,
)
from reconciler.repository._keys import validate_key, validate_prefix
from reconciler.repository._transport import Availability, ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Bounded so many backends (one per repository) cannot exhaust file descriptors.
MAX_POOL_CONNECTIONS_LIMIT = 64
_DEFAULT_REGION = "us-east-1"  # what S3-compatible stores expect when none is configured
_CHECK_KEY_PREFIX = ".kubeferry-check/"
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_PRECONDITION_FAILED = {"412", "PreconditionFailed"}
# AWS answers 409 when a conditional write races another write to the same key; retry it
_CONDITIONAL_CONFLICT = {"409", "ConditionalRequestConflict", "OperationAborted"}
_CONFLICT_ATTEMPTS = 5
_BODY_READ_ATTEMPTS = 3
_UNREACHABLE = (
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, SSLError, proxy
    ConnectionClosedError,
    ReadTimeoutError,
)


def _status(error: ClientError) -> str:
    return str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _client_error_code(error: ClientError) -> tuple[str, str]:
    details = error.response.get("Error", {})
    return str(details.get("Code") or _status(error)), str(details.get("Message") or "").strip()


def _is(error: ClientError, codes: set[str]) -> bool:
    code, _ = _client_error_code(error)
    return code in codes or _status(error) in codes


class S3Backend:
    """Objects under `prefix` in `bucket`; `credentials=None` uses boto3's default chain.

    Retries use botocore's "standard" mode (exponential backoff with jitter, throttling and
    5xx aware) for up to `max_attempts` attempts in total; connections are pooled up to
    `max_pool_connections` per backend. Objects are written with one PUT each (atomic, up
    to S3's 5 GiB single-PUT limit), with Content-MD5 so the store verifies them.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        force_path_style: bool = False,
        ca_bundle: str | Path | None = None,
        credentials: S3Credentials | None = None,
        max_pool_connections: int = 10,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        list_page_size: int = 1000,
    ) -> None:
        if not bucket or "/" in bucket:
            raise KubeferryError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix, what="S3 prefix")
        if endpoint is not None:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise KubeferryError(f"invalid S3 endpoint {endpoint!r}: expected http(s)://host")
            if parts.username is not None or parts.password is not None:
                # a URL with user:password would leak into every error message
                raise KubeferryError("invalid S3 endpoint: credentials must not be in the URL")
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise KubeferryError(f"S3 CA bundle {ca_bundle} does not exist or is not a file")
        if not 1 <= max_pool_connections <= MAX_POOL_CONNECTIONS_LIMIT:
            raise KubeferryError(
                f"max_pool_connections must be between 1 and {MAX_POOL_CONNECTIONS_LIMIT}"
            )
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region
        self.force_path_style = force_path_style
        self.ca_bundle = str(ca_bundle) if ca_bundle is not None else None
        self.max_pool_connections = max_pool_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.list_page_size = list_page_size
        self._credentials = credentials
        self._lock = threading.Lock()
        self._client: S3Client | None = None
        self._probe_client: S3Client | None = None

    def __repr__(self) -> str:
        # never the credentials: only where the objects live
        return f"S3Backend({self.location!r})"

    @property
    def credentials(self) -> S3Credentials | None:
        """The explicit credentials this backend was opened with (None: boto3's chain); for
        handing the same identity to an in-cluster mover."""
        return self._credentials

    # clients hold sockets and locks: rebuild them lazily after pickling (process pools)
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _client=None, _probe_client=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{where} at {self.endpoint}" if self.endpoint else where

    # -- client --------------------------------------------------------------------------

    def _build_client(self, *, max_attempts: int, read_timeout: float) -> S3Client:
        import boto3
        from botocore.config import Config

        creds = self._credentials
        session = boto3.session.Session(
            aws_access_key_id=creds.access_key_id if creds else None,
            aws_secret_access_key=creds.secret_access_key if creds else None,
            aws_session_token=creds.session_token if creds else None,
        )
        region = self.region or session.region_name or _DEFAULT_REGION
        config = Config(
            region_name=region,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            max_pool_connections=self.max_pool_connections,
            connect_timeout=self.connect_timeout,
            read_timeout=read_timeout,
            tcp_keepalive=True,
            s3={"addressing_style": "path" if self.force_path_style else "auto"},
            # S3-compatible stores (older MinIO, Ceph, GCS) reject the newer flexible
            # checksums; put() sends Content-MD5 instead, which every store verifies
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client(
            "s3", endpoint_url=self.endpoint, verify=self.ca_bundle, config=config
        )

    @property
    def client(self) -> S3Client:
        """The boto3 client (built on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._build_client(
                    max_attempts=self.max_attempts, read_timeout=self.read_timeout
                )
            return self._client

    def _checker(self) -> S3Client:
        # check() must answer quickly when the endpoint is down: few attempts, short reads
        with self._lock:
            if self._probe_client is None:
                self._probe_client = self._build_client(
                    max_attempts=2, read_timeout=min(self.read_timeout, 10.0)
                )
            return self._probe_client

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _translate(self, action: str, key: str, error: Exception) -> KubeferryError:
        if isinstance(error, ClientError):
            code, message = _client_error_code(error)
            detail = f"{code}: {message}" if message and message != code else code
            return RepositoryError(f"{self.location}: cannot {action} {key!r}: {detail}")
        if isinstance(error, NoCredentialsError | PartialCredentialsError):
            return CredentialsError(f"{self.location}: no usable S3 credentials: {error}")
        if isinstance(error, CredentialRetrievalError):
            return CredentialsError(f"{self.location}: cannot load S3 credentials: {error}")
        if isinstance(error, _UNREACHABLE):
            # botocore's message names the endpoint URL (never userinfo: rejected above)
            return RepositoryUnavailable(f"{self.location}: unreachable: {error}")
        return RepositoryError(f"{self.location}: cannot {action} {key!r}: {error}")

    # -- writes --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentMD5=_md5(data))
        except (ClientError, BotoCoreError) as error:
            raise self._translate("write", key, error) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # S3 evaluates If-None-Match atomically on the server. Stores that ignore the header
        # (some older S3-compatible servers) overwrite instead: there the "if absent" is
        # only as good as a HEAD before the PUT, a race window the caller must accept.
        full = self._key(key)
        digest = _md5(data)
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, ContentMD5=digest, IfNoneMatch="*"
                )
                return True
            except ClientError as error:
                if _is(error, _PRECONDITION_FAILED):
                    retried = error.response.get("ResponseMetadata", {}).get("RetryAttempts")
                    return bool(retried) and self._was_ours(full, digest)
                if _is(error, _CONDITIONAL_CONFLICT) and attempt < _CONFLICT_ATTEMPTS - 1:
                    time.sleep(0.05 * 2**attempt + secrets.randbelow(50) / 1000)
                    continue
                if _is(error, {"501", "NotImplemented"}):
                    raise RepositoryError(
                        f"{self.location}: the store does not support conditional writes "
                        "(If-None-Match)"
                    ) from None
                raise self._translate("write", key, error) from None
            except BotoCoreError as error:
                raise self._translate("write", key, error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _was_ours(self, full: str, digest: str) -> bool:
        # botocore retried, so our first attempt may have landed (its response lost) and the
        # 412 be about our own object. A single-part PUT's ETag is its MD5: compare. Only
        # identical content written by another caller in that window could fool this.
        try:
            etag = self.client.head_object(Bucket=self.bucket, Key=full)["ETag"].strip('"')
        except (ClientError, BotoCoreError):
            return False
        return etag == base64.b64decode(digest).hex()

    def delete(self, key: str) -> None:
        full = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except ClientError as error:
            if _is(error, _NOT_FOUND_CODES):
                return  # S3 answers 204 anyway; some compatible stores say 404
            raise self._translate("delete", key, error) from None
        except BotoCoreError as error:
            raise self._translate("delete", key, error) from None

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        full = self._key(key)
        for attempt in range(_BODY_READ_ATTEMPTS):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=full)
                # botocore checks the length read against Content-Length
                return response["Body"].read()
            except ClientError as error:
                if _is(error, _NOT_FOUND_CODES):
                    raise ObjectNotFound(self.location, key) from None
                raise self._translate("read", key, error) from None
            except (IncompleteReadError, ResponseStreamingError, ReadTimeoutError) as error:
                # the request was retried by botocore, the body stream is not: retry here
                if attempt == _BODY_READ_ATTEMPTS - 1:
                    raise self._translate("read", key, error) from None
            except BotoCoreError as error:
                raise self._translate("read", key, error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def cheap_ranges(self) -> bool:
        return False  # every range is a request: whole packs are fetched and cached instead

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length <= 0:
            if length == 0 and start >= 0:
                return b""
            raise RepositoryError(f"{self.location}: bad range {start}+{length} of {key!r}")
        full = self._key(key)
        for attempt in range(_BODY_READ_ATTEMPTS):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes={start}-{start + length - 1}"
                )
                data: bytes = response["Body"].read()
            except ClientError as error:
                if _is(error, _NOT_FOUND_CODES):
                    raise ObjectNotFound(self.location, key) from None
                if _is(error, {"InvalidRange", "416"}):
                    raise IntegrityError(
                        f"{self.location}: {key!r} ends before {start + length} bytes (truncated?)"
                    ) from None
                raise self._translate("read", key, error) from None
            except (IncompleteReadError, ResponseStreamingError, ReadTimeoutError) as error:
                if attempt == _BODY_READ_ATTEMPTS - 1:
                    raise self._translate("read", key, error) from None
                continue
            except BotoCoreError as error:
                raise self._translate("read", key, error) from None
            if len(data) != length:  # a range past the end is answered with what there is
                raise IntegrityError(
                    f"{self.location}: {key!r} ends before {start + length} bytes (truncated?)"
                )
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _head(self, key: str) -> ObjectInfo | None:
        full = self._key(key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as error:
            if _is(error, _NOT_FOUND_CODES):
                return None
            raise self._translate("stat", key, error) from None
        except BotoCoreError as error:
            raise self._translate("stat", key, error) from None
        return ObjectInfo(key, response["ContentLength"], response["LastModified"])

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def stat(self, key: str) -> ObjectInfo:
        info = self._head(key)
        if info is None:
            raise ObjectNotFound(self.location, key)
        return info

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=base + prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            # S3 returns keys in UTF-8 byte order, which is Python's str order
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(base) :]
                    try:
                        validate_key(key)
                    except RepositoryError:
                        continue  # e.g. console "folder/" markers: not ours, not objects
                    yield ObjectInfo(key, item["Size"], item["LastModified"])
        except (ClientError, BotoCoreError) as error:
            raise self._translate("list", prefix or "/", error) from None

    # -- health --------------------------------------------------------------------------

    def check(self) -> Availability:
        try:
            client = self._checker()
            client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _is(error, _NOT_FOUND_CODES | {"NoSuchBucket"}):
                return Availability.unavailable(f"{self.location}: bucket does not exist")
            if _is(error, {"301", "PermanentRedirect"}):
                return Availability.unavailable(
                    f"{self.location}: the bucket is in another region (set the region)"
                )
            if _is(error, {"403", "AccessDenied", "Forbidden"}):
                return Availability.unavailable(
                    f"{self.location}: access denied (check the credentials)"
                )
            return Availability.unavailable(str(self._translate("reach", self.bucket, error)))
        except BotoCoreError as error:
            return Availability.unavailable(str(self._translate("reach", self.bucket, error)))
        probe = _CHECK_KEY_PREFIX + secrets.token_hex(8)
        full = self._key(probe)
        try:
            client.put_object(Bucket=self.bucket, Key=full, Body=b"kubeferry availability probe\n")
            client.delete_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as error:
            message = str(self._translate("write", probe, error))
            return Availability.unavailable(f"{message} (the repository is not writable)")
        return Availability.ok(f"{self.location}: reachable and writable")


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
