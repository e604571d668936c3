"""The MinIO of a hosted repository as Kubernetes manifests: pure functions, no API calls.

Every object carries ``kubeferry.io/manifest-hash``, the sha256 of the manifest as built here
(for the Secret: without its data), so a refresh tells "as kubeferry made it" from "to update"
without comparing against the many fields the API server fills in.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from dataclasses import dataclass
from typing import Any, Final

from reconciler.inventory import ReplicationRepository
from reconciler.kube import Manifest

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_REPOSITORY: Final = "kubeferry.io/repository"
HASH_ANNOTATION: Final = "kubeferry.io/manifest-hash"

DEPLOYMENT: Final = "minio"
SERVICE: Final = "minio"
CLAIM: Final = "minio-data"
SECRET: Final = "minio-credentials"  # noqa: S105 - a name
PORT: Final = 9000

ACCESS_KEY_ID: Final = "accessKeyId"
"""Secret keys: the same as a credentialsFrom.secretRef Secret's."""
SECRET_ACCESS_KEY: Final = "secretAccessKey"  # noqa: S105 - a key name

ACCESS_KEY_LENGTH: Final = 20
SECRET_KEY_LENGTH: Final = 40
_ACCESS_ALPHABET: Final = string.ascii_uppercase + string.digits
_SECRET_ALPHABET: Final = string.ascii_letters + string.digits

# uid/gid of the MinIO process: not root, and the volume group-owned by it (fsGroup)
RUN_AS: Final = 1000


@dataclass(frozen=True)
class MinioSettings:
    """A hosted repository's hostedIn with every default resolved."""

    repository: str
    cluster: str
    namespace: str
    size: str
    storage_class_name: str | None
    bucket: str
    image: str
    endpoint: str
    """The URL kubeferry and its movers use (hostedIn.endpoint, else the Service's DNS name)."""
    service_type: str
    node_port: int | None
    ready_timeout: float
    """Seconds."""

    @classmethod
    def of(cls, repository: ReplicationRepository) -> MinioSettings:
        hosted = repository.spec.hosted_in
        if hosted is None:
            raise ValueError(f"{repository.ref} is not a hostedIn repository")
        namespace = repository.hosted_namespace or ""
        return cls(
            repository=repository.name,
            cluster=hosted.cluster,
            namespace=namespace,
            size=hosted.size,
            storage_class_name=hosted.storage_class_name,
            bucket=repository.hosted_bucket or repository.name,
            image=hosted.image,
            endpoint=(hosted.endpoint or service_url(namespace)).rstrip("/"),
            service_type=hosted.service_type,
            node_port=hosted.node_port,
            ready_timeout=hosted.ready_timeout.total_seconds(),
        )

    @property
    def location(self) -> str:
        """``controller/kubeferry-x``: where the MinIO objects live."""
        return f"{self.cluster}/{self.namespace}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_NAME: "minio",
            LABEL_MANAGED_BY: "kubeferry",
            LABEL_REPOSITORY: self.repository,
        }

    @property
    def selector(self) -> dict[str, str]:
        return {LABEL_NAME: "minio", LABEL_REPOSITORY: self.repository}


def service_url(namespace: str) -> str:
    """The Service's cluster DNS name: reachable from pods of the same cluster."""
    return f"http://{SERVICE}.{namespace}.svc.cluster.local:{PORT}"


