"""The five inventory kinds as pydantic models (field names camelCase in YAML).

Models are strict (no `"3"` for 3, no `"yes"` for true), forbid unknown fields and are
frozen. Rules spanning several fields (exactly one of, both flags set) live in
``_rules`` so that each can point at the precise field it is about.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel

from reconciler.inventory._declared_paths import resolve_declared_path
from reconciler.inventory._types import (
    BucketName,
    CpuQuantity,
    Cron,
    DeclaredPath,
    DnsLabel,
    DnsSubdomain,
    Duration,
    EnvVarName,
    HttpUrl,
    LabelKey,
    LabelValue,
    NonEmptyStr,
    Quantity,
    ResourcePattern,
)

API_VERSION: Final = "kubeferry.io/v1alpha1"


class _Model(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )


@dataclass(frozen=True)
class SourceLocation:
    """Where an object is declared: its file and the 1-based line/column of its document."""

    file: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ObjectMeta(_Model):
    name: DnsLabel
    """Unique among the objects of the same kind."""


class InventoryObject(_Model):
    """What every inventory document has: apiVersion, kind, metadata (and a spec)."""

    api_version: Literal["kubeferry.io/v1alpha1"]
    """Always kubeferry.io/v1alpha1."""
    kind: str
    metadata: ObjectMeta

    _source: SourceLocation = PrivateAttr(
        default_factory=lambda: SourceLocation(Path("<memory>"), 1, 1)
    )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ref(self) -> str:
        """``Kind/name``, as in messages."""
        return f"{self.kind}/{self.name}"

    @property
    def source(self) -> SourceLocation:
        return self._source

    @property
    def base_dir(self) -> Path:
        """The directory relative paths of this object are resolved against."""
        return self._source.file.absolute().parent

    @property
    def spec_digest(self) -> str:
        """sha256 (hex) of the normalized spec: changes exactly when the desired spec does."""
        return hashlib.sha256(canonical_json(self.normalized_spec()).encode()).hexdigest()

    def normalized_spec(self) -> dict[str, object]:
        """The spec as JSON data with defaults filled in and unset options left out."""
        spec: dict[str, object] = self.model_dump(mode="json", exclude_none=True)["spec"]
        return spec

    def _resolve(self, declared: str) -> Path:
        return resolve_declared_path(declared, self.base_dir)


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- Cluster ------------------------------------------------------------------------------


class Toleration(_Model):
    """A Kubernetes toleration for the mover pods (as in a pod spec)."""

    key: NonEmptyStr | None = None
    """Taint key; absent with operator Exists: tolerate every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Absent: every effect."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """NoExecute only: how long the pod stays bound after the taint appears."""


class ResourceAmounts(_Model):
    """CPU and memory of a container's requests or limits."""

    cpu: CpuQuantity | None = None
    """e.g. 500m or 2."""
    memory: Quantity | None = None
    """e.g. 512Mi or 2Gi."""


class MoverResources(_Model):
    """The mover container's resources, as in a pod spec. Given, they replace the defaults
    (requests cpu 100m, memory 256Mi; limits memory 1Gi) as a whole."""

    requests: ResourceAmounts | None = None
    limits: ResourceAmounts | None = None


class VolumeMoverSpec(_Model):
    """How kubeferry reads (backup, on a source) and writes (restore, on a destination)
    volume data on this cluster (docs/volume-data.md). The other fields apply to type job."""

    type: Literal["hostPath", "job"]
    """hostPath: PV directories read and written from the machine running kubeferry (the
    sandbox, a single-node cluster); job: one Kubernetes Job per PVC, in the cluster."""
    image: NonEmptyStr | None = None
    """Mover image; default: the kubeferry image of this version
    (ghcr.io/kubeferry/kubeferry:<version>)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Default: IfNotPresent."""
    timeout: Duration | None = None
    """How long one volume's Job may take, e.g. 30m or 2h; default 6h."""
    service_account_name: DnsSubdomain | None = None
    """ServiceAccount of the mover pods (e.g. for IRSA); default: the namespace's default."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Tolerations of the mover pods (to reach volumes on tainted nodes)."""
    resources: MoverResources | None = None
    """Requests and limits of the mover container (large volumes: more memory)."""


