"""Valid inventories: the examples, typed access, defaults, paths and digests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.inventory import (
    Cluster,
    Inventory,
    InventoryError,
    InventoryIssue,
    ReplicationJob,
    load_inventory,
)

CaseWriter = Callable[[str], Path]
IssueLister = Callable[[Path], list[str]]


def test_demo_example(examples: Path) -> None:
    path = examples / "demo" / "kubeferry.yaml"
    inventory = load_inventory(path)

    assert sorted(inventory.clusters) == ["controller", "worker-1", "worker-2"]
    assert inventory.clusters["controller"].spec.role == "controller"
    assert inventory.clusters["worker-2"].spec.protected is True
    assert inventory.clusters["worker-1"].spec.protected is False
    # no kubeconfig in the file: the standard resolution ($KUBECONFIG) applies
    assert all(cluster.kubeconfig_path is None for cluster in inventory.clusters.values())
    assert {c.spec.context for c in inventory.clusters.values()} == set(inventory.clusters)

    repository = inventory.repositories["local"]
    expected_repository = path.parent.absolute() / ".kubeferry" / "repository"
    assert repository.filesystem_path == expected_repository

    replicate = inventory.jobs["demo-app"]
    replication_slice = inventory.slice_of(replicate)
    assert inventory.source_cluster_of(replication_slice).name == "worker-1"
    assert inventory.destination_cluster_of(replication_slice).name == "worker-2"
    assert replicate.spec.destination_namespace == "demo-app"
    assert not replication_slice.is_backup

    backup = inventory.jobs["demo-backup"]
    assert inventory.slice_of(backup).is_backup
    assert inventory.slice_of(backup).spec.destination_cluster == "worker-1"
    assert backup.spec.namespace == "demo-backup"
    assert backup.spec.backup_frequency == "*/15 * * * *"
    assert backup.spec.retention is not None
    assert backup.spec.retention.keep_last == 5
    assert backup.spec.retention.ttl == timedelta(days=30)
    assert inventory.repository_of(inventory.slice_of(backup)) is repository
    assert inventory.summary() == "3 clusters, 1 repository, 2 slices, 2 jobs, 0 application slices"
    assert inventory.path == path
    assert inventory.files == (path,)


def test_s3_example(examples: Path) -> None:
    path = examples / "s3-minio.yaml"
    inventory = load_inventory(path)
    repository = inventory.repositories["minio"]
    s3 = repository.spec.s3
    assert s3 is not None
    assert s3.force_path_style is True
    assert s3.endpoint == "https://minio.example.internal:9000"
    assert repository.ca_bundle_path == examples.absolute() / "certs" / "minio-ca.pem"
    credentials = repository.spec.credentials_from
    assert credentials is not None
    assert credentials.env is not None
    assert credentials.env.access_key_id_var == "MINIO_ACCESS_KEY_ID"
    assert credentials.file is None
    assert credentials.secret_ref is None
    assert inventory.clusters["production"].kubeconfig_path == (
        Path.home() / ".kube" / "production.yaml"
    )
    job = inventory.jobs["shop"]
    assert job.spec.destination_namespace == "shop-copy"
    assert job.spec.label_selector is not None
    assert job.spec.label_selector.match_labels == {"app.kubernetes.io/part-of": "shop"}
    assert job.spec.storage_class_mapping == {"premium-ssd": "standard"}
    assert job.spec.existing_resource_policy == "recreate"
    assert job.spec.deletion_policy == "Delete"


def test_multi_slice_example(examples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/operator")
    inventory = load_inventory(examples / "multi-slice.yaml")
    assert inventory.clusters["hub"].kubeconfig_path == Path("/home/operator/.kube/config")
    assert len(inventory.slices) == 3
    assert inventory.application_slices["payments"].spec.clusters == ["west", "dr"]
    assert inventory.jobs["payments-west"].spec.onboard is not None
    assert inventory.jobs["payments-dr"].spec.pv_data_only is True
    assert inventory.jobs["payments-nightly"].spec.k8s_objects_only is True
    assert inventory.jobs["payments-nightly"].spec.retention is not None
    assert inventory.jobs["payments-nightly"].spec.retention.ttl == timedelta(weeks=2)
    assert [obj.ref for obj in inventory.objects()][:2] == ["Cluster/dr", "Cluster/east"]


def test_job_defaults(inventory_dir: CaseWriter) -> None:
    inventory = load_inventory(
        inventory_dir(
            """\
            apiVersion: kubeferry.io/v1alpha1
            kind: ReplicationJob
            metadata: {name: web}
            spec: {replicationSliceName: s12, namespace: web}
            """
        )
    )
    spec = inventory.jobs["web"].spec
    assert spec.target_namespace is None
    assert spec.destination_namespace == "web"
    assert spec.existing_resource_policy == "none"
    assert spec.pre_check_flag == "stopOnPrecheck"
    assert spec.deletion_policy == "Retain"
    assert spec.resources_to_include == []
    assert spec.backup_frequency is None
    assert (spec.k8s_objects_only, spec.pv_data_only) == (False, False)
    assert inventory.slices["s12"].spec.status_write_back is False


def test_volume_mover_defaults_and_job_settings(inventory_dir: CaseWriter) -> None:
    """No volumeMover: None (the host-path mover), and the Cluster's digest is what it was
    before the field existed; type job takes image, timeout (a Duration) and placement."""
    inventory = load_inventory(
        inventory_dir(
            """\
            apiVersion: kubeferry.io/v1alpha1
            kind: Cluster
            metadata: {name: east}
            spec:
              context: east
              role: worker
              volumeMover:
                type: job
                image: registry.example/kubeferry:1.2
                imagePullPolicy: Always
                timeout: 1h30m
                serviceAccountName: kubeferry-mover
                tolerations: [{key: storage, operator: Exists, effect: NoSchedule}]
            ---
            apiVersion: kubeferry.io/v1alpha1
            kind: Cluster
            metadata: {name: west}
            spec: {context: west, role: worker, volumeMover: {type: hostPath}}
            """
        )
    )
    worker_1 = inventory.clusters["worker-1"]
    assert worker_1.spec.volume_mover is None
    assert "volumeMover" not in worker_1.normalized_spec()
    assert worker_1.normalized_spec() == {
        "context": "worker-1",
        "role": "worker",
        "protected": False,
    }
    west = inventory.clusters["west"].spec.volume_mover
    assert west is not None
    assert (west.type, west.image, west.timeout, west.tolerations) == ("hostPath", None, None, [])
    east = inventory.clusters["east"].spec.volume_mover
    assert east is not None
    assert east.type == "job"
    assert east.image == "registry.example/kubeferry:1.2"
    assert east.image_pull_policy == "Always"
    assert east.timeout == timedelta(hours=1, minutes=30)
    assert east.service_account_name == "kubeferry-mover"
    assert [t.model_dump(by_alias=True, exclude_none=True) for t in east.tolerations] == [
        {"key": "storage", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert inventory.clusters["east"].normalized_spec()["volumeMover"]["timeout"] == "90m"


def test_objects_know_their_source(inventory_dir: CaseWriter) -> None:
    directory = inventory_dir(
        """\
        # a comment first
        apiVersion: kubeferry.io/v1alpha1
        kind: ReplicationJob
        metadata: {name: web}
        spec: {replicationSliceName: s12, namespace: web}
        """
    )
    job = load_inventory(directory).jobs["web"]
    assert (job.source.file, job.source.line, job.source.column) == (directory / "case.yaml", 2, 1)
    assert job.base_dir == directory.absolute()


def test_relative_paths_resolve_against_the_declaring_file(tmp_path: Path) -> None:
    nested = tmp_path / "inventory" / "clusters"
    nested.mkdir(parents=True)
    (tmp_path / "inventory" / "main.yaml").write_text(
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {name: a}\n"
        "spec: {kubeconfig: ../kubeconfigs/a.yaml, context: a, role: worker}\n"
    )
    (nested / "b.yaml").write_text(
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {name: b}\n"
        "spec: {kubeconfig: b.yaml, context: b, role: worker}\n"
    )
    top = load_inventory(tmp_path / "inventory").clusters["a"]
    assert top.kubeconfig_path == tmp_path / "kubeconfigs" / "a.yaml"
    below = load_inventory(nested / "b.yaml").clusters["b"]
    assert below.kubeconfig_path == nested / "b.yaml"


def test_environment_variables_expand_in_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEFERRY_TEST_DIR", "/srv/configs")
    file = tmp_path / "inventory.yaml"
    file.write_text(
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {name: a}\n"
        "spec: {kubeconfig: '${KUBEFERRY_TEST_DIR}/a.yaml', context: a, role: worker}\n"
    )
    cluster = load_inventory(file).clusters["a"]
    assert cluster.kubeconfig_path == Path("/srv/configs/a.yaml")
    monkeypatch.delenv("KUBEFERRY_TEST_DIR")
    with pytest.raises(KubeferryError, match="KUBEFERRY_TEST_DIR is not set"):
        _ = cluster.kubeconfig_path


def test_directory_takes_yaml_and_yml_sorted_and_skips_the_rest(tmp_path: Path) -> None:
    cluster = "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {{name: {}}}\n"
    cluster += "spec: {{context: x, role: worker}}\n"
    (tmp_path / "b.yml").write_text(cluster.format("b"))
    (tmp_path / "a.yaml").write_text(cluster.format("a"))
    (tmp_path / "notes.txt").write_text("not: [yaml")
    (tmp_path / ".hidden.yaml").write_text("not: [yaml")
    (tmp_path / "sub.yaml").mkdir()
    inventory = load_inventory(tmp_path)
    assert inventory.files == (tmp_path / "a.yaml", tmp_path / "b.yml")
    assert sorted(inventory.clusters) == ["a", "b"]


def test_empty_documents_and_yaml_features_are_accepted(tmp_path: Path) -> None:
    file = tmp_path / "inventory.yaml"
    file.write_text(
        "---\n# nothing here\n---\n"
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {name: &name b}\n"
        "spec:\n  <<: {context: a, role: worker}\n  context: *name\n"
        "---\n"
    )
    inventory = load_inventory(file)
    assert inventory.clusters["b"].spec.context == "b"
    assert inventory.clusters["b"].spec.role == "worker"


# --- digests ------------------------------------------------------------------------------

JOB = """\
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationJob
metadata: {name: web}
spec:
  replicationSliceName: s12
  namespace: web
  retention: {ttl: 720h}
