"""Constrained string types of the inventory, with messages that say what is expected.

Validators raise ``PydanticCustomError`` so the message is exactly ours. Values are echoed
(with ``repr``) only for names and schedules, never for anything that could be a secret.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Final

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from reconciler.inventory._declared_paths import path_problem

DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL_NAME: Final = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
RESOURCE_PATTERN: Final = r"^[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?(\.[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?)*$"
ENV_VAR_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN: Final = r"^([0-9]+[smhdw])+$"
_DURATION_PART: Final = re.compile(r"([0-9]+)([smhdw])")
_UNIT_SECONDS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_HASHED_OR_RANDOM: Final = re.compile(r"(?<![A-Za-z])[HRhr](?![A-Za-z])")
CRON_MACROS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not re.fullmatch(DNS_LABEL_PATTERN, value):
        raise PydanticCustomError(
            "dns_label",
            "expected a DNS-1123 label (at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit), got {value}",
            {"value": repr(value)},
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, value):
        raise PydanticCustomError(
            "dns_subdomain",
            "expected a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'), got {value}",
            {"value": repr(value)},
        )
    return value


def _label_key(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    valid_prefix = not prefix or (
        len(prefix) <= 253 and re.fullmatch(DNS_SUBDOMAIN_PATTERN, prefix)
    )
    if not (valid_prefix and len(name) <= 63 and re.fullmatch(_LABEL_NAME, name)):
        raise PydanticCustomError(
            "label_key",
            "expected a Kubernetes label key ([prefix/]name, name at most 63 characters), got {value}",
            {"value": repr(value)},
        )
    return value


def _label_value(value: str) -> str:
    if value and not (len(value) <= 63 and re.fullmatch(_LABEL_NAME, value)):
        raise PydanticCustomError(
            "label_value",
            "expected a Kubernetes label value (at most 63 letters, digits, '-', '_', '.'), "
            "got {value}",
            {"value": repr(value)},
        )
    return value


def _resource_pattern(value: str) -> str:
    if not re.fullmatch(RESOURCE_PATTERN, value):
        raise PydanticCustomError(
            "resource_pattern",
            "expected a resource name like 'deployments' or 'deployments.apps' "
            "('*' wildcards allowed), got {value}",
            {"value": repr(value)},
        )
    return value


def _env_var_name(value: str) -> str:
    if not re.fullmatch(ENV_VAR_PATTERN, value):
        raise PydanticCustomError(
            "env_var_name",
            "expected an environment variable name (letters, digits and '_', "
            "not starting with a digit)",
        )
    return value


def _cron(value: str) -> str:
    if not is_valid_cron(value):
        raise PydanticCustomError(
            "cron",
            "expected a cron expression with 5 fields (minute hour day-of-month month "
            "day-of-week, e.g. '0 2 * * *') or @hourly/@daily/@weekly/@monthly/@yearly, "
            "got {value}",
            {"value": repr(value)},
        )
    return value


def is_valid_cron(expression: str) -> bool:
    """A 5-field cron expression (as Kubernetes CronJobs take) or a macro such as @daily."""
    if expression.strip() in CRON_MACROS:
        return True
    fields = expression.split()
    # croniter also takes seconds/years and hashed (H) or random (R) fields: not portable
    if len(fields) != 5 or _HASHED_OR_RANDOM.search(expression):
        return False
    try:
        return bool(croniter.is_valid(expression, strict=True))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return False


def parse_duration(value: object) -> timedelta:
    """`720h`, `30d`, `1d12h`, `90m`: positive, units s, m, h, d, w."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value):
        seconds = sum(
            int(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(value)
        )
        if 0 < seconds <= 100 * 365 * 86_400:
            return timedelta(seconds=seconds)
    raise PydanticCustomError(
        "duration",
        "expected a positive duration such as '720h', '30d' or '1d12h' "
        "(units s, m, h, d, w; at most 100 years)",
    )


def format_duration(value: timedelta) -> str:
    """The canonical spelling, so `720h` and `30d` normalize (and digest) the same."""
    seconds = int(value.total_seconds())
    for unit, size in _UNIT_SECONDS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # pragma: no cover - the "s" unit always divides


def _declared_path(value: str) -> str:
    problem = path_problem(value)
    if problem is not None:
        raise PydanticCustomError("declared_path", problem)
    return value


def _http_url(value: str) -> str:
    # no echo: a URL can carry user:password
    if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
        raise PydanticCustomError("http_url", "expected an http:// or https:// URL")
    if "@" in value.split("/", 3)[2]:
        raise PydanticCustomError(
            "http_url", "credentials in the endpoint URL are not allowed; use credentialsFrom"
        )
    return value


def _bucket(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
        raise PydanticCustomError(
            "bucket", "expected an S3 bucket name (3-63 lowercase letters, digits, '.', '-')"
        )
    return value


QUANTITY_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_QUANTITY_FACTORS: Final[dict[str, int]] = {
    "": 1,
    **{suffix: 2 ** (10 * i) for i, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
    **{suffix: 10 ** (3 * i) for i, suffix in enumerate(("k", "M", "G", "T", "P", "E"), 1)},
}


def quantity_bytes(value: str) -> int:
    """The bytes a storage quantity such as ``10Gi`` or ``1.5T`` stands for (rounded up)."""
    match = re.fullmatch(QUANTITY_PATTERN, value)
    if match is None:
        raise ValueError(f"not a storage quantity: {value!r}")
    suffix = match.group(2) or ""
    number = value[: len(value) - len(suffix)]
    whole, _, fraction = number.partition(".")
    scale = 10 ** len(fraction)
    # exact integer arithmetic: floats would misround large sizes
    rounded_up: int = -(-int(whole + fraction) * _QUANTITY_FACTORS[suffix] // scale)
    return rounded_up


def _quantity(value: str) -> str:
    if not re.fullmatch(QUANTITY_PATTERN, value) or quantity_bytes(value) <= 0:
        raise PydanticCustomError(
            "quantity",
            "expected a positive Kubernetes quantity such as '10Gi' or '500Mi' (suffixes Ki, Mi, "
            "Gi, Ti, Pi, Ei, k, M, G, T, P, E), got {value}",
            {"value": repr(value)},
        )
    return value


CPU_PATTERN: Final = r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$"


def cpu_millicores(value: str) -> int:
    """The millicores a CPU quantity such as ``500m``, ``2`` or ``0.5`` stands for."""
    if not re.fullmatch(CPU_PATTERN, value):
        raise ValueError(f"not a CPU quantity: {value!r}")
    if value.endswith("m"):
        return int(value[:-1])
    whole, _, fraction = value.partition(".")
    return int(whole) * 1000 + int((fraction + "000")[:3])


def _cpu(value: str) -> str:
    if not re.fullmatch(CPU_PATTERN, value) or cpu_millicores(value) <= 0:
        raise PydanticCustomError(
            "cpu",
            "expected a positive CPU quantity such as '500m', '1' or '1.5', got {value}",
            {"value": repr(value)},
        )
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("non_empty", "expected a non-empty string")
    return value


NonEmptyStr = Annotated[
    str, AfterValidator(_non_empty), WithJsonSchema({"type": "string", "minLength": 1})
]
DnsLabel = Annotated[
    str,
    AfterValidator(_dns_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63}),
]
DnsSubdomain = Annotated[
    str,
    AfterValidator(_dns_subdomain),
    WithJsonSchema({"type": "string", "pattern": DNS_SUBDOMAIN_PATTERN, "maxLength": 253}),
]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value), WithJsonSchema({"type": "string"})]
ResourcePattern = Annotated[
    str,
    AfterValidator(_resource_pattern),
    WithJsonSchema({"type": "string", "pattern": RESOURCE_PATTERN}),
]
EnvVarName = Annotated[
    str,
    AfterValidator(_env_var_name),
    WithJsonSchema({"type": "string", "pattern": ENV_VAR_PATTERN}),
]
Cron = Annotated[
    str,
    AfterValidator(_cron),
    WithJsonSchema({"type": "string", "examples": ["0 2 * * *", "*/15 * * * *", "@daily"]}),
]
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["720h", "30d"]}),
]
DeclaredPath = Annotated[
    str, AfterValidator(_declared_path), WithJsonSchema({"type": "string", "minLength": 1})
]
HttpUrl = Annotated[
    str,
    AfterValidator(_http_url),
    WithJsonSchema({"type": "string", "pattern": r"^https?://", "format": "uri"}),
]
Quantity = Annotated[
    str,
    AfterValidator(_quantity),
    WithJsonSchema({"type": "string", "pattern": QUANTITY_PATTERN, "examples": ["10Gi"]}),
]


def _cpu_number(value: object) -> object:
    # `cpu: 2` or `cpu: 0.5` unquoted, as Kubernetes manifests write it
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


CpuQuantity = Annotated[
    str,
    BeforeValidator(_cpu_number),
    AfterValidator(_cpu),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": CPU_PATTERN},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "examples": ["500m", 2],
        }
    ),
]
BucketName = Annotated[
    str, AfterValidator(_bucket), WithJsonSchema({"type": "string", "minLength": 3})
]