class ClusterSpec(_Model):
    kubeconfig: DeclaredPath | None = None
    """Kubeconfig file (~ and ${ENV} expanded, relative to this file). Default: $KUBECONFIG,
    else ~/.kube/config."""
    context: NonEmptyStr
    """The kubeconfig context to use."""
    role: Literal["controller", "worker"]
    """controller: hosts the control plane of application slices; worker: runs workloads."""
    protected: bool = False
    """Marks a production cluster: destructive operations need explicit confirmation."""
    volume_mover: VolumeMoverSpec | None = None
    """How volume data is read and written on this cluster; default: type hostPath."""


class Cluster(InventoryObject):
    """A Kubernetes cluster reachable through a kubeconfig context."""

    kind: Literal["Cluster"]
    spec: ClusterSpec

    @property
    def kubeconfig_path(self) -> Path | None:
        """The resolved kubeconfig file, or None for the standard resolution."""
        declared = self.spec.kubeconfig
        return None if declared is None else self._resolve(declared)


# --- ReplicationRepository ----------------------------------------------------------------


class FilesystemStorage(_Model):
    path: DeclaredPath
    """Repository directory (~ and ${ENV} expanded, relative to this file)."""


class S3Storage(_Model):
    bucket: BucketName
    prefix: str = ""
    """Key prefix inside the bucket."""
    endpoint: HttpUrl | None = None
    """S3 API endpoint (MinIO, Ceph, a local moto server); default: AWS."""
    region: NonEmptyStr | None = None
    force_path_style: bool = False
    """Address buckets as endpoint/bucket instead of bucket.endpoint (MinIO needs it)."""
    ca_bundle: DeclaredPath | None = None
    """PEM bundle to verify the endpoint's TLS certificate."""


class EnvCredentials(_Model):
    access_key_id_var: EnvVarName
    """Name of the environment variable holding the access key id."""
    secret_access_key_var: EnvVarName
    """Name of the environment variable holding the secret access key."""


class FileReference(_Model):
    path: DeclaredPath
    """A file holding the value (~ and ${ENV} expanded, relative to this file)."""


class SecretRef(_Model):
    """A Kubernetes Secret on one of the inventory's clusters."""

    cluster: DnsLabel
    namespace: DnsLabel
    name: DnsSubdomain


class CredentialsFrom(_Model):
    """Exactly one of env, file or secretRef. Never the credentials themselves."""

    env: EnvCredentials | None = None
    file: FileReference | None = None
    """An AWS shared-credentials style file."""
    secret_ref: SecretRef | None = None
    """A Secret with the keys accessKeyId and secretAccessKey."""


class EnvPassphrase(_Model):
    var: EnvVarName
    """Name of the environment variable holding the passphrase."""


class PassphraseFrom(_Model):
    """Exactly one of env, file or secretRef. Never the passphrase itself."""

    env: EnvPassphrase | None = None
    file: FileReference | None = None
    secret_ref: SecretRef | None = None
    """A Secret with the key passphrase."""


class Encryption(_Model):
    passphrase_from: PassphraseFrom


DEFAULT_MINIO_IMAGE: Final = "docker.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
"""The MinIO release a hosted repository runs unless hostedIn.image says otherwise (pinned:
a floating tag would change the server under a repository between two applies)."""


