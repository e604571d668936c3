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
from dataclasses import dataclass

from reconciler.kube import KubeClient, Manifest
from tests._kubelet import PollingKubelet, now, running_status

SELECTOR = "app.kubernetes.io/name=minio"
_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


class _NotReady(Exception):
    pass


@dataclass(frozen=True)
class StartedPod:
    name: str
    node: str
    env: dict[str, str]


class MinioKubelet(PollingKubelet):
    thread_name = "minio-kubelet"

    def __init__(self, client: KubeClient, namespace: str, *, interval: float = 0.2) -> None:
        super().__init__(client, namespace, node_prefix="fake-minio-node", interval=interval)
        self.started: list[StartedPod] = []

    def _sync(self) -> None:
        for pod in self.client.list_objects("v1", "Pod", self.namespace, label_selector=SELECTOR):
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp"):
                self._confirm_deletion(name)
                continue
            if any(p.name == name for p in self.started):
                continue
            try:
                env = self._prepare(pod)
            except _NotReady:
                continue
            if not self._bind(pod):
                continue
            container = pod["spec"]["containers"][0]
            self._set_status(name, running_status(container, now(), _CONDITIONS))
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
