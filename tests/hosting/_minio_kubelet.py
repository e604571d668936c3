"""A test-only scheduler + kubelet for the hosted MinIO's pod on the sandbox.

The sandbox runs kube-apiserver and kube-controller-manager only: the Deployment and
ReplicaSet controllers create MinIO's Pod, but nothing places or runs it. ``MinioKubelet``
plays the parts a real node would, as far as readiness goes, for the MinIO pods of one
namespace (label ``app.kubernetes.io/name=minio``):

1. waits, as the scheduler and the volume manager do, until the pod's claims are Bound and
   every ``secretKeyRef`` of its container resolves (the Secret and the key exist);
2. binds the pod to its registered Node (``pods/binding``) and reports it Running and Ready
   through ``pods/status``, so the real ReplicaSet and Deployment controllers count it
   available and the Deployment turns Available;
3. confirms deletions (grace period 0), so namespaces and rollouts finish.

No MinIO process runs: a test points ``hostedIn.endpoint`` at the sandbox's S3 server, which
stands in for the Service. ``started`` records each pod made ready, with its resolved env.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from reconciler.kube import KubeClient, Manifest

SELECTOR = "app.kubernetes.io/name=minio"


class _NotReady(Exception):
    pass


@dataclass(frozen=True)
class StartedPod:
    name: str
    node: str
    env: dict[str, str]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MinioKubelet:
    def __init__(self, client: KubeClient, namespace: str, *, interval: float = 0.2) -> None:
        self.client = client
        self.namespace = namespace
        self.node = f"fake-minio-node-{uuid.uuid4().hex[:6]}"
        self.interval = interval
        self.started: list[StartedPod] = []
        self.errors: list[BaseException] = []
        self._core = k8s.CoreV1Api(client.api_client)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MinioKubelet:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}},
        }
        self.client.create(node)
        self._thread = threading.Thread(target=self._loop, name="minio-kubelet", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.delete("v1", "Node", self.node)
        if self.errors and exc[0] is None:
            raise self.errors[0]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as error:  # reported when the kubelet stops
                self.errors.append(error)
                return
            self._stop.wait(self.interval)

    def _sync(self) -> None:
        for pod in self.client.list_objects("v1", "Pod", self.namespace, label_selector=SELECTOR):
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(ApiException):
                    self._core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
                continue
            if any(p.name == name for p in self.started):
                continue
            try:
                env = self._prepare(pod)
            except _NotReady:
                continue
            if not pod["spec"].get("nodeName"):
                self._bind(name)
            self._set_running(pod)
            self.started.append(StartedPod(name, self.node, env))

    def _prepare(self, pod: Manifest) -> dict[str, str]:
        for volume in pod["spec"].get("volumes") or []:
            claim_ref = volume.get("persistentVolumeClaim")
            if claim_ref is None:
                continue
            claim = self.client.get(
                "v1", "PersistentVolumeClaim", claim_ref["claimName"], self.namespace
            )
            if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
                raise _NotReady
        env: dict[str, str] = {}
        for entry in pod["spec"]["containers"][0].get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                env[entry["name"]] = str(entry.get("value", ""))
                continue
            secret = self.client.get("v1", "Secret", ref["name"], self.namespace)
            data = (secret or {}).get("data") or {}
            if ref["key"] not in data:  # a kubelet reports CreateContainerConfigError
                raise _NotReady
            env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
        return env

    def _bind(self, name: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": self.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        self._core.create_namespaced_pod_binding(
            name, self.namespace, binding, _preload_content=False
        )

    def _set_running(self, pod: Manifest) -> None:
        container = pod["spec"]["containers"][0]
        started = _now()
        status: dict[str, Any] = {
            "phase": "Running",
            "startTime": started,
            "conditions": [
                {"type": condition, "status": "True", "lastTransitionTime": started}
                for condition in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
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
        name = pod["metadata"]["name"]
        for _attempt in range(10):
            current = self.client.get("v1", "Pod", name, self.namespace)
            if current is None:
                return
            current["status"] = status
            try:
                self._core.replace_namespaced_pod_status(name, self.namespace, current)
                return
            except ApiException as error:
                if error.status != 409:
                    raise
        raise RuntimeError(f"could not report pod {name} Running")
