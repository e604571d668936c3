"""Where the sandbox keeps its files: the build cache and the per-sandbox directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SANDBOX_DIR_ENV = "KUBEFERRY_SANDBOX_DIR"
KUBERNETES_VERSION = "1.20.2"
BUILD_REVISION = "reflect2-1.0.2"
"""Changes whenever the build itself changes, so cached binaries of an older build are rebuilt."""
DEFAULT_CLUSTER_NAMES = ("controller", "worker-1", "worker-2")


def _xdg_dir(variable: str, fallback: str) -> Path:
    # the XDG spec says relative values are invalid and must be ignored
    value = os.environ.get(variable, "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def default_cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubeferry``: build tree and compiled binaries."""
    return _xdg_dir("XDG_CACHE_HOME", ".cache") / "kubeferry"


def default_sandbox_dir() -> Path:
    """``$KUBEFERRY_SANDBOX_DIR``, else ``${XDG_STATE_HOME:-~/.local/state}/kubeferry/sandbox``."""
    explicit = os.environ.get(SANDBOX_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    return _xdg_dir("XDG_STATE_HOME", ".local/state") / "kubeferry" / "sandbox"


@dataclass(frozen=True)
class CacheLayout:
    """``<cache>/build`` holds the Debian source and the Go build; ``<cache>/bin`` the results."""

    root: Path

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def apt_dir(self) -> Path:
        return self.build_dir / "apt"

    @property
    def source_dir(self) -> Path:
        return self.build_dir / f"kubernetes-{KUBERNETES_VERSION}"

    @property
    def build_output_dir(self) -> Path:
        return self.source_dir / "_output" / "local" / "bin" / "linux" / "amd64"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin" / f"kubernetes-{KUBERNETES_VERSION}-{BUILD_REVISION}"

    @property
    def build_log(self) -> Path:
        return self.root / "logs" / "build.log"

    @property
    def apt_log(self) -> Path:
        return self.root / "logs" / "apt.log"

    @property
    def lock_file(self) -> Path:
        return self.root / "build.lock"


@dataclass(frozen=True)
class SandboxLayout:
    """Every file of one sandbox, relative to its directory."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def users_dir(self) -> Path:
        """Leases of the processes sharing this sandbox (see ``Sandbox.shared``)."""
        return self.root / "users"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def s3_credentials(self) -> Path:
        return self.root / "s3-credentials.env"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def certs_dir(self, cluster: str) -> Path:
        """The apiserver's --cert-dir; it writes its self-signed ``apiserver.crt`` here."""
        return self.root / f"certs-{cluster}"

    def ca_file(self, cluster: str) -> Path:
        return self.certs_dir(cluster) / "apiserver.crt"

    def auth_dir(self, cluster: str) -> Path:
        """Tokens and service-account keys of one cluster (0700)."""
        return self.root / f"auth-{cluster}"

    def tokens_file(self, cluster: str) -> Path:
        return self.auth_dir(cluster) / "tokens.csv"

    def admin_token_file(self, cluster: str) -> Path:
        return self.auth_dir(cluster) / "admin.token"

    def controller_manager_token_file(self, cluster: str) -> Path:
        return self.auth_dir(cluster) / "controller-manager.token"

    def service_account_key(self, cluster: str) -> Path:
        return self.auth_dir(cluster) / "sa.key"

    def service_account_public_key(self, cluster: str) -> Path:
        return self.auth_dir(cluster) / "sa.pub"

    def controller_manager_kubeconfig(self, cluster: str) -> Path:
        return self.auth_dir(cluster) / "controller-manager.kubeconfig"

    def data_paths(self, clusters: list[str]) -> list[Path]:
        """What `down` deletes (logs stay, for post-mortems)."""
        per_cluster = [
            path for name in clusters for path in (self.certs_dir(name), self.auth_dir(name))
        ]
        return [
            self.state_file,
            self.kubeconfig,
            self.s3_credentials,
            self.etcd_data,
            *per_cluster,
        ]
