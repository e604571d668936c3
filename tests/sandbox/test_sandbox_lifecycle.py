"""`up` is idempotent and repairs what died; `down` stops exactly the recorded processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.kube import KubeClient
from reconciler.sandbox import ProcessRecord, Sandbox, SandboxInfo, is_running


def _recorded_processes(directory: Path) -> dict[str, ProcessRecord]:
    state = json.loads((directory / "state.json").read_text())
    slots = [state["etcd"]["process"], state["s3"]["process"]]
    for cluster in state["clusters"]:
        slots += [cluster["apiserver"], cluster["controller_manager"]]
    records = [ProcessRecord.model_validate(slot) for slot in slots if slot is not None]
    return {record.name: record for record in records}


def _run_cli(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEFERRY_SANDBOX_DIR": str(directory)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.sandbox
def test_up_twice_is_harmless(sandbox: SandboxInfo) -> None:
    before = _recorded_processes(sandbox.directory)
    result = Sandbox(sandbox.directory).up(sandbox.cluster_names)
    assert result.action == "unchanged"
    assert result.started == ()
    after = _recorded_processes(sandbox.directory)
    assert after == before
    assert len(after) == 2 + 2 * len(sandbox.cluster_names)
    assert all(is_running(record) for record in after.values())


@pytest.mark.sandbox
def test_up_with_other_clusters_while_running_is_refused(sandbox: SandboxInfo) -> None:
    with pytest.raises(KubeferryError, match="already running") as refused:
        Sandbox(sandbox.directory).up(["other"])
    assert "kubeferry sandbox down" in str(refused.value)
    assert "\n" not in str(refused.value)


def _provision_volume(client: KubeClient) -> Path:
    """A bound PVC in namespace default; returns its host-path volume's directory."""
    client.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        }
    )
    claim = client.wait_for(
        "v1", "PersistentVolumeClaim", "data", "default",
        condition=lambda c: c.get("status", {}).get("phase") == "Bound", timeout=90,
    )  # fmt: skip
    volume = client.get("v1", "PersistentVolume", claim["spec"]["volumeName"])
    assert volume is not None
    return Path(volume["spec"]["hostPath"]["path"])


@pytest.fixture
def small_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A second, separate two-cluster sandbox; always torn down, even if the test fails."""
    box = Sandbox(tmp_path / "small")
    try:
        yield box
    finally:
        box.down()


@pytest.mark.sandbox
def test_restart_repairs_what_died_and_down_leaves_nothing_running(small_sandbox: Sandbox) -> None:
    first = small_sandbox.up(["hub", "edge"])
    assert first.action == "started"
    assert first.info.cluster_names == ("hub", "edge")
    records = _recorded_processes(small_sandbox.directory)
    assert len(records) == 6
    assert all(is_running(record) for record in records.values())
    with first.info.client("edge") as edge:  # custom names work like the defaults
        assert edge.get("storage.k8s.io/v1", "StorageClass", "hostpath") is not None
        volume_dir = _provision_volume(edge)
    assert volume_dir.is_dir()

    # `kubeferry sandbox up` on the running sandbox: reports, changes nothing
    again = _run_cli("up", directory=small_sandbox.directory)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert "export KUBECONFIG=$(kubeferry sandbox kubeconfig)" in again.stdout
    assert first.info.s3.credentials().secret_access_key not in again.stdout + again.stderr
    assert _recorded_processes(small_sandbox.directory) == records

    # a dead controller-manager: status says so, `up` restarts just that one
    victim = records["edge/kube-controller-manager"]
    os.kill(victim.pid, signal.SIGKILL)
    status = _run_cli("status", directory=small_sandbox.directory)
    assert status.returncode == 1
    assert "edge: kube-controller-manager is not running" in status.stdout
    second = small_sandbox.up()
    assert second.action == "restarted"
    assert second.started == ("edge/kube-controller-manager",)
    repaired = _recorded_processes(small_sandbox.directory)
    assert repaired["edge/kube-controller-manager"] != victim
    assert {k: v for k, v in repaired.items() if k != victim.name} == {
        k: v for k, v in records.items() if k != victim.name
    }
    assert _run_cli("status", directory=small_sandbox.directory).returncode == 0

    result = small_sandbox.down()
    assert sorted(result.stopped) == sorted(repaired)
    assert result.removed_volume_dirs == (volume_dir,)
    assert not volume_dir.exists()  # down also removes the host-path volumes' directories
    assert not any(is_running(record) for record in repaired.values())
    for record in repaired.values():
        assert not Path(f"/proc/{record.pid}").exists() or not is_running(record)
    assert not (small_sandbox.directory / "state.json").exists()
    assert not (small_sandbox.directory / "etcd").exists()
    assert (small_sandbox.directory / "logs" / "etcd.log").exists()  # logs stay
    assert small_sandbox.status().exists is False
    assert small_sandbox.down().stopped == ()  # a second down is a no-op


def _fake_state(pid: int, start_time: int) -> dict[str, object]:
    process = {"name": "etcd", "pid": pid, "start_time": start_time}
    return {
        "version": 1,
        "kubernetes_version": "1.20.2",
        "etcd": {"client_port": 1, "peer_port": 2, "process": process},
        "s3": {"port": 3, "bucket": "kubeferry", "process": None},
        "clusters": [],
    }


def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])


def test_down_never_kills_a_reused_pid(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # the state file records this PID, but with another start time: a reused PID
        (tmp_path / "state.json").write_text(
            json.dumps(_fake_state(stranger.pid, _start_time(stranger.pid) + 1))
        )
        assert Sandbox(tmp_path).down().stopped == ()
        assert stranger.poll() is None  # still alive

        # with the right start time it is ours, and down stops it
        (tmp_path / "state.json").write_text(
            json.dumps(_fake_state(stranger.pid, _start_time(stranger.pid)))
        )
        assert Sandbox(tmp_path).down().stopped == ("etcd",)
        assert stranger.wait(timeout=10) == -signal.SIGTERM
    finally:
        if stranger.poll() is None:
            stranger.kill()
            stranger.wait()


@pytest.mark.sandbox
def test_shared_use_stops_only_what_it_started_when_the_last_user_leaves(
    small_sandbox: Sandbox,
) -> None:
    # started by `up` (as the CLI does): shared users leave it running
    small_sandbox.up(["solo"])
    small_sandbox.keep_running()
    with small_sandbox.shared() as info:
        assert info.cluster_names == ("solo",)
    assert small_sandbox.status().running
    small_sandbox.down()

    # started by a shared user: stopped when the last of them leaves, not before
    with small_sandbox.shared(["solo"]) as outer:
        records = _recorded_processes(outer.directory)
        with small_sandbox.shared(["solo"]) as inner:
            assert inner == outer
        assert all(is_running(record) for record in records.values())
    assert not any(is_running(record) for record in records.values())
    assert small_sandbox.status().exists is False
