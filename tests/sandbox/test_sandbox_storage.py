"""Workers provision host-path volumes through their default StorageClass."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.kube import Manifest
from reconciler.sandbox import HOSTPATH_VOLUME_ROOT, STORAGE_CLASS, SandboxInfo

pytestmark = pytest.mark.sandbox

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def test_every_worker_has_the_default_hostpath_storage_class(sandbox: SandboxInfo) -> None:
    for worker in sandbox.workers:
        with sandbox.client(worker.name) as client:
            storage_class = client.get("storage.k8s.io/v1", "StorageClass", STORAGE_CLASS)
            assert storage_class is not None, worker.name
            assert storage_class["provisioner"] == "kubernetes.io/host-path"
            assert storage_class["volumeBindingMode"] == "Immediate"
            assert storage_class["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true"
    with sandbox.client(sandbox.controller.name) as controller:
        assert controller.get("storage.k8s.io/v1", "StorageClass", STORAGE_CLASS) is None


def _bound(claim: Manifest) -> bool:
    return bool(claim.get("status", {}).get("phase") == "Bound")


def test_pvc_binds_to_a_hostpath_volume_whose_directory_exists(
    sandbox: SandboxInfo, make_namespace: Callable[[str], str]
) -> None:
    namespace = make_namespace("worker-1")
    with sandbox.client("worker-1") as client:
        client.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": namespace},
                # no storageClassName: the default class must be picked
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Mi"}},
                },
            }
        )
        claim = client.wait_for(
            "v1", "PersistentVolumeClaim", "data", namespace, condition=_bound, timeout=90
        )
        assert claim["spec"]["storageClassName"] == STORAGE_CLASS
        volume = client.get("v1", "PersistentVolume", claim["spec"]["volumeName"])
        assert volume is not None
        directory = Path(volume["spec"]["hostPath"]["path"])
        assert directory.parent == HOSTPATH_VOLUME_ROOT
        assert directory.is_dir()

        # reclaim policy Delete: the provisioner removes the directory with the volume
        client.delete("v1", "PersistentVolumeClaim", "data", namespace)
        client.wait_for_deletion("v1", "PersistentVolume", volume["metadata"]["name"], timeout=90)
        deadline = time.monotonic() + 30
        while directory.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not directory.exists()
