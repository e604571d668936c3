"""`kubeferry sandbox status|kubeconfig|up` through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sandbox import SandboxInfo


def _kubeferry(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEFERRY_SANDBOX_DIR": str(directory)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.sandbox
def test_status_lists_ready_clusters_and_the_s3_endpoint(sandbox: SandboxInfo) -> None:
    result = _kubeferry("status", directory=sandbox.directory)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for cluster in sandbox.clusters:
        row = next(line for line in lines if line.startswith(cluster.name + " "))
        assert cluster.api_url in row
        assert row.split()[-1] == "yes"
    assert f"S3 endpoint: {sandbox.s3.endpoint_url} (up)" in result.stdout
    assert sandbox.s3.credentials().secret_access_key not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.sandbox
def test_kubeconfig_prints_the_private_kubeconfig_path(sandbox: SandboxInfo) -> None:
    result = _kubeferry("kubeconfig", directory=sandbox.directory)
    assert result.returncode == 0
    path = Path(result.stdout.strip())
    assert path == sandbox.kubeconfig
    assert path.stat().st_mode & 0o777 == 0o600


def test_status_without_a_sandbox_fails_with_one_line(tmp_path: Path) -> None:
    result = _kubeferry("status", directory=tmp_path / "none")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kubeferry: error: no sandbox in {tmp_path / 'none'} "
        "(start one with `kubeferry sandbox up`)"
    ]


def test_kubeconfig_without_a_sandbox_fails_with_one_line(tmp_path: Path) -> None:
    result = _kubeferry("kubeconfig", directory=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "kubeferry sandbox up" in result.stderr


def test_up_rejects_clusters_and_names_together(tmp_path: Path) -> None:
    result = _kubeferry("up", "--clusters", "2", "--name", "a", directory=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "kubeferry: error: use either --clusters or --name, not both"


def test_up_rejects_bad_cluster_names_before_starting_anything(tmp_path: Path) -> None:
    result = _kubeferry("up", "--name", "Bad_Name", directory=tmp_path / "box")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "invalid cluster name 'Bad_Name'" in result.stderr
    assert not (tmp_path / "box" / "state.json").exists()


def test_down_without_a_sandbox_is_a_no_op(tmp_path: Path) -> None:
    result = _kubeferry("down", directory=tmp_path)
    assert result.returncode == 0
    assert "nothing to stop" in result.stdout
