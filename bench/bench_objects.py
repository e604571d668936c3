"""Object export and restore throughput for a namespace of many small objects (issue 4).

Seeds a namespace on the source cluster (default: sandbox worker-1) with N objects, half
ConfigMaps and half Secrets, each with about 1 KiB of data (seeding is not timed). Then, in
ONE run, it measures objects per second for:

  ours, export    ObjectEngine.backup of the source namespace into a filesystem repository
  ours, restore   ObjectEngine.restore of that snapshot into a fresh namespace on the
                  destination (default: sandbox worker-2)
  (a) sequential  one create at a time with the `kubernetes` package
                  (reconciler.kube.KubeClient.create in a loop): Velero's way of restoring
  (b) server max  a raw parallel create loop with httpx.AsyncClient (same TLS and token as
                  the kubeconfig, 32 requests in flight, JSON bodies built before timing)
  (b') threads    (informational, a cross-check of the server's limit) the same creates
                  from 32 threads with the `kubernetes` package's typed CoreV1Api: threads
                  get more CPU than one event loop when the machine is loaded
  raw list        (informational, export's peer) paginated GETs of both kinds, limit=500,
                  with httpx

Each restore-like measurement writes into its own fresh namespace, created before the
clock starts (ours creates its namespace itself, inside the timing); namespaces are deleted
between measurements and the script waits until they are gone. Goal: ours >= 80% of (b)
and >= 5x (a).

    .venv/bin/python bench/bench_objects.py [--objects 5000] [--repeat 1] [--peers-only]

Needs a running sandbox (`kubeferry sandbox up`) or --kubeconfig with both contexts.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from reconciler.kube import KubeClient

Manifest = dict[str, Any]
_GONE_TIMEOUT = 600.0


# -- connection details ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """What httpx needs to talk to the same server as a KubeClient."""

    server: str
    headers: dict[str, str]
    verify: ssl.SSLContext | bool
    cert: tuple[str, str] | None

    @classmethod
    def of(cls, client: KubeClient) -> Endpoint:
        configuration = client.api_client.configuration
        headers: dict[str, str] = {}
        for key, value in (configuration.api_key or {}).items():
            prefix = (configuration.api_key_prefix or {}).get(key)
            token = f"{prefix} {value}" if prefix else str(value)
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        cert = None
        if configuration.cert_file and configuration.key_file:
            cert = (configuration.cert_file, configuration.key_file)
        return cls(configuration.host.rstrip("/"), headers, verify, cert)

    def sync_client(self) -> httpx.Client:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.Client(
            base_url=self.server,
            headers={**self.headers, "Content-Type": "application/json"},
            verify=self.verify,
            cert=self.cert,
            limits=one,
            timeout=60.0,
        )

    def client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            base_url=self.server,
            headers={**self.headers, "Content-Type": "application/json"},
            verify=self.verify,
            cert=self.cert,
            limits=limits,
            timeout=60.0,
        )


# -- objects --------------------------------------------------------------------------------


def _payload(index: int, size: int) -> str:
    # ~size bytes of text that does not compress to nothing
    seed = uuid.UUID(int=index * 2654435761 % (1 << 128)).hex
    return (seed * (size // len(seed) + 1))[:size]


def seed_objects(count: int, size: int) -> list[Manifest]:
    """Half ConfigMaps, half Secrets, each with about ``size`` bytes of data (no namespace)."""
    objects: list[Manifest] = []
    for index in range(count):
        labels = {"bench.kubeferry.io/set": "objects", "bench.kubeferry.io/index": str(index)}
        if index % 2 == 0:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{index:05d}", "labels": labels},
                    "data": {"payload": _payload(index, size)},
                }
            )
        else:
            encoded = base64.b64encode(_payload(index, size * 3 // 4).encode()).decode()
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"secret-{index:05d}", "labels": labels},
                    "type": "Opaque",
                    "data": {"payload": encoded},
                }
            )
    return objects


def _plural(manifest: Manifest) -> str:
    return "configmaps" if manifest["kind"] == "ConfigMap" else "secrets"


def _in_namespace(manifest: Manifest, namespace: str) -> Manifest:
    return {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}


# -- namespaces -----------------------------------------------------------------------------


def create_namespace(client: KubeClient, namespace: str) -> None:
    client.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"bench.kubeferry.io/run": "objects"}},
        }
    )


def delete_namespace(client: KubeClient, namespace: str) -> float:
    """Delete and wait until it is gone; returns the seconds it took."""
    started = time.perf_counter()
    if client.delete("v1", "Namespace", namespace):
        client.wait_for_deletion("v1", "Namespace", namespace, timeout=_GONE_TIMEOUT, interval=1)
    return time.perf_counter() - started


# -- (b) raw parallel creates and the raw list -----------------------------------------------


async def _raw_create(
    endpoint: Endpoint, namespace: str, objects: list[Manifest], concurrency: int
) -> float:
    bodies = [
        (
            f"/api/v1/namespaces/{namespace}/{_plural(obj)}",
            json.dumps(_in_namespace(obj, namespace)).encode(),
        )
        for obj in objects
    ]
    failures: list[str] = []
    # one client (one connection) per worker: httpcore's shared pool costs O(requests x
    # connections) of Python time per request at this concurrency, which would cap (b) below
    # the server's limit
    clients = [endpoint.client(1) for _ in range(concurrency)]
    try:
        for client in clients:  # open the connections and do the TLS handshakes: not timed
            await client.get("/api/v1/namespaces/default")
        send, receive = anyio.create_memory_object_stream[tuple[str, bytes]](len(bodies))
        for item in bodies:
            send.send_nowait(item)
        send.close()

        async def worker(client: httpx.AsyncClient) -> None:
            async for path, body in receive:
                response = await client.post(path, content=body)
                if response.status_code != 201:
                    failures.append(f"{path}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(worker, client)
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    if failures:
        raise SystemExit(f"raw create: {len(failures)} failures, first: {failures[0]}")
    return elapsed


def raw_create(endpoint: Endpoint, namespace: str, objects: list[Manifest], n: int) -> float:
    return anyio.run(_raw_create, endpoint, namespace, objects, n)


def raw_threaded_create(
    endpoint: Endpoint, namespace: str, objects: list[Manifest], threads: int
) -> float:
    """(b) The server's limit: pre-built bodies POSTed by ``threads`` threads, one blocking
    httpx connection each (TLS in C, no GIL held while waiting: faster here than asyncio)."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [
        (
            f"/api/v1/namespaces/{namespace}/{_plural(obj)}",
            json.dumps(_in_namespace(obj, namespace)).encode(),
        )
        for obj in objects
    ]
    clients = [endpoint.sync_client() for _ in range(threads)]
    failures: list[str] = []
    position = iter(range(len(bodies)))
    lock = threading.Lock()

    def worker(client: httpx.Client) -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            path, body = bodies[index]
            response = client.post(path, content=body)
            if response.status_code != 201:
                failures.append(f"{path}: {response.status_code} {response.text[:200]}")

    try:
        for client in clients:  # connections and TLS handshakes: not timed
            client.get("/api/v1/namespaces/default")
        with ThreadPoolExecutor(threads) as pool:
            started = time.perf_counter()
            list(pool.map(worker, clients))
            elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    if failures:
        raise SystemExit(f"raw threaded create: {len(failures)} failures, first: {failures[0]}")
    return elapsed