"""


def _inventory(tmp_path: Path, name: str, *texts: str) -> Inventory:
    directory = tmp_path / name
    directory.mkdir()
    for index, text in enumerate(texts):
        (directory / f"{index:02}.yaml").write_text(text)
    return load_inventory(directory)


def test_digest_ignores_layout_order_spelling_and_defaults(tmp_path: Path, base: str) -> None:
    reference = _inventory(tmp_path, "reference", base, JOB)
    documents = base.split("---\n")
    respelled = (
        JOB.replace("720h", "30d")  # the same duration
        .replace("namespace: web\n", "namespace: web\n  targetNamespace: web\n")
        .replace("spec:\n", "spec:\n  existingResourcePolicy: none  # the default\n")
    )
    reshuffled = _inventory(
        tmp_path, "reshuffled", respelled, "---\n".join(reversed(documents)), "# empty\n"
    )
    assert reshuffled.digest() == reference.digest()
    assert reshuffled.jobs["web"].spec_digest == reference.jobs["web"].spec_digest
    assert len(reference.digest()) == 64
    assert reference.digest() == _inventory(tmp_path, "again", base, JOB).digest()


def test_digest_changes_with_the_desired_state(tmp_path: Path, base: str) -> None:
    reference = _inventory(tmp_path, "reference", base, JOB)
    changed = _inventory(tmp_path, "changed", base, JOB.replace("720h", "721h"))
    assert changed.digest() != reference.digest()
    assert changed.jobs["web"].spec_digest != reference.jobs["web"].spec_digest
    # other objects keep their spec digest
    for name, cluster in reference.clusters.items():
        assert changed.clusters[name].spec_digest == cluster.spec_digest
    renamed = _inventory(tmp_path, "renamed", base, JOB.replace("name: web", "name: www"))
    assert renamed.digest() != reference.digest()
    assert renamed.jobs["www"].spec_digest == reference.jobs["web"].spec_digest


def test_normalized_spec_uses_yaml_names_and_canonical_values(tmp_path: Path, base: str) -> None:
    job = _inventory(tmp_path, "inventory", base, JOB).jobs["web"]
    spec = job.normalized_spec()
    assert spec["targetNamespace"] == "web"
    assert spec["retention"] == {"ttl": "30d"}
    assert "labelSelector" not in spec


# --- errors -------------------------------------------------------------------------------


def test_error_summary_is_one_line_with_a_count(inventory_dir: CaseWriter) -> None:
    directory = inventory_dir(
        """\
        apiVersion: kubeferry.io/v1alpha1
        kind: ReplicationJob
        metadata: {name: web}
        spec: {replicationSliceName: nope, namespace: Web, retention: {keepLast: 0}}
        """
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(directory)
    error = caught.value
    assert isinstance(error, KubeferryError)
    assert len(error.issues) == 2
    assert "\n" not in str(error)
    assert str(error) == f"{error.issues[0]} (1 more; run 'kubeferry validate' to list all)"
    assert all(isinstance(issue, InventoryIssue) for issue in error.issues)
    assert error.issues[0].file == directory / "case.yaml"
    assert (error.issues[0].line, error.issues[0].column) == (4, 47)
    assert error.issues[0].field == "ReplicationJob/web.spec.namespace"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "{path}: inventory not found (give -f PATH or set KUBEFERRY_INVENTORY)"),
        ("empty-directory", "{path}: no *.yaml or *.yml files in this directory"),
        ("comments-only", "{path}: no inventory documents found"),
        ("invalid-utf8", "{path}:2:7: not valid UTF-8 text"),
        ("control-character", "{path}:1:11: YAML syntax error: unacceptable character #x0007"),
        ("deep-nesting", "{path}: YAML nested too deeply"),
    ],
)
def test_file_level_problems(tmp_path: Path, setup: str, expected: str) -> None:
    path = tmp_path / "inventory.yaml"
    if setup == "empty-directory":
        path = tmp_path / "inventory"
        path.mkdir()
        (path / "README.md").write_text("# not yaml\n")
    elif setup == "comments-only":
        path.write_text("# just a comment\n---\n")
    elif setup == "invalid-utf8":
        path.write_bytes(b"kind: Cluster\nname: \xff\xfe\n")
    elif setup == "control-character":
        path.write_text("kind: Clus\x07ter\n")
    elif setup == "deep-nesting":
        path.write_text("spec: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert [str(issue) for issue in caught.value.issues] == [expected.format(path=path)]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("kind: Cluster\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{path}: cannot read: Permission denied"
    ]


def test_alias_bomb_stays_cheap(tmp_path: Path) -> None:
    # 9 levels of 9 aliases: 387 million leaves if expanded, a few hundred nodes if shared
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\n" + "\n".join(lines) + "\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert len(caught.value.issues) < 20


def test_recursive_alias_is_an_issue(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {name: a}\n"
        "spec: &loop {context: a, role: worker, self: *loop}\n"
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{path}:4:7: Cluster/a.spec.self: recursive YAML alias is not supported"
    ]


def test_copied_examples_validate_anywhere(tmp_path: Path, examples: Path) -> None:
    # relative paths follow the file, not the working directory
    copy = tmp_path / "demo"
    shutil.copytree(examples / "demo", copy)
    inventory = load_inventory(copy / "kubeferry.yaml")
    assert inventory.repositories["local"].filesystem_path == copy / ".kubeferry" / "repository"
    assert isinstance(inventory.clusters["worker-1"], Cluster)
    assert isinstance(inventory.jobs["demo-app"], ReplicationJob)
