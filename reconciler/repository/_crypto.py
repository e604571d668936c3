"""Client-side encryption of a repository: one master key, wrapped by passphrase keys.

- Each encrypted repository has a random 32-byte master key. It never leaves memory in
  clear: `keys/<key-id>.json` objects hold it wrapped (AES-256-GCM) under a key derived
  from a passphrase with scrypt. Several key files may wrap the same master key, so a
  passphrase can be added or rotated without re-encrypting any data.
- Subkeys are derived from the master key with HKDF-SHA256: one for AES-256-GCM on
  objects, one for keyed content ids (BLAKE2b-256), one for the public "key check" that
  ties key files and the marker to the master key they belong to.
- A sealed object is ``b"KFE1" + 12-byte random nonce + ciphertext + 16-byte tag``; the
  caller's associated data (the object key) is authenticated, so an object moved to
  another key does not open.

Passphrases and keys are never logged, put in messages or shown by ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from reconciler.repository._errors import (
    IntegrityError,
    ObjectNotFound,
    RepositoryError,
    WrongPassphrase,
)
from reconciler.repository._transport import RepositoryBackend

if TYPE_CHECKING:
    from reconciler.repository._repository import Repository

ENCRYPTION_SCHEME = "aes-256-gcm"
KEYS_PREFIX = "keys/"
MAGIC = b"KFE1"
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
_KEY_FORMAT = "kubeferry-key"
_KEY_FORMAT_VERSION = 1
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_INFO_DATA = b"kubeferry/v1 data encryption"
_INFO_ID = b"kubeferry/v1 content id"
_INFO_CHECK = b"kubeferry/v1 key check"
_INFO_SUBKEY = b"kubeferry/v1 subkey "
_WRAP_AAD = b"kubeferry/v1 wrapped master key "


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost parameters; stored in every key file so the defaults can change later."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    # bounds on what a key file may ask for: a forged file must not exhaust memory or time
    def validate(self, where: str) -> ScryptParams:
        n_ok = isinstance(self.n, int) and 2 <= self.n <= 2**20 and self.n & (self.n - 1) == 0
        r_ok = isinstance(self.r, int) and 1 <= self.r <= 32
        p_ok = isinstance(self.p, int) and 1 <= self.p <= 16
        if not (n_ok and r_ok and p_ok) or 128 * self.n * self.r > 1 << 30:
            raise RepositoryError(
                f"{where}: unsupported scrypt parameters n={self.n} r={self.r} p={self.p}"
            )
        return self

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        kdf = Scrypt(
            salt=salt,
            length=KEY_SIZE,
            n=self.n,
            r=self.r,
            p=self.p,
        )
        return kdf.derive(_passphrase_bytes(passphrase))


DEFAULT_SCRYPT = ScryptParams()


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or passphrase == "":
        raise RepositoryError("the encryption passphrase is empty")
    # the same passphrase typed on another system may arrive in another Unicode form
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def check_passphrase(passphrase: str) -> None:
    """Raise `RepositoryError` for an unusable (empty) passphrase; never shows it."""
    _passphrase_bytes(passphrase)


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(master)


def generate_master_key() -> bytes:
    """A fresh random 32-byte master key."""
    return secrets.token_bytes(KEY_SIZE)


class RepositoryCipher:
    """Authenticated encryption of repository objects with keys derived from a master key."""

    __slots__ = ("_aead", "_id_key", "_key_check", "_master")

    def __init__(self, master_key: bytes) -> None:
        if not isinstance(master_key, bytes) or len(master_key) != KEY_SIZE:
            raise RepositoryError(f"a repository master key is {KEY_SIZE} bytes")
        self._master = master_key
        self._aead = AESGCM(_hkdf(master_key, _INFO_DATA))
        self._id_key = _hkdf(master_key, _INFO_ID)
        self._key_check = _hkdf(master_key, _INFO_CHECK).hex()

    def __repr__(self) -> str:
        return f"RepositoryCipher({ENCRYPTION_SCHEME}, key check {self._key_check[:8]}...)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a RepositoryCipher holds key material and cannot be pickled")

    @property
    def key_check(self) -> str:
        """A public, one-way fingerprint of the master key (hex); safe to store and show."""
        return self._key_check

    def seal(self, data: bytes, *, aad: bytes) -> bytes:
        """Encrypt and authenticate `data`, binding it to `aad` (e.g. the object key)."""
        nonce = os.urandom(NONCE_SIZE)
        return MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), MAGIC + bytes(aad))

    def open(self, blob: bytes | memoryview, *, aad: bytes) -> bytes:
        """Decrypt a sealed object; `IntegrityError` on any modification, truncation or wrong aad."""
        if len(blob) < len(MAGIC) + NONCE_SIZE + TAG_SIZE:
            raise IntegrityError(f"sealed object is truncated ({len(blob)} bytes)")
        view = memoryview(blob)  # slices below are views: chunks are opened in place in packs
        if view[: len(MAGIC)] != MAGIC:
            raise IntegrityError("not a kubeferry sealed object (bad header)")
        nonce = bytes(view[len(MAGIC) : len(MAGIC) + NONCE_SIZE])
        try:
            return self._aead.decrypt(nonce, view[len(MAGIC) + NONCE_SIZE :], MAGIC + bytes(aad))
        except InvalidTag:
            raise IntegrityError(
                "authentication failed: the object was modified, moved from another key, "
                "or sealed with another master key"
            ) from None

    def subkey(self, info: bytes) -> bytes:
        """A 32-byte key for another purpose (e.g. keyed chunk ids), derived with HKDF.

        `info` names the purpose; it is prefixed with ``kubeferry/v1 subkey `` so no
        caller can obtain the encryption, id or key-check keys above.
        """
        if not isinstance(info, bytes) or not info:
            raise RepositoryError("a subkey needs a non-empty purpose (info)")
        return _hkdf(self._master, _INFO_SUBKEY + info)

    def keyed_id(self, data: bytes) -> str:
        """A content id that reveals nothing without the key: keyed BLAKE2b-256, hex."""
        return hashlib.blake2b(data, key=self._id_key, digest_size=32).hexdigest()


# -- key files -----------------------------------------------------------------------------


def _backend_of(target: RepositoryBackend | Repository) -> RepositoryBackend:
    if isinstance(target, RepositoryBackend):
        return target
    return target.backend


def _cipher_of(master: RepositoryCipher | bytes) -> RepositoryCipher:
    return master if isinstance(master, RepositoryCipher) else RepositoryCipher(master)


def key_object(key_id: str) -> str:
    return f"{KEYS_PREFIX}{key_id}.json"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class KeyFile:
    """One `keys/<id>.json` document: the master key wrapped under a passphrase key."""

    key_id: str
    kdf: ScryptParams
    salt: bytes
    nonce: bytes
    wrapped: bytes
    key_check: str
    created: datetime

    def __repr__(self) -> str:
        return f"KeyFile({self.key_id}, created {self.created.isoformat(timespec='seconds')})"

    def to_json(self) -> bytes:
        document = {
            "format": _KEY_FORMAT,
            "formatVersion": _KEY_FORMAT_VERSION,
            "id": self.key_id,
            "kdf": {"name": "scrypt", "n": self.kdf.n, "r": self.kdf.r, "p": self.kdf.p},
            "salt": _b64(self.salt),
            "cipher": ENCRYPTION_SCHEME,
            "nonce": _b64(self.nonce),
            "wrapped": _b64(self.wrapped),
            "keyCheck": self.key_check,
            "created": self.created.astimezone(UTC).isoformat(timespec="seconds"),
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> KeyFile:
        bad = RepositoryError(f"{where}: not a kubeferry key file")
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != _KEY_FORMAT:
                raise bad
            if document.get("formatVersion") != _KEY_FORMAT_VERSION:
                raise RepositoryError(
                    f"{where}: key file format {document.get('formatVersion')!r} is not "
                    f"supported ({_KEY_FORMAT_VERSION})",
                    hint="upgrade kubeferry",
                )
            kdf = document["kdf"]
            if kdf.get("name") != "scrypt" or document.get("cipher") != ENCRYPTION_SCHEME:
                raise RepositoryError(f"{where}: unsupported key derivation or cipher")
            params = ScryptParams(kdf["n"], kdf["r"], kdf["p"]).validate(where)
            key_id, key_check = document["id"], document["keyCheck"]
            if not isinstance(key_id, str) or not isinstance(key_check, str):
                raise bad
            return cls(
                key_id=key_id,
                kdf=params,
                salt=base64.b64decode(document["salt"], validate=True),
                nonce=base64.b64decode(document["nonce"], validate=True),
                wrapped=base64.b64decode(document["wrapped"], validate=True),
                key_check=key_check,
                created=datetime.fromisoformat(str(document["created"])),
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise bad from None

    def unwrap(self, passphrase: str) -> bytes | None:
        """The master key, or None if the passphrase does not open this key file."""
        wrapping = self.kdf.derive(passphrase, self.salt)
        try:
            master = AESGCM(wrapping).decrypt(
                self.nonce, self.wrapped, _WRAP_AAD + self.key_id.encode()
            )
        except InvalidTag:
            return None
        return master if len(master) == KEY_SIZE else None


def _wrap(
    master: RepositoryCipher, raw: bytes, passphrase: str, kdf: ScryptParams, key_id: str
) -> KeyFile:
    salt = os.urandom(16)
    nonce = os.urandom(NONCE_SIZE)
    wrapping = kdf.derive(passphrase, salt)
    wrapped = AESGCM(wrapping).encrypt(nonce, raw, _WRAP_AAD + key_id.encode())
    return KeyFile(key_id, kdf, salt, nonce, wrapped, master.key_check, datetime.now(UTC))


def list_key_files(target: RepositoryBackend | Repository) -> list[KeyFile]:
    """Every readable key file, sorted by id (files that are not key files are skipped)."""
    backend = _backend_of(target)
    found = []
    for info in backend.list(KEYS_PREFIX):
        name = info.key[len(KEYS_PREFIX) :]
        if not name.endswith(".json") or not _KEY_ID.fullmatch(name[: -len(".json")]):
            continue
        try:
            key_file = KeyFile.from_json(backend.get(info.key), f"{backend.location}/{info.key}")
        except ObjectNotFound:
            continue  # removed since the listing
        if key_file.key_id == name[: -len(".json")]:
            found.append(key_file)
    return sorted(found, key=lambda key_file: key_file.key_id)


def add_key(
    target: RepositoryBackend | Repository,
    master: RepositoryCipher | bytes,
    passphrase: str,
    *,
    kdf: ScryptParams | None = None,
) -> str:
    """Store a new key file wrapping `master` under `passphrase`; return its key id.

    `kdf` defaults to `DEFAULT_SCRYPT` (looked up at call time). Given a `Repository`
    that is initialized, `master` must be its master key.
    """
    backend = _backend_of(target)
    cipher = _cipher_of(master)
    check_passphrase(passphrase)
    kdf = (kdf or DEFAULT_SCRYPT).validate("add_key")
    if not isinstance(target, RepositoryBackend) and target.is_initialized():
        marker = target.read_marker()
        if marker.key_check is None or not hmac.compare_digest(marker.key_check, cipher.key_check):
            raise RepositoryError(
                f"{backend.location}: the master key given is not this repository's"
            )
    key_id = secrets.token_hex(8)
    key_file = _wrap(cipher, cipher._master, passphrase, kdf, key_id)
    if not backend.put_if_absent(key_object(key_id), key_file.to_json()):
        raise RepositoryError(f"{backend.location}: key {key_id} already exists")
    return key_id


def remove_key(
    target: RepositoryBackend | Repository,
    master: RepositoryCipher | bytes,
    key_id: str,
) -> None:
    """Delete key file `key_id`; refuse if no other key file opens the same master key.

    The caller proves it holds the master key (an unlocked cipher), so a key file can
    only be removed by someone who could add one back.
    """
    backend = _backend_of(target)
    cipher = _cipher_of(master)
    key_files = [k for k in list_key_files(backend) if k.key_check == cipher.key_check]
    if key_id not in {k.key_id for k in key_files}:
        raise RepositoryError(f"{backend.location}: no key {key_id!r} for this master key")
    if len(key_files) == 1:
        raise RepositoryError(
            f"{backend.location}: refusing to remove key {key_id}: it is the last key of "
            "the repository (the data could never be decrypted again)",
            hint="add another key first",
        )
    backend.delete(key_object(key_id))


def unlock(
    target: RepositoryBackend | Repository,
    passphrase: str,
    *,
    key_check: str | None = None,
) -> RepositoryCipher:
    """Try every key file with `passphrase`; the cipher of the first that opens.

    `key_check` (from the marker) rejects key files of another master key, such as the
    one left by the loser of two concurrent initialisations.
    """
    backend = _backend_of(target)
    check_passphrase(passphrase)
    key_files = list_key_files(backend)
    if key_check is not None:
        key_files = [k for k in key_files if hmac.compare_digest(k.key_check, key_check)]
    if not key_files:
        raise RepositoryError(
            f"repository {backend.location} is encrypted but has no key files ({KEYS_PREFIX})"
        )
    for key_file in key_files:
        raw = key_file.unwrap(passphrase)
        if raw is None:
            continue
        cipher = RepositoryCipher(raw)
        if hmac.compare_digest(cipher.key_check, key_file.key_check):
            return cipher
    raise WrongPassphrase(
        f"no key of repository {backend.location} matches the passphrase",
        hint="check spec.encryption.passphraseFrom",
    )
