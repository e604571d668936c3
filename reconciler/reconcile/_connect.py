"""Connections to the inventory's clusters and repositories, opened lazily and shared."""

from __future__ import annotations

import base64
import binascii
import os
import threading
from pathlib import Path

from reconciler.errors import KubeferryError
from reconciler.hosting import MinioSettings, read_credentials
from reconciler.inventory import Inventory, ReplicationRepository
from reconciler.kube import KubeClient
from reconciler.repository import (
    EnvCredentials,
    FileCredentials,
    Repository,
    RepositoryBackend,
    S3Credentials,
    open_backend,
)


class Connections:
    """One KubeClient per cluster and one Repository per repository, created on first use.

    The Repository of an encrypted, initialized repository comes unlocked with the
    passphrase from ``spec.encryption.passphraseFrom``; passphrases are resolved on demand
    and never kept, logged or put in messages.
    """

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._clients: dict[str, KubeClient] = {}
        self._backends: dict[str, RepositoryBackend] = {}
        self._repositories: dict[str, Repository] = {}
        self._lock = threading.Lock()

    def client(self, cluster: str) -> KubeClient:
        with self._lock:
            if cluster not in self._clients:
                declared = self.inventory.clusters.get(cluster)
                if declared is None:
                    raise KubeferryError(f"cluster {cluster!r} is not in the inventory")
                self._clients[cluster] = KubeClient.from_kubeconfig(
                    declared.kubeconfig_path, declared.spec.context
                )
            return self._clients[cluster]

    def repository(self, name: str) -> Repository:
        with self._lock:
            cached = self._repositories.get(name)
        if cached is not None:
            return cached
        declared = self._declared_repository(name)
        repository = Repository(self.backend(name))
        if declared.spec.encryption is not None:
            if not repository.is_initialized():
                # not cached: once initialized (with the passphrase), the next call unlocks
                return repository
            passphrase = self.passphrase(name)
            assert passphrase is not None
            repository = repository.unlock(passphrase)
        with self._lock:
            return self._repositories.setdefault(name, repository)

    def backend(self, name: str) -> RepositoryBackend:
        """The transport of repository ``name``, opened once; reads no marker and needs no
        passphrase (so it works before the bucket or the repository exists)."""
        with self._lock:
            backend = self._backends.get(name)
        if backend is None:
            backend = self._open_backend(self._declared_repository(name))
            with self._lock:
                backend = self._backends.setdefault(name, backend)
        return backend

    def _declared_repository(self, name: str) -> ReplicationRepository:
        declared = self.inventory.repositories.get(name)
        if declared is None:
            raise KubeferryError(f"repository {name!r} is not in the inventory")
        return declared

    def passphrase(self, name: str) -> str | None:
        """The encryption passphrase of repository `name`, None when it is not encrypted.

        Errors name the variable, file or Secret, never the value.
        """
        declared = self._declared_repository(name)
        encryption = declared.spec.encryption
        if encryption is None:
            return None
        source = encryption.passphrase_from
        if source.env is not None:
            where = f"environment variable {source.env.var}"
            value = os.environ.get(source.env.var)
            if value is None:
                raise KubeferryError(f"{declared.ref}: passphrase {where} is not set")
        elif source.file is not None:
            path = Path(str(declared.passphrase_file_path))
            where = f"file {path}"
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                raise KubeferryError(
                    f"{declared.ref}: cannot read the passphrase {where}: {reason}"
                ) from None
            # one trailing newline, as editors and `echo` add it ("\r\n" from Windows)
            newline = "\r\n" if value.endswith("\r\n") else "\n"
            value = value.removesuffix(newline)
        else:
            ref = source.secret_ref
            assert ref is not None
            where = f"secret {ref.namespace}/{ref.name} on cluster {ref.cluster}"
            secret = self.client(ref.cluster).get("v1", "Secret", ref.name, ref.namespace)
            if secret is None:
                raise KubeferryError(f"{declared.ref}: passphrase {where} not found")
            data = secret.get("data") or {}
            try:
                value = base64.b64decode(data["passphrase"], validate=True).decode("utf-8")
            except (KeyError, ValueError, TypeError, binascii.Error):
                raise KubeferryError(
                    f"{declared.ref}: {where} needs the key passphrase (base64 UTF-8 text)"
                ) from None
        if value == "":
            raise KubeferryError(f"{declared.ref}: the passphrase in {where} is empty")
        return value

    def _open_backend(self, declared: ReplicationRepository) -> RepositoryBackend:
        path = declared.filesystem_path
        if path is not None:
            return open_backend("filesystem", path=path)
        if declared.spec.hosted_in is not None:
            # the MinIO kubeferry deployed: path-style, keys from the Secret it generated
            settings = MinioSettings.of(declared)
            keys = read_credentials(self.client(settings.cluster), settings)
            return open_backend(
                "s3",
                bucket=settings.bucket,
                endpoint=settings.endpoint,
                force_path_style=True,
                credentials=S3Credentials(keys.access_key_id, keys.secret_access_key),
            )
        s3 = declared.spec.s3
        assert s3 is not None  # the inventory guarantees exactly one storage kind
        return open_backend(
            "s3",
            bucket=s3.bucket,
            prefix=s3.prefix,
            endpoint=str(s3.endpoint).rstrip("/") if s3.endpoint else None,
            region=s3.region,
            force_path_style=s3.force_path_style,
            ca_bundle=declared.ca_bundle_path,
            credentials=self._s3_credentials(declared),
        )

    def _s3_credentials(
        self, declared: ReplicationRepository
    ) -> S3Credentials | EnvCredentials | FileCredentials | None:
        source = declared.spec.credentials_from
        if source is None:
            return None
        if source.env is not None:
            return EnvCredentials(source.env.access_key_id_var, source.env.secret_access_key_var)
        if source.file is not None:
            return FileCredentials(Path(str(declared.credentials_file_path)))
        ref = source.secret_ref
        assert ref is not None
        secret = self.client(ref.cluster).get("v1", "Secret", ref.name, ref.namespace)
        where = f"secret {ref.namespace}/{ref.name} on cluster {ref.cluster}"
        if secret is None:
            raise KubeferryError(f"{declared.ref}: credentials {where} not found")
        data = secret.get("data") or {}
        try:
            return S3Credentials(
                base64.b64decode(data["accessKeyId"]).decode(),
                base64.b64decode(data["secretAccessKey"]).decode(),
            )
        except (KeyError, ValueError):
            raise KubeferryError(
                f"{declared.ref}: {where} needs the keys accessKeyId and secretAccessKey"
            ) from None

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
