"""Repository encryption: the cipher, key files, and encrypted snapshots on both backends."""

from __future__ import annotations

import base64
import json
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import KubeferryError
from reconciler.inventory import load_inventory
from reconciler.reconcile._connect import Connections
from reconciler.repository import (
    ENCRYPTION_SCHEME,
    KEYS_PREFIX,
    MARKER_KEY,
    IntegrityError,
    Repository,
    RepositoryBackend,
    RepositoryCipher,
    RepositoryError,
    RepositoryNotInitialized,
    ScryptParams,
    WrongPassphrase,
    _crypto,
    add_key,
    generate_master_key,
    list_key_files,
    remove_key,
    unlock,
)

PASSPHRASE = "correct horse battery staple"
OTHER_PASSPHRASE = "tr0ub4dor&3"
PLAINTEXT = b"apiVersion: v1\nkind: Secret\ndata: {password: hunter2-plaintext-marker}\n"
PARTS = {"resources.tar": PLAINTEXT, "volumes/data-0.idx": b"index " * 40}
METADATA = b'{"kind": "Snapshot", "job": "plaintext-metadata-marker"}'


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default scrypt cost (32 MiB, ~0.2 s) per derivation would make this suite slow."""
    monkeypatch.setattr(_crypto, "DEFAULT_SCRYPT", ScryptParams(n=2**10, r=8, p=1))


@pytest.fixture
def encrypted(backend: RepositoryBackend) -> Repository:
    """An initialized, encrypted repository, unlocked."""
    Repository(backend).initialize("repo-1", passphrase=PASSPHRASE)
    return Repository(backend).unlock(PASSPHRASE)


def _all_objects(backend: RepositoryBackend) -> dict[str, bytes]:
    return {info.key: backend.get(info.key) for info in backend.list()}


# -- the cipher ----------------------------------------------------------------------------


def test_seal_and_open_round_trip() -> None:
    cipher = RepositoryCipher(generate_master_key())
    sealed = cipher.seal(PLAINTEXT, aad=b"snapshots/s1/part")
    assert sealed.startswith(b"KFE1")
    assert len(sealed) == 4 + 12 + len(PLAINTEXT) + 16
    assert PLAINTEXT not in sealed
    assert cipher.open(sealed, aad=b"snapshots/s1/part") == PLAINTEXT
    # a fresh nonce every time: sealing twice never gives the same bytes
    assert cipher.seal(PLAINTEXT, aad=b"k") != cipher.seal(PLAINTEXT, aad=b"k")
    assert cipher.open(cipher.seal(b"", aad=b"k"), aad=b"k") == b""


def test_every_flipped_byte_is_detected() -> None:
    cipher = RepositoryCipher(generate_master_key())
    sealed = cipher.seal(b"a small part", aad=b"key")
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(IntegrityError):
            cipher.open(bytes(tampered), aad=b"key")


def test_truncated_or_extended_blobs_are_detected() -> None:
    cipher = RepositoryCipher(generate_master_key())
    sealed = cipher.seal(b"a small part", aad=b"key")
    for length in range(len(sealed)):
        with pytest.raises(IntegrityError) as caught:
            cipher.open(sealed[:length], aad=b"key")
        assert "\n" not in str(caught.value)
    with pytest.raises(IntegrityError):
        cipher.open(sealed + b"\x00", aad=b"key")
    with pytest.raises(IntegrityError, match="truncated"):
        cipher.open(b"KFE1", aad=b"key")
    with pytest.raises(IntegrityError, match="bad header"):
        cipher.open(b"XXXX" + sealed[4:], aad=b"key")


def test_wrong_aad_or_master_key_is_detected() -> None:
    cipher = RepositoryCipher(generate_master_key())
    sealed = cipher.seal(PLAINTEXT, aad=b"snapshots/a/part")
    with pytest.raises(IntegrityError, match="authentication failed"):
        cipher.open(sealed, aad=b"snapshots/b/part")
    with pytest.raises(IntegrityError, match="authentication failed"):
        RepositoryCipher(generate_master_key()).open(sealed, aad=b"snapshots/a/part")


def test_keyed_ids_depend_on_the_key() -> None:
    master = generate_master_key()
    cipher, same, other = (
        RepositoryCipher(master),
        RepositoryCipher(master),
        RepositoryCipher(generate_master_key()),
    )
    content_id = cipher.keyed_id(b"chunk")
    assert len(content_id) == 64
    assert int(content_id, 16) >= 0
    assert content_id == same.keyed_id(b"chunk")
    assert content_id != cipher.keyed_id(b"chunk2")
    assert content_id != other.keyed_id(b"chunk")


def test_the_cipher_never_shows_its_key() -> None:
    master = generate_master_key()
    cipher = RepositoryCipher(master)
    for text in (repr(cipher), str(cipher)):
        assert master.hex() not in text
        assert repr(master) not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(cipher)
    with pytest.raises(RepositoryError, match="32 bytes"):
        RepositoryCipher(b"short")


# -- key files -----------------------------------------------------------------------------


def test_initialize_with_a_passphrase_writes_a_key_file_then_the_marker(
    backend: RepositoryBackend,
) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    marker = Repository(backend).initialize("repo-1", passphrase=PASSPHRASE, now=created)
    assert marker.encrypted
    document = json.loads(backend.get(MARKER_KEY))
    assert document["encryption"] == ENCRYPTION_SCHEME == "aes-256-gcm"
    assert document["id"] == "repo-1"
    key_files = list_key_files(backend)
    assert len(key_files) == 1
    assert document["keyCheck"] == key_files[0].key_check
    stored = json.loads(backend.get(f"{KEYS_PREFIX}{key_files[0].key_id}.json"))
    assert stored["format"] == "kubeferry-key"
    assert stored["kdf"] == {"name": "scrypt", "n": 2**10, "r": 8, "p": 1}
    assert set(stored) >= {"id", "salt", "nonce", "wrapped", "created", "cipher"}
    everything = b"".join(_all_objects(backend).values())
    assert PASSPHRASE.encode() not in everything
    assert Repository(backend).encrypted


def test_default_scrypt_parameters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.undo()  # the real defaults, once
    assert ScryptParams() == ScryptParams(n=2**15, r=8, p=1)
    repository = Repository(_filesystem(tmp_path))
    repository.initialize("repo-1", passphrase=PASSPHRASE)
    (key_file,) = list_key_files(repository)
    assert (key_file.kdf.n, key_file.kdf.r, key_file.kdf.p) == (2**15, 8, 1)
    assert repository.unlock(PASSPHRASE).cipher is not None


def _filesystem(tmp_path: Path) -> RepositoryBackend:
    from reconciler.repository import FilesystemBackend

    return FilesystemBackend(tmp_path / "repo")


def test_wrong_passphrase_is_a_clear_error_without_the_passphrase(
    backend: RepositoryBackend,
) -> None:
    Repository(backend).initialize("repo-1", passphrase=PASSPHRASE)
    with pytest.raises(WrongPassphrase) as caught:
        Repository(backend).unlock("not the passphrase")
    message = str(caught.value)
    assert message.startswith(f"no key of repository {backend.location} matches the passphrase")
    assert "not the passphrase" not in message
    assert PASSPHRASE not in message
    assert isinstance(caught.value, RepositoryError)


def test_two_keys_unlock_the_same_master_key(encrypted: Repository) -> None:
    cipher = encrypted.cipher
    assert cipher is not None
    encrypted.write_snapshot("s1", PARTS, METADATA)
    first = list_key_files(encrypted)[0].key_id
    second = add_key(encrypted, cipher, OTHER_PASSPHRASE)
    assert sorted(k.key_id for k in list_key_files(encrypted)) == sorted([first, second])
    for passphrase in (PASSPHRASE, OTHER_PASSPHRASE):
        unlocked = Repository(encrypted.backend).unlock(passphrase)
        assert unlocked.cipher is not None
        assert unlocked.cipher.key_check == cipher.key_check
        assert unlocked.read_snapshot_part("s1", "resources.tar") == PLAINTEXT
    # rotate: drop the first passphrase; the data stays readable with the second
    remove_key(encrypted, cipher, first)
    with pytest.raises(WrongPassphrase):
        Repository(encrypted.backend).unlock(PASSPHRASE)
    again = Repository(encrypted.backend).unlock(OTHER_PASSPHRASE)
    assert again.read_snapshot_metadata("s1") == METADATA
    with pytest.raises(RepositoryError, match="last key") as caught:
        remove_key(encrypted, cipher, second)
    assert caught.value.hint == "add another key first"
    assert [k.key_id for k in list_key_files(encrypted)] == [second]
    with pytest.raises(RepositoryError, match="no key"):
        remove_key(encrypted, cipher, first)


def test_keys_of_another_master_key_are_refused(encrypted: Repository) -> None:
    foreign = RepositoryCipher(generate_master_key())
    with pytest.raises(RepositoryError, match="not this repository's"):
        add_key(encrypted, foreign, OTHER_PASSPHRASE)
    # a stray key file of another master key (a lost initialisation race) is never used,
    # even with the same passphrase, and does not count as a spare for remove_key
    add_key(encrypted.backend, foreign, PASSPHRASE)
    assert len(list_key_files(encrypted)) == 2
    unlocked = Repository(encrypted.backend).unlock(PASSPHRASE)
    assert unlocked.cipher is not None
    assert encrypted.cipher is not None
    assert unlocked.cipher.key_check == encrypted.cipher.key_check
    (own,) = (k for k in list_key_files(encrypted) if k.key_check == encrypted.cipher.key_check)
    with pytest.raises(RepositoryError, match="last key"):
        remove_key(encrypted, encrypted.cipher, own.key_id)


def test_empty_passphrases_are_rejected(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    with pytest.raises(RepositoryError, match="passphrase is empty"):
        repository.initialize("repo-1", passphrase="")
    assert list(backend.list()) == []
    repository.initialize("repo-1", passphrase=PASSPHRASE)
    unlocked = repository.unlock(PASSPHRASE)
    assert unlocked.cipher is not None
    with pytest.raises(RepositoryError, match="passphrase is empty"):
        add_key(unlocked, unlocked.cipher, "")
    with pytest.raises(RepositoryError, match="passphrase is empty"):
        repository.unlock("")
    with pytest.raises(RepositoryError, match="passphrase is empty"):
        unlock(backend, "")


def test_tampered_or_hostile_key_files(encrypted: Repository) -> None:
    backend = encrypted.backend
    (key_file,) = list_key_files(backend)
    key = f"{KEYS_PREFIX}{key_file.key_id}.json"
    original = json.loads(backend.get(key))
    wrapped = bytearray(key_file.wrapped)
    wrapped[0] ^= 0x80
    tampered = dict(original, wrapped=_crypto._b64(bytes(wrapped)))
    backend.put(key, json.dumps(tampered).encode())
    with pytest.raises(WrongPassphrase):
        Repository(backend).unlock(PASSPHRASE)
    # a key file must not make us allocate gigabytes
    hostile = dict(original, kdf={"name": "scrypt", "n": 2**24, "r": 8, "p": 1})
    backend.put(key, json.dumps(hostile).encode())
    with pytest.raises(RepositoryError, match="unsupported scrypt parameters"):
        Repository(backend).unlock(PASSPHRASE)
    backend.put(key, b"not json")
    with pytest.raises(RepositoryError, match="not a kubeferry key file"):
        Repository(backend).unlock(PASSPHRASE)
    backend.put(key, json.dumps(original).encode())
    assert Repository(backend).unlock(PASSPHRASE).cipher is not None


def test_an_encrypted_marker_without_keys_is_a_clear_error(encrypted: Repository) -> None:
    for key_file in list_key_files(encrypted):
        encrypted.backend.delete(f"{KEYS_PREFIX}{key_file.key_id}.json")
    with pytest.raises(RepositoryError, match="has no key files"):
        Repository(encrypted.backend).unlock(PASSPHRASE)


# -- initialisation ------------------------------------------------------------------------


def test_initialize_with_a_passphrase_is_idempotent(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    marker = repository.initialize("repo-1", passphrase=PASSPHRASE)
    assert repository.initialize("repo-1", passphrase=PASSPHRASE) == marker
    assert repository.initialize("repo-1") == marker  # no passphrase: nothing to check
    assert len(list_key_files(backend)) == 1  # no stray key file from the repeats
    with pytest.raises(WrongPassphrase):
        repository.initialize("repo-1", passphrase=OTHER_PASSPHRASE)
    with pytest.raises(RepositoryError, match="already initialized as repository 'repo-1'"):
        repository.initialize("repo-2", passphrase=PASSPHRASE)
    assert len(list_key_files(backend)) == 1


def test_a_passphrase_for_an_unencrypted_repository_is_refused(
    backend: RepositoryBackend,
) -> None:
    repository = Repository(backend)
    repository.initialize("repo-1")
    assert not repository.encrypted
    message = f"repository {backend.location} is not encrypted but a passphrase is configured"
    with pytest.raises(RepositoryError, match="not encrypted but a passphrase is configured"):
        repository.initialize("repo-1", passphrase=PASSPHRASE)
    with pytest.raises(RepositoryError) as caught:
        repository.unlock(PASSPHRASE)
    assert caught.value.message == message
    with_cipher = Repository(backend, RepositoryCipher(generate_master_key()))
    with pytest.raises(RepositoryError, match="not encrypted but a passphrase is configured"):
        with_cipher.write_snapshot("s1", PARTS, METADATA)
    with pytest.raises(RepositoryError, match="not encrypted but a passphrase is configured"):
        with_cipher.read_snapshot_metadata("s1")
    assert list(backend.list("snapshots/")) == []
    assert list(backend.list(KEYS_PREFIX)) == []


def test_concurrent_encrypted_initialize_leaves_one_usable_key(
    backend: RepositoryBackend,
) -> None:
    barrier = threading.Barrier(4)

    def attempt(index: int) -> str:
        barrier.wait(timeout=30)
        try:
            return Repository(backend).initialize(f"repo-{index}", passphrase=PASSPHRASE).key_check
        except RepositoryError:
            return "refused"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    winners = {outcome for outcome in outcomes if outcome != "refused"}
    assert len(winners) == 1
    # the losers removed their key files: only the winner's master key remains
    assert [k.key_check for k in list_key_files(backend)] == list(winners)
    unlocked = Repository(backend).unlock(PASSPHRASE)
    assert unlocked.cipher is not None
    assert unlocked.cipher.key_check == winners.pop()


def test_uninitialized_repository_with_a_cipher(backend: RepositoryBackend) -> None:
    repository = Repository(backend, RepositoryCipher(generate_master_key()))
    with pytest.raises(RepositoryNotInitialized):
        repository.write_snapshot("s1", PARTS, METADATA)
    with pytest.raises(RepositoryNotInitialized):
        _ = Repository(backend).encrypted
    assert list(backend.list()) == []


# -- encrypted snapshots -------------------------------------------------------------------


def test_encrypted_snapshot_round_trip_and_nothing_in_clear(encrypted: Repository) -> None:
    encrypted.write_snapshot("s1", PARTS, METADATA)
    assert encrypted.list_snapshots() == ["s1"]
    assert encrypted.list_snapshot_parts("s1") == sorted(PARTS)
    assert encrypted.read_snapshot_metadata("s1") == METADATA
    for name, data in PARTS.items():
        assert encrypted.read_snapshot_part("s1", name) == data
    stored = _all_objects(encrypted.backend)
    for key in [f"snapshots/s1/{name}" for name in PARTS] + ["snapshots/s1/metadata.json"]:
        assert stored[key].startswith(b"KFE1")
    everything = b"".join(stored.values())
    assert b"hunter2-plaintext-marker" not in everything
    assert b"plaintext-metadata-marker" not in everything
    assert b"index index" not in everything


def test_encrypted_parts_on_disk_hold_no_plaintext(tmp_path: Path) -> None:
    backend = _filesystem(tmp_path)
    Repository(backend).initialize("repo-1", passphrase=PASSPHRASE)
    Repository(backend).unlock(PASSPHRASE).write_snapshot("s1", PARTS, METADATA)
    files = [path for path in (tmp_path / "repo").rglob("*") if path.is_file()]
    assert len(files) == 1 + 1 + len(PARTS) + 1  # marker, key, parts, metadata
    for path in files:
        content = path.read_bytes()
        assert b"hunter2-plaintext-marker" not in content
        assert b"plaintext-metadata-marker" not in content
        assert PASSPHRASE.encode() not in content


@pytest.mark.parametrize("position", [0, 3, 4, 15, 16, 40, -17, -1])
def test_a_flipped_byte_in_a_stored_part_is_an_integrity_error(
    encrypted: Repository, position: int
) -> None:
    encrypted.write_snapshot("s1", PARTS, METADATA)
    for key in ("snapshots/s1/resources.tar", "snapshots/s1/metadata.json"):
        original = encrypted.backend.get(key)
        tampered = bytearray(original)
        tampered[position] ^= 0x40
        encrypted.backend.put(key, bytes(tampered))
        read = (
            encrypted.read_snapshot_metadata
            if key.endswith("metadata.json")
            else lambda snapshot: encrypted.read_snapshot_part(snapshot, "resources.tar")
        )
        with pytest.raises(IntegrityError) as caught:
            read("s1")
        message = str(caught.value)
        assert message.startswith(f"{encrypted.location}: {key}: ")
        assert "\n" not in message
        encrypted.backend.put(key, original)
    assert encrypted.read_snapshot_part("s1", "resources.tar") == PLAINTEXT


def test_truncated_stored_part_is_an_integrity_error(encrypted: Repository) -> None:
    encrypted.write_snapshot("s1", PARTS, METADATA)
    key = "snapshots/s1/resources.tar"
    encrypted.backend.put(key, encrypted.backend.get(key)[:-1])
    with pytest.raises(IntegrityError, match=r"resources\.tar"):
        encrypted.read_snapshot_part("s1", "resources.tar")
    encrypted.backend.put(key, b"")
    with pytest.raises(IntegrityError, match="truncated"):
        encrypted.read_snapshot_part("s1", "resources.tar")


def test_parts_swapped_between_keys_are_detected(encrypted: Repository) -> None:
    encrypted.write_snapshot("s1", PARTS, METADATA)
    encrypted.write_snapshot("s2", {"resources.tar": b"other", "volumes/data-0.idx": b"i"}, b"{}")
    backend = encrypted.backend
    # within a snapshot
    a, b = "snapshots/s1/resources.tar", "snapshots/s1/volumes/data-0.idx"
    blob_a, blob_b = backend.get(a), backend.get(b)
    backend.put(a, blob_b)
    backend.put(b, blob_a)
    with pytest.raises(IntegrityError):
        encrypted.read_snapshot_part("s1", "resources.tar")
    with pytest.raises(IntegrityError):
        encrypted.read_snapshot_part("s1", "volumes/data-0.idx")
    # between snapshots: an older snapshot's metadata cannot stand in for another's
    backend.put("snapshots/s2/metadata.json", backend.get("snapshots/s1/metadata.json"))
    with pytest.raises(IntegrityError, match=r"snapshots/s2/metadata\.json"):
        encrypted.read_snapshot_metadata("s2")


def test_another_repositorys_key_is_refused(encrypted: Repository, tmp_path: Path) -> None:
    other = Repository(_filesystem(tmp_path / "other"))
    other.initialize("repo-2", passphrase=PASSPHRASE)
    foreign = Repository(encrypted.backend, other.unlock(PASSPHRASE).cipher)
    with pytest.raises(RepositoryError, match="belongs to another repository"):
        foreign.write_snapshot("s1", PARTS, METADATA)
    assert encrypted.list_snapshots() == []


def test_encrypted_repository_without_a_passphrase(encrypted: Repository) -> None:
    encrypted.write_snapshot("s1", PARTS, METADATA)
    keyless = Repository(encrypted.backend)
    assert keyless.encrypted
    expected = f"repository {keyless.location} is encrypted: set spec.encryption.passphraseFrom"
    for attempt in (
        lambda: keyless.write_snapshot("s2", PARTS, METADATA),
        lambda: keyless.read_snapshot_metadata("s1"),
        lambda: keyless.read_snapshot_part("s1", "resources.tar"),
    ):
        with pytest.raises(RepositoryError) as caught:
            attempt()
        assert caught.value.message == expected
    assert list(encrypted.backend.list("snapshots/s2/")) == []
    # listing, deleting and gc need no key
    assert keyless.list_snapshots() == ["s1"]
    assert keyless.list_snapshot_parts("s1") == sorted(PARTS)
    encrypted.backend.put("snapshots/crashed/resources.tar", b"KFE1...")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert keyless.gc_incomplete(timedelta(hours=1), now=later) == ["crashed"]
    assert keyless.delete_snapshot("s1")
    assert keyless.list_snapshots() == []


def test_unencrypted_repositories_still_work(backend: RepositoryBackend) -> None:
    repository = Repository(backend)
    repository.initialize("repo-1")
    assert b"encryption" not in backend.get(MARKER_KEY)
    repository.write_snapshot("s1", PARTS, METADATA)
    assert backend.get("snapshots/s1/resources.tar") == PLAINTEXT
    assert repository.read_snapshot_part("s1", "resources.tar") == PLAINTEXT


# -- Connections ---------------------------------------------------------------------------


def _inventory(tmp_path: Path, passphrase_from: str) -> Path:
    directory = tmp_path / "inventory"
    directory.mkdir(exist_ok=True)
    (directory / "repo.yaml").write_text(
        "apiVersion: kubeferry.io/v1alpha1\n"
        "kind: ReplicationRepository\n"
        "metadata: {name: vault}\n"
        "spec:\n"
        "  filesystem: {path: ./repository}\n"
        f"  encryption: {{passphraseFrom: {passphrase_from}}}\n"
    )
    return directory


@pytest.fixture
def env_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    monkeypatch.setenv("KF_TEST_PASSPHRASE", PASSPHRASE)
    connections = Connections(
        load_inventory(_inventory(tmp_path, "{env: {var: KF_TEST_PASSPHRASE}}"))
    )
    yield connections
    connections.close()


def test_connections_unlock_with_an_env_passphrase(
    env_connections: Connections, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert env_connections.passphrase("vault") == PASSPHRASE
    fresh = env_connections.repository("vault")
    assert not fresh.is_initialized()
    assert fresh.cipher is None
    # what ActionRunner._repository does for a new repository
    fresh.initialize("repo-1", passphrase=env_connections.passphrase("vault"))
    repository = env_connections.repository("vault")
    assert repository.cipher is not None
    assert env_connections.repository("vault") is repository  # cached once unlocked
    repository.write_snapshot("s1", PARTS, METADATA)
    assert repository.read_snapshot_part("s1", "resources.tar") == PLAINTEXT
    assert b"hunter2-plaintext-marker" not in repository.backend.get("snapshots/s1/resources.tar")
    for text in (repr(repository), repr(repository.cipher), repr(env_connections)):
        assert PASSPHRASE not in text

    # a wrong or missing passphrase: clear errors that never show the value
    other = Connections(env_connections.inventory)
    monkeypatch.setenv("KF_TEST_PASSPHRASE", "a wrong passphrase")
    with pytest.raises(WrongPassphrase) as wrong:
        other.repository("vault")
    assert "a wrong passphrase" not in str(wrong.value)
    monkeypatch.delenv("KF_TEST_PASSPHRASE")
    with pytest.raises(KubeferryError, match="KF_TEST_PASSPHRASE is not set"):
        other.repository("vault")
    monkeypatch.setenv("KF_TEST_PASSPHRASE", "")
    with pytest.raises(KubeferryError, match="KF_TEST_PASSPHRASE is empty"):
        other.passphrase("vault")


def test_connections_read_a_passphrase_file(tmp_path: Path) -> None:
    inventory = load_inventory(_inventory(tmp_path, "{file: {path: ./passphrase.txt}}"))
    connections = Connections(inventory)
    with pytest.raises(KubeferryError, match="cannot read the passphrase file"):
        connections.passphrase("vault")
    secret_file = tmp_path / "inventory" / "passphrase.txt"
    secret_file.write_text(PASSPHRASE + "\n")
    assert connections.passphrase("vault") == PASSPHRASE  # one trailing newline stripped
    secret_file.write_bytes(PASSPHRASE.encode() + b"\r\n")
    assert connections.passphrase("vault") == PASSPHRASE
    secret_file.write_text(PASSPHRASE + "\n\n")
    assert connections.passphrase("vault") == PASSPHRASE + "\n"  # only one
    secret_file.write_text("\n")
    with pytest.raises(KubeferryError, match="is empty"):
        connections.passphrase("vault")


def test_connections_refuse_a_passphrase_for_an_unencrypted_repository(
    env_connections: Connections,
) -> None:
    Repository(env_connections.repository("vault").backend).initialize("repo-1")
    with pytest.raises(RepositoryError, match="not encrypted but a passphrase is configured"):
        env_connections.repository("vault")


def test_connections_without_encryption_return_a_keyless_repository(tmp_path: Path) -> None:
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "repo.yaml").write_text(
        "apiVersion: kubeferry.io/v1alpha1\nkind: ReplicationRepository\n"
        "metadata: {name: plain}\nspec: {filesystem: {path: ./repository}}\n"
    )
    connections = Connections(load_inventory(directory))
    assert connections.passphrase("plain") is None
    repository = connections.repository("plain")
    Repository(repository.backend).initialize("repo-1", passphrase=PASSPHRASE)
    with pytest.raises(RepositoryError, match=r"set spec\.encryption\.passphraseFrom"):
        repository.write_snapshot("s1", PARTS, METADATA)


class _FakeClient:
    """Stands in for KubeClient.get on the cluster holding the passphrase Secret."""

    def __init__(self, secret: dict[str, object] | None) -> None:
        self.secret = secret
        self.asked: list[tuple[str, str, str, str | None]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> object:
        self.asked.append((api_version, kind, name, namespace))
        return self.secret


def test_connections_read_a_passphrase_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _inventory(
        tmp_path, "{secretRef: {cluster: controller, namespace: kubeferry, name: vault-key}}"
    )
    (directory / "cluster.yaml").write_text(
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\n"
        "metadata: {name: controller}\nspec: {context: controller, role: controller}\n"
    )
    connections = Connections(load_inventory(directory))
    encoded = base64.b64encode(PASSPHRASE.encode()).decode()
    fake = _FakeClient({"data": {"passphrase": encoded}})
    monkeypatch.setattr(connections, "client", lambda cluster: fake)
    assert connections.passphrase("vault") == PASSPHRASE
    assert fake.asked == [("v1", "Secret", "vault-key", "kubeferry")]
    fake.secret = {"data": {"other": encoded}}
    with pytest.raises(KubeferryError, match="needs the key passphrase") as caught:
        connections.passphrase("vault")
    assert "secret kubeferry/vault-key on cluster controller" in str(caught.value)
    fake.secret = {"data": {"passphrase": "%%% not base64"}}
    with pytest.raises(KubeferryError, match="needs the key passphrase"):
        connections.passphrase("vault")
    fake.secret = None
    with pytest.raises(KubeferryError, match="not found"):
        connections.passphrase("vault")
