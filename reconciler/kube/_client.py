"""KubeClient: a small typed facade over the `kubernetes` package (ApiClient + dynamic client).

Objects go in and come out as plain dicts, addressed by (apiVersion, kind, name, namespace);
the dynamic client resolves kinds through API discovery, so nothing here hard-codes versions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient, LazyDiscoverer
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

from reconciler.kube._errors import (
    KubeApiError,
    KubeConfigError,
    KubeError,
    KubeUnreachableError,
)

if TYPE_CHECKING:
    from reconciler.kube._rest import KubeRest

Manifest = dict[str, Any]
"""A Kubernetes object as a plain dict (``apiVersion``, ``kind``, ``metadata``, ...)."""

_REQUEST_TIMEOUT_SECONDS = 30.0
_SHARED_CONNECTIONS = 32
_DEFAULT_KUBECONFIG = "~/.kube/config"


class _InMemoryDiscoverer(LazyDiscoverer):  # type: ignore[misc]
    """Discovery that never writes the library's cache file.

    The default cache lives in /tmp keyed by host:port only; sandbox ports are reused by
    other clusters, so a stale file could describe a different server.
    """

    def _write_cache(self) -> None:
        return None


class KubeClient:
    """One authenticated connection to one Kubernetes API server."""

    def __init__(
        self, api_client: Any, *, request_timeout: float = _REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self._api = api_client
        self._request_timeout = request_timeout
        self._dynamic_client: Any = None
        self._rest: KubeRest | None = None  # connections shared by every rest() view
        self._rest_lock = threading.Lock()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: Path | None = None, context: str | None = None) -> Self:
        """Connect as a kubeconfig context says; ``path=None`` means $KUBECONFIG or ~/.kube/config."""
        configuration = k8s_client.Configuration()
        # resolved here, not by the library: it reads $KUBECONFIG once, at import time
        where = (
            str(path) if path is not None else os.environ.get("KUBECONFIG") or _DEFAULT_KUBECONFIG
        )
        try:
            k8s_config.load_kube_config(
                config_file=where,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as error:
            which = f" (context {context!r})" if context else ""
            raise KubeConfigError(
                f"cannot use kubeconfig {where}{which}: {_one_line(str(error))}",
                hint="check the file, or pass another kubeconfig/context",
            ) from error
        return cls(k8s_client.ApiClient(configuration=configuration))

    @classmethod
    def for_server(cls, server: str, *, token: str, ca_file: Path) -> Self:
        """Connect to ``server`` (https URL) with a bearer token, verifying TLS against ``ca_file``."""
        configuration = k8s_client.Configuration(host=server)
        configuration.api_key = {"authorization": f"Bearer {token}"}
        configuration.ssl_ca_cert = str(ca_file)
        configuration.verify_ssl = True
        return cls(k8s_client.ApiClient(configuration=configuration))

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        self._api.close()
        with self._rest_lock:
            if self._rest is not None:
                self._rest.close()
                self._rest = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- information --------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server URL, e.g. ``https://127.0.0.1:6443``."""
        host: str = self._api.configuration.host
        return host

    @property
    def api_client(self) -> Any:
        """The underlying ``kubernetes.client.ApiClient``, for the typed APIs (CoreV1Api...)."""
        return self._api

    def version(self) -> str:
        """The server's git version, e.g. ``v1.20.2``."""
        with self._translate("read /version"):
            info = k8s_client.VersionApi(self._api).get_code(_request_timeout=self._request_timeout)
        version: str = info.git_version
        return version

    def ready(self, *, timeout: float = 5.0) -> bool:
        """True when ``/readyz`` answers ``ok``; False if not ready or unreachable."""
        try:
            status, text = self._get_text("/readyz", timeout=timeout)
        except KubeError:
            return False
        return status == 200 and text.strip() == "ok"

    def rest(self, **kw: Any) -> KubeRest:
        """A fast async client for the same server and identity (``KubeRest.from_client``).

        Construct it inside the event loop that uses it, and close it there. Without options
        other than ``max_connections`` it is a view of connections this client keeps open, so
        the many short engine calls of a refresh do not each pay new TLS handshakes.
        """
        from reconciler.kube._rest import KubeRest  # _rest imports this module

        if set(kw) - {"max_connections"}:
            return KubeRest.from_client(self, **kw)
        with self._rest_lock:
            if self._rest is None:
                self._rest = KubeRest.from_client(self, max_connections=_SHARED_CONNECTIONS)
            shared = self._rest
        return shared.view(kw.get("max_connections"))

    # -- objects ------------------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        """The object, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        try:
            with self._translate(f"get {kind} {_ref(name, namespace)}"):
                instance = self._dynamic.get(
                    resource,
                    name=name,
                    namespace=namespace,
                    _request_timeout=self._request_timeout,
                )
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise
        return _manifest(instance)

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        """All objects of a kind (in one namespace, or cluster-wide when ``namespace`` is None)."""
        resource = self._resource(api_version, kind)
        with self._translate(f"list {kind}"):
            listing = self._dynamic.get(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                _request_timeout=self._request_timeout,
            )
        items: list[Manifest] = _manifest(listing).get("items") or []
        for item in items:
            # list items come without their type; put it back so each item stands alone
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def create(self, manifest: Manifest) -> Manifest:
        """Create the object; KubeApiError(status=409) if it already exists."""
        api_version, kind, name, namespace = _address(manifest)
        resource = self._resource(api_version, kind)
        with self._translate(f"create {kind} {_ref(name, namespace)}"):
            created = self._dynamic.create(
                resource,
                body=manifest,
                namespace=namespace,
                _request_timeout=self._request_timeout,
            )
        return _manifest(created)

    def ensure(self, manifest: Manifest) -> Manifest:
        """Create the object unless it exists; returns the object as stored (never updates it)."""
        try:
            return self.create(manifest)
        except KubeApiError as error:
            if error.status != 409:
                raise
        api_version, kind, name, namespace = _address(manifest)
        existing = self.get(api_version, kind, name, namespace)
        if existing is None:  # deleted between the two calls: a finalizing namespace, say
            return self.create(manifest)
        return existing

    def replace(self, manifest: Manifest) -> Manifest:
        """Overwrite an existing object (PUT). Without ``metadata.resourceVersion`` the current
        one is used, i.e. last writer wins; with it, a concurrent change gives a 409."""
        api_version, kind, name, namespace = _address(manifest)
        resource = self._resource(api_version, kind)
        body = manifest
        if not manifest["metadata"].get("resourceVersion"):
            current = self.get(api_version, kind, name, namespace)
            if current is None:
                raise KubeApiError(
                    f"{self.server}: replace {kind} {_ref(name, namespace)} failed: not found",
                    status=404,
                )
            version = current["metadata"]["resourceVersion"]
            body = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": version}}
        with self._translate(f"replace {kind} {_ref(name, namespace)}"):
            replaced = self._dynamic.replace(
                resource,
                body=body,
                name=name,
                namespace=namespace,
                _request_timeout=self._request_timeout,
            )
        return _manifest(replaced)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Ask for deletion; False when there was nothing to delete. Finalizers may delay it."""
        resource = self._resource(api_version, kind)
        try:
            with self._translate(f"delete {kind} {_ref(name, namespace)}"):
                self._dynamic.delete(
                    resource,
                    name=name,
                    namespace=namespace,
                    _request_timeout=self._request_timeout,
                )
        except KubeApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        condition: Callable[[Manifest], bool] | None = None,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> Manifest:
        """Poll until the object exists (and ``condition`` holds); KubeError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.get(api_version, kind, name, namespace)
            if found is not None and (condition is None or condition(found)):
                return found
            if time.monotonic() >= deadline:
                state = "in the expected state" if found is not None else "to exist"
                raise KubeError(
                    f"timed out after {timeout:.0f}s waiting for {kind} "
                    f"{_ref(name, namespace)} {state} on {self.server}"
                )
            time.sleep(interval)

    def wait_for_deletion(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> None:
        """Poll until the object is gone (finalizers done); KubeError on timeout."""
        deadline = time.monotonic() + timeout
        while self.get(api_version, kind, name, namespace) is not None:
            if time.monotonic() >= deadline:
                raise KubeError(
                    f"timed out after {timeout:.0f}s waiting for {kind} "
                    f"{_ref(name, namespace)} to be deleted on {self.server}"
                )
            time.sleep(interval)

    # -- internals ----------------------------------------------------------------------

    @property
    def _dynamic(self) -> Any:
        if self._dynamic_client is None:
            never_written = Path(tempfile.gettempdir()) / f"kubeferry-{uuid.uuid4().hex}.json"
            with self._translate("API discovery"):
                self._dynamic_client = DynamicClient(
                    self._api, cache_file=str(never_written), discoverer=_InMemoryDiscoverer
                )
        return self._dynamic_client

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._translate(f"discover {kind} in {api_version}"):
            try:
                return self._dynamic.resources.get(api_version=api_version, kind=kind)
            except (ResourceNotFoundError, ResourceNotUniqueError) as error:
                raise KubeApiError(
                    f"{self.server} does not serve kind {kind} in {api_version}", status=404
                ) from error

    def _get_text(self, path: str, *, timeout: float) -> tuple[int, str]:
        with self._translate(f"GET {path}"):
            method, url, headers, body, post_params = self._api.param_serialize(
                "GET", path, header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
            )
            response = self._api.call_api(
                method,
                url,
                header_params=headers,
                body=body,
                post_params=post_params,
                _request_timeout=timeout,
            )
            data: bytes = response.read() or b""
        status: int = response.status
        return status, data.decode("utf-8", errors="replace")

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn library exceptions into one-line kubeferry errors naming the server and action."""
        try:
            yield
        except ApiException as error:
            raise KubeApiError(
                f"{self.server}: {action} failed: HTTP {error.status} {_api_message(error)}",
                status=int(error.status or 0),
            ) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubeUnreachableError(
                f"cannot reach the Kubernetes API at {self.server} ({action}): "
                f"{_connection_reason(error)}"
            ) from error


def _address(manifest: Manifest) -> tuple[str, str, str, str | None]:
    try:
        metadata = manifest["metadata"]
        return manifest["apiVersion"], manifest["kind"], metadata["name"], metadata.get("namespace")
    except (KeyError, TypeError) as error:
        raise KubeError(
            f"object needs apiVersion, kind and metadata.name (missing {error})"
        ) from error


def _manifest(instance: Any) -> Manifest:
    as_dict: Manifest = instance.to_dict()
    return as_dict


def _ref(name: str, namespace: str | None) -> str:
    return f"{namespace}/{name}" if namespace else name


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _api_message(error: ApiException) -> str:
    """The server's Status.message when there is one, else the HTTP reason."""
    summary = getattr(error, "summary", None)
    if callable(summary):
        with contextlib.suppress(ValueError, TypeError):
            return _one_line(str(summary()))
    return _one_line(str(error.reason or ""))


def _connection_reason(error: BaseException) -> str:
    reason: BaseException = getattr(error, "reason", None) or error
    text = _one_line(str(reason))
    # urllib3 prefixes "<urllib3.connection.HTTPSConnection object at 0x...>: "
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    return text
