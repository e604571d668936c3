"""`kubeferry repo init|key|check|prune|stats` on filesystem repositories (no cluster).

Passphrases come from environment variables; every command's output is checked for them:
no passphrase is ever printed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.reconcile import Workspace, repo_prune
from reconciler.repository import FilesystemBackend, Repository
from reconciler.volumes import VolumeStore, backup_tree
from tests._environment import PASSPHRASE_VAR, encrypted_repository_environment
from tests._inventory import cluster, filesystem_repository, job, replication_slice, write_inventory
from tests._snapshots import random_tree, write_object_snapshot

PASSPHRASE = "correct horse battery staple"
NEW_PASSPHRASE = "tr0ub4dor&3-new"
WRONG_PASSPHRASE = "not-the-passphrase-at-all"
SECRETS = (PASSPHRASE, NEW_PASSPHRASE, WRONG_PASSPHRASE)

_INVENTORY = (
    cluster("east"),
    filesystem_repository("vault", "./vault", passphrase_var=PASSPHRASE_VAR),
    filesystem_repository("plain", "./plain"),
    replication_slice("keep", "east", "east", "vault"),
    job("shop", "keep", "shop", retention={"keepLast": 1}),
)

_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    encrypted_repository_environment(monkeypatch, PASSPHRASE)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An inventory with two uninitialized repositories; returns the inventory file."""
    return write_inventory(tmp_path, *_INVENTORY)


def run(capsys: pytest.CaptureFixture[str], site: Path, *args: str) -> tuple[int, str, str]:
    """Run `kubeferry repo ARGS -f SITE`; no passphrase may appear in the output."""
    code = main(["repo", *args, "-f", str(site)])
    captured = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in captured.out
        assert secret not in captured.err
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    return lines[0]


def unlocked(site: Path) -> Repository:
    return Repository(FilesystemBackend(site.parent / "vault")).unlock(PASSPHRASE)


def flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def tree(root: Path, seed: int) -> Path:
    random_tree(root, seed)
    (root / "small.txt").write_text(f"hello {seed}\n")
    return root


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# -- init ------------------------------------------------------------------------------------


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repo", "--help"]) == 0
    out = capsys.readouterr().out
    for command in ("init", "key", "check", "prune", "stats"):
        assert command in out


def test_init_then_init_again_is_refused(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, site, "init", "vault")
    assert code == 0
    assert "Initialized repository vault" in out
    assert "encrypted, key " in out
    assert Repository(FilesystemBackend(site.parent / "vault")).encrypted

    code, _, err = run(capsys, site, "init", "vault")
    assert code == 1
    assert "already initialized" in one_line(err)