async def _raw_list(endpoint: Endpoint, namespace: str) -> tuple[float, int]:
    async with endpoint.client(2) as client:
        await client.get("/api/v1/namespaces/default")
        started = time.perf_counter()
        total = 0
        for plural in ("configmaps", "secrets"):
            token = ""
            while True:
                params = {"limit": "500", **({"continue": token} if token else {})}
                response = await client.get(
                    f"/api/v1/namespaces/{namespace}/{plural}", params=params
                )
                response.raise_for_status()
                page = response.json()
                total += len(page["items"])
                token = page["metadata"].get("continue") or ""
                if not token:
                    break
        return time.perf_counter() - started, total


def raw_list(endpoint: Endpoint, namespace: str) -> tuple[float, int]:
    return anyio.run(_raw_list, endpoint, namespace)


# -- (a) sequential creates with the kubernetes package --------------------------------------


def sequential_create(client: KubeClient, namespace: str, objects: list[Manifest]) -> float:
    client.get("v1", "Namespace", namespace)  # discovery and connection: not timed
    client.get("v1", "ConfigMap", "absent", namespace)
    client.get("v1", "Secret", "absent", namespace)
    started = time.perf_counter()
    for obj in objects:
        client.create(_in_namespace(obj, namespace))
    return time.perf_counter() - started


