"""The sandbox itself: one etcd, per cluster a kube-apiserver + kube-controller-manager, one S3.

`up` is idempotent: it starts only what is not running (recognised by PID + start time) and
reuses ports, data and credentials from the state file; `down` stops exactly the recorded
processes and deletes the sandbox's data (logs stay).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

from reconciler.errors import KubeferryError, PrerequisiteError
from reconciler.kube import KubeClient, KubeError, Manifest
from reconciler.sandbox._build import (
    KubernetesBinaries,
    ensure_kubernetes_binaries,
    installed_binaries,
)
from reconciler.sandbox._credentials import (
    ADMIN_USER,
    CONTROLLER_MANAGER_USER,
    KubeconfigEntry,
    ensure_cluster_credentials,
    ensure_s3_credentials,
    make_private_dir,
    read_token,
    write_kubeconfig,
    write_s3_credentials,
)
from reconciler.sandbox._layout import (
    DEFAULT_CLUSTER_NAMES,
    KUBERNETES_VERSION,
    CacheLayout,
    SandboxLayout,
    default_cache_dir,
    default_sandbox_dir,
)
from reconciler.sandbox._models import (
    ClusterInfo,
    ClusterStatus,
    DownResult,
    S3Endpoint,
    SandboxInfo,
    SandboxStatus,
    UpAction,
    UpResult,
)
from reconciler.sandbox._prerequisites import Host, check_prerequisites
from reconciler.sandbox._processes import (
    ProcessRecord,
    free_ports,
    is_running,
    port_is_free,
    spawn_daemon,
    stop_processes,
)
from reconciler.sandbox._progress import Reporter, SilentReporter
from reconciler.sandbox._s3 import ensure_bucket, moto_command, s3_responds
from reconciler.sandbox._sharing import keep_running_after_shared_use, shared_use
from reconciler.sandbox._state import (
    ClusterState,
    EtcdState,
    S3State,
    SandboxState,
    load_state,
    sandbox_lock,
    save_state,
)

S3_BUCKET = "kubeferry"
STORAGE_CLASS = "hostpath"
MAX_CLUSTERS = 16
# the in-tree host-path provisioner always creates volumes here (and deletes only here)
HOSTPATH_VOLUME_ROOT = Path("/tmp/hostpath_pv")
_CONTROLLERS = (
    "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-attachdetach,-ttl,"
    "-bootstrapsigner,-tokencleaner"
)
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


def cluster_names_for(count: int) -> tuple[str, ...]:
    """``controller`` plus ``worker-1`` .. ``worker-(count-1)``."""
    if not 1 <= count <= MAX_CLUSTERS:
        raise KubeferryError(f"--clusters must be between 1 and {MAX_CLUSTERS} (got {count})")
    return ("controller", *(f"worker-{index}" for index in range(1, count)))


def validate_cluster_names(names: Sequence[str]) -> tuple[str, ...]:
    """Distinct DNS labels (they name contexts, etcd prefixes and files); the first is the controller."""
    chosen = tuple(names)
    if not chosen:
        raise KubeferryError("a sandbox needs at least one cluster")
    if len(chosen) > MAX_CLUSTERS:
        raise KubeferryError(f"at most {MAX_CLUSTERS} clusters (got {len(chosen)})")
    for name in chosen:
        if not _CLUSTER_NAME.match(name):
            raise KubeferryError(
                f"invalid cluster name {name!r}",
                hint="use 1-40 lowercase letters, digits and '-', starting and ending alphanumeric",
            )
    duplicates = sorted({name for name in chosen if chosen.count(name) > 1})
    if duplicates:
        raise KubeferryError(f"cluster names must be distinct: {', '.join(duplicates)} repeated")
    return chosen


def storage_class_manifest() -> Manifest:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/host-path",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Delete",
    }


class Sandbox:
    """Local Kubernetes control planes plus an S3 endpoint, kept in one directory."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        cache_dir: Path | None = None,
        host: Host | None = None,
        apt_dir: Path = Path("/etc/apt"),
    ) -> None:
        self.directory = (directory or default_sandbox_dir()).absolute()
        self.layout = SandboxLayout(self.directory)
        self.cache = CacheLayout((cache_dir or default_cache_dir()).absolute())
        self._host = host or Host()
        self._apt_dir = apt_dir

    @property
    def kubeconfig_path(self) -> Path:
        return self.layout.kubeconfig

    def needs_build(self) -> bool:
        """True when `up` would first build the Kubernetes binaries (about 7.5 minutes)."""
        return installed_binaries(self.cache) is None

    # -- reading ------------------------------------------------------------------------

    def info(self) -> SandboxInfo | None:
        """The sandbox recorded in the state file (running or not), or None."""
        state = load_state(self.layout.state_file)
        return None if state is None else self._info(state)

    def status(self) -> SandboxStatus:
        """Which processes run and which clusters answer /readyz (no changes made)."""
        state = load_state(self.layout.state_file)
        if state is None:
            return SandboxStatus(self.directory, None, (), etcd_running=False, s3_running=False)
        info = self._info(state)
        clusters = []
        for cluster, cluster_info in zip(state.clusters, info.clusters, strict=True):
            apiserver_running = is_running(cluster.apiserver)
            clusters.append(
                ClusterStatus(
                    cluster=cluster_info,
                    apiserver_running=apiserver_running,
                    controller_manager_running=is_running(cluster.controller_manager),
                    ready=apiserver_running and self._admin_ready(cluster, timeout=3.0),
                )
            )
        return SandboxStatus(
            self.directory,
            info,
            tuple(clusters),
            etcd_running=is_running(state.etcd.process),
            s3_running=is_running(state.s3.process) and s3_responds(state.s3.endpoint),
        )

    # -- up -----------------------------------------------------------------------------

    def up(
        self,
        cluster_names: Sequence[str] | None = None,
        *,
        reporter: Reporter | None = None,
        timeout: float = 300.0,
    ) -> UpResult:
        """Start what is not running and wait until every cluster works.

        ``cluster_names=None`` keeps the recorded clusters (or the defaults for a new sandbox);
        asking for other names while a sandbox runs is an error. ``timeout`` bounds the
        waiting for the daemons, not a first build of the binaries.
        """
        progress = reporter or SilentReporter()
        requested = validate_cluster_names(cluster_names) if cluster_names is not None else None
        make_private_dir(self.directory)
        with sandbox_lock(self.layout.lock_file):
            state = load_state(self.layout.state_file)
            if state is not None and requested is not None and requested != state.cluster_names:
                if any(is_running(process) for process in state.processes()):
                    raise KubeferryError(
                        f"a sandbox with clusters {', '.join(state.cluster_names)} is already "
                        f"running in {self.directory}",
                        hint="run `kubeferry sandbox down` first, or set KUBEFERRY_SANDBOX_DIR "
                        "to another directory",
                    )
                self._remove_data(state)  # stopped sandbox of other clusters: start afresh
                state = None
            alive = [] if state is None else [is_running(p) for p in state.processes()]
            if state is not None and all(alive):
                progress.step("The sandbox is already running; checking it")
                deadline = time.monotonic() + timeout
                self._wait_until_working(state, progress, deadline)
                return UpResult(self._info(state), "unchanged", ())
            action: UpAction = "restarted" if any(alive) else "started"
            return self._start(state, requested, action, progress, timeout)

    def _start(
        self,
        state: SandboxState | None,
        requested: tuple[str, ...] | None,
        action: UpAction,
        progress: Reporter,
        timeout: float,
    ) -> UpResult:
        progress.step("Checking prerequisites")
        binaries = installed_binaries(self.cache)
        check_prerequisites(
            self._host,
            build=binaries is None,
            cache_dir=self.cache.root,
            sandbox_dir=self.directory,
            apt_log=self.cache.apt_log,
            reporter=progress,
        )
        if binaries is None:
            binaries = ensure_kubernetes_binaries(self.cache, progress, apt_dir=self._apt_dir)
        etcd = shutil.which("etcd")
        if etcd is None:
            raise PrerequisiteError(
                "etcd is not on PATH",
                hint="install Debian's etcd-server: apt-get install etcd-server",
            )

        if state is None:
            state = self._new_state(requested or DEFAULT_CLUSTER_NAMES)
        elif not self._ports_available(state):
            progress.step("Recorded ports are taken by other programs: restarting on new ports")
            stop_processes(state.processes())
            state = self._reassign_ports(state)
        for cluster in state.clusters:
            ensure_cluster_credentials(self.layout, cluster.name)
        ensure_s3_credentials(self.layout.s3_credentials)
        save_state(self.layout.state_file, state)

        launched: list[ProcessRecord] = []
        deadline = time.monotonic() + timeout
        try:
            self._launch(state, binaries, etcd, progress, launched, deadline)
            self._wait_until_working(state, progress, deadline)
        except BaseException:
            # leave nothing half-started behind; the data stays for the next attempt
            stop_processes(launched)
            self._forget(state, launched)
            save_state(self.layout.state_file, state)
            raise
        return UpResult(self._info(state), action, tuple(record.name for record in launched))

    def _new_state(self, names: Sequence[str]) -> SandboxState:
        etcd_port, peer_port, s3_port, *api_ports = free_ports(3 + len(names))
        return SandboxState(
            kubernetes_version=KUBERNETES_VERSION,
            etcd=EtcdState(client_port=etcd_port, peer_port=peer_port),
            s3=S3State(port=s3_port, bucket=S3_BUCKET),
            clusters=[
                ClusterState(
                    name=name,
                    role="controller" if index == 0 else "worker",
                    port=port,
                    service_cidr=f"10.0.{index}.0/24",
                )
                for index, (name, port) in enumerate(zip(names, api_ports, strict=True))
            ],
        )

    def _ports_available(self, state: SandboxState) -> bool:
        """Can every process that is not running get its recorded port(s) back?"""
        needed = (
            [] if is_running(state.etcd.process) else [state.etcd.client_port, state.etcd.peer_port]
        )
        if not is_running(state.s3.process):
            needed.append(state.s3.port)
        needed += [c.port for c in state.clusters if not is_running(c.apiserver)]
        return all(port_is_free(port) for port in needed)

    def _reassign_ports(self, state: SandboxState) -> SandboxState:
        fresh = self._new_state(state.cluster_names)
        for old, new in zip(state.clusters, fresh.clusters, strict=True):
            new.service_cidr = old.service_cidr  # stored in etcd with the cluster's objects
        return fresh

    def _launch(
        self,
        state: SandboxState,
        binaries: KubernetesBinaries,
        etcd: str,
        progress: Reporter,
        launched: list[ProcessRecord],
        deadline: float,
    ) -> None:
        layout = self.layout
        make_private_dir(layout.logs_dir)

        def start(name: str, command: list[str], log: str) -> ProcessRecord:
            record = spawn_daemon(
                name, command, log=layout.log(log), cwd=self.directory, env=_daemon_environment()
            )
            launched.append(record)
            return record

        if not is_running(state.etcd.process):
            progress.step(f"Starting etcd on {state.etcd.url}")
            state.etcd.process = start("etcd", self._etcd_command(state, etcd), "etcd")
            save_state(layout.state_file, state)
        if not is_running(state.s3.process):
            progress.step(f"Starting the S3 endpoint (moto) on {state.s3.endpoint}")
            state.s3.process = start("s3", moto_command(state.s3.port), "s3")
            save_state(layout.state_file, state)
        progress.step("Waiting for etcd")
        self._wait(lambda: _etcd_healthy(state.etcd.url), state.etcd.process, "etcd", deadline)

        for cluster in state.clusters:
            if not is_running(cluster.apiserver):
                progress.step(f"Starting kube-apiserver of {cluster.name} on {cluster.api_url}")
                make_private_dir(layout.certs_dir(cluster.name))
                cluster.apiserver = start(
                    f"{cluster.name}/kube-apiserver",
                    self._apiserver_command(state, cluster, binaries),
                    f"{cluster.name}-apiserver",
                )
                save_state(layout.state_file, state)
        for cluster in state.clusters:
            progress.step(f"Waiting for {cluster.name}'s /readyz")
            self._wait(
                partial(self._admin_ready, cluster, timeout=3.0),
                cluster.apiserver,
                f"kube-apiserver of {cluster.name}",
                deadline,
            )
        self._write_kubeconfigs(state)

        for cluster in state.clusters:
            if not is_running(cluster.controller_manager):
                progress.step(f"Starting kube-controller-manager of {cluster.name}")
                cluster.controller_manager = start(
                    f"{cluster.name}/kube-controller-manager",
                    self._controller_manager_command(cluster, binaries),
                    f"{cluster.name}-controller-manager",
                )
                save_state(layout.state_file, state)

    def _wait_until_working(self, state: SandboxState, progress: Reporter, deadline: float) -> None:
        """Ready API servers, working controller-managers, StorageClasses, bucket."""
        for cluster in state.clusters:
            self._wait(
                partial(self._admin_ready, cluster, timeout=3.0),
                cluster.apiserver,
                f"kube-apiserver of {cluster.name}",
                deadline,
            )
        self._write_kubeconfigs(state)
        progress.step("Waiting for the S3 endpoint")
        self._wait(
            lambda: s3_responds(state.s3.endpoint), state.s3.process, "the S3 endpoint", deadline
        )
        credentials = ensure_s3_credentials(self.layout.s3_credentials)
        ensure_bucket(state.s3.endpoint, state.s3.bucket, credentials)
        write_s3_credentials(self.layout.s3_credentials, credentials, endpoint=state.s3.endpoint)

        for cluster in state.clusters:
            progress.step(
                f"Waiting for {cluster.name}'s controller-manager (default ServiceAccount)"
            )
            with self._admin_client(cluster) as client:
                self._wait(
                    partial(_exists, client, "v1", "ServiceAccount", "default", "default"),
                    cluster.controller_manager,
                    f"kube-controller-manager of {cluster.name}",
                    deadline,
                )
                if cluster.role == "worker":
                    progress.step(
                        f"Ensuring the default StorageClass {STORAGE_CLASS!r} in {cluster.name}"
                    )
                    client.ensure(storage_class_manifest())
                    if client.get("storage.k8s.io/v1", "StorageClass", STORAGE_CLASS) is None:
                        raise KubeferryError(
                            f"StorageClass {STORAGE_CLASS} missing in {cluster.name}"
                        )

    def _wait(
        self,
        condition: Callable[[], bool],
        process: ProcessRecord | None,
        what: str,
        deadline: float,
    ) -> None:
        """Poll ``condition``; fail fast (with the log's last line) if ``process`` died."""
        while True:
            try:
                if condition():
                    return
            except KubeError:
                pass  # not answering yet
            if not is_running(process):
                raise KubeferryError(
                    f"{what} is not running{_last_log_line(self._log_of(process))}",
                    hint=f"see {self._log_of(process)}",
                )
            if time.monotonic() >= deadline:
                raise KubeferryError(
                    f"timed out waiting for {what}", hint=f"see {self._log_of(process)}"
                )
            time.sleep(0.3)

    def _log_of(self, process: ProcessRecord | None) -> Path:
        if process is None:
            return self.layout.logs_dir
        return self.layout.log(process.name.replace("/kube-", "-"))

    # -- commands -----------------------------------------------------------------------

    def _etcd_command(self, state: SandboxState, etcd: str) -> list[str]:
        peer = f"http://127.0.0.1:{state.etcd.peer_port}"
        return [
            etcd,
            "--name=kubeferry",
            f"--data-dir={self.layout.etcd_data}",
            f"--listen-client-urls={state.etcd.url}",
            f"--advertise-client-urls={state.etcd.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=kubeferry={peer}",
        ]

    def _apiserver_command(
        self, state: SandboxState, cluster: ClusterState, binaries: KubernetesBinaries
    ) -> list[str]:
        layout, name = self.layout, cluster.name
        return [
            str(binaries.apiserver),
            f"--etcd-servers={state.etcd.url}",
            f"--etcd-prefix=/{name}",
            f"--secure-port={cluster.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={layout.certs_dir(name)}",
            f"--token-auth-file={layout.tokens_file(name)}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={layout.service_account_public_key(name)}",
            f"--service-account-signing-key-file={layout.service_account_key(name)}",
            f"--service-cluster-ip-range={cluster.service_cidr}",
            "--allow-privileged=true",
        ]

    def _controller_manager_command(
        self, cluster: ClusterState, binaries: KubernetesBinaries
    ) -> list[str]:
        layout, name = self.layout, cluster.name
        return [
            str(binaries.controller_manager),
            f"--kubeconfig={layout.controller_manager_kubeconfig(name)}",
            f"--controllers={_CONTROLLERS}",
            "--enable-hostpath-provisioner=true",
            f"--service-account-private-key-file={layout.service_account_key(name)}",
            f"--root-ca-file={layout.ca_file(name)}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--port=0",
        ]

    # -- kubeconfigs and clients --------------------------------------------------------

    def _write_kubeconfigs(self, state: SandboxState) -> None:
        layout = self.layout
        entries = []
        for cluster in state.clusters:
            name = cluster.name
            admin = KubeconfigEntry(
                name=name,
                server=cluster.api_url,
                ca_file=layout.ca_file(name),
                user=ADMIN_USER,
                token=read_token(layout.admin_token_file(name)),
            )
            entries.append(admin)
            manager = KubeconfigEntry(
                name=name,
                server=cluster.api_url,
                ca_file=layout.ca_file(name),
                user=CONTROLLER_MANAGER_USER,
                token=read_token(layout.controller_manager_token_file(name)),
            )
            write_kubeconfig(layout.controller_manager_kubeconfig(name), [manager], current=name)
        write_kubeconfig(layout.kubeconfig, entries, current=state.clusters[0].name)

    def _admin_client(self, cluster: ClusterState) -> KubeClient:
        return KubeClient.for_server(
            cluster.api_url,
            token=read_token(self.layout.admin_token_file(cluster.name)),
            ca_file=self.layout.ca_file(cluster.name),
        )

    def _admin_ready(self, cluster: ClusterState, *, timeout: float) -> bool:
        # the apiserver writes its certificate on start; until then there is nothing to verify
        if not self.layout.ca_file(cluster.name).is_file():
            return False
        with self._admin_client(cluster) as client:
            return client.ready(timeout=timeout)

    def _info(self, state: SandboxState) -> SandboxInfo:
        return SandboxInfo(
            directory=self.directory,
            kubeconfig=self.layout.kubeconfig,
            clusters=tuple(
                ClusterInfo(
                    name=cluster.name,
                    role=cluster.role,
                    api_url=cluster.api_url,
                    ca_file=self.layout.ca_file(cluster.name),
                )
                for cluster in state.clusters
            ),
            s3=S3Endpoint(
                endpoint_url=state.s3.endpoint,
                bucket=state.s3.bucket,
                credentials_file=self.layout.s3_credentials,
            ),
        )

    # -- shared use ---------------------------------------------------------------------

    def shared(
        self,
        cluster_names: Sequence[str] | None = None,
        *,
        reporter: Reporter | None = None,
        timeout: float = 300.0,
    ) -> AbstractContextManager[SandboxInfo]:
        """``with sandbox.shared() as info:`` use the sandbox, starting it if needed.

        Safe with concurrent users (parallel test sessions): a sandbox started this way is
        stopped when the last such user leaves; one started by `up` keeps running.
        """
        start = partial(self.up, cluster_names, reporter=reporter, timeout=timeout)
        return shared_use(self.layout.users_dir, start, self.down)

    def keep_running(self) -> None:
        """Make shared users leave the sandbox running (`kubeferry sandbox up` does this)."""
        keep_running_after_shared_use(self.layout.users_dir)

    # -- down ---------------------------------------------------------------------------

    def down(self, *, reporter: Reporter | None = None) -> DownResult:
        """Stop exactly the recorded processes, then delete the data (etcd, certs, keys)."""
        progress = reporter or SilentReporter()
        if not self.layout.state_file.exists():
            return DownResult((), ())
        with sandbox_lock(self.layout.lock_file):
            state = load_state(self.layout.state_file)
            if state is None:
                return DownResult((), ())
            volume_dirs = self._hostpath_volume_dirs(state)
            running = [p for p in state.processes() if p is not None and is_running(p)]
            progress.step(f"Stopping {len(running)} sandbox processes")
            stopped = stop_processes(state.processes())
            progress.step(f"Deleting the sandbox data in {self.directory}")
            self._remove_data(state)
            for volume in volume_dirs:
                shutil.rmtree(volume, ignore_errors=True)
        return DownResult(tuple(record.name for record in stopped), tuple(volume_dirs))

    def _hostpath_volume_dirs(self, state: SandboxState) -> list[Path]:
        """Directories of this sandbox's host-path PersistentVolumes (best effort)."""
        found: list[Path] = []
        for cluster in state.clusters:
            if not (is_running(cluster.apiserver) and self.layout.ca_file(cluster.name).is_file()):
                continue
            try:
                with self._admin_client(cluster) as client:
                    volumes = client.list_objects("v1", "PersistentVolume")
            except KubeError:
                continue
            for volume in volumes:
                path = Path(str(((volume.get("spec") or {}).get("hostPath") or {}).get("path", "")))
                if path.parent == HOSTPATH_VOLUME_ROOT and path.name not in ("", ".", ".."):
                    found.append(path)
        return found

    def _remove_data(self, state: SandboxState) -> None:
        for path in self.layout.data_paths(list(state.cluster_names)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    @staticmethod
    def _forget(state: SandboxState, records: list[ProcessRecord]) -> None:
        if state.etcd.process in records:
            state.etcd.process = None
        if state.s3.process in records:
            state.s3.process = None
        for cluster in state.clusters:
            if cluster.apiserver in records:
                cluster.apiserver = None
            if cluster.controller_manager in records:
                cluster.controller_manager = None


def _exists(
    client: KubeClient, api_version: str, kind: str, name: str, namespace: str | None
) -> bool:
    return client.get(api_version, kind, name, namespace) is not None


def _daemon_environment() -> dict[str, str]:
    # etcd reads ETCD_* variables as flags: a stray one in the user's shell must not leak in
    return {key: value for key, value in os.environ.items() if not key.startswith("ETCD_")}


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
            return bool(json.loads(response.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _last_log_line(log: Path) -> str:
    try:
        lines = [
            line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()
        ]
    except OSError:
        return ""
    return f" (last log line: {lines[-1][:200]})" if lines else ""
