"""Which volume mover ActionRunner uses: the source cluster's (Cluster spec.volumeMover) for a
backup, the destination cluster's for a restore; an explicit ``mover=`` overrides both.

No cluster: the KubeClients are stand-ins that answer the few calls a run makes, the object
engine is a fake, and the movers' ``backup_volumes``/``restore_volumes`` only record who was
asked where. The selection itself (``cluster_mover``, the repository settings and passphrase
handed to the Job mover) runs for real over an inventory file, a filesystem repository and
the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest

from reconciler._events import EventBus
from reconciler.apply import Cancellation
from reconciler.engines import BackupResult, JobSpec, Reporter, RestoreResult
from reconciler.errors import KubeferryError
from reconciler.inventory import load_inventory
from reconciler.plan import Action, ActionType
from reconciler.reconcile import Workspace
from reconciler.reconcile._actions import ActionRunner
from reconciler.reconcile._connect import Connections
from reconciler.reconcile._movers import cluster_mover, job_mover_notes, mover_settings
from reconciler.reconcile._runner import locked_runner
from reconciler.reconcile._views import desired_job, job_spec
from reconciler.repository import FilesystemBackend, Repository
from reconciler.volumes import (
    DEFAULT_IMAGE,
    HostPathMover,
    JobMover,
    TreeMismatch,
    TreeVerification,
)
from reconciler.volumes._jobmover import (
    MoverError,
    MoverRepository,
    MoverRequest,
    MoverSettings,
    mover_job_manifest,
)
from state import Ledger
from tests._environment import PASSPHRASE_VAR, encrypted_repository_environment, encrypted_site
from tests._inventory import (
    cluster,
    filesystem_repository,
    job,
    replication_slice,
    s3_repository,
    write_inventory,
)

PASSPHRASE = "mover selection passphrase"

_INVENTORY = (
    cluster("east"),
    cluster(
        "west",
        volumeMover={"type": "job", "image": "registry.example/kf:test", "timeout": "30m"},
    ),
    filesystem_repository("vault", "./vault", passphrase_var=PASSPHRASE_VAR),
    replication_slice("dr", "east", "west", "vault"),
    replication_slice("back", "west", "east", "vault"),
    job("web", "dr", "web"),
    job("db", "back", "db"),
    job("cfg", "dr", "cfg", k8sObjectsOnly=True),
)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    encrypted_repository_environment(monkeypatch, PASSPHRASE, wide=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return encrypted_site(tmp_path, *_INVENTORY, passphrase=PASSPHRASE)


class _Client:
    """What a run asks its cluster besides the movers and the engine: a version, lists."""

    def __init__(self, name: str) -> None:
        self.name = name

    def version(self) -> str:
        return "v1.20.0"

    def list_objects(self, *_: Any, **__: Any) -> list[Any]:
        return []

    def get(self, *_: Any, **__: Any) -> None:
        return None


class _Engine:
    name = "fake"

    def backup(self, client: Any, repository: Any, job: JobSpec, snapshot_id: str, *_: Any) -> Any:
        return BackupResult(snapshot_id, 1, 10, "fp")

    def restore(self, *_: Any, **__: Any) -> RestoreResult:
        return RestoreResult(1, "dst")


@dataclass
class Calls:
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    """(mover class, operation, cluster of the client it was given)"""
    movers: list[Any] = field(default_factory=list)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Both mover classes record their calls instead of moving data."""
    found = Calls()

    def recorder(operation: str) -> Any:
        def record(
            self: Any,
            client: _Client,
            repository: Repository,
            job: JobSpec,
            snapshot_id: str,
            reporter: Reporter,
        ) -> int:
            found.seen.append((type(self).__name__, operation, client.name))
            found.movers.append(self)
            return 0

        return record

    for mover in (HostPathMover, JobMover):
        monkeypatch.setattr(mover, "backup_volumes", recorder("backup"))
        monkeypatch.setattr(mover, "restore_volumes", recorder("restore"))
    return found


@pytest.fixture
def runner(site: Path) -> Iterator[ActionRunner]:
    with locked_runner(
        Workspace.resolve(site),
        "test",
        bus=None,
        engine=_Engine(),  # type: ignore[arg-type]
        lock_timeout=0,
    ) as r:
        r(Action(address="ReplicationRepository/vault", type=ActionType.CREATE), Cancellation())
        r.connections.client = _Client  # type: ignore[assignment,method-assign]
        yield r


def _backup_and_restore(runner: ActionRunner, name: str) -> None:
    _, backed_up = runner.run_backup(name, Cancellation())
    spec = runner.job_spec(name)
    runner.run_restore(name, backed_up.snapshot_id, Cancellation(), spec=spec, repository="vault")