def threaded_create(
    client: KubeClient, namespace: str, objects: list[Manifest], threads: int
) -> float:
    """(b') The same creates from ``threads`` threads over the kubernetes package."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client as k8s

    client.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = threads
    core = k8s.CoreV1Api(client.api_client)

    def create(obj: Manifest) -> None:
        body = _in_namespace(obj, namespace)
        if obj["kind"] == "ConfigMap":
            core.create_namespaced_config_map(namespace, body)
        else:
            core.create_namespaced_secret(namespace, body)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: core.read_namespace(namespace), range(threads)))  # warm up
        started = time.perf_counter()
        list(pool.map(create, objects))
        return time.perf_counter() - started


# -- ours -----------------------------------------------------------------------------------


@dataclass
class _Reporter:
    """A Reporter (reconciler.engines.Reporter) that only counts."""

    totals: list[int] = field(default_factory=list)
    done: int = 0
    warnings: list[str] = field(default_factory=list)

    def total(self, items: int) -> None:
        self.totals.append(items)

    def item_done(self, item: str, size: int = 0) -> None:
        self.done += 1

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        pass

    def warning(self, text: str, item: str = "") -> None:
        self.warnings.append(f"{item}: {text}" if item else text)

    def check_cancelled(self) -> None:
        return None


@dataclass
class Ours:
    export_seconds: float
    export_items: int
    restore_seconds: float
    restore_items: int
    outcomes: dict[str, int]
    snapshot_bytes: int


def engine_available() -> str | None:
    """None when reconciler.engines.ObjectEngine can be imported, else why not."""
    try:
        from reconciler.engines import ObjectEngine  # noqa: F401
    except ImportError as error:
        return str(error)
    return None


def ours(
    source: KubeClient,
    destination: KubeClient,
    source_namespace: str,
    target_namespace: str,
    workdir: Path,
    parallelism: int | None,
) -> Ours:
    from reconciler.engines import JobSpec, ObjectEngine
    from reconciler.repository import FilesystemBackend, Repository

    repository_dir = workdir / f"repository-{uuid.uuid4().hex[:8]}"
    repository = Repository(FilesystemBackend(repository_dir))
    repository.initialize("bench-objects")
    engine = ObjectEngine() if parallelism is None else ObjectEngine(parallelism=parallelism)
    job = JobSpec(
        name="bench-objects",
        namespace=source_namespace,
        target_namespace=target_namespace,
        source_cluster="source",
        destination_cluster="destination",
        existing_resource_policy="none",
    )
    snapshot_id = f"bench-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    backup = engine.backup(source, repository, job, snapshot_id, _Reporter(), {})
    export_seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in repository_dir.rglob("*") if p.is_file())

    started = time.perf_counter()
    restored = engine.restore(destination, repository, job, snapshot_id, _Reporter())
    restore_seconds = time.perf_counter() - started
    return Ours(
        export_seconds,
        backup.items,
        restore_seconds,
        restored.items,
        dict(restored.outcomes),
        size,
    )


# -- the run --------------------------------------------------------------------------------


@dataclass
class Series:
    label: str
    items: int
    seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Objects/s of the median repetition."""
        return self.items / statistics.median(self.seconds)

    def row(self) -> str:
        times = ", ".join(f"{s:.2f}" for s in self.seconds)
        return f"| {self.label} | {self.items:,} | {times} | {self.rate:,.0f} |"


