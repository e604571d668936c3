"""The single Kubernetes access layer of kubeferry: the only package that imports `kubernetes`.

Everything talks to clusters through :class:`KubeClient`; objects travel as plain dicts
(:data:`Manifest`), so callers never depend on the client library's generated models.
"""

from reconciler.kube._access import can_i
from reconciler.kube._client import KubeClient, Manifest
from reconciler.kube._errors import KubeApiError, KubeConfigError, KubeError, KubeUnreachableError
from reconciler.kube._rest import ApiResource, BlockingRest, KubeRest

__all__ = [
    "ApiResource",
    "BlockingRest",
    "KubeApiError",
    "KubeClient",
    "KubeConfigError",
    "KubeError",
    "KubeRest",
    "KubeUnreachableError",
    "Manifest",
    "can_i",
]
