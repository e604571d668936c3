"""A test-only stand-in for the scheduler and kubelet of one node, for the Job mover's pods.

The sandbox runs kube-apiserver and kube-controller-manager only: the Job controller creates
a mover Job's Pod, but nothing places or runs it. :class:`FakeKubelet` does both, for the
pods of one namespace that carry ``kubeferry.io/mover-run``:

1. *schedules* a pending pod whose ``nodeSelector`` fits its node (``pods/binding``), once
   every volume it mounts is ready (the claim Bound, the Secret present), as the scheduler
   and the kubelet's volume manager would wait;
2. *mounts* its volumes as local directories: a ``persistentVolumeClaim`` is its
   PersistentVolume's ``hostPath``/``local`` directory (this machine is the node), a
   ``secret`` is written into a private temporary directory (its ``defaultMode``), an
   ``emptyDir`` is a temporary directory, a ``hostPath`` is the path itself; the container's
   ``terminationMessagePath`` is an empty local file;
3. *runs* the container's command (``command``, else the image's entrypoint ``kubeferry``,
   i.e. ``python -m reconciler``, followed by ``args``) with only the container's env
   (``value`` and ``secretKeyRef``), every argument and env value under a mount path
   rewritten to the local directory. File *contents* are not rewritten: a repository config
   that names a mount path (a filesystem repository's ``/repository``) does not resolve
   here, use an S3 repository;
4. *reports* through ``pods/status``: phase Running, then Succeeded/Failed with
   ``containerStatuses[0].state.terminated`` (exitCode, reason, the termination message the
   command wrote, or its last output lines under ``FallbackToLogsOnError``), so the real Job
   controller marks the Job Complete or Failed;
0. registers its Node (unless it exists; removed again when the kubelet stops), so the
   pod garbage collector does not delete pods bound to it as orphans;
5. on a pod's deletion (``deletionTimestamp``) kills its process and confirms the deletion
   (grace period 0), as a kubelet does.

Read-only mounts cannot be enforced without mount namespaces; each run records its mounts
(with ``readOnly``) so a test can check them, and the data directory it read.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.kube import KubeClient, Manifest
from tests._kubelet import HOSTNAME_LABEL, PollingKubelet, now, running_status

MOVER_RUN_LABEL = "kubeferry.io/mover-run"
IMAGE_ENTRYPOINT = ("kubeferry",)
"""The project image's ENTRYPOINT (Dockerfile)."""
_MESSAGE_LIMIT = 4096  # bytes of a termination message Kubernetes keeps
_LOG_FALLBACK_LINES = 80  # FallbackToLogsOnError: the last lines of the log, at most 2048 bytes
_LOG_FALLBACK_BYTES = 2048


class NotReady(Exception):
    """A volume of the pod is not ready yet (claim unbound, Secret missing): try again."""


@dataclass(frozen=True)
class Mount:
    path: str
    """Inside the container."""
    local: Path
    """On this machine."""
    read_only: bool
    volume: str
    """The pod volume's name."""


@dataclass
class PodRun:
    """One pod this kubelet ran."""

    name: str
    node: str
    node_selector: dict[str, str]
    labels: dict[str, str]
    command: list[str]
    """As the pod spec says (entrypoint + args)."""
    local_command: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    env_names: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    """Secrets it mounted or referred to."""
    exit_code: int | None = None
    message: str = ""
    output: str = ""
    deleted_while_running: bool = False

    def mount(self, path: str) -> Mount:
        return next(m for m in self.mounts if m.path == path)


