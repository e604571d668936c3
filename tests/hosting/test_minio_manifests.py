"""The hosted MinIO's manifests (pure): security choices, defaults, the credentials they carry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.hosting import (
    ACCESS_KEY_ID,
    HASH_ANNOTATION,
    SECRET,
    SECRET_ACCESS_KEY,
    MinioCredentials,
    MinioSettings,
    claim_manifest,
    deployment_manifest,
    desired_objects,
    generate_credentials,
    manifest_hash,
    namespace_manifest,
    secret_manifest,
    service_manifest,
)
from reconciler.inventory import DEFAULT_MINIO_IMAGE, ReplicationRepository

LABELS = {
    "app.kubernetes.io/name": "minio",
    "app.kubernetes.io/managed-by": "kubeferry",
    "kubeferry.io/repository": "backups",
}


def _repository(**hosted: Any) -> ReplicationRepository:
    return ReplicationRepository.model_validate(
        {
            "apiVersion": "kubeferry.io/v1alpha1",
            "kind": "ReplicationRepository",
            "metadata": {"name": "backups"},
            "spec": {"hostedIn": {"cluster": "controller", **hosted}},
        }
    )


def _settings(**hosted: Any) -> MinioSettings:
    return MinioSettings.of(_repository(**hosted))


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


# -- settings and defaults ----------------------------------------------------------------------


def test_defaults_resolve_from_the_repository_name() -> None:
    settings = _settings()
    assert settings.cluster == "controller"
    assert settings.namespace == "kubeferry-backups"
    assert settings.size == "10Gi"
    assert settings.storage_class_name is None
    assert settings.bucket == "backups"
    assert settings.image == DEFAULT_MINIO_IMAGE
    assert re.fullmatch(
        r"docker\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", DEFAULT_MINIO_IMAGE
    )
    assert settings.endpoint == "http://minio.kubeferry-backups.svc.cluster.local:9000"
    assert settings.service_type == "ClusterIP"
    assert settings.ready_timeout == 300
    assert settings.location == "controller/kubeferry-backups"


def test_declared_values_win() -> None:
    settings = _settings(
        namespace="storage",
        size="64Mi",
        storageClassName="fast-ssd",
        bucket="dr-store",
        image="registry.local/minio:pinned",
        endpoint="https://minio.example.com/",
        serviceType="NodePort",
        nodePort=31900,
        readyTimeout="90s",
    )
    assert (settings.namespace, settings.size, settings.storage_class_name) == (
        "storage",
        "64Mi",
        "fast-ssd",
    )
    assert (settings.bucket, settings.image) == ("dr-store", "registry.local/minio:pinned")
    assert settings.endpoint == "https://minio.example.com"  # no trailing slash
    assert (settings.service_type, settings.node_port, settings.ready_timeout) == (
        "NodePort",
        31900,
        90,
    )


# -- credentials ----------------------------------------------------------------------------


def test_generated_credentials_are_random_long_and_never_minioadmin() -> None:
    seen = [generate_credentials() for _ in range(20)]
    for credentials in seen:
        assert len(credentials.access_key_id) >= 20
        assert len(credentials.secret_access_key) >= 40
        assert re.fullmatch(r"[A-Z0-9]+", credentials.access_key_id)
        assert re.fullmatch(r"[A-Za-z0-9]+", credentials.secret_access_key)
        assert "minioadmin" not in (credentials.access_key_id + credentials.secret_access_key)
    assert len({c.access_key_id for c in seen}) == len(seen)
    assert len({c.secret_access_key for c in seen}) == len(seen)


def test_two_generations_give_different_secrets() -> None:
    settings = _settings()
    first = secret_manifest(settings, generate_credentials())
    second = secret_manifest(settings, generate_credentials())
    assert first["stringData"][ACCESS_KEY_ID] != second["stringData"][ACCESS_KEY_ID]
    assert first["stringData"][SECRET_ACCESS_KEY] != second["stringData"][SECRET_ACCESS_KEY]
    # the data is not part of what a refresh compares: both are "as kubeferry made it"
    assert first["metadata"]["annotations"] == second["metadata"]["annotations"]


def test_credentials_never_show_in_repr_or_str() -> None:
    credentials = generate_credentials()
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert credentials.access_key_id not in text
        assert credentials.secret_access_key not in text


def test_the_secret_holds_exactly_the_two_keys() -> None:
    credentials = MinioCredentials("A" * 20, "b" * 40)
    secret = secret_manifest(_settings(), credentials)
    assert secret["metadata"]["name"] == SECRET
    assert secret["metadata"]["namespace"] == "kubeferry-backups"
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {ACCESS_KEY_ID: "A" * 20, SECRET_ACCESS_KEY: "b" * 40}
    assert secret["metadata"]["labels"] == LABELS


def test_no_minioadmin_anywhere_in_the_manifests() -> None:
    settings = _settings()
    text = json.dumps(
        [*desired_objects(settings), secret_manifest(settings, generate_credentials())]
    )
    assert "minioadmin" not in text.lower()
    # no credential value except in the Secret: the Deployment only references it
    assert "MINIO_ROOT_USER" in text
    deployment = json.dumps(deployment_manifest(settings))
    assert '"value"' not in deployment.replace('"value": "off"', "")


# -- objects --------------------------------------------------------------------------------


def test_every_object_is_labelled_and_stamped() -> None:
    settings = _settings()
    objects = desired_objects(settings)
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "Secret",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
    ]
    for manifest in objects:
        labels = manifest["metadata"]["labels"]
        assert {k: labels[k] for k in LABELS} == LABELS, manifest["kind"]
        digest = manifest["metadata"]["annotations"][HASH_ANNOTATION]
        assert digest == manifest_hash(manifest)
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "kubeferry-backups"


def test_the_hash_follows_the_desired_state() -> None:
    small, large = claim_manifest(_settings(size="1Gi")), claim_manifest(_settings(size="2Gi"))
    assert manifest_hash(small) != manifest_hash(large)
    assert manifest_hash(small) == manifest_hash(claim_manifest(_settings(size="1Gi")))


def test_namespace_enforces_the_restricted_pod_security_profile() -> None:
    labels = namespace_manifest(_settings(namespace="object-store"))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(
    ("declared", "expected_class"), [({}, None), ({"storageClassName": "ssd"}, "ssd")]
)
def test_claim(declared: dict[str, str], expected_class: str | None) -> None:
    claim = claim_manifest(_settings(size="25Gi", **declared))
    assert claim["metadata"]["name"] == "minio-data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "25Gi"}}
    assert claim["spec"].get("storageClassName") == expected_class


def test_deployment_runs_one_minio_from_the_secret() -> None:
    deployment = deployment_manifest(_settings())
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    template_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= template_labels.items()
    container = _container(deployment)
    assert container["image"] == DEFAULT_MINIO_IMAGE
    assert container["args"][0] == "server"
    assert container["args"][-1] == "/data"
    env = {e["name"]: e for e in container["env"]}
    assert env["MINIO_ROOT_USER"]["valueFrom"] == {
        "secretKeyRef": {"name": SECRET, "key": ACCESS_KEY_ID}
    }
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": SECRET, "key": SECRET_ACCESS_KEY}
    }
    assert container["ports"] == [{"name": "s3", "containerPort": 9000, "protocol": "TCP"}]
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert (ready["path"], ready["port"]) == ("/minio/health/ready", 9000)
    assert (live["path"], live["port"]) == ("/minio/health/live", 9000)
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"] == {"claimName": "minio-data"}


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    """What Pod Security admission's "restricted" level checks (Kubernetes docs)."""
    pod = deployment_manifest(_settings())["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = {**pod["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["fsGroup"] == security["runAsGroup"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    allowed = {"persistentVolumeClaim", "emptyDir", "secret", "configMap", "projected"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    assert all("hostPort" not in port for port in container["ports"])
    assert pod["automountServiceAccountToken"] is False


def test_service() -> None:
    service = service_manifest(_settings())
    assert service["metadata"]["name"] == "minio"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "s3", "port": 9000, "targetPort": 9000, "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"]
        == deployment_manifest(_settings())["spec"]["selector"]["matchLabels"]
    )
    node_port = service_manifest(_settings(serviceType="NodePort", nodePort=31000))
    assert node_port["spec"]["type"] == "NodePort"
    assert node_port["spec"]["ports"][0]["nodePort"] == 31000


def test_docs_name_the_pinned_image() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "minio.md"
    assert DEFAULT_MINIO_IMAGE in docs.read_text()
