"""The inventory: the desired state, declared as Kubernetes-style YAML documents.

``load_inventory(path)`` reads one multi-document file or a directory of ``*.yaml`` /
``*.yml`` files and returns a typed, cross-checked ``Inventory``, or raises
``InventoryError`` with every issue located at ``file:line:column``. Kinds (all
``apiVersion: kubeferry.io/v1alpha1``): Cluster, ReplicationRepository,
ReplicationSlice, ReplicationJob, ApplicationSlice.

Choices worth knowing:

- ``ReplicationJob.spec.labelSelector`` is Kubernetes-style: ``{matchLabels: {key: value}}``.
- ``backupFrequency`` absent: backups only on demand. ``targetNamespace`` absent: same
  as ``namespace``. ``retention.ttl`` takes ``30d``, ``720h``, ``1d12h`` (s, m, h, d, w).
- Paths (kubeconfig, filesystem path, credential and passphrase files, caBundle) expand
  ``~`` and ``${NAME}`` and are relative to the directory of the declaring file; the
  object's ``*_path`` properties return them resolved.
- ``ReplicationRepository.spec.hostedIn``: a MinIO kubeferry deploys in a controller
  cluster (docs/minio.md); its credentials live in a Secret kubeferry generates.
- Secrets are never inline: S3 credentials via ``credentialsFrom`` and the encryption
  passphrase via ``encryption.passphraseFrom``, each one of ``env``, ``file``, ``secretRef``.
"""

from reconciler.inventory._declared_paths import resolve_declared_path
from reconciler.inventory._inventory import Inventory
from reconciler.inventory._issues import InventoryError, InventoryIssue
from reconciler.inventory._loader import load_inventory
from reconciler.inventory._models import (
    API_VERSION,
    DEFAULT_MINIO_IMAGE,
    KIND_MODELS,
    ApplicationSlice,
    ApplicationSliceSpec,
    Cluster,
    ClusterSpec,
    CredentialsFrom,
    Encryption,
    EnvCredentials,
    EnvPassphrase,
    FileReference,
    FilesystemStorage,
    HostedIn,
    InventoryObject,
    LabelSelector,
    ObjectMeta,
    Onboard,
    PassphraseFrom,
    ReplicationJob,
    ReplicationJobSpec,
    ReplicationRepository,
    ReplicationRepositorySpec,
    ReplicationSlice,
    ReplicationSliceSpec,
    Retention,
    S3Storage,
    SecretRef,
    SourceLocation,
    Toleration,
    VolumeMoverSpec,
)
from reconciler.inventory._schema import json_schema
from reconciler.inventory._types import quantity_bytes

__all__ = [
    "API_VERSION",
    "DEFAULT_MINIO_IMAGE",
    "KIND_MODELS",
    "ApplicationSlice",
    "ApplicationSliceSpec",
    "Cluster",
    "ClusterSpec",
    "CredentialsFrom",
    "Encryption",
    "EnvCredentials",
    "EnvPassphrase",
    "FileReference",
    "FilesystemStorage",
    "HostedIn",
    "Inventory",
    "InventoryError",
    "InventoryIssue",
    "InventoryObject",
    "LabelSelector",
    "ObjectMeta",
    "Onboard",
    "PassphraseFrom",
    "ReplicationJob",
    "ReplicationJobSpec",
    "ReplicationRepository",
    "ReplicationRepositorySpec",
    "ReplicationSlice",
    "ReplicationSliceSpec",
    "Retention",
    "S3Storage",
    "SecretRef",
    "SourceLocation",
    "Toleration",
    "VolumeMoverSpec",
    "json_schema",
    "load_inventory",
    "quantity_bytes",
    "resolve_declared_path",
]