class FakeKubelet(PollingKubelet):
    """Runs the mover pods of ``namespace`` on this machine (see the module docstring).

    Use as a context manager; the client should be its own (it is used from a thread).
    Errors of the kubelet itself (not of the pods) are re-raised when it stops.
    """

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        node: str | None = None,
        interval: float = 0.2,
        run_timeout: float = 300.0,
        entrypoint: tuple[str, ...] = (sys.executable, "-m", "reconciler"),
    ) -> None:
        super().__init__(
            client, namespace, node=node, interval=interval, join_timeout=run_timeout + 30
        )
        self.run_timeout = run_timeout
        self.entrypoint = entrypoint
        self.runs: list[PodRun] = []
        self._started: set[str] = set()
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-kubelet-"))

    # -- lifecycle ----------------------------------------------------------------------

    def _cleanup(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)

    # -- one pass over the namespace's mover pods -------------------------------------------

    def _sync(self) -> None:
        pods = self.client.list_objects("v1", "Pod", self.namespace, label_selector=MOVER_RUN_LABEL)
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp"):
                if pod["spec"].get("nodeName") == self.node:
                    self._confirm_deletion(name)
                continue
            if name in self._started or not self._fits(pod):
                continue
            if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
                continue
            try:
                run = self._prepare(pod)
            except NotReady:
                continue  # the volume manager waits too
            self._started.add(name)
            if self._bind(pod):
                self._execute(pod, run)

    def _fits(self, pod: Manifest) -> bool:
        bound = pod["spec"].get("nodeName")
        if bound:
            return bool(bound == self.node)
        wanted = (pod["spec"].get("nodeSelector") or {}).get(HOSTNAME_LABEL)
        return wanted in (None, self.node)

    # -- volumes, env, command ------------------------------------------------------------

    def _prepare(self, pod: Manifest) -> PodRun:
        spec = pod["spec"]
        container = spec["containers"][0]
        name = pod["metadata"]["name"]
        run = PodRun(
            name=name,
            node=self.node,
            node_selector=dict(spec.get("nodeSelector") or {}),
            labels=dict(pod["metadata"].get("labels") or {}),
            command=list(container.get("command") or IMAGE_ENTRYPOINT)
            + list(container.get("args") or []),
        )
        root = self._workdir / name
        volumes = {v["name"]: self._volume(v, root, run) for v in spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            local = volumes[mount["name"]]
            if mount.get("subPath"):
                local = local / mount["subPath"]
            run.mounts.append(
                Mount(mount["mountPath"], local, bool(mount.get("readOnly")), mount["name"])
            )
        message_path = container.get("terminationMessagePath") or "/dev/termination-log"
        message_file = root / "termination-log"
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_bytes(b"")
        run.mounts.append(Mount(message_path, message_file, False, "<termination-log>"))
        return run

    def _volume(self, volume: Manifest, root: Path, run: PodRun) -> Path:
        name = str(volume["name"])
        if "persistentVolumeClaim" in volume:
            return self._claim_dir(volume["persistentVolumeClaim"]["claimName"])
        if "secret" in volume:
            source = volume["secret"]
            data = self._secret_data(source["secretName"])
            run.secrets.append(source["secretName"])
            directory = root / "volumes" / name
            directory.mkdir(parents=True, exist_ok=True)
            mode = int(source.get("defaultMode", 0o644))
            for key, value in data.items():
                path = directory / key
                path.write_bytes(value)
                path.chmod(mode)
            return directory
        if "emptyDir" in volume:
            directory = root / "volumes" / name
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        raise NotImplementedError(f"fake kubelet: volume {name!r} of an unsupported type")

    def _claim_dir(self, claim_name: str) -> Path:
        claim = self.client.get("v1", "PersistentVolumeClaim", claim_name, self.namespace)
        if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
            raise NotReady(claim_name)
        volume = self.client.get("v1", "PersistentVolume", claim["spec"]["volumeName"])
        if volume is None:
            raise NotReady(claim_name)
        source = volume["spec"].get("hostPath") or volume["spec"].get("local") or {}
        path = Path(source.get("path", ""))
        if not source or not path.is_dir():
            raise NotImplementedError(f"fake kubelet: claim {claim_name} is not on this machine")
        return path

    def _secret_data(self, secret_name: str) -> dict[str, bytes]:
        secret = self.client.get("v1", "Secret", secret_name, self.namespace)
        if secret is None:
            raise NotReady(secret_name)
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def _env(self, container: Manifest, run: PodRun) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in container.get("env") or []:
            run.env_names.append(entry["name"])
            if "value" in entry:
                env[entry["name"]] = self._map(str(entry["value"]), run.mounts)
                continue
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                raise NotImplementedError(f"fake kubelet: env {entry['name']} source")
            if ref["name"] not in run.secrets:
                run.secrets.append(ref["name"])
            env[entry["name"]] = self._secret_data(ref["name"])[ref["key"]].decode()
        return env

    @staticmethod
    def _map(value: str, mounts: list[Mount]) -> str:
        """``value`` with a leading mount path replaced by its local directory."""
        for mount in sorted(mounts, key=lambda m: len(m.path), reverse=True):
            if value == mount.path:
                return str(mount.local)
            if value.startswith(mount.path.rstrip("/") + "/"):
                return str(mount.local) + value[len(mount.path.rstrip("/")) :]
        return value

    # -- running ------------------------------------------------------------------------

    def _execute(self, pod: Manifest, run: PodRun) -> None:
        container = pod["spec"]["containers"][0]
        self.runs.append(run)
        started = now()
        try:
            env = self._env(container, run)
        except NotReady as missing:  # a Secret went away after the mount: fail like a kubelet
            self._report(pod, run, started, 1, f"secret {missing} not found")
            return
        # a container gets its own environment, not the host's (no AWS_* from here)
        env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._workdir)})
        entry = list(container.get("command") or [])
        program = entry if entry else list(self.entrypoint)
        run.local_command = program + [
            self._map(arg, run.mounts) for arg in container.get("args") or []
        ]
        self._set_status(pod["metadata"]["name"], running_status(container, started))
        process = subprocess.Popen(  # the pod's own command, locally
            run.local_command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self._workdir,
        )
        output = self._wait(process, run)
        run.output = output.decode(errors="replace")
        run.exit_code = process.returncode
        if run.deleted_while_running:
            self._confirm_deletion(run.name)
            return
        message = self._message(container, run)
        self._report(pod, run, started, run.exit_code, message)

    def _wait(self, process: subprocess.Popen[bytes], run: PodRun) -> bytes:
        chunks: list[bytes] = []
        reader = threading.Thread(
            target=lambda: chunks.append(process.stdout.read() if process.stdout else b""),
            daemon=True,
        )
        reader.start()
        deadline = time.monotonic() + self.run_timeout
        while process.poll() is None:
            current = self.client.get("v1", "Pod", run.name, self.namespace)
            gone = current is None or current["metadata"].get("deletionTimestamp")
            if gone or time.monotonic() > deadline or self._stop.is_set():
                run.deleted_while_running = bool(gone)
                process.kill()
                break
            time.sleep(0.2)
        process.wait()
        reader.join(timeout=10)
        return b"".join(chunks)

    def _message(self, container: Manifest, run: PodRun) -> str:
        local = next(m.local for m in run.mounts if m.volume == "<termination-log>")
        message = local.read_bytes()[:_MESSAGE_LIMIT].decode(errors="replace")
        policy = container.get("terminationMessagePolicy") or "File"
        if not message and run.exit_code and policy == "FallbackToLogsOnError":
            lines = run.output.splitlines()[-_LOG_FALLBACK_LINES:]
            message = "\n".join(lines)[-_LOG_FALLBACK_BYTES:]
        return message

    # -- pods/status ----------------------------------------------------------------------

    def _report(self, pod: Manifest, run: PodRun, started: str, code: int, message: str) -> None:
        container = pod["spec"]["containers"][0]
        finished = now()
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": finished,
        }
        if message:
            terminated["message"] = message
        run.message = message
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "startTime": started,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "PodCompleted",
                    "lastTransitionTime": finished,
                }
            ],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"terminated": terminated},
                }
            ],
        }
        self._set_status(run.name, status)


@contextlib.contextmanager
def fake_kubelet(client: KubeClient, namespace: str, **kwargs: Any) -> Iterator[FakeKubelet]:
    with FakeKubelet(client, namespace, **kwargs) as kubelet:
        yield kubelet
