"""Failures talking to a Kubernetes API server, as one-line kubeferry errors."""

from __future__ import annotations

from reconciler.errors import KubeferryError


class KubeError(KubeferryError):
    """Any failure of the Kubernetes access layer."""


class KubeConfigError(KubeError):
    """No usable kubeconfig: missing file, unknown context, unsupported auth."""


class KubeUnreachableError(KubeError):
    """The API server did not answer (refused, timed out, TLS verification failed)."""


class KubeApiError(KubeError):
    """The API server answered with an HTTP error; ``status`` is its code (403, 404, 409...)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