class HostedIn(_Model):
    """A MinIO that kubeferry deploys into a controller cluster (docs/minio.md)."""

    cluster: DnsLabel
    """A Cluster with role controller."""
    namespace: DnsLabel | None = None
    """Where the MinIO objects live; default: kubeferry-<repository name>."""
    size: Quantity = "10Gi"
    """Size of the MinIO data volume (PersistentVolumeClaim), a Kubernetes quantity."""
    storage_class_name: DnsSubdomain | None = None
    """StorageClass of the data volume; default: the cluster's default class."""
    bucket: BucketName | None = None
    """Bucket of the repository; default: the repository name."""
    image: NonEmptyStr = DEFAULT_MINIO_IMAGE
    """MinIO container image (a pinned release)."""
    endpoint: HttpUrl | None = None
    """URL kubeferry (and its in-cluster movers) use to reach MinIO, e.g. a NodePort or an
    Ingress; default: the Service's cluster DNS name, http://minio.<namespace>.svc.cluster.local:9000."""
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Type of the MinIO Service."""
    node_port: int | None = Field(default=None, ge=30000, le=32767)
    """Fixed node port of the Service (NodePort or LoadBalancer), so endpoint can name it."""
    ready_timeout: Duration = Field(default_factory=lambda: timedelta(minutes=5))
    """How long apply waits for the MinIO Deployment to become Available."""


class ReplicationRepositorySpec(_Model):
    """Exactly one of filesystem, s3 or hostedIn."""

    filesystem: FilesystemStorage | None = None
    s3: S3Storage | None = None
    hosted_in: HostedIn | None = None
    """A MinIO deployed and managed by kubeferry in a controller cluster."""
    credentials_from: CredentialsFrom | None = None
    """S3 credentials by reference; default: the standard AWS credential chain."""
    encryption: Encryption | None = None
    """Client-side encryption of the repository; the passphrase by reference."""


class ReplicationRepository(InventoryObject):
    """Where backups are stored: a directory, an S3 bucket or a MinIO kubeferry hosts."""

    kind: Literal["ReplicationRepository"]
    spec: ReplicationRepositorySpec

    @property
    def filesystem_path(self) -> Path | None:
        storage = self.spec.filesystem
        return None if storage is None else self._resolve(storage.path)

    @property
    def ca_bundle_path(self) -> Path | None:
        s3 = self.spec.s3
        return None if s3 is None or s3.ca_bundle is None else self._resolve(s3.ca_bundle)

    @property
    def credentials_file_path(self) -> Path | None:
        source = self.spec.credentials_from
        return None if source is None or source.file is None else self._resolve(source.file.path)

    @property
    def hosted_namespace(self) -> str | None:
        """hostedIn.namespace, defaulting to ``kubeferry-<name>`` (None: not hosted)."""
        hosted = self.spec.hosted_in
        return None if hosted is None else hosted.namespace or f"kubeferry-{self.name}"

    @property
    def hosted_bucket(self) -> str | None:
        """hostedIn.bucket, defaulting to the repository name (None: not hosted)."""
        hosted = self.spec.hosted_in
        return None if hosted is None else hosted.bucket or self.name

    @property
    def passphrase_file_path(self) -> Path | None:
        encryption = self.spec.encryption
        source = None if encryption is None else encryption.passphrase_from.file
        return None if source is None else self._resolve(source.path)


# --- ReplicationSlice ---------------------------------------------------------------------


class ReplicationSliceSpec(_Model):
    source_cluster: DnsLabel
    destination_cluster: DnsLabel
    """May equal sourceCluster: backup (and restore) within one cluster."""
    repository: DnsLabel
    """The ReplicationRepository between source and destination."""
    status_write_back: bool = False
    """Mirror each job's backup/restore runs (phase, progress) into the status of the matching
    KubeSlice ReplicationJobConfig on the inventory's controller cluster (docs/kubeslice.md)."""


class ReplicationSlice(InventoryObject):
    """A source cluster, a destination cluster and the repository between them."""

    kind: Literal["ReplicationSlice"]
    spec: ReplicationSliceSpec

    @property
    def is_backup(self) -> bool:
        return self.spec.source_cluster == self.spec.destination_cluster


# --- ReplicationJob -----------------------------------------------------------------------


class Retention(_Model):
    """At least one of keepLast, keepDaily, ttl; a backup is kept if any rule keeps it."""

    keep_last: int | None = Field(default=None, ge=1)
    """Keep the N most recent backups."""
    keep_daily: int | None = Field(default=None, ge=1)
    """Keep the last backup of each of the N most recent days."""
    ttl: Duration | None = None
    """Delete backups older than this, e.g. 720h or 30d."""


class LabelSelector(_Model):
    """Kubernetes-style selector: objects carrying all these labels."""

    match_labels: dict[LabelKey, LabelValue]


