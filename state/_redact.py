"""Keep credentials out of the ledger's JSON columns (event data, cluster permissions).

Callers should never pass secrets; this is the second line of defence. Only string values
under credential-like keys are replaced, so RBAC data such as {"secrets": {"get": true}} or
{"serviceaccounts/token": {"create": true}} keeps its meaning.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"

_CREDENTIAL_KEY = re.compile(
    r"(password|passwd|passphrase|token|secret|secret_?key|secret_?access_?key|"
    r"access_?key(_?id)?|api_?key|private_?key|client_?secret|credentials?|"
    r"authorization|bearer|kubeconfig|client_?key(_?data)?)$",
    re.IGNORECASE,
)


def _credential_key(key: str) -> bool:
    # "aws_secret_access_key", "secretAccessKey", "minio-root-password": compare the tail
    normalized = re.sub(r"[-.\s]", "_", key)
    normalized = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", normalized)
    return bool(_CREDENTIAL_KEY.search(normalized))


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with string values under credential-like keys replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(item, str) and isinstance(key, str) and _credential_key(key)
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