@dataclass(frozen=True, repr=False)
class MinioCredentials:
    """MinIO's root credentials; ``repr()``/``str()`` never show them."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return "MinioCredentials(access_key_id='***', secret_access_key='***')"

    __str__ = __repr__


def generate_credentials() -> MinioCredentials:
    """Fresh random root credentials from the OS CSPRNG (never MinIO's minioadmin default).

    20 characters of [A-Z0-9] (~103 bits) as the access key, AWS-style; 40 of [A-Za-z0-9]
    (~238 bits) as the secret key.
    """
    return MinioCredentials(
        "".join(secrets.choice(_ACCESS_ALPHABET) for _ in range(ACCESS_KEY_LENGTH)),
        "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_KEY_LENGTH)),
    )


# -- manifests ------------------------------------------------------------------------------


def manifest_hash(manifest: Manifest) -> str:
    """sha256 of the manifest without its hash annotation and without Secret data."""
    content = {k: v for k, v in manifest.items() if k not in ("data", "stringData")}
    metadata = dict(content.get("metadata") or {})
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if k != HASH_ANNOTATION
    }
    metadata["annotations"] = annotations
    content["metadata"] = metadata
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stamped(manifest: Manifest) -> Manifest:
    digest = manifest_hash(manifest)
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return manifest


def _metadata(settings: MinioSettings, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": settings.labels}
    if namespaced:
        metadata["namespace"] = settings.namespace
    return metadata


def namespace_manifest(settings: MinioSettings) -> Manifest:
    metadata = _metadata(settings, settings.namespace, namespaced=False)
    # Pod Security admission (Kubernetes >= 1.23): the MinIO pod meets "restricted"
    metadata["labels"] = {
        **metadata["labels"],
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    return _stamped({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})


def secret_manifest(settings: MinioSettings, credentials: MinioCredentials) -> Manifest:
    return _stamped(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(settings, SECRET),
            "type": "Opaque",
            "stringData": {
                ACCESS_KEY_ID: credentials.access_key_id,
                SECRET_ACCESS_KEY: credentials.secret_access_key,
            },
        }
    )


def secret_shape(settings: MinioSettings) -> Manifest:
    """The Secret as compared and updated: everything but its data (never regenerated)."""
    return secret_manifest(settings, MinioCredentials("", "")) | {"stringData": {}}


def claim_manifest(settings: MinioSettings) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],  # one MinIO pod: Deployment strategy Recreate
        "resources": {"requests": {"storage": settings.size}},
    }
    if settings.storage_class_name is not None:
        spec["storageClassName"] = settings.storage_class_name
    return _stamped(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _metadata(settings, CLAIM),
            "spec": spec,
        }
    )


def _secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def _probe(path: str, *, delay: int, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT, "scheme": "HTTP"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def deployment_manifest(settings: MinioSettings) -> Manifest:
    container = {
        "name": "minio",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        # the image's entrypoint prefixes "minio"; TLS material would go under /tmp/certs
        # (writable emptyDir: the root filesystem is read-only)
        "args": ["server", "--address", f":{PORT}", "--certs-dir", "/tmp/certs", "/data"],
        "env": [
            _secret_env("MINIO_ROOT_USER", ACCESS_KEY_ID),
            _secret_env("MINIO_ROOT_PASSWORD", SECRET_ACCESS_KEY),
            {"name": "MINIO_BROWSER", "value": "off"},  # no web console: the S3 API only
        ],
        "ports": [{"name": "s3", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/minio/health/ready", delay=5, period=10),
        "livenessProbe": _probe("/minio/health/live", delay=30, period=20),
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod = {
        "metadata": {"labels": settings.labels},
        "spec": {
            "automountServiceAccountToken": False,  # MinIO never calls the Kubernetes API
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }
    return _stamped(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(settings, DEPLOYMENT),
            "spec": {
                "replicas": 1,
                # the ReadWriteOnce volume: the old pod must stop before the new one mounts it
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": settings.selector},
                "template": pod,
            },
        }
    )


def service_manifest(settings: MinioSettings) -> Manifest:
    port: dict[str, Any] = {"name": "s3", "port": PORT, "targetPort": PORT, "protocol": "TCP"}
    if settings.node_port is not None:
        port["nodePort"] = settings.node_port
    return _stamped(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(settings, SERVICE),
            "spec": {
                "type": settings.service_type,
                "selector": settings.selector,
                "ports": [port],
            },
        }
    )


def desired_objects(settings: MinioSettings) -> list[Manifest]:
    """Every object in creation order; the Secret without data (see ``secret_shape``)."""
    return [
        namespace_manifest(settings),
        secret_shape(settings),
        claim_manifest(settings),
        service_manifest(settings),
        deployment_manifest(settings),
    ]


def address(manifest: Manifest) -> str:
    """``Deployment/minio``, as plans and events name objects."""
    return f"{manifest['kind']}/{manifest['metadata']['name']}"