def test_backup_uses_the_source_mover_and_restore_the_destination_mover(
    runner: ActionRunner, calls: Calls, site: Path
) -> None:
    _backup_and_restore(runner, "web")  # east (hostPath) -> west (job)
    _backup_and_restore(runner, "db")  # west (job) -> east (hostPath)

    assert calls.seen == [
        ("HostPathMover", "backup", "east"),
        ("JobMover", "restore", "west"),
        ("JobMover", "backup", "west"),
        ("HostPathMover", "restore", "east"),
    ]
    job_mover = calls.movers[1]
    assert isinstance(job_mover, JobMover)
    assert job_mover.settings.image == "registry.example/kf:test"
    assert job_mover.settings.timeout == 30 * 60
    # the pod opens the same repository, with its passphrase (kept out of repr)
    assert job_mover.repository.kind == "filesystem"
    assert job_mover.repository.path == str(site.parent / "vault")
    assert job_mover.repository.passphrase == PASSPHRASE
    assert PASSPHRASE not in repr(job_mover.repository)

    # the restore run's details name the mover that wrote the data; an event says a Job did
    runs = {(r.job, r.kind.value): r for r in runner.ledger.runs()}
    assert runs[("web", "restore")].details.get("cluster") == "west"
    events = [e for e in runner.ledger.events() if e.kind == "volume.mover"]
    assert [(e.job, e.data["operation"], e.data["cluster"]) for e in events] == [
        ("web", "restore", "west"),
        ("db", "backup", "west"),
    ]


def test_an_objects_only_job_asks_no_mover(runner: ActionRunner, calls: Calls) -> None:
    _backup_and_restore(runner, "cfg")
    assert calls.seen == []


def test_an_explicit_mover_overrides_every_cluster(runner: ActionRunner, calls: Calls) -> None:
    one = HostPathMover()
    runner.mover = one
    _backup_and_restore(runner, "web")
    assert calls.seen == [("HostPathMover", "backup", "east"), ("HostPathMover", "restore", "west")]
    assert all(mover is one for mover in calls.movers)

    calls.seen.clear()
    runner.mover = None  # objects only
    _backup_and_restore(runner, "web")
    assert calls.seen == []


def test_mover_for_and_settings_defaults(site: Path, tmp_path: Path) -> None:
    inventory = load_inventory(site)
    connections = Connections(inventory)
    with Ledger.open(tmp_path / "ledger.sqlite") as ledger:
        runner = ActionRunner(inventory, connections, ledger, _Engine(), EventBus(), {})  # type: ignore[arg-type]
        assert isinstance(runner.mover_for("east", "vault"), HostPathMover)
        assert isinstance(runner.mover_for("west", "vault"), JobMover)
        fake = HostPathMover()
        assert (
            ActionRunner(
                inventory,
                connections,
                ledger,
                _Engine(),
                EventBus(),
                {},
                mover=fake,  # type: ignore[arg-type]
            ).mover_for("west", "vault")
            is fake
        )
    # a bare `type: job`: the project image of this version and MoverSettings' defaults
    (tmp_path / "bare").mkdir()
    bare = load_inventory(
        write_inventory(tmp_path / "bare", cluster("x", volumeMover={"type": "job"}))
    )
    declared = bare.clusters["x"].spec.volume_mover
    assert declared is not None
    settings = mover_settings(declared)
    assert settings.image == DEFAULT_IMAGE
    assert (settings.timeout, settings.image_pull_policy, settings.tolerations) == (
        6 * 3600.0,
        "IfNotPresent",
        (),
    )
    assert settings.resources == MoverSettings().resources

    # resources, given, replace the defaults as a whole and reach the Job's container
    (tmp_path / "sized").mkdir()
    sized = load_inventory(
        write_inventory(
            tmp_path / "sized",
            cluster(
                "x",
                volumeMover={
                    "type": "job",
                    "resources": {"requests": {"cpu": 1.5}, "limits": {"memory": "4Gi"}},
                },
            ),
        )
    )
    declared = sized.clusters["x"].spec.volume_mover
    assert declared is not None
    settings = mover_settings(declared)
    wanted = {"requests": {"cpu": "1.5"}, "limits": {"memory": "4Gi"}}
    assert settings.resources == wanted
    request = MoverRequest("backup", namespace="web", claim="data", snapshot_set="s1")
    where = MoverRepository("filesystem", PASSPHRASE, path="/srv/kubeferry-repo")
    manifest = mover_job_manifest("kf-backup-data-1", request, where, settings)
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == wanted


class _Claims(_Client):
    """A cluster whose namespace has ``count`` PersistentVolumeClaims and no workloads."""

    def __init__(self, count: int) -> None:
        super().__init__("west")
        self.count = count

    def list_objects(self, api_version: str, kind: str, *_: Any, **__: Any) -> list[Any]:
        if kind != "PersistentVolumeClaim":
            return []
        return [
            {"metadata": {"name": f"data-{n}"}, "spec": {"volumeName": f"pv-{n}"}}
            for n in range(self.count)
        ]


