"""The Job mover: its Job/Secret manifests, and the in-pod `kubeferry mover` code path run locally."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.errors import KubeferryError
from reconciler.repository import (
    FilesystemBackend,
    Repository,
    RepositoryError,
    S3Credentials,
    ScryptParams,
    _crypto,
)
from reconciler.volumes import TreeProgress
from reconciler.volumes._jobmover import (
    CONFIG_MOUNT,
    DEFAULT_IMAGE,
    LABEL_JOB,
    LABEL_SNAPSHOT,
    JobMover,
    MoverError,
    MoverRepository,
    MoverRequest,
    MoverResult,
    MoverSettings,
    _job_state,
    claim_node,
    label_value,
    mover_job_manifest,
    mover_name,
    mover_secret_manifest,
)
from reconciler.volumes._moverprogress import (
    MoverProgress,
    ProgressWriter,
    delete_progress,
    progress_key,
    read_progress,
    sweep_stale_progress,
)

PASSPHRASE = "mover test passphrase"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_REPO = MoverRepository(
    "s3",
    PASSPHRASE,
    bucket="backups",
    prefix="team-a",
    endpoint="https://s3.example.com",
    region="eu-west-1",
    force_path_style=True,
    ca_bundle="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    credentials=S3Credentials("AKIAEXAMPLE1234", SECRET_KEY, "session-token-value"),
)
FS_REPO = MoverRepository("filesystem", PASSPHRASE, path="/srv/kubeferry-repo")


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))


def _backup_request(**kw: Any) -> MoverRequest:
    return MoverRequest("backup", "shop", "data", "20250101T000000Z-abc", job="nightly", **kw)


def _container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def _volume(job: dict[str, Any], name: str) -> dict[str, Any]:
    volumes = job["spec"]["template"]["spec"]["volumes"]
    found: dict[str, Any] = next(v for v in volumes if v["name"] == name)
    return found


# -- manifests ----------------------------------------------------------------------------


def test_backup_job_mounts_the_claim_read_only() -> None:
    job = mover_job_manifest("kf-backup-data-abc", _backup_request(), S3_REPO)
    data_mount = next(m for m in _container(job)["volumeMounts"] if m["name"] == "data")
    assert data_mount == {"name": "data", "mountPath": "/data", "readOnly": True}
    assert _volume(job, "data")["persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}


def test_restore_job_mounts_the_claim_writable_and_names_the_snapshot() -> None:
    request = MoverRequest("restore", "shop", "data", "set-1", volume_snapshot="vol-1")
    job = mover_job_manifest("kf-restore-data-abc", request, S3_REPO)
    data_mount = next(m for m in _container(job)["volumeMounts"] if m["name"] == "data")
    assert data_mount["readOnly"] is False
    args = _container(job)["args"]
    assert args[:2] == ["mover", "restore"]
    assert args[args.index("--snapshot") + 1] == "vol-1"
    assert args[args.index("--path") + 1] == "/data"


def test_verify_job_reads_the_claim_read_only_and_names_the_snapshot() -> None:
    request = MoverRequest("verify", "drill-shop", "data", "set-1", volume_snapshot="vol-1")
    job = mover_job_manifest("kf-verify-data-abc", request, S3_REPO)
    container = _container(job)
    data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert data_mount["readOnly"] is True
    assert _volume(job, "data")["persistentVolumeClaim"]["readOnly"] is True
    assert container["securityContext"]["capabilities"]["add"] == ["DAC_READ_SEARCH"]
    args = container["args"]
    assert args[:2] == ["mover", "verify"]
    assert args[args.index("--snapshot") + 1] == "vol-1"


def test_restore_and_verify_requests_need_a_volume_snapshot() -> None:
    with pytest.raises(KubeferryError):
        MoverRequest("restore", "shop", "data", "set-1")
    with pytest.raises(KubeferryError):
        MoverRequest("verify", "shop", "data", "set-1")


def test_job_spec_shape_and_command() -> None:
    settings = MoverSettings(
        image="registry.local/kf:dev", timeout=120, ttl_seconds_after_finished=60
    )
    job = mover_job_manifest(
        "kf-backup-data-abc", _backup_request(parent="vol-0"), S3_REPO, settings, progress=True
    )
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 120 + 60
    assert spec["ttlSecondsAfterFinished"] == 60
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    container = _container(job)
    assert container["image"] == "registry.local/kf:dev"
    assert container["args"] == [
        "mover",
        "backup",
        "--path",
        "/data",
        "--snapshot-set",
        "20250101T000000Z-abc",
        "--config",
        CONFIG_MOUNT,
        "--workers",
        "4",
        "--termination-log",
        "/dev/termination-log",
        "--progress",
        "kf-backup-data-abc",
        "--progress-interval",
        "2",
        "--parent",
        "vol-0",
    ]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    # no reader (no repository to wait with): the pod writes no progress to be left behind
    quiet = mover_job_manifest("kf-backup-data-abc", _backup_request(), S3_REPO, settings)
    assert not any(a.startswith("--progress") for a in _container(quiet)["args"])
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert DEFAULT_IMAGE.startswith("ghcr.io/kubeferry/kubeferry:")


def test_secret_values_only_in_the_secret_never_in_the_job() -> None:
    name = "kf-backup-data-abc"
    job = mover_job_manifest(name, _backup_request(), S3_REPO)
    text = json.dumps(job)
    for value in (PASSPHRASE, SECRET_KEY, "AKIAEXAMPLE1234", "session-token-value", "MIIB"):
        assert value not in text
    env = {e["name"]: e for e in _container(job)["env"]}
    for var, key in [
        ("AWS_ACCESS_KEY_ID", "accessKeyId"),
        ("AWS_SECRET_ACCESS_KEY", "secretAccessKey"),
        ("AWS_SESSION_TOKEN", "sessionToken"),
    ]:
        assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
    # every env entry is either a non-secret literal (the config path) or a secretKeyRef
    assert env["KUBEFERRY_MOVER_CONFIG"]["value"] == CONFIG_MOUNT
    assert all("valueFrom" in e for n, e in env.items() if n != "KUBEFERRY_MOVER_CONFIG")
    config = _volume(job, "config")["secret"]
    assert config["secretName"] == name
    assert config["defaultMode"] == 0o400

    secret = mover_secret_manifest(name, _backup_request(), S3_REPO)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["passphrase"] == PASSPHRASE
    assert data["secretAccessKey"] == SECRET_KEY
    assert data["accessKeyId"] == "AKIAEXAMPLE1234"
    assert data["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    settings = json.loads(data["repository.json"])
    assert settings == {
        "kind": "s3",
        "bucket": "backups",
        "prefix": "team-a",
        "endpoint": "https://s3.example.com",
        "region": "eu-west-1",
        "forcePathStyle": True,
        "caBundle": "ca.crt",
    }
    assert PASSPHRASE not in repr(S3_REPO)
    assert SECRET_KEY not in repr(S3_REPO)


def test_filesystem_repository_is_mounted_from_the_node() -> None:
    job = mover_job_manifest("kf-backup-data-abc", _backup_request(), FS_REPO)
    assert _volume(job, "repository")["hostPath"] == {
        "path": "/srv/kubeferry-repo",
        "type": "Directory",
    }
    assert not any(e.get("valueFrom") for e in _container(job)["env"])
    secret = mover_secret_manifest("kf-backup-data-abc", _backup_request(), FS_REPO)
    settings = json.loads(base64.b64decode(secret["data"]["repository.json"]))
    assert settings == {"kind": "filesystem", "path": "/repository"}
    assert set(secret["data"]) == {"repository.json", "passphrase"}


def test_labels_on_job_pod_and_secret() -> None:
    request = _backup_request()
    job = mover_job_manifest("kf-backup-data-abc", request, S3_REPO)
    secret = mover_secret_manifest("kf-backup-data-abc", request, S3_REPO)
    for labels in (
        job["metadata"]["labels"],
        job["spec"]["template"]["metadata"]["labels"],
        secret["metadata"]["labels"],
    ):
        assert labels[LABEL_JOB] == "nightly"
        assert labels[LABEL_SNAPSHOT] == "20250101T000000Z-abc"
        assert labels["app.kubernetes.io/managed-by"] == "kubeferry"
    assert job["spec"]["template"]["metadata"]["labels"]["kubeferry.io/mover-run"] == (
        "kf-backup-data-abc"
    )


def test_label_values_and_names_are_valid() -> None:
    assert label_value("ok-value_1.2") == "ok-value_1.2"
    long = label_value("x" * 100)
    assert len(long) <= 63
    odd = label_value("a/b:c")
    assert odd.startswith("a-b-c-")
    assert len(odd) <= 63
    name = mover_name(MoverRequest("backup", "ns", "Very_Long.Claim" * 5, "s"))
    assert len(name) <= 52
    assert name.startswith("kf-backup-very-long-claim")


def _pod(claim: str, node: str | None, phase: str = "Running") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
        "containers": [],
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": f"p-{claim}"}, "spec": spec, "status": {"phase": phase}}


def test_node_selector_from_the_pod_using_a_rwo_claim() -> None:
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    pods = [_pod("other", "node-x"), _pod("data", "node-a", "Succeeded"), _pod("data", "node-b")]
    node = claim_node(claim, pods)
    assert node == "node-b"
    job = mover_job_manifest("kf-backup-data-abc", _backup_request(node=node), S3_REPO)
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "node-b"}

    assert claim_node(claim, [_pod("data", None, "Pending")]) is None
    rwx = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteMany"]}}
    assert claim_node(rwx, pods) is None
    unpinned = mover_job_manifest("kf-backup-data-abc", _backup_request(), S3_REPO)
    assert "nodeSelector" not in unpinned["spec"]["template"]["spec"]


def test_job_state_and_result_parsing() -> None:
    assert _job_state({"status": {}}) == "running"
    assert _job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == (
        "complete"
    )
    assert _job_state({"status": {"failed": 1}}) == "failed"
    result = MoverResult.from_message(
        '{"snapshot": "vol-1", "files": 3, "bytes": 10, "newBytes": 4}', "backup"
    )
    assert (result.snapshot, result.files, result.bytes, result.new_bytes) == ("vol-1", 3, 10, 4)
    with pytest.raises(MoverError, match="disk full"):
        MoverResult.from_message('{"error": "disk full"}', "backup")
    with pytest.raises(MoverError, match="unreadable"):
        MoverResult.from_message("not json", "backup")


def test_mover_repository_from_backend(tmp_path: Path) -> None:
    repository = MoverRepository.from_backend(FilesystemBackend(tmp_path), passphrase=PASSPHRASE)
    assert repository.kind == "filesystem"
    assert repository.path == str(tmp_path)
    with pytest.raises(Exception, match="passphrase"):
        MoverRepository("filesystem", "", path="/x")


# -- the in-pod code path, run locally ----------------------------------------------------


def _write_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "hello.txt").write_text("hello mover\n")
    (root / "sub" / "blob.bin").write_bytes(os.urandom(300_000) + b"\0" * 100_000)
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    (root / "link").symlink_to("hello.txt")
    (root / "sub" / "mode.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "mode.sh").chmod(0o750)


def _snapshot_of(root: Path) -> dict[str, tuple[str, int, bytes]]:
    found: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = ("link", 0, os.readlink(path).encode())
        elif path.is_dir():
            found[rel] = ("dir", path.stat().st_mode & 0o7777, b"")
        else:
            found[rel] = ("file", path.stat().st_mode & 0o7777, path.read_bytes())
    return found


def _mover_config(tmp_path: Path, repository_dir: Path) -> Path:
    """A directory laid out like the mounted Secret, from the same manifest builder."""
    repo = MoverRepository("filesystem", PASSPHRASE, path=str(repository_dir))
    secret = mover_secret_manifest("kf", _backup_request(), repo)
    config = tmp_path / "config"
    config.mkdir()
    for key, value in secret["data"].items():
        (config / key).write_bytes(base64.b64decode(value))
    # in the pod the repository is the hostPath mount; here, the directory itself
    settings = json.loads((config / "repository.json").read_text())
    settings["path"] = str(repository_dir)
    (config / "repository.json").write_text(json.dumps(settings))
    return config


def test_mover_cli_backup_then_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repository_dir = tmp_path / "repo"
    Repository(FilesystemBackend(repository_dir)).initialize("mover-test", passphrase=PASSPHRASE)
    config = _mover_config(tmp_path, repository_dir)
    source = tmp_path / "source"
    source.mkdir()
    _write_tree(source)
    runner = CliRunner()

    log = tmp_path / "termination-log"
    monkeypatch.setenv("KUBEFERRY_MOVER_CONFIG", str(config))
    backup = runner.invoke(
        app,
        [
            "mover",
            "backup",
            "--path",
            str(source),
            "--snapshot-set",
            "set-1",
            "--termination-log",
            str(log),
        ],
    )
    assert backup.exit_code == 0, backup.output
    result = json.loads(log.read_text())
    assert json.loads(backup.stdout.strip().splitlines()[-1]) == result
    assert result["operation"] == "backup"
    assert result["snapshotSet"] == "set-1"
    assert result["files"] == 4
    assert result["bytes"] == sum(
        p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink()
    )
    parsed = MoverResult.from_message(log.read_text(), "backup")
    assert parsed.snapshot == result["snapshot"]

    target = tmp_path / "target"
    restore_log = tmp_path / "restore-log"
    restore = runner.invoke(
        app,
        [
            "mover",
            "restore",
            "--path",
            str(target),
            "--snapshot",
            result["snapshot"],
            "--config",
            str(config),
            "--termination-log",
            str(restore_log),
        ],
    )
    assert restore.exit_code == 0, restore.output
    restored = json.loads(restore_log.read_text())
    assert restored["snapshot"] == result["snapshot"]
    assert restored["files"] == 4
    assert _snapshot_of(target) == _snapshot_of(source)


def _cli_backup(config: Path, source: Path, log: Path) -> str:
    done = CliRunner().invoke(
        app,
        [
            *("mover", "backup", "--path", str(source)),
            *("--config", str(config), "--termination-log", str(log)),
        ],
    )
    assert done.exit_code == 0, done.output
    return str(json.loads(log.read_text())["snapshot"])


def _cli_verify(config: Path, target: Path, snapshot: str, log: Path) -> dict[str, Any]:
    done = CliRunner().invoke(
        app,
        [
            *("mover", "verify", "--path", str(target), "--snapshot", snapshot),
            *("--snapshot-set", "set-1", "--config", str(config), "--termination-log", str(log)),
        ],
    )
    assert done.exit_code == 0, done.output  # mismatches are findings, not a failed run
    text = log.read_text()
    assert len(text.encode()) <= 4096  # what Kubernetes keeps of a termination message
    document: dict[str, Any] = json.loads(text)
    return document


def test_mover_cli_verify_finds_what_differs_from_the_snapshot(tmp_path: Path) -> None:
    repository_dir = tmp_path / "repo"
    Repository(FilesystemBackend(repository_dir)).initialize("mover-test", passphrase=PASSPHRASE)
    config = _mover_config(tmp_path, repository_dir)
    source = tmp_path / "source"
    source.mkdir()
    _write_tree(source)
    snapshot = _cli_backup(config, source, tmp_path / "backup-log")

    same = _cli_verify(config, source, snapshot, tmp_path / "verify-log")
    assert (same["operation"], same["snapshot"], same["snapshotSet"]) == (
        "verify",
        snapshot,
        "set-1",
    )
    assert (same["mismatchCount"], same["mismatches"], same["files"]) == (0, [], 4)
    verification = MoverResult.from_message(json.dumps(same), "verify").verification()
    assert verification.mismatch_count == 0
    assert verification.bytes == same["bytes"] > 0

    blob = source / "sub" / "blob.bin"
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    blob.write_bytes(bytes(data))
    (source / "stray.txt").write_text("not in the snapshot\n")
    found = _cli_verify(config, source, snapshot, tmp_path / "verify-log")
    assert found["mismatchCount"] == 2
    assert sorted((m["path"], m["problem"]) for m in found["mismatches"]) == [
        ("stray.txt", "not in the snapshot"),
        ("sub/blob.bin", "content differs (BLAKE3 chunk digests)"),
    ]

    for index in range(400):  # more than a termination message can name
        (source / f"stray-{index:03d}-{'x' * 60}.txt").write_text("")
    many = _cli_verify(config, source, snapshot, tmp_path / "verify-log")
    assert many["mismatchCount"] == 402
    assert 0 < len(many["mismatches"]) <= 20
    parsed = MoverResult.from_message(json.dumps(many), "verify").verification()
    assert parsed.mismatch_count == 402


def test_mover_cli_reports_errors_as_json(tmp_path: Path) -> None:
    repository_dir = tmp_path / "repo"
    Repository(FilesystemBackend(repository_dir)).initialize("mover-test", passphrase=PASSPHRASE)
    config = _mover_config(tmp_path, repository_dir)
    (config / "passphrase").write_text("the wrong passphrase")
    source = tmp_path / "source"
    source.mkdir()
    log = tmp_path / "termination-log"
    result = CliRunner().invoke(
        app,
        [
            "mover",
            "backup",
            "--path",
            str(source),
            "--config",
            str(config),
            "--termination-log",
            str(log),
        ],
    )
    assert result.exit_code == 1
    document = json.loads(log.read_text())
    assert document["operation"] == "backup"
    assert document["error"]
    assert "the wrong passphrase" not in log.read_text()
    with pytest.raises(MoverError, match="failed"):
        MoverResult.from_message(log.read_text(), "backup")

    missing = CliRunner().invoke(
        app,
        [
            "mover",
            "restore",
            "--path",
            str(tmp_path / "t"),
            "--snapshot",
            "x",
            "--config",
            str(tmp_path / "nope"),
            "--termination-log",
            str(log),
        ],
    )
    assert missing.exit_code == 1
    assert "does not exist" in json.loads(log.read_text())["error"]


# -- waiting and cleanup against a fake client --------------------------------------------


class _FakeRest:
    def __init__(self, owner: _FakeClient) -> None:
        self.blocking = self
        self.owner = owner

    def delete(self, resource: Any, name: str, namespace: str, *, propagation: str) -> bool:
        self.owner.deleted.append(("Job", name, propagation))
        return self.owner.objects.pop(("Job", name), None) is not None

    def close(self) -> None:
        pass


class _FakeClient:
    """Stores created objects; the Job 'finishes' with `outcome` and `message`."""

    def __init__(self, outcome: str, message: str) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[tuple[str, str, str]] = []
        self.outcome = outcome
        self.message = message

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        stored = json.loads(json.dumps(manifest))
        stored["metadata"]["uid"] = "uid-1"
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = stored
        return stored

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        found = self.objects.get((kind, name))
        if found is not None and kind == "Job":
            found["status"] = {"conditions": [{"type": self.outcome, "status": "True"}]}
        return found

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest
        return manifest

    def list_objects(self, api_version: str, kind: str, namespace: str, **kw: Any) -> Any:
        if kind != "Pod":
            return []
        terminated = {"exitCode": 0 if self.outcome == "Complete" else 1, "message": self.message}
        return [{"status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}]

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        self.deleted.append((kind, name, ""))
        return self.objects.pop((kind, name), None) is not None

    def rest(self, **kw: Any) -> _FakeRest:
        return _FakeRest(self)


def test_run_returns_the_termination_message_and_cleans_up() -> None:
    client = _FakeClient("Complete", '{"snapshot": "vol-9", "files": 2, "bytes": 5}')
    mover = JobMover(FS_REPO, MoverSettings(poll_interval=0.01))
    result = mover.run(client, _backup_request())  # type: ignore[arg-type]
    assert result.snapshot == "vol-9"
    assert client.objects == {}
    kinds = [(kind, propagation) for kind, _, propagation in client.deleted]
    assert ("Job", "Background") in kinds
    assert ("Secret", "") in kinds


def test_run_raises_the_pod_error_and_cleans_up() -> None:
    client = _FakeClient("Failed", '{"operation": "backup", "error": "no space left"}')
    mover = JobMover(FS_REPO, MoverSettings(poll_interval=0.01))
    with pytest.raises(MoverError, match="no space left"):
        mover.run(client, _backup_request())  # type: ignore[arg-type]
    assert client.objects == {}


# -- live progress through the repository -------------------------------------------------


def _encrypted_repository(tmp_path: Path) -> Repository:
    backend = FilesystemBackend(tmp_path / "repo")
    Repository(backend).initialize("progress-test", passphrase=PASSPHRASE)
    return Repository(backend).unlock(PASSPHRASE)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_writer_throttles_and_writes_a_last_object(tmp_path: Path) -> None:
    repository = _encrypted_repository(tmp_path)
    clock = _Clock()
    writer = ProgressWriter(repository, "kf-backup-data-abc", "backup", interval=2.0, clock=clock)

    def offer(at: float, done: int) -> MoverProgress | None:
        clock.now = 100.0 + at
        writer(
            TreeProgress(files_done=done, files_total=10, bytes_done=done * 100, bytes_total=1000)
        )
        return read_progress(repository, "kf-backup-data-abc")

    first = offer(0.0, 1)  # the first one at once: totals show early
    assert first is not None
    assert (first.bytes_done, first.bytes_total, first.final) == (100, 1000, False)
    assert offer(0.5, 2) == first  # throttled: nothing written
    assert offer(1.99, 3) == first
    second = offer(2.0, 4)
    assert second is not None
    assert (second.files_done, second.bytes_done) == (4, 400)
    assert offer(3.9, 5) == second
    assert writer.writes == 2
    # the end: the counters the copy ended with, even inside the interval
    clock.now += 0.1
    writer.finish()
    last = read_progress(repository, "kf-backup-data-abc")
    assert last is not None
    assert (last.files_done, last.bytes_done, last.final) == (5, 500, True)
    assert writer.writes == 3
    assert (last.job, last.operation) == ("kf-backup-data-abc", "backup")
    assert last.updated_at.endswith("Z")
    # sealed like every volume object: no counters or names in the clear
    blob = repository.backend.get(progress_key("kf-backup-data-abc"))
    assert b"bytesDone" not in blob
    assert b"kf-backup" not in blob
    assert PASSPHRASE.encode() not in blob


def test_a_failing_progress_write_never_fails_the_copy(tmp_path: Path) -> None:
    repository = _encrypted_repository(tmp_path)
    attempts: list[str] = []

    class _Refusing:
        def __getattr__(self, name: str) -> Any:
            return getattr(repository.backend, name)

        def put(self, key: str, data: bytes) -> None:
            attempts.append(key)
            raise RepositoryError(f"{key}: the store said no")

    refusing = Repository(_Refusing(), repository.cipher)  # type: ignore[arg-type]
    warnings: list[str] = []
    writer = ProgressWriter(refusing, "kf-restore-x-1", "restore", interval=0, warn=warnings.append)
    for done in range(10):
        writer(TreeProgress(bytes_done=done, bytes_total=10))
    writer.finish()
    # one warning; it stops trying after a few failures in a row instead of slowing the copy
    assert len(warnings) == 1
    assert "cannot write progress volumes/progress/kf-restore-x-1.json" in warnings[0]
    assert len(attempts) == 3
    assert writer.writes == 0


def test_read_progress_missing_corrupt_foreign_or_other_job(tmp_path: Path) -> None:
    repository = _encrypted_repository(tmp_path)
    job = "kf-backup-data-abc"
    key = progress_key(job)
    assert read_progress(repository, job) is None  # none yet

    repository.backend.put(key, b"\x00garbage")
    assert read_progress(repository, job) is None
    # plaintext JSON is not trusted: everything is sealed
    plain = MoverProgress(job, "backup", bytes_done=5, bytes_total=9).to_json()
    repository.backend.put(key, plain)
    assert read_progress(repository, job) is None
    # sealed for another key (moved or copied): does not open
    assert repository.cipher is not None
    other_key = progress_key("kf-backup-other-xyz")
    repository.backend.put(key, repository.cipher.seal(plain, aad=other_key.encode()))
    assert read_progress(repository, job) is None
    # opens, but is not a progress document / belongs to another Job
    repository.backend.put(key, repository.cipher.seal(b'{"format": "x"}', aad=key.encode()))
    assert read_progress(repository, job) is None
    foreign = MoverProgress("kf-backup-other-xyz", "backup", bytes_done=5).to_json()
    repository.backend.put(key, repository.cipher.seal(foreign, aad=key.encode()))
    assert read_progress(repository, job) is None
    bad_count = plain.replace(b'"bytesDone":5', b'"bytesDone":-1')
    repository.backend.put(key, repository.cipher.seal(bad_count, aad=key.encode()))
    assert read_progress(repository, job) is None

    repository.backend.put(key, repository.cipher.seal(plain, aad=key.encode()))
    assert read_progress(repository, job) == MoverProgress(
        job, "backup", bytes_done=5, bytes_total=9
    )
    delete_progress(repository, job)
    assert not repository.backend.exists(key)
    delete_progress(repository, job)  # absent is fine


def test_progress_keys_are_job_names_only() -> None:
    assert progress_key("kf-backup-data-0a1b2c") == "volumes/progress/kf-backup-data-0a1b2c.json"
    for bad in ("", "../locks/x", "a/b", "Upper", "-x", "x" * 64):
        with pytest.raises(KubeferryError):
            progress_key(bad)


def test_sweep_removes_only_stale_progress_objects(tmp_path: Path) -> None:
    repository = _encrypted_repository(tmp_path)
    for job in ("kf-backup-old-1", "kf-backup-live-2"):
        ProgressWriter(repository, job, "backup").finish()
    old = tmp_path / "repo" / "volumes" / "progress" / "kf-backup-old-1.json"
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert sweep_stale_progress(repository) == 1
    assert read_progress(repository, "kf-backup-old-1") is None
    assert read_progress(repository, "kf-backup-live-2") is not None


class _ProgressRecorder:
    def __init__(self, finished: threading.Event) -> None:
        self.finished = finished
        self.seen: list[tuple[str, int, int, bool]] = []

    def bytes_progress(self, item: str, done: int, total: int) -> None:
        self.seen.append((item, done, total, self.finished.is_set()))

    def check_cancelled(self) -> None:
        pass


class _RunningClient(_FakeClient):
    """The Job runs until `finished` is set, then completes with `message`."""

    def __init__(self, message: str) -> None:
        super().__init__("Complete", message)
        self.finished = threading.Event()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "Job" and not self.finished.is_set():
            found = self.objects.get((kind, name))
            if found is not None:
                found["status"] = {"active": 1}
            return found
        return super().get(api_version, kind, name, namespace)

    def list_objects(self, api_version: str, kind: str, namespace: str, **kw: Any) -> Any:
        if kind == "Pod" and not self.finished.is_set():
            return [{"status": {"containerStatuses": [{"state": {"running": {}}}]}}]
        return super().list_objects(api_version, kind, namespace, **kw)


def test_wait_forwards_progress_a_running_pod_writes(tmp_path: Path) -> None:
    """A thread plays the pod: it writes progress into the repository while the Job runs;
    the waiting side hands each new value to the reporter, and cleanup deletes the object."""
    repository = _encrypted_repository(tmp_path)
    client = _RunningClient('{"snapshot": "vol-9", "files": 5, "bytes": 5000}')
    recorder = _ProgressRecorder(client.finished)
    errors: list[BaseException] = []
    names: list[str] = []

    def seen(done: int) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(d == done for _, d, _, _ in recorder.seen):
                return True
            time.sleep(0.005)
        return False

    def pod() -> None:
        try:
            while not any(kind == "Job" for kind, _ in client.objects):
                time.sleep(0.005)
            name = next(name for kind, name in client.objects if kind == "Job")
            names.append(name)
            writer = ProgressWriter(repository, name, "backup", interval=0)
            for step in (1, 2, 3):
                writer(TreeProgress(step, 5, step * 1000, 5000))
                assert seen(step * 1000), f"progress {step} not forwarded"
            # a damaged object and a stale (lower) one: no failure, no step back
            repository.backend.put(progress_key(name), b"not sealed")
            time.sleep(0.1)
            writer(TreeProgress(1, 5, 500, 5000))
            time.sleep(0.1)
            writer(TreeProgress(5, 5, 5000, 5000))
            assert seen(5000), "the last progress was not forwarded"
            writer.finish()
            time.sleep(0.1)  # the same counters again: not forwarded twice
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            client.finished.set()

    thread = threading.Thread(target=pod, daemon=True)
    thread.start()
    mover = JobMover(FS_REPO, MoverSettings(poll_interval=0.01))
    result = mover.run(
        client,  # type: ignore[arg-type]
        _backup_request(),
        reporter=recorder,  # type: ignore[arg-type]
        repository=repository,
    )
    thread.join(timeout=10)
    assert errors == []
    assert result.snapshot == "vol-9"
    assert recorder.seen == [
        ("persistentvolumeclaims/data", done, 5000, False) for done in (1000, 2000, 3000, 5000)
    ]
    (name,) = names
    assert not repository.backend.exists(progress_key(name))  # cleanup removed it
    assert client.objects == {}


def test_mover_cli_writes_progress_and_survives_a_failing_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository_dir = tmp_path / "repo"
    Repository(FilesystemBackend(repository_dir)).initialize("mover-test", passphrase=PASSPHRASE)
    config = _mover_config(tmp_path, repository_dir)
    source = tmp_path / "source"
    source.mkdir()
    _write_tree(source)
    log = tmp_path / "termination-log"
    args = ["mover", "backup", "--path", str(source), "--config", str(config)]
    args += ["--termination-log", str(log), "--progress", "kf-backup-data-abc"]

    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    result = json.loads(log.read_text())
    repository = Repository(FilesystemBackend(repository_dir)).unlock(PASSPHRASE)
    progress = read_progress(repository, "kf-backup-data-abc")
    assert progress is not None
    assert progress.final
    assert progress.operation == "backup"
    assert (progress.files_done, progress.files_total) == (result["files"], result["files"])
    assert (progress.bytes_done, progress.bytes_total) == (result["bytes"], result["bytes"])

    # progress cannot be written (a file where its directory should be): the copy still works
    delete_progress(repository, "kf-backup-data-abc")  # also prunes the empty directory
    (repository_dir / "volumes" / "progress").write_bytes(b"in the way")
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "warning: cannot write progress" in again.output
    assert json.loads(log.read_text())["snapshot"]
    assert json.loads(log.read_text()).get("error") is None
