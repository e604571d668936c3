"""Volume sets: the per-snapshot record of which volume snapshot holds which claim's data,
and how a backup finds its job's previous set (by-job markers, not a scan of every set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engines import JobSpec
from reconciler.repository import FilesystemBackend, Repository, _crypto
from reconciler.repository._crypto import ScryptParams
from reconciler.volumes import (
    SETS_PREFIX,
    VolumeEntry,
    VolumeSet,
    delete_volume_set,
    previous_volume_set,
    read_volume_set,
    set_key,
    write_volume_set,
)

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))


class CountingBackend(FilesystemBackend):
    """A filesystem backend that counts reads, to show which sets a lookup opened."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets: list[str] = []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return super().get(key)


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    backend = CountingBackend(tmp_path / "repo")
    Repository(backend).initialize("sets", passphrase=PASSPHRASE)
    return Repository(backend).unlock(PASSPHRASE)


def _job(name: str, namespace: str = "shop", cluster: str = "worker-1") -> JobSpec:
    return JobSpec(
        name=name,
        namespace=namespace,
        target_namespace=namespace,
        source_cluster=cluster,
        destination_cluster="worker-2",
    )


def _set(job: JobSpec, snapshot_id: str) -> VolumeSet:
    entry = VolumeEntry(
        claim="data",
        snapshot=f"vol-{snapshot_id}",
        persistent_volume="pv-1",
        storage_class="hostpath",
        source_path="/tmp/pv-1",
        files=1,
        bytes=10,
        new_bytes=10,
    )
    return VolumeSet.for_job(job, snapshot_id, "hostpath", [entry])


def _gets_of_sets(repository: Repository) -> list[str]:
    backend = repository.backend
    assert isinstance(backend, CountingBackend)
    return [key for key in backend.gets if key.startswith(SETS_PREFIX)]


def test_previous_set_is_the_newest_of_the_same_job_and_only_it_is_read(
    repository: Repository,
) -> None:
    web, api = _job("web"), _job("api")
    other_cluster = _job("web", cluster="worker-2")
    for second in range(5):
        write_volume_set(repository, _set(web, f"web-2026010100000{second}-aaaaaa"))
        write_volume_set(repository, _set(api, f"api-2026010100000{second}-bbbbbb"))
        write_volume_set(repository, _set(other_cluster, f"web-2026010100001{second}-cccccc"))
    backend = repository.backend
    assert isinstance(backend, CountingBackend)
    backend.gets.clear()

    found = previous_volume_set(repository, web, before="web-20260101000010-dddddd")

    assert found is not None
    assert found.snapshot_id == "web-20260101000004-aaaaaa"
    assert found.source_cluster == "worker-1"
    assert _gets_of_sets(repository) == [set_key("web-20260101000004-aaaaaa")]


def test_previous_set_skips_the_snapshot_being_written(repository: Repository) -> None:
    web = _job("web")
    write_volume_set(repository, _set(web, "web-20260101000000-aaaaaa"))
    write_volume_set(repository, _set(web, "web-20260101000001-aaaaaa"))

    found = previous_volume_set(repository, web, before="web-20260101000001-aaaaaa")

    assert found is not None
    assert found.snapshot_id == "web-20260101000000-aaaaaa"


def test_no_previous_set_for_a_new_job(repository: Repository) -> None:
    write_volume_set(repository, _set(_job("web"), "web-20260101000000-aaaaaa"))

    assert previous_volume_set(repository, _job("web", namespace="other"), before="x") is None


def test_marker_names_reveal_nothing(repository: Repository) -> None:
    write_volume_set(repository, _set(_job("web"), "web-20260101000000-aaaaaa"))

    markers = [info.key for info in repository.backend.list(f"{SETS_PREFIX}by-job/")]

    assert len(markers) == 1
    tag = markers[0].split("/")[3]
    assert len(tag) == 64
    assert "web" not in tag
    assert "shop" not in tag
    assert "worker" not in tag


def test_deleting_a_set_removes_its_marker(repository: Repository) -> None:
    web = _job("web")
    write_volume_set(repository, _set(web, "web-20260101000000-aaaaaa"))
    write_volume_set(repository, _set(web, "web-20260101000001-aaaaaa"))

    delete_volume_set(repository, "web-20260101000001-aaaaaa")

    assert read_volume_set(repository, "web-20260101000001-aaaaaa") is None
    markers = [info.key for info in repository.backend.list(f"{SETS_PREFIX}by-job/")]
    assert [key.rsplit("/", 1)[1] for key in markers] == ["web-20260101000000-aaaaaa"]
    found = previous_volume_set(repository, web, before="new")
    assert found is not None
    assert found.snapshot_id == "web-20260101000000-aaaaaa"


def test_sets_written_before_markers_are_still_found(repository: Repository) -> None:
    """Repositories from before the markers: the lookup falls back to reading sets."""
    web = _job("web")
    write_volume_set(repository, _set(web, "web-20260101000000-aaaaaa"))
    write_volume_set(repository, _set(_job("api"), "api-20260101000001-bbbbbb"))
    for info in list(repository.backend.list(f"{SETS_PREFIX}by-job/")):
        repository.backend.delete(info.key)

    found = previous_volume_set(repository, web, before="new")

    assert found is not None
    assert found.snapshot_id == "web-20260101000000-aaaaaa"
