"""`kubeferry import kubeslice`: the mapping (pure) and the command on the sandbox controller."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from reconciler.errors import KubeferryError
from reconciler.kubeslice import ProjectObjects, build_inventory, parse_storage_class_mapping
from tests.fixtures.kubeslice_crds import create_when_served, install_controller_crds

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

API = "controller.kubeslice.io/v1alpha1"


def _object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


PROJECT = ProjectObjects(
    project="acme",
    replication_slices=[
        _object(
            "ReplicationSlice",
            "w1-to-w2",
            {
                "sourceCluster": "worker-1",
                "destinationCluster": "worker-2",
                "minIOBucketName": "kubeslice-backups",
                "replicationType": "namespace",
            },
        )
    ],
    job_configs=[
        _object(
            "ReplicationJobConfig",
            "web",
            {
                "replicationSliceName": "w1-to-w2",
                "namespace": "web",
                "resourcesToExclude": ["secrets"],
                "k8sObjectsOnly": True,
                "storageClassMapping": "standard:fast, slow=cold",
                "backupFrequency": "0 2 * * *",
                "preCheckFlag": "prechecksCompleted",
                "rawSpec": {"backup": {}},
                "restoreControl": "manual",
            },
        ),
        _object(
            "ReplicationJobConfig",
            "db",
            {"replicationSliceName": "w1-to-w2", "namespace": "db", "storageClassMapping": "?"},
        ),
    ],
    slice_configs=[
        _object(
            "SliceConfig",
            "blue",
            {
                "clusters": ["worker-1", "worker-2"],
                "namespaceIsolationProfile": {
                    "applicationNamespaces": [{"namespace": "web", "clusters": ["worker-1"]}]
                },
            },
        )
    ],
)


def test_storage_class_mapping_forms() -> None:
    assert parse_storage_class_mapping("a:b,c=d") == {"a": "b", "c": "d"}
    assert parse_storage_class_mapping(" a : b ; c=d ,") == {"a": "b", "c": "d"}
    assert parse_storage_class_mapping("a") is None
    assert parse_storage_class_mapping("a:b:c") is None


def test_mapping_and_report() -> None:
    documents, notes = build_inventory("controller", "ctx", [PROJECT])
    by_ref = {(d["kind"], d["metadata"]["name"]): d["spec"] for d in documents}
    assert by_ref[("Cluster", "controller")] == {"context": "ctx", "role": "controller"}
    assert by_ref[("Cluster", "worker-1")] == {"context": "worker-1", "role": "worker"}
    assert by_ref[("ReplicationRepository", "w1-to-w2")]["s3"]["bucket"] == "kubeslice-backups"
    assert by_ref[("ReplicationJob", "web")] == {
        "replicationSliceName": "w1-to-w2",
        "namespace": "web",
        "resourcesToExclude": ["secrets"],
        "k8sObjectsOnly": True,
        "backupFrequency": "0 2 * * *",
        "storageClassMapping": {"standard": "fast", "slow": "cold"},
    }
    assert "storageClassMapping" not in by_ref[("ReplicationJob", "db")]
    assert by_ref[("ApplicationSlice", "blue")] == {
        "controllerCluster": "controller",
        "project": "acme",
        "clusters": ["worker-1", "worker-2"],
        "namespaces": ["web"],
    }
    for expected in (
        "ReplicationSlice/w1-to-w2: spec.replicationType not mapped",
        "ReplicationJob/web: spec.rawSpec not mapped",
        "ReplicationJob/web: spec.restoreControl not mapped",
        "ReplicationJob/web: spec.preCheckFlag 'prechecksCompleted' is a state; "
        "stopOnPrecheck used",
        "ReplicationJob/db: spec.storageClassMapping '?' not understood",
        "Cluster/worker-2: context 'worker-2' assumed; check it",
    ):
        assert expected in notes
    assert any(
        n.startswith("ReplicationRepository/w1-to-w2: bucket kubeslice-backups") for n in notes
    )


@pytest.mark.sandbox
def test_import_from_the_sandbox_controller_validates(sandbox: SandboxInfo, tmp_path: Path) -> None:
    project = f"im{uuid.uuid4().hex[:8]}"
    namespace = f"kubeslice-{project}"
    with sandbox.client("controller") as client:
        install_controller_crds(client)  # left installed (shared, idempotent)
        client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        try:
            for document in (
                *PROJECT.replication_slices,
                *PROJECT.job_configs,
                *PROJECT.slice_configs,
            ):
                manifest = {
                    **document,
                    "metadata": {**document["metadata"], "namespace": namespace},
                }
                create_when_served(client, manifest)
            out = tmp_path / "imported.yaml"
            env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "import",
                    "kubeslice",
                    "--context",
                    "controller",
                    "--project",
                    project,
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            assert run.returncode == 0, run.stderr
            assert "kubeferry: import: ReplicationJob/web: spec.rawSpec not mapped" in run.stderr
            text = out.read_text()
            assert "#   ReplicationJob/web: spec.rawSpec not mapped" in text
            kinds = [d["kind"] for d in yaml.safe_load_all(text)]
            assert kinds.count("ReplicationJob") == 2
            assert "ApplicationSlice" in kinds
            valid = subprocess.run(
                [sys.executable, "-m", "reconciler", "validate", "-f", str(out)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            assert valid.returncode == 0, valid.stdout + valid.stderr
        finally:
            client.delete("v1", "Namespace", namespace)


def test_bad_kubeconfig_is_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "import",
            "kubeslice",
            "--context",
            "x",
            "--kubeconfig",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        f"kubeferry: error: --kubeconfig {tmp_path / 'missing'}: no such file"
    ]


class _NoNamespaces:
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        return None


def test_missing_project_namespace_is_an_error() -> None:
    from reconciler.kubeslice import read_projects

    with pytest.raises(KubeferryError, match="--project acme: namespace kubeslice-acme not found"):
        read_projects(_NoNamespaces(), "acme")  # type: ignore[arg-type]