def test_init_of_an_unencrypted_repository(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, site, "init", "plain", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["encrypted"] is False
    assert document["keyId"] is None
    assert not Repository(FilesystemBackend(site.parent / "plain")).encrypted


def test_init_without_the_passphrase_variable_is_one_line(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KF_TEST_PASSPHRASE")
    code, _, err = run(capsys, site, "init", "vault")
    assert code == 1
    assert "KF_TEST_PASSPHRASE is not set" in one_line(err)
    assert not (site.parent / "vault" / "kubeferry-repository.json").exists()


def test_unknown_repository_is_one_line(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, site, "stats", "nope")
    assert code == 1
    line = one_line(err)
    assert "no ReplicationRepository 'nope'" in line
    assert "vault" in line


def test_commands_on_an_uninitialized_repository_are_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (("check", "vault"), ("stats", "vault"), ("key", "list", "vault")):
        code, _, err = run(capsys, site, *args)
        assert code == 1
        assert "is not initialized" in one_line(err)


# -- keys ------------------------------------------------------------------------------------


def test_key_add_list_remove(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    code, out, _ = run(capsys, site, "key", "list", "vault", "--json")
    assert code == 0
    (first,) = json.loads(out)["keys"]
    assert first["current"] is True

    monkeypatch.setenv("KF_NEW_PASSPHRASE", NEW_PASSPHRASE)
    code, out, _ = run(
        capsys, site, "key", "add", "vault", "--new-passphrase-from", "env:KF_NEW_PASSPHRASE"
    )
    assert code == 0
    assert "Added key " in out
    new_id = out.split("Added key ", 1)[1].split()[0]
    # the new passphrase opens the same repository
    assert Repository(FilesystemBackend(site.parent / "vault")).unlock(NEW_PASSPHRASE).cipher

    code, out, _ = run(capsys, site, "key", "list", "vault")
    assert code == 0
    assert f"* {first['id']}" in out
    assert f"  {new_id}" in out

    # the key the inventory uses cannot go while it is in use
    code, _, err = run(capsys, site, "key", "remove", "vault", first["id"])
    assert code == 1
    assert "the inventory's passphrase opens it" in one_line(err)

    code, out, _ = run(capsys, site, "key", "remove", "vault", new_id)
    assert code == 0
    assert f"Removed key {new_id}" in out
    code, out, _ = run(capsys, site, "key", "list", "vault", "--json")
    assert [key["id"] for key in json.loads(out)["keys"]] == [first["id"]]

    # the last key is refused
    code, _, err = run(capsys, site, "key", "remove", "vault", first["id"])
    assert code == 1
    assert "last key" in one_line(err)
    code, _, err = run(capsys, site, "key", "remove", "vault", "0123456789abcdef")
    assert code == 1
    assert "has no key '0123456789abcdef'" in one_line(err)


def test_rotation_through_a_passphrase_file(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    old_id = json.loads(run(capsys, site, "key", "list", "vault", "--json")[1])["keys"][0]["id"]
    secret = tmp_path / "new-passphrase"
    secret.write_text(NEW_PASSPHRASE + "\n")
    code, _, _ = run(capsys, site, "key", "add", "vault", "--new-passphrase-from", f"file:{secret}")
    assert code == 0
    # the inventory moves to the new passphrase; the old key can then go
    monkeypatch.setenv("KF_TEST_PASSPHRASE", NEW_PASSPHRASE)
    assert run(capsys, site, "key", "remove", "vault", old_id)[0] == 0
    keys = json.loads(run(capsys, site, "key", "list", "vault", "--json")[1])["keys"]
    assert len(keys) == 1
    assert keys[0]["current"]
    assert keys[0]["id"] != old_id


def test_key_add_refuses_a_literal_or_missing_passphrase(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    code, _, err = run(capsys, site, "key", "add", "vault", "--new-passphrase-from", NEW_PASSPHRASE)
    assert code == 1
    assert "use env:VAR or file:PATH" in one_line(err)
    code, _, err = run(capsys, site, "key", "add", "vault", "--new-passphrase-from", "env:KF_UNSET")
    assert code == 1
    assert "KF_UNSET is not set" in one_line(err)
    code, _, err = run(
        capsys, site, "key", "add", "vault", "--new-passphrase-from", "env:KF_TEST_PASSPHRASE"
    )
    assert code == 1
    assert "current one" in one_line(err)
    code, _, err = run(capsys, site, "key", "list", "plain")
    assert code == 1  # plain is not initialized
    assert run(capsys, site, "init", "plain")[0] == 0
    code, _, err = run(capsys, site, "key", "list", "plain")
    assert code == 1
    assert "is not encrypted" in one_line(err)


def test_wrong_passphrase_is_one_line(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    monkeypatch.setenv("KF_TEST_PASSPHRASE", WRONG_PASSPHRASE)
    for args in (("check", "vault"), ("stats", "vault"), ("key", "list", "vault")):
        code, out, err = run(capsys, site, *args)
        assert code == 1
        assert out == ""
        assert "matches the passphrase" in one_line(err)


# -- check -----------------------------------------------------------------------------------


def test_check_ok_then_a_flipped_byte_in_a_snapshot_part(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    repository = unlocked(site)
    snapshot_id = write_object_snapshot(repository, "shop", _T0)
    store = VolumeStore(repository)
    backup_tree(store, tree(site.parent / "data", 1), workers=1)

    code, out, _ = run(capsys, site, "check", "vault")
    assert code == 0
    packs = VolumeStore(unlocked(site)).stats().packs
    assert packs >= 1
    assert out.strip() == f"repository vault OK (1 snapshots, {packs} packs)"
    assert run(capsys, site, "check", "vault", "--read-data")[0] == 0

    part = site.parent / "vault" / "snapshots" / snapshot_id / "resources.tar"
    flip_byte(part)
    code, out, err = run(capsys, site, "check", "vault")
    assert code == 1
    problems = out.strip().splitlines()
    assert len(problems) == 1
    assert f"snapshots/{snapshot_id}/resources.tar" in problems[0]
    assert "1 problem found" in one_line(err)

    code, out, _ = run(capsys, site, "check", "vault", "--json")
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert document["snapshots"] == 1


def test_check_read_data_finds_a_flipped_byte_in_a_pack(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    backup_tree(VolumeStore(unlocked(site)), tree(site.parent / "data", 2), workers=1)
    (pack,) = [p for p in (site.parent / "vault" / "volumes" / "packs").rglob("*") if p.is_file()]
    flip_byte(pack, offset=100)
    assert run(capsys, site, "check", "vault")[0] == 0  # structure is intact
    code, out, _ = run(capsys, site, "check", "vault", "--read-data")
    assert code == 1
    assert pack.name in out


def test_check_of_an_unencrypted_repository_compares_digests(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, site, "init", "plain")[0] == 0
    repository = Repository(FilesystemBackend(site.parent / "plain"))
    snapshot_id = write_object_snapshot(repository, "shop", _T0)
    code, out, _ = run(capsys, site, "check", "plain")
    assert code == 0
    assert out.strip() == "repository plain OK (1 snapshots, 0 packs)"
    flip_byte(site.parent / "plain" / "snapshots" / snapshot_id / "resources.tar", offset=3)
    code, out, _ = run(capsys, site, "check", "plain")
    assert code == 1
    assert f"snapshot {snapshot_id}: part resources.tar" in out
    assert "does not match its recorded digest" in out


# -- stats -----------------------------------------------------------------------------------


def test_stats_json(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    repository = unlocked(site)
    write_object_snapshot(repository, "shop", _T0)
    write_object_snapshot(repository, "shop", _T0 + timedelta(hours=1))
    backup_tree(VolumeStore(repository), tree(site.parent / "data", 3), workers=1)

    code, out, _ = run(capsys, site, "stats", "vault", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["repository"] == "vault"
    assert document["encrypted"] is True
    assert document["keys"] == 1
    assert document["snapshots"] == 2
    assert document["snapshotBytes"] > 0
    volume = document["volume"]
    assert volume["snapshots"] == 1
    assert volume["packs"] >= 1
    assert volume["chunks"] >= 2
    assert volume["rawBytes"] >= 301_000
    assert document["totalBytes"] == document["snapshotBytes"] + volume["storedBytes"]

    code, out, _ = run(capsys, site, "stats", "vault")
    assert code == 0
    assert "snapshots:   2" in out
    assert "volume data: 1 snapshots" in out


# -- prune -----------------------------------------------------------------------------------


def test_prune_dry_run_changes_nothing_then_prune(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, site, "init", "vault")[0] == 0
    repository = unlocked(site)
    old = write_object_snapshot(repository, "shop", _T0)
    new = write_object_snapshot(repository, "shop", _T0 + timedelta(hours=1))
    store = VolumeStore(repository)
    first = backup_tree(store, tree(site.parent / "one", 4), workers=1)
    backup_tree(store, tree(site.parent / "two", 5), workers=1)
    store.delete_snapshot(first.snapshot_id)
    before = files_of(site.parent / "vault")

    code, out, _ = run(capsys, site, "prune", "vault", "--dry-run")
    assert code == 0
    assert f"would delete 1: {old}" in out
    assert "Dry run: nothing was changed." in out
    assert files_of(site.parent / "vault") == before
    assert not (site.parent / ".kubeferry").exists()  # no ledger created either

    code, out, _ = run(capsys, site, "prune", "vault", "--dry-run", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["dryRun"] is True
    assert document["retention"][0]["deleted"] == [old]
    assert document["unreferencedChunks"] >= 1  # the deleted volume snapshot's data
    assert files_of(site.parent / "vault") == before

    code, out, _ = run(capsys, site, "prune", "vault")
    assert code == 0
    assert f"deleted 1: {old}" in out
    assert unlocked(site).list_snapshots() == [new]
    # the packs are younger than the grace period: they survive this prune
    assert VolumeStore(unlocked(site)).stats().packs == VolumeStore(repository).stats().packs


def test_prune_removes_unreferenced_volume_data(site: Path) -> None:
    Repository(FilesystemBackend(site.parent / "vault")).initialize("r1", passphrase=PASSPHRASE)
    repository = unlocked(site)
    store = VolumeStore(repository)
    first = backup_tree(store, tree(site.parent / "one", 6), workers=1)
    second = backup_tree(store, tree(site.parent / "two", 7), workers=1)
    store.delete_snapshot(first.snapshot_id)
    raw_before = store.stats().raw_bytes

    result = repo_prune(Workspace.resolve(site), "vault", grace=timedelta(0))
    assert result.volume is not None
    assert result.volume.removed_chunks >= 1
    assert result.volume_snapshots == 1
    fresh = VolumeStore(unlocked(site))
    assert fresh.stats().raw_bytes < raw_before
    assert fresh.list_snapshots() == [second.snapshot_id]
    assert fresh.check(read_data=True) == []


def test_prune_of_an_unencrypted_repository(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, site, "init", "plain")[0] == 0
    code, out, _ = run(capsys, site, "prune", "plain")
    assert code == 0
    assert "no job uses this repository" in out
    assert "unencrypted repository: no volume data" in out
