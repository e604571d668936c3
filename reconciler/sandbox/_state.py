"""The sandbox's state file (JSON): ports, service CIDRs and the processes we started."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from reconciler.errors import KubeferryError
from reconciler.sandbox._processes import ProcessRecord

STATE_VERSION = 1
Role = Literal["controller", "worker"]


class EtcdState(BaseModel):
    client_port: int
    peer_port: int
    process: ProcessRecord | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


class S3State(BaseModel):
    port: int
    bucket: str
    process: ProcessRecord | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ClusterState(BaseModel):
    name: str
    role: Role
    port: int
    service_cidr: str
    apiserver: ProcessRecord | None = None
    controller_manager: ProcessRecord | None = None

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class SandboxState(BaseModel):
    version: int = STATE_VERSION
    kubernetes_version: str
    etcd: EtcdState
    s3: S3State
    clusters: list[ClusterState]

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return tuple(cluster.name for cluster in self.clusters)

    def processes(self) -> list[ProcessRecord | None]:
        """Every process slot, in stop order: controller-managers, apiservers, etcd, S3."""
        return [
            *(cluster.controller_manager for cluster in self.clusters),
            *(cluster.apiserver for cluster in self.clusters),
            self.etcd.process,
            self.s3.process,
        ]

    def ports(self) -> list[int]:
        return [
            self.etcd.client_port,
            self.etcd.peer_port,
            self.s3.port,
            *(cluster.port for cluster in self.clusters),
        ]


def load_state(path: Path) -> SandboxState | None:
    if not path.exists():
        return None
    try:
        return SandboxState.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as error:
        problem = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
        raise KubeferryError(
            f"the sandbox state file {path} is unreadable: {problem}",
            hint="stop leftover processes by hand (see logs/), then delete the file",
        ) from error


def save_state(path: Path, state: SandboxState) -> None:
    """Write atomically (temp file + rename), readable by the owner only."""
    scratch = path.with_name(f".{path.name}.tmp")
    payload = json.dumps(state.model_dump(mode="json"), indent=2) + "\n"
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        output.write(payload)
    scratch.replace(path)


@contextmanager
def sandbox_lock(lock_file: Path) -> Iterator[None]:
    """One `up`/`down` at a time per sandbox directory (other callers wait)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