def test_the_job_mover_over_an_unencrypted_repository(tmp_path: Path) -> None:
    """No passphrase, so no volume data: a backup without claims copies nothing, one with
    claims fails as the host-path mover does, before any Job; a restore has nothing to do."""
    inventory = load_inventory(
        write_inventory(
            tmp_path,
            cluster("west", volumeMover={"type": "job"}),
            filesystem_repository("plain", "./plain"),
            replication_slice("keep", "west", "west", "plain"),
            job("web", "keep", "web"),
        )
    )
    mover = cluster_mover(inventory, Connections(inventory), "west", "plain")
    assert isinstance(mover, JobMover)
    assert mover.repository is None
    spec = job_spec(inventory, inventory.jobs["web"])
    plain = Repository(FilesystemBackend(tmp_path / "plain"))
    plain.initialize("plain")
    reporter = Mock()  # warnings and counters; nothing here reports
    assert mover.backup_volumes(_Claims(0), plain, spec, "s1", reporter) == 0  # type: ignore[arg-type]
    with pytest.raises(KubeferryError, match="needs an encrypted repository") as caught:
        mover.backup_volumes(_Claims(2), plain, spec, "s1", reporter)  # type: ignore[arg-type]
    assert "namespace web has 2 PersistentVolumeClaim(s) to copy" in str(caught.value)
    assert mover.restore_volumes(_Claims(2), plain, spec, "s1", reporter) == 0  # type: ignore[arg-type]
    request = MoverRequest("verify", "web", "data-0", "s1", volume_snapshot="v1")
    with pytest.raises(KubeferryError, match="needs an encrypted repository"):
        mover.launch(_Claims(1), request)  # type: ignore[arg-type]


def test_plan_view_names_the_movers_and_unreachable_repositories(
    site: Path, tmp_path: Path
) -> None:
    inventory = load_inventory(site)
    web = desired_job(inventory, inventory.jobs["web"])
    assert (web.backup_mover, web.restore_mover) == ("hostPath", "job")
    (note,) = web.mover_notes
    assert "the job mover on west mounts filesystem repository vault" in note
    assert "same path on the cluster's nodes" in note
    cfg = desired_job(inventory, inventory.jobs["cfg"])  # objects only: no mover, no note
    assert (cfg.backup_mover, cfg.restore_mover, cfg.mover_notes) == ("", "", ())

    (tmp_path / "s3").mkdir()
    s3 = load_inventory(
        write_inventory(
            tmp_path / "s3",
            cluster("west", volumeMover={"type": "job"}),
            s3_repository(
                "local",
                access_key_var="A",
                secret_key_var="B",
                bucket="kf-data",
                endpoint="http://127.0.0.1:9000",
            ),
            s3_repository(
                "remote",
                access_key_var="A",
                secret_key_var="B",
                bucket="kf-data",
                endpoint="https://minio.example:9000",
            ),
        )
    )
    (loopback,) = job_mover_notes(s3, "west", "local")
    assert "endpoint 127.0.0.1 is a loopback address" in loopback
    assert job_mover_notes(s3, "west", "remote") == []


class _VerifyingJobMover(JobMover):
    """A job mover whose verify Job "ran" and reported ``outcome`` (or failed with it)."""

    def __init__(self, outcome: TreeVerification | MoverError) -> None:
        super().__init__(MoverRepository("s3", "secret words", bucket="kf-data"))
        self.outcome = outcome
        self.asked: list[tuple[str, str, str, str, str]] = []

    def verify_claim(  # type: ignore[override]
        self,
        client: Any,
        namespace: str,
        claim: str,
        snapshot_set: str,
        volume_snapshot: str,
        *,
        job: str = "",
    ) -> TreeVerification:
        self.asked.append((namespace, claim, snapshot_set, volume_snapshot, job))
        if isinstance(self.outcome, MoverError):
            raise self.outcome
        return self.outcome


def test_a_drill_verifies_job_mover_volumes_with_a_verify_job(site: Path) -> None:
    """With the job mover, the drill does not read PV directories from this machine: each
    claim is compared in the cluster, and what the Job reports becomes the volume check."""
    from reconciler.reconcile._drill import _verify_in_cluster
    from reconciler.volumes import VolumeEntry

    inventory = load_inventory(site)
    spec = replace(job_spec(inventory, inventory.jobs["web"]), target_namespace="web-drill")
    entry = VolumeEntry(claim="data", snapshot="vol-1", files=3, bytes=10)

    found = TreeVerification((TreeMismatch("a.txt", "missing"),), 2, 7, mismatch_count=3)
    mover = _VerifyingJobMover(found)
    check = _verify_in_cluster(None, mover, spec, "set-1", entry)  # type: ignore[arg-type]
    assert mover.asked == [("web-drill", "data", "set-1", "vol-1", "web")]
    assert (check.claim, check.verified, check.files, check.bytes) == ("data", True, 2, 7)
    assert [(m.path, m.problem) for m in check.mismatches] == [
        ("a.txt", "missing"),
        ("…", "2 more mismatch(es) not listed by the mover"),
    ]

    failing = _VerifyingJobMover(MoverError("mover job web-drill/kf-verify-data-1 failed: x"))
    check = _verify_in_cluster(None, failing, spec, "set-1", entry)  # type: ignore[arg-type]
    assert not check.verified
    assert check.note == "verification Job: mover job web-drill/kf-verify-data-1 failed: x"
