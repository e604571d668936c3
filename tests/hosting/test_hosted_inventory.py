"""`hostedIn` in the inventory: exact one-line errors at file:line:column and field."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.inventory import InventoryError, load_inventory

CLUSTERS = """\
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {name: controller}
spec: {context: controller, role: controller}
---
apiVersion: kubeferry.io/v1alpha1
kind: Cluster
metadata: {name: worker-1}
spec: {context: worker-1, role: worker}
"""

HEADER = """\
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationRepository
metadata:
  name: store
spec:
"""
"""The repository's spec continues at line 6, column 3."""


def _write(tmp_path: Path, spec: str) -> Path:
    directory = tmp_path / "inventory"
    directory.mkdir(exist_ok=True)
    (directory / "00-clusters.yaml").write_text(CLUSTERS)
    (directory / "case.yaml").write_text(HEADER + textwrap.indent(textwrap.dedent(spec), "  "))
    return directory


def _issues(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    return [str(issue).replace(f"{path}/", "") for issue in caught.value.issues]


def test_minimal_hosted_repository_loads_with_defaults(tmp_path: Path) -> None:
    inventory = load_inventory(_write(tmp_path, "hostedIn: {cluster: controller}\n"))
    repository = inventory.repositories["store"]
    hosted = repository.spec.hosted_in
    assert hosted is not None
    assert (hosted.size, hosted.service_type, hosted.ready_timeout) == (
        "10Gi",
        "ClusterIP",
        timedelta(minutes=5),
    )
    assert repository.hosted_namespace == "kubeferry-store"
    assert repository.hosted_bucket == "store"
    assert repository.normalized_spec()["hostedIn"]["readyTimeout"] == "5m"


def test_hosted_repository_may_be_encrypted(tmp_path: Path) -> None:
    spec = "hostedIn: {cluster: controller}\nencryption: {passphraseFrom: {env: {var: PASS}}}\n"
    assert load_inventory(_write(tmp_path, spec)).repositories["store"].spec.encryption


CASES = [
    (
        "with-s3",
        "s3: {bucket: backups}\nhostedIn: {cluster: controller}\n",
        [
            "case.yaml:7:3: ReplicationRepository/store.spec.hostedIn: expected exactly one of "
            "filesystem, s3 or hostedIn, got s3 and hostedIn"
        ],
    ),
    (
        "with-filesystem",
        "hostedIn: {cluster: controller}\nfilesystem: {path: /srv}\n",
        [
            "case.yaml:6:3: ReplicationRepository/store.spec.hostedIn: expected exactly one of "
            "filesystem, s3 or hostedIn, got filesystem and hostedIn"
        ],
    ),
    (
        "with-credentials",
        "hostedIn: {cluster: controller}\n"
        "credentialsFrom: {env: {accessKeyIdVar: AK, secretAccessKeyVar: SK}}\n",
        [
            "case.yaml:7:3: ReplicationRepository/store.spec.credentialsFrom: credentialsFrom does "
            "not apply to a hostedIn repository (kubeferry creates its credentials Secret)"
        ],
    ),
    (
        "worker-cluster",
        "hostedIn: {cluster: worker-1}\n",
        [
            "case.yaml:6:23: ReplicationRepository/store.spec.hostedIn.cluster: Cluster "
            "'worker-1' has role worker; hostedIn needs a Cluster with role controller"
        ],
    ),
    (
        "unknown-cluster",
        "hostedIn: {cluster: elsewhere}\n",
        [
            "case.yaml:6:23: ReplicationRepository/store.spec.hostedIn.cluster: unknown Cluster "
            "'elsewhere' (declared: controller, worker-1)"
        ],
    ),
    (
        "bad-quantity",
        "hostedIn: {cluster: controller, size: 10GB}\n",
        [
            "case.yaml:6:41: ReplicationRepository/store.spec.hostedIn.size: expected a positive "
            "Kubernetes quantity such as '10Gi' or '500Mi' (suffixes Ki, Mi, Gi, Ti, Pi, Ei, k, "
            "M, G, T, P, E), got '10GB'"
        ],
    ),
    (
        "zero-quantity",
        "hostedIn: {cluster: controller, size: 0Gi}\n",
        [
            "case.yaml:6:41: ReplicationRepository/store.spec.hostedIn.size: expected a positive "
            "Kubernetes quantity such as '10Gi' or '500Mi' (suffixes Ki, Mi, Gi, Ti, Pi, Ei, k, "
            "M, G, T, P, E), got '0Gi'"
        ],
    ),
    (
        "number-quantity",
        "hostedIn: {cluster: controller, size: 10}\n",
        [
            "case.yaml:6:41: ReplicationRepository/store.spec.hostedIn.size: expected a string, "
            "got an integer"
        ],
    ),
    (
        "bad-timeout",
        "hostedIn: {cluster: controller, readyTimeout: soon}\n",
        [
            "case.yaml:6:49: ReplicationRepository/store.spec.hostedIn.readyTimeout: expected a "
            "positive duration such as '720h', '30d' or '1d12h' (units s, m, h, d, w; at most "
            "100 years)"
        ],
    ),
    (
        "node-port-without-node-port-service",
        "hostedIn: {cluster: controller, nodePort: 31000}\n",
        [
            "case.yaml:6:45: ReplicationRepository/store.spec.hostedIn.nodePort: nodePort needs "
            "serviceType NodePort or LoadBalancer"
        ],
    ),
    (
        "endpoint-with-credentials",
        "hostedIn: {cluster: controller, endpoint: 'http://user:pw@minio:9000'}\n",
        [
            "case.yaml:6:45: ReplicationRepository/store.spec.hostedIn.endpoint: credentials in "
            "the endpoint URL are not allowed; use credentialsFrom"
        ],
    ),
    (
        "inline-secret-key",
        "hostedIn: {cluster: controller, secretKey: hunter2hunter2}\n",
        [
            "case.yaml:6:35: ReplicationRepository/store.spec.hostedIn.secretKey: inline secret "
            "'secretKey' is not allowed (value not shown); reference it with credentialsFrom "
            "(env, file or secretRef)"
        ],
    ),
    (
        "unknown-field",
        "hostedIn: {cluster: controller, replicas: 3}\n",
        [
            "case.yaml:6:35: ReplicationRepository/store.spec.hostedIn.replicas: unknown field "
            "'replicas'; allowed: cluster, namespace, size, storageClassName, bucket, image, "
            "endpoint, serviceType, nodePort, readyTimeout"
        ],
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_hosted_in(tmp_path: Path, spec: str, expected: list[str]) -> None:
    assert _issues(_write(tmp_path, spec)) == expected


def test_short_repository_name_needs_an_explicit_bucket(tmp_path: Path) -> None:
    directory = _write(tmp_path, "hostedIn: {cluster: controller}\n")
    (directory / "case.yaml").write_text(
        (directory / "case.yaml").read_text().replace("name: store", "name: s3")
    )
    assert _issues(directory) == [
        "case.yaml:6:3: ReplicationRepository/s3.spec.hostedIn: the default bucket 's3' (the "
        "repository name) is not a valid S3 bucket name (3-63 characters); set hostedIn.bucket"
    ]
    (directory / "case.yaml").write_text(
        (directory / "case.yaml").read_text().replace("controller}", "controller, bucket: s3-b}")
    )
    assert load_inventory(directory).repositories["s3"].hosted_bucket == "s3-b"


def test_long_repository_name_needs_an_explicit_namespace(tmp_path: Path) -> None:
    long_name = "r" * 60
    directory = _write(tmp_path, "hostedIn: {cluster: controller, bucket: store}\n")
    (directory / "case.yaml").write_text(
        (directory / "case.yaml").read_text().replace("name: store", f"name: {long_name}")
    )
    assert _issues(directory) == [
        f"case.yaml:6:3: ReplicationRepository/{long_name}.spec.hostedIn: the default namespace "
        f"'kubeferry-{long_name}' is longer than 63 characters; set hostedIn.namespace"
    ]


def test_validate_prints_one_line_per_error_and_exits_1(tmp_path: Path) -> None:
    directory = _write(tmp_path, "hostedIn: {cluster: worker-1, size: lots}\n")
    result = CliRunner().invoke(app, ["validate", "-f", str(directory)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "spec.hostedIn.size: expected a positive Kubernetes quantity such "
        "as '10Gi' or '500Mi' (suffixes Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, "
        "P, E), got 'lots'"
    )
    assert "Traceback" not in result.output


def test_validate_accepts_a_hosted_repository(tmp_path: Path) -> None:
    directory = _write(tmp_path, "hostedIn: {cluster: controller, size: 1.5Ti}\n")
    result = CliRunner().invoke(app, ["validate", "-f", str(directory)])
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == "inventory OK: 2 clusters, 1 repository, 0 slices, 0 jobs, 0 application slices\n"
    )


def test_the_example_validates() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hosted-minio.yaml"
    repository = load_inventory(example).repositories["dr-store"]
    assert repository.spec.hosted_in is not None
    assert repository.spec.hosted_in.node_port == 31900
