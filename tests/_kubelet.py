"""The part of a node the sandbox lacks, shared by the test-only kubelets: a registered Node,
a polling thread, binding pods, confirming deletions, reporting pods/status.

The sandbox runs kube-apiserver and kube-controller-manager only, so controllers create pods
that nothing places or runs. A subclass decides, in ``_sync``, which pods of its namespace it
takes and what "running" them means (tests/volumes/_fake_kubelet.py runs the Job mover's
command; tests/hosting/_minio_kubelet.py only reports MinIO's pod Ready).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from reconciler.kube import KubeClient, Manifest

HOSTNAME_LABEL = "kubernetes.io/hostname"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(
    container: Manifest, started: str, conditions: Sequence[str] = ("Ready",)
) -> dict[str, Any]:
    """pods/status of a pod whose one container runs and is ready."""
    return {
        "phase": "Running",
        "startTime": started,
        "conditions": [
            {"type": condition, "status": "True", "lastTransitionTime": started}
            for condition in conditions
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": started}},
            }
        ],
    }


class PollingKubelet:
    """A node of one namespace's pods; a context manager (the client should be its own: it
    is used from a thread). Errors of the kubelet itself are re-raised when it stops."""

    thread_name = "test-kubelet"

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        node: str | None = None,
        node_prefix: str = "fake-node",
        interval: float = 0.2,
        join_timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node or f"{node_prefix}-{uuid.uuid4().hex[:6]}"
        self.interval = interval
        self.errors: list[BaseException] = []
        self._join_timeout = join_timeout
        self._core = k8s.CoreV1Api(client.api_client)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False

    def __enter__(self) -> Self:
        # a registered node: the pod garbage collector deletes pods bound to unknown nodes
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": {HOSTNAME_LABEL: self.node}},
        }
        if self.client.get("v1", "Node", self.node) is None:
            self.client.create(node)
            self._registered = True
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout)
        self._cleanup()
        if self._registered:
            self.client.delete("v1", "Node", self.node)
        if self.errors and exc[0] is None:
            raise self.errors[0]

    def _cleanup(self) -> None:
        """What a subclass removes when it stops (before the Node goes)."""

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as error:  # reported when the kubelet stops
                self.errors.append(error)
                return
            self._stop.wait(self.interval)

    def _sync(self) -> None:
        raise NotImplementedError

    def _bind(self, pod: Manifest) -> bool:
        """Place the pod on this node; False when it went away meanwhile."""
        if pod["spec"].get("nodeName"):
            return True
        name = pod["metadata"]["name"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": self.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        # the generated client cannot read the Status this returns: skip deserialising
        try:
            self._core.create_namespaced_pod_binding(
                name, self.namespace, binding, _preload_content=False
            )
        except ApiException as error:
            if error.status in (404, 409):  # deleted, or bound elsewhere
                return False
            raise
        return True

    def _confirm_deletion(self, name: str) -> None:
        with contextlib.suppress(ApiException):
            self._core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)

    def _set_status(self, name: str, status: Mapping[str, Any]) -> None:
        """PUT pods/status with the current resourceVersion (retried on a conflict)."""
        for _attempt in range(10):
            current = self.client.get("v1", "Pod", name, self.namespace)
            if current is None:
                return  # deleted meanwhile
            current["status"] = dict(status)
            try:
                self._core.replace_namespaced_pod_status(name, self.namespace, current)
                return
            except ApiException as error:
                if error.status == 404:
                    return
                if error.status != 409:
                    raise
            time.sleep(0.05)
        raise RuntimeError(f"test kubelet: could not update the status of pod {name}")
