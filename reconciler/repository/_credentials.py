"""S3 credentials and where they come from: environment variables, a file, or boto3's chain.

Error messages name the variable or the file, never a value, and `S3Credentials` hides
its secret in `repr()`/`str()` so it cannot leak through logs or tracebacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.repository._errors import CredentialsError

# the names of the variables (in the environment or the file), not values
ACCESS_KEY_ID_VAR = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY_VAR = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a name
SESSION_TOKEN_VAR = "AWS_SESSION_TOKEN"  # noqa: S105 - a name


@dataclass(frozen=True, repr=False)
class S3Credentials:
    """Static S3 credentials. `repr()` shows only the last 4 characters of the key id."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        token = ", session_token='***'" if self.session_token else ""
        return (
            f"S3Credentials(access_key_id='***{self.access_key_id[-4:]}', "
            f"secret_access_key='***'{token})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class EnvCredentials:
    """Read the credentials from these environment variables when the backend is opened."""

    access_key_id_var: str = ACCESS_KEY_ID_VAR
    secret_access_key_var: str = SECRET_ACCESS_KEY_VAR
    session_token_var: str | None = None


@dataclass(frozen=True)
class FileCredentials:
    """Read the credentials from an env-style file of `KEY=VALUE` lines.

    Accepts `AWS_ACCESS_KEY_ID=...`, `export KEY=value`, quoted values, comments, and the
    AWS/Velero credentials-file spelling (`[default]` / `aws_access_key_id = ...`).
    """

    path: Path


# None means "boto3's default chain" (environment, shared config, instance metadata...)
CredentialsRef = EnvCredentials | FileCredentials | None


def resolve_credentials(
    ref: CredentialsRef | S3Credentials, *, environ: Mapping[str, str] | None = None
) -> S3Credentials | None:
    """Turn a reference into credentials; None means "let boto3's default chain decide"."""
    if ref is None or isinstance(ref, S3Credentials):
        return ref
    if isinstance(ref, EnvCredentials):
        return _from_env(ref, os.environ if environ is None else environ)
    return _from_file(Path(ref.path))


def _from_env(ref: EnvCredentials, environ: Mapping[str, str]) -> S3Credentials:
    def required(name: str) -> str:
        value = environ.get(name, "").strip()
        if not value:
            raise CredentialsError(f"S3 credentials: environment variable {name} is not set")
        return value

    key_id = required(ref.access_key_id_var)
    secret = required(ref.secret_access_key_var)
    token = required(ref.session_token_var) if ref.session_token_var else None
    return S3Credentials(key_id, secret, token)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _from_file(path: Path) -> S3Credentials:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CredentialsError(f"cannot read S3 credentials file {path}: {reason}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"S3 credentials file {path} is not UTF-8 text") from None

    values: dict[str, str] = {}
    section: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            # never echo the line: it may hold the secret
            raise CredentialsError(f"S3 credentials file {path}: line {number} is not KEY=VALUE")
        if section not in (None, "default"):
            continue  # other profiles of an AWS credentials file
        values[name.strip().upper()] = _unquote(value.strip())

    def required(name: str) -> str:
        value = values.get(name, "")
        if not value:
            raise CredentialsError(f"S3 credentials file {path} has no {name}")
        return value

    return S3Credentials(
        required(ACCESS_KEY_ID_VAR),
        required(SECRET_ACCESS_KEY_VAR),
        values.get(SESSION_TOKEN_VAR) or None,
    )
