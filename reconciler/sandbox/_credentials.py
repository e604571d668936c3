"""Secrets of the sandbox: API tokens, service-account keys, kubeconfigs, S3 keys.

All are generated here (``secrets`` for tokens, openssl for the RSA key), written 0600 into
0700 directories, and never printed or logged.
"""

from __future__ import annotations

import os
import secrets
import string
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reconciler.errors import KubeferryError
from reconciler.sandbox._layout import SandboxLayout

ADMIN_USER = "kubeferry-admin"
# the identity RBAC's bootstrap policy grants the controller-manager's permissions to
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
S3_REGION = "us-east-1"


def write_private_file(path: Path, text: str) -> None:
    """Atomically write ``text`` readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        output.write(text)
    scratch.replace(path)


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def ensure_cluster_credentials(layout: SandboxLayout, cluster: str) -> None:
    """Tokens (admin, controller-manager) and the service-account key pair; kept if present."""
    make_private_dir(layout.auth_dir(cluster))
    admin = layout.admin_token_file(cluster)
    manager = layout.controller_manager_token_file(cluster)
    if not (admin.exists() and manager.exists() and layout.tokens_file(cluster).exists()):
        admin_token, manager_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        write_private_file(admin, admin_token)
        write_private_file(manager, manager_token)
        # token,user,uid,"group1,group2" (the apiserver's --token-auth-file format)
        write_private_file(
            layout.tokens_file(cluster),
            f"{admin_token},{ADMIN_USER},{ADMIN_USER},system:masters\n"
            f"{manager_token},{CONTROLLER_MANAGER_USER},{CONTROLLER_MANAGER_USER}\n",
        )
    key, public = layout.service_account_key(cluster), layout.service_account_public_key(cluster)
    if not (key.exists() and public.exists()):
        _openssl(["genrsa", "-out", str(key), "2048"], cwd=key.parent)
        key.chmod(0o600)
        _openssl(["rsa", "-in", str(key), "-pubout", "-out", str(public)], cwd=key.parent)


def _openssl(arguments: list[str], *, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *arguments], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise KubeferryError(f"openssl {arguments[0]} failed: {last_line}")


def read_token(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class KubeconfigEntry:
    """One context of a kubeconfig: its name is also the cluster's name."""

    name: str
    server: str
    ca_file: Path
    user: str
    token: str


def write_kubeconfig(path: Path, entries: list[KubeconfigEntry], *, current: str) -> None:
    """A kubeconfig (0600) with one context per entry; TLS is always verified."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": current,
        "clusters": [
            {
                "name": entry.name,
                "cluster": {"server": entry.server, "certificate-authority": str(entry.ca_file)},
            }
            for entry in entries
        ],
        "users": [
            {"name": f"{entry.user}@{entry.name}", "user": {"token": entry.token}}
            for entry in entries
        ],
        "contexts": [
            {
                "name": entry.name,
                "context": {"cluster": entry.name, "user": f"{entry.user}@{entry.name}"},
            }
            for entry in entries
        ],
    }
    write_private_file(path, yaml.safe_dump(config, sort_keys=False))


@dataclass(frozen=True)
class S3Credentials:
    """Keys for the sandbox's S3 endpoint; the secret never shows in repr()."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = S3_REGION


def ensure_s3_credentials(path: Path) -> S3Credentials:
    """Random AWS-style keys, generated once per sandbox."""
    if path.exists():
        return read_s3_credentials(path)
    key_alphabet = string.ascii_uppercase + string.digits
    credentials = S3Credentials(
        access_key_id="AKIA" + "".join(secrets.choice(key_alphabet) for _ in range(16)),
        secret_access_key=secrets.token_urlsafe(30)[:40],
    )
    write_s3_credentials(path, credentials, endpoint=None)
    return credentials


def write_s3_credentials(path: Path, credentials: S3Credentials, *, endpoint: str | None) -> None:
    """KEY=value lines, usable with `set -a; . s3-credentials.env; set +a`."""
    lines = [
        f"AWS_ACCESS_KEY_ID={credentials.access_key_id}",
        f"AWS_SECRET_ACCESS_KEY={credentials.secret_access_key}",
        f"AWS_DEFAULT_REGION={credentials.region}",
        *([f"AWS_ENDPOINT_URL_S3={endpoint}"] if endpoint else []),
    ]
    write_private_file(path, "\n".join(lines) + "\n")


def read_s3_credentials(path: Path) -> S3Credentials:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise KubeferryError(
            f"cannot read the sandbox's S3 credentials {path}: {error.strerror}",
            hint="run `kubeferry sandbox up`",
        ) from error
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        return S3Credentials(
            access_key_id=values["AWS_ACCESS_KEY_ID"],
            secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            region=values.get("AWS_DEFAULT_REGION", S3_REGION),
        )
    except KeyError as error:
        raise KubeferryError(
            f"{path} lacks {error.args[0]}", hint="delete it and run `kubeferry sandbox up`"
        ) from error
