"""Inventory YAML for tests, built from typed pieces instead of pasted documents.

Each function returns one document as YAML text, leaf mappings in flow style as a person
writes them (``metadata: {name: east}``); ``inventory(*documents)`` joins them with ``---``::

    inventory(
        cluster("east"),
        filesystem_repository("vault", passphrase_var="KF_TEST_PASSPHRASE"),
        replication_slice("keep", "east", "east", "vault"),
        job("shop", "keep", "shop", retention={"keepLast": 1}),
    )

Extra spec fields are passed as keyword arguments spelled as in the inventory (camelCase).
Tests of the loader itself (tests/inventory) keep literal YAML: their line numbers matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "kubeferry.io/v1alpha1"


def document(kind: str, name: str, spec: Mapping[str, Any]) -> str:
    """One kubeferry document of ``kind`` named ``name``."""
    manifest = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": dict(spec),
    }
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=1000)


def cluster(name: str, *, role: str = "worker", context: str | None = None, **spec: Any) -> str:
    """A Cluster whose kubeconfig context defaults to its name."""
    return document("Cluster", name, {"context": context or name, "role": role, **spec})


def filesystem_repository(
    name: str,
    path: str = "./repository",
    *,
    passphrase_var: str | None = None,
    passphrase_file: str | None = None,
) -> str:
    """A filesystem ReplicationRepository, encrypted when a passphrase source is given."""
    spec: dict[str, Any] = {"filesystem": {"path": path}}
    if passphrase_var is not None:
        spec["encryption"] = {"passphraseFrom": {"env": {"var": passphrase_var}}}
    if passphrase_file is not None:
        spec["encryption"] = {"passphraseFrom": {"file": {"path": passphrase_file}}}
    return document("ReplicationRepository", name, spec)


def s3_repository(name: str, *, access_key_var: str, secret_key_var: str, **s3: Any) -> str:
    """An S3 ReplicationRepository (``s3`` = bucket, prefix, endpoint, ...) with
    credentials from environment variables."""
    spec = {
        "s3": s3,
        "credentialsFrom": {
            "env": {"accessKeyIdVar": access_key_var, "secretAccessKeyVar": secret_key_var}
        },
    }
    return document("ReplicationRepository", name, spec)


def replication_slice(
    name: str, source: str, destination: str, repository: str, **spec: Any
) -> str:
    """A ReplicationSlice ``source`` -> ``destination`` through ``repository``."""
    return document(
        "ReplicationSlice",
        name,
        {
            "sourceCluster": source,
            "destinationCluster": destination,
            "repository": repository,
            **spec,
        },
    )


def job(name: str, slice_name: str, namespace: str, **spec: Any) -> str:
    """A ReplicationJob of ``namespace`` on ``slice_name``."""
    return document(
        "ReplicationJob",
        name,
        {"replicationSliceName": slice_name, "namespace": namespace, **spec},
    )


def inventory(*documents: str) -> str:
    """The documents as one multi-document YAML text."""
    return "---\n".join(documents)


def write_inventory(directory: Path, *documents: str) -> Path:
    """``directory/kubeferry.yaml`` holding ``documents``; returns its path."""
    path = directory / "kubeferry.yaml"
    path.write_text(inventory(*documents))
    return path