class Onboard(_Model):
    application_slice: DnsLabel
    """The ApplicationSlice the replicated namespace joins."""


class EnvUrl(_Model):
    var: EnvVarName
    """Name of the environment variable holding the URL."""


class UrlFrom(_Model):
    """Exactly one of env or file. Never the URL itself (it may carry a token)."""

    env: EnvUrl | None = None
    file: FileReference | None = None
    """A file holding the URL (surrounding whitespace ignored)."""


class Webhook(_Model):
    url_from: UrlFrom
    """Where the webhook URL comes from."""


class Notify(_Model):
    webhook: Webhook
    """POST a short JSON summary here when a DR drill of the job fails."""


class ReplicationJobSpec(_Model):
    replication_slice_name: DnsLabel
    namespace: DnsLabel
    """The one namespace replicated from the source cluster."""
    target_namespace: DnsLabel | None = None
    """Namespace name on the destination cluster; default: the same as namespace."""
    resources_to_include: list[ResourcePattern] = Field(default_factory=list)
    """Resources (plural, optionally .group; '*' wildcards) to include; empty: all."""
    resources_to_exclude: list[ResourcePattern] = Field(default_factory=list)
    label_selector: LabelSelector | None = None
    k8s_objects_only: bool = Field(default=False, alias="k8sObjectsOnly")
    """Only Kubernetes objects, no persistent volume data."""
    pv_data_only: bool = False
    """Only persistent volume data, no Kubernetes objects."""
    quiesce: bool = False
    """Scale the namespace's Deployments and StatefulSets to zero while its volume data is
    copied (crash-consistent data), then back to their replicas."""
    storage_class_mapping: dict[DnsSubdomain, DnsSubdomain] = Field(default_factory=dict)
    """Source storage class -> destination storage class."""
    existing_resource_policy: Literal["none", "update", "recreate"] = "none"
    """What to do with an object that already exists at the destination."""
    backup_frequency: Cron | None = None
    """When to back up (cron, 5 fields); absent: only on demand."""
    restore_frequency: Cron | None = None
    """When to restore at the destination (cron); absent: right after each backup."""
    retention: Retention | None = None
    drill_frequency: Cron | None = None
    """When `kubeferry reconcile` runs a DR drill of the job (cron); absent: only on demand."""
    notify: Notify | None = None
    """Who is told when a DR drill fails."""
    pre_check_flag: Literal["ignorePrechecks", "stopOnPrecheck"] = "stopOnPrecheck"
    """Whether a failed pre-check stops the job."""
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    """What happens to the destination namespace when the job is removed."""
    onboard: Onboard | None = None

    @model_serializer(mode="wrap")
    def _with_effective_target(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # normalized: an omitted targetNamespace and an explicit equal one digest the same
        data: dict[str, Any] = handler(self)
        data["targetNamespace"] = self.destination_namespace
        return data

    @property
    def destination_namespace(self) -> str:
        """targetNamespace, defaulting to namespace."""
        return self.target_namespace or self.namespace


class ReplicationJob(InventoryObject):
    """One namespace replicated (or backed up) through a ReplicationSlice."""

    kind: Literal["ReplicationJob"]
    spec: ReplicationJobSpec


# --- ApplicationSlice ---------------------------------------------------------------------


class ApplicationSliceSpec(_Model):
    controller_cluster: DnsLabel
    project: DnsLabel
    clusters: list[DnsLabel] = Field(min_length=1)
    """The worker clusters of the slice."""
    namespaces: list[DnsLabel] = Field(default_factory=list)
    """Namespaces in the slice; filled in by onboarding."""


class ApplicationSlice(InventoryObject):
    """A KubeSlice-style application slice that replicated namespaces can be onboarded to."""

    kind: Literal["ApplicationSlice"]
    spec: ApplicationSliceSpec


KIND_MODELS: Final[dict[str, type[InventoryObject]]] = {
    "Cluster": Cluster,
    "ReplicationRepository": ReplicationRepository,
    "ReplicationSlice": ReplicationSlice,
    "ReplicationJob": ReplicationJob,
    "ApplicationSlice": ApplicationSlice,
}
"""Every kind, in the order objects are listed and digested."""
