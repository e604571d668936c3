"""`kubeferry sandbox`: real local Kubernetes control planes and an S3 endpoint.

One etcd, and per cluster a kube-apiserver and kube-controller-manager built from Debian's
`kubernetes` source package (cached under ``${XDG_CACHE_HOME:-~/.cache}/kubeferry``), plus a
moto S3 server. Typical use::

    sandbox = Sandbox()                    # $KUBEFERRY_SANDBOX_DIR or the XDG state dir
    info = sandbox.up().info               # idempotent; builds the binaries the first time
    client = info.client("worker-1")       # a reconciler.kube.KubeClient
    sandbox.down()
"""

from reconciler.sandbox._build import KubernetesBinaries, ensure_kubernetes_binaries
from reconciler.sandbox._credentials import S3Credentials
from reconciler.sandbox._layout import (
    DEFAULT_CLUSTER_NAMES,
    KUBERNETES_VERSION,
    SANDBOX_DIR_ENV,
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
from reconciler.sandbox._prerequisites import Host
from reconciler.sandbox._processes import ProcessRecord, is_running
from reconciler.sandbox._progress import Reporter, SilentReporter
from reconciler.sandbox._sandbox import (
    HOSTPATH_VOLUME_ROOT,
    S3_BUCKET,
    STORAGE_CLASS,
    Sandbox,
    cluster_names_for,
    validate_cluster_names,
)

__all__ = [
    "DEFAULT_CLUSTER_NAMES",
    "HOSTPATH_VOLUME_ROOT",
    "KUBERNETES_VERSION",
    "S3_BUCKET",
    "SANDBOX_DIR_ENV",
    "STORAGE_CLASS",
    "ClusterInfo",
    "ClusterStatus",
    "DownResult",
    "Host",
    "KubernetesBinaries",
    "ProcessRecord",
    "Reporter",
    "S3Credentials",
    "S3Endpoint",
    "Sandbox",
    "SandboxInfo",
    "SandboxStatus",
    "SilentReporter",
    "UpAction",
    "UpResult",
    "cluster_names_for",
    "default_cache_dir",
    "default_sandbox_dir",
    "ensure_kubernetes_binaries",
    "is_running",
    "validate_cluster_names",
]