def _count(client: KubeClient, namespace: str) -> int:
    configmaps = client.list_objects("v1", "ConfigMap", namespace)
    secrets = client.list_objects("v1", "Secret", namespace)
    labelled = [
        o
        for o in configmaps + secrets
        if (o["metadata"].get("labels") or {}).get("bench.kubeferry.io/set") == "objects"
    ]
    return len(labelled)


def _default_kubeconfig() -> Path:
    from reconciler.sandbox import Sandbox

    info = Sandbox().info()
    if info is None:
        raise SystemExit("no running sandbox: start one with `kubeferry sandbox up`")
    return info.kubeconfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000, help="objects in the namespace")
    parser.add_argument("--size", type=int, default=1024, help="bytes of data per object")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight for (b)")
    parser.add_argument(
        "--parallelism", type=int, default=None, help="ObjectEngine parallelism (its default)"
    )
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: the sandbox's")
    parser.add_argument("--source", default="worker-1", help="source context")
    parser.add_argument("--destination", default="worker-2", help="destination context")
    parser.add_argument("--peers-only", action="store_true", help="skip ObjectEngine")
    options = parser.parse_args(argv)

    kubeconfig = options.kubeconfig or _default_kubeconfig()
    missing = None if not options.peers_only else "--peers-only"
    missing = missing or engine_available()
    run = uuid.uuid4().hex[:6]
    source_namespace = f"bench-src-{run}"
    objects = seed_objects(options.objects, options.size)
    load_before = os.getloadavg()

    with (
        KubeClient.from_kubeconfig(kubeconfig, options.source) as source,
        KubeClient.from_kubeconfig(kubeconfig, options.destination) as destination,
        tempfile.TemporaryDirectory(prefix="kubeferry-bench-objects-") as tmp,
    ):
        source_endpoint, destination_endpoint = Endpoint.of(source), Endpoint.of(destination)
        print(f"# kubeferry object throughput ({time.strftime('%Y-%m-%d %H:%M')})\n")
        print(
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; source {source.server} "
            f"({source.version()}), destination {destination.server}; {options.objects:,} "
            f"objects (half ConfigMaps, half Secrets, ~{options.size} B data each)\n",
            flush=True,
        )
        create_namespace(source, source_namespace)
        try:
            started = time.perf_counter()
            raw_create(source_endpoint, source_namespace, objects, options.concurrency)
            print(
                f"- seeded {source_namespace} on {options.source} in "
                f"{time.perf_counter() - started:.1f} s (not timed)",
                flush=True,
            )
            if _count(source, source_namespace) != options.objects:
                raise SystemExit("seeding did not create every object")

            listing = Series("raw list, httpx, limit=500 (export's peer)", options.objects)
            sequential = Series("(a) sequential KubeClient.create", options.objects)
            parallel = Series(
                f"(b) raw httpx create, {options.concurrency} threads", options.objects
            )
            parallel_async = Series(
                f"(b-async) raw httpx.AsyncClient create, {options.concurrency} in flight",
                options.objects,
            )
            threaded = Series(
                f"(b') kubernetes package, {options.concurrency} threads", options.objects
            )
            export = Series("ours: ObjectEngine.backup (export)", options.objects)
            restore = Series("ours: ObjectEngine.restore", options.objects)
            notes: list[str] = []
            cleanup: list[float] = []

            def measure(label: str, action: Callable[[str], float]) -> float:
                """Run ``action`` into a fresh namespace, check it, delete the namespace."""
                namespace = f"bench-dst-{run}-{uuid.uuid4().hex[:4]}"
                create_namespace(destination, namespace)
                try:
                    seconds = action(namespace)
                    if _count(destination, namespace) != options.objects:
                        raise SystemExit(f"{label}: not every object arrived")
                finally:
                    cleanup.append(delete_namespace(destination, namespace))
                print(f"- {label}: {seconds:.2f} s", flush=True)
                return seconds

            for _ in range(options.repeat):
                seconds, total = raw_list(source_endpoint, source_namespace)
                if total < options.objects:
                    raise SystemExit(f"raw list saw {total} objects")
                listing.seconds.append(seconds)

                sequential.seconds.append(
                    measure(
                        "(a) sequential",
                        lambda ns: sequential_create(destination, ns, objects),
                    )
                )
                parallel.seconds.append(
                    measure(
                        "(b) parallel, threads",
                        lambda ns: raw_threaded_create(
                            destination_endpoint, ns, objects, options.concurrency
                        ),
                    )
                )
                parallel_async.seconds.append(
                    measure(
                        "(b-async) parallel, asyncio",
                        lambda ns: raw_create(
                            destination_endpoint, ns, objects, options.concurrency
                        ),
                    )
                )
                with KubeClient.from_kubeconfig(kubeconfig, options.destination) as own:
                    threaded.seconds.append(
                        measure(
                            "(b') threads",
                            lambda ns: threaded_create(own, ns, objects, options.concurrency),
                        )
                    )
                if missing is None:
                    target = f"bench-ours-{run}-{uuid.uuid4().hex[:4]}"
                    try:
                        result = ours(
                            source,
                            destination,
                            source_namespace,
                            target,
                            Path(tmp),
                            options.parallelism,
                        )
                        if _count(destination, target) != options.objects:
                            raise SystemExit("ours: not every object arrived")
                    finally:
                        cleanup.append(delete_namespace(destination, target))
                    export.items, restore.items = options.objects, options.objects
                    export.seconds.append(result.export_seconds)
                    restore.seconds.append(result.restore_seconds)
                    notes.append(
                        f"ours: backup {result.export_items:,} items, snapshot "
                        f"{result.snapshot_bytes / 1024:,.0f} KiB; restore {result.restore_items:,}"
                        f" items, outcomes {result.outcomes}"
                    )
                    print(
                        f"- ours: export {result.export_seconds:.2f} s, restore "
                        f"{result.restore_seconds:.2f} s",
                        flush=True,
                    )
        finally:
            cleanup_source = delete_namespace(source, source_namespace)
        load_after = os.getloadavg()

    print()
    print(
        f"Load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_before)} before, "
        f"{'/'.join(f'{v:.1f}' for v in load_after)} after. Namespace deletions (not timed): "
        f"{', '.join(f'{s:.0f}' for s in cleanup)} s; source {cleanup_source:.0f} s.\n"
    )
    print("| measurement | objects | seconds per repetition | objects/s (median) |")
    print("|---|---:|---|---:|")
    rows = [listing, sequential, parallel, parallel_async, threaded]
    if missing is None:
        rows += [export, restore]
    for series in rows:
        print(series.row())
    print()
    limit = max(parallel.rate, parallel_async.rate, threaded.rate)
    print(
        f"(b)/(a): {parallel.rate / sequential.rate:.1f}x; (b-async)/(a): "
        f"{parallel_async.rate / sequential.rate:.1f}x; (b')/(a): "
        f"{threaded.rate / sequential.rate:.1f}x"
    )
    if missing is None:
        print(
            f"ours restore / (b): {restore.rate / parallel.rate:.0%} (goal >= 80%); "
            f"ours restore / fastest raw loop: {restore.rate / limit:.0%}; "
            f"ours restore / (a): {restore.rate / sequential.rate:.1f}x (goal >= 5x); "
            f"export / raw list: {export.rate / listing.rate:.0%}"
        )
        for note in notes:
            print(f"- {note}")
    else:
        print(f"ours: not measured ({missing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
