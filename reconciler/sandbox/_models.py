"""What the sandbox API hands back: where the clusters and the S3 endpoint are, and their health."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.kube import KubeClient
from reconciler.sandbox._credentials import S3Credentials, read_s3_credentials

UpAction = Literal["started", "restarted", "unchanged"]


@dataclass(frozen=True)
class ClusterInfo:
    """One sandbox cluster; its kubeconfig context has the same name."""

    name: str
    role: Literal["controller", "worker"]
    api_url: str
    ca_file: Path

    @property
    def context(self) -> str:
        return self.name


@dataclass(frozen=True)
class S3Endpoint:
    """The local S3 endpoint; the keys stay in ``credentials_file`` until asked for."""

    endpoint_url: str
    bucket: str
    credentials_file: Path

    def credentials(self) -> S3Credentials:
        return read_s3_credentials(self.credentials_file)


@dataclass(frozen=True)
class SandboxInfo:
    """A sandbox as recorded in its state file."""

    directory: Path
    kubeconfig: Path
    clusters: tuple[ClusterInfo, ...]
    s3: S3Endpoint

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return tuple(cluster.name for cluster in self.clusters)

    @property
    def controller(self) -> ClusterInfo:
        return self.clusters[0]

    @property
    def workers(self) -> tuple[ClusterInfo, ...]:
        return self.clusters[1:]

    def cluster(self, name: str) -> ClusterInfo:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(f"no sandbox cluster named {name!r} (have {', '.join(self.cluster_names)})")

    def client(self, cluster: str) -> KubeClient:
        """An admin client for ``cluster`` (through the sandbox kubeconfig, TLS verified)."""
        self.cluster(cluster)
        return KubeClient.from_kubeconfig(self.kubeconfig, context=cluster)


@dataclass(frozen=True)
class ClusterStatus:
    cluster: ClusterInfo
    apiserver_running: bool
    controller_manager_running: bool
    ready: bool

    @property
    def problem(self) -> str | None:
        """Why the cluster is not ready, or None when it is."""
        if not self.apiserver_running:
            return "kube-apiserver is not running"
        if not self.ready:
            return "kube-apiserver's /readyz is not ok"
        if not self.controller_manager_running:
            return "kube-controller-manager is not running"
        return None


@dataclass(frozen=True)
class SandboxStatus:
    directory: Path
    info: SandboxInfo | None
    clusters: tuple[ClusterStatus, ...]
    etcd_running: bool
    s3_running: bool

    @property
    def exists(self) -> bool:
        return self.info is not None

    @property
    def running(self) -> bool:
        """Everything is up: etcd, S3 and every cluster ready."""
        return (
            self.info is not None
            and self.etcd_running
            and self.s3_running
            and all(cluster.problem is None for cluster in self.clusters)
        )

    def problems(self) -> list[str]:
        if self.info is None:
            return [f"no sandbox in {self.directory}"]
        found = [] if self.etcd_running else ["etcd is not running"]
        if not self.s3_running:
            found.append("the S3 endpoint is not running")
        found += [
            f"{status.cluster.name}: {status.problem}"
            for status in self.clusters
            if status.problem is not None
        ]
        return found


@dataclass(frozen=True)
class UpResult:
    info: SandboxInfo
    action: UpAction
    started: tuple[str, ...]
    """Names of the processes this call started (empty when it found everything running)."""


@dataclass(frozen=True)
class DownResult:
    stopped: tuple[str, ...]
    removed_volume_dirs: tuple[Path, ...]
