"""One YAML document -> one typed object, or located issues saying what is expected."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.inventory._issues import InventoryIssue
from reconciler.inventory._models import (
    API_VERSION,
    KIND_MODELS,
    InventoryObject,
    SourceLocation,
)
from reconciler.inventory._rules import SECRET_CHECKED_KINDS, object_rules, strip_inline_secrets
from reconciler.inventory._types import DNS_LABEL_PATTERN
from reconciler.inventory._yaml import Loc, SourceDocument

_KIND_LIST: Final = ", ".join(KIND_MODELS)
_SIMPLE_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class DocumentHeader:
    """Kind and name of a document, known even when its spec is invalid.

    Cross-reference checks use headers, so an invalid Cluster still counts as declared
    (one error, not one more per reference to it).
    """

    kind: str
    name: str
    document: SourceDocument


@dataclass(frozen=True)
class CheckedDocument:
    """``obj`` is set once the schema validated (rule issues may remain, see ``issues``)."""

    document: SourceDocument
    header: DocumentHeader | None
    obj: InventoryObject | None
    issues: tuple[InventoryIssue, ...]


def check_document(document: SourceDocument) -> CheckedDocument:
    """Envelope, inline secrets, schema, then the object's own rules; every issue located."""
    data = document.data
    reporter = IssueReporter(document)
    for problem in document.problems:
        reporter.at_position(problem.loc, problem.line, problem.column, problem.message)
    if not isinstance(data, dict):
        reporter.add((), "expected a mapping with apiVersion, kind, metadata and spec")
        return CheckedDocument(document, None, None, reporter.issues)
    kind = data.get("kind")
    if "kind" not in data:
        reporter.add(("kind",), f"required field is missing; expected one of {_KIND_LIST}")
    elif not isinstance(kind, str) or kind not in KIND_MODELS:
        shown = repr(_shortened(kind)) if isinstance(kind, str) else describe(kind)
        reporter.add(("kind",), f"unknown kind {shown}; expected one of {_KIND_LIST}")
    if not isinstance(kind, str) or kind not in KIND_MODELS:
        return CheckedDocument(document, None, None, reporter.issues)

    model = KIND_MODELS[kind]
    name = valid_name(data)
    header = DocumentHeader(kind, name, document) if name is not None else None
    if kind in SECRET_CHECKED_KINDS and "spec" in data:
        spec, findings = strip_inline_secrets(kind, data["spec"], ("spec",))
        for loc, message in findings:
            reporter.add(loc, message, at_key=True)
        data = {**data, "spec": spec}
    try:
        obj = model.model_validate(data)
    except ValidationError as error:
        for details in error.errors(include_url=False, include_input=True):
            reporter.add_pydantic(model, details)
        return CheckedDocument(document, header, None, reporter.issues)
    obj._source = SourceLocation(document.file, *document.position(()))
    for loc, message in object_rules(obj):
        reporter.add(loc, message)
    return CheckedDocument(document, header, obj, reporter.issues)


def _shortened(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def valid_name(data: dict[Any, Any]) -> str | None:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(name, str) and len(name) <= 63 and re.fullmatch(DNS_LABEL_PATTERN, name):
        return name
    return None


class IssueReporter:
    """Builds located issues for one document, prefixed with ``Kind/name``."""

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        data = document.data
        kind = data.get("kind") if isinstance(data, dict) else None
        name = valid_name(data) if isinstance(data, dict) else None
        # a kind or name we cannot print safely is replaced: 'document' and '#<index>'
        kind_label = kind if isinstance(kind, str) and _SIMPLE_KEY.fullmatch(kind) else "document"
        self.prefix = f"{kind_label}/{name or f'#{document.index}'}"
        self._issues: list[InventoryIssue] = []

    @property
    def issues(self) -> tuple[InventoryIssue, ...]:
        return tuple(self._issues)

    def add(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        line, column = self.document.position(loc, at_key=at_key)
        self.at_position(loc, line, column, message)

    def at_position(self, loc: Loc, line: int, column: int, message: str) -> None:
        field = self.prefix + format_loc(loc)
        self._issues.append(InventoryIssue(self.document.file, line, column, field, message))

    def add_pydantic(self, model: type[BaseModel], details: ErrorDetails) -> None:
        loc: Loc = tuple(details["loc"])
        at_key = details["type"] == "extra_forbidden"
        if loc and loc[-1] == "[key]":  # a bad mapping key, e.g. in matchLabels
            loc, at_key = loc[:-1], True
        if any(loc[:depth] in self.document.invalid_locs for depth in range(len(loc) + 1)):
            return  # already reported by the YAML conversion (bad tag, recursion, ...)
        self.add(loc, pydantic_message(model, loc, details), at_key=at_key)


def format_loc(loc: Iterable[str | int]) -> str:
    """``.spec.clusters[1]``; keys that are not simple names are quoted: ``["a.b/c"]``."""
    parts = []
    for step in loc:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _SIMPLE_KEY.fullmatch(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


def describe(value: object) -> str:
    """What a value is, without showing it (it might be a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return "a date"
    return "a binary value" if isinstance(value, bytes) else type(value).__name__


_EXPECTED_BY_TYPE: Final = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean (true or false)",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "timedelta_type": "a duration such as '720h' or '30d'",
}


def pydantic_message(model: type[BaseModel], loc: Loc, details: ErrorDetails) -> str:
    """Our wording for a pydantic error; the input is described, never shown."""
    kind = details["type"]
    ctx = details.get("ctx") or {}
    got = describe(details.get("input"))
    if kind == "missing":
        expected = f"; expected {API_VERSION!r}" if loc == ("apiVersion",) else ""
        return f"required field is missing{expected}"
    if kind == "extra_forbidden":
        allowed = allowed_fields(model, loc[:-1])
        suffix = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown field {loc[-1]!r}{suffix}"
    if kind in _EXPECTED_BY_TYPE:
        return f"expected {_EXPECTED_BY_TYPE[kind]}, got {got}"
    if kind == "literal_error":
        if loc == ("apiVersion",):
            return f"expected {API_VERSION!r}"
        return f"expected one of {ctx.get('expected', '')}"
    if kind == "greater_than_equal":
        return f"expected an integer >= {ctx.get('ge')}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s)"
    return details["msg"]  # our PydanticCustomError messages, and pydantic's own (no input)


def allowed_fields(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The YAML field names of the model at ``loc`` (for "unknown field" messages)."""
    current: type[BaseModel] | None = model
    for step in loc:
        if current is None or not isinstance(step, str):
            return []
        current = _field_model(current, step)
    if current is None:
        return []
    return [info.alias or name for name, info in current.model_fields.items()]


def _field_model(model: type[BaseModel], alias: str) -> type[BaseModel] | None:
    for name, info in model.model_fields.items():
        if (info.alias or name) != alias:
            continue
        candidates = [info.annotation]
        if isinstance(info.annotation, types.UnionType) or typing.get_origin(info.annotation) is (
            typing.Union
        ):
            candidates = list(typing.get_args(info.annotation))
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                return candidate
    return None
