"""YAML documents that remember where every node came from.

PyYAML's composer gives a node graph with a start mark on every node; we convert that
graph to plain Python values ourselves (instead of ``yaml.safe_load``) so that:

- any validation error location (a path of keys and indexes) can be mapped back to the
  line and column of the offending key or value, or of the nearest existing parent;
- duplicate keys, unsupported tags, recursive aliases and absurd nesting become located
  problems instead of silent surprises or tracebacks;
- aliases stay shared objects, so an "alias bomb" costs memory linear in its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.inventory._issues import InventoryIssue

Loc = tuple[str | int, ...]
"""A path into a document: mapping keys (str) and sequence indexes (int)."""

MAX_DEPTH: Final = 64
"""Far deeper than any inventory document; guards the recursive conversion."""

_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
# What a malformed scalar (`!!int abc`, `!!int ''`, `2001-13-45`, `!!bool maybe`) makes
# PyYAML's constructors raise; they index and convert strings without checking them first.
_SCALAR_ERRORS: Final = (
    yaml.YAMLError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
)


@dataclass(frozen=True)
class NodeProblem:
    """A structural problem found while converting a document (e.g. a duplicate key)."""

    loc: Loc
    line: int
    column: int
    message: str


@dataclass(frozen=True)
class SourceDocument:
    """One YAML document of an inventory file, with its node graph for position lookups."""

    file: Path
    index: int
    """1-based position of the document in its file (empty documents count too)."""
    root: Node
    data: object
    """The plain value: dicts, lists, str, int, float, bool, None, dates, bytes."""
    problems: tuple[NodeProblem, ...] = ()
    invalid_locs: frozenset[Loc] = field(default_factory=frozenset)
    """Where a problem replaced the value with None; errors at or below are redundant."""

    def position(self, loc: Sequence[str | int], *, at_key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the node at ``loc``, or of its nearest existing parent.

        A scalar value points at the value itself (``keepLast: zero`` points at ``zero``),
        unless ``at_key`` asks for its key (unknown or duplicate fields). A collection
        points at its key, so a missing field points at its parent's key.
        """
        node = self.root
        mark = _start(node)
        for depth, step in enumerate(loc):
            last = depth == len(loc) - 1
            if isinstance(node, MappingNode) and isinstance(step, str):
                pair = _find_key(node, step)
                if pair is None:
                    return mark
                key, node = pair
                use_key = at_key or not isinstance(node, ScalarNode) or _is_empty(node)
                mark = _start(key) if (use_key or not last) else _start(node)
            elif isinstance(node, SequenceNode) and isinstance(step, int):
                if not 0 <= step < len(node.value):
                    return mark
                node = node.value[step]
                mark = _start(node)
            else:
                return mark
        return mark


@dataclass(frozen=True)
class ParsedFile:
    """The documents of one file, and the YAML errors that stopped parsing it (if any)."""

    documents: tuple[SourceDocument, ...]
    issues: tuple[InventoryIssue, ...]


def parse_yaml(file: Path, text: str) -> ParsedFile:
    """Parse every document of ``text``; a syntax error stops this file but keeps the rest."""
    documents: list[SourceDocument] = []
    issues: list[InventoryIssue] = []
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks for non-printable characters right away
        index = 0
        while loader.check_node():
            root = loader.get_node()
            index += 1
            if root is None or _is_empty(root):
                continue  # `---` separators with nothing between them
            documents.append(_Converter(loader).document(file, index, root))
    except yaml.MarkedYAMLError as error:
        issues.append(_syntax_issue(file, error))
    except yaml.reader.ReaderError as error:
        line, column = _text_position(text, error.position)
        issues.append(InventoryIssue(file, line, column, "", _reader_message(error)))
    except yaml.YAMLError as error:
        issues.append(InventoryIssue(file, None, None, "", f"YAML error: {error}"))
    except RecursionError:
        # PyYAML composes recursively: thousands of nested brackets exhaust the stack
        issues.append(InventoryIssue(file, None, None, "", "YAML nested too deeply"))
    finally:
        if loader is not None:
            loader.dispose()
    return ParsedFile(tuple(documents), tuple(issues))


class _Converter:
    """Turns one composed document into plain values, collecting located problems."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self._loader = loader
        self._problems: list[NodeProblem] = []
        self._invalid: set[Loc] = set()
        self._converted: dict[int, object] = {}  # id(node) -> value: aliases stay shared
        self._in_progress: set[int] = set()

    def document(self, file: Path, index: int, root: Node) -> SourceDocument:
        data = self._convert(root, (), 0)
        return SourceDocument(
            file, index, root, data, tuple(self._problems), frozenset(self._invalid)
        )

    def _problem(self, node: Node, loc: Loc, message: str, *, invalid: bool = True) -> None:
        line, column = _start(node)
        self._problems.append(NodeProblem(loc, line, column, message))
        if invalid:
            self._invalid.add(loc)

    def _convert(self, node: Node, loc: Loc, depth: int) -> object:
        key = id(node)
        if key in self._converted:
            return self._converted[key]
        if key in self._in_progress:
            self._problem(node, loc, "recursive YAML alias is not supported")
            return None
        if depth > MAX_DEPTH:
            self._problem(node, loc, f"nested deeper than {MAX_DEPTH} levels")
            return None
        self._in_progress.add(key)
        try:
            if isinstance(node, MappingNode):
                value = self._mapping(node, loc, depth)
            elif isinstance(node, SequenceNode):
                value = self._sequence(node, loc, depth)
            else:
                value = self._scalar(node, loc)
        finally:
            self._in_progress.discard(key)
        self._converted[key] = value
        return value

    def _scalar(self, node: Node, loc: Loc) -> object:
        if node.tag not in self._loader.yaml_constructors:
            self._problem(node, loc, f"unsupported YAML tag {node.tag}")
            return None
        try:
            return self._loader.construct_object(node, deep=True)
        except _SCALAR_ERRORS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._problem(node, loc, f"invalid value for YAML tag {tag}")
            return None

    def _sequence(self, node: SequenceNode, loc: Loc, depth: int) -> object:
        if node.tag != _SEQ_TAG:
            self._problem(node, loc, f"unsupported YAML tag {node.tag}")
            return None
        return [self._convert(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]

    def _mapping(self, node: MappingNode, loc: Loc, depth: int) -> object:
        if node.tag != _MAP_TAG:
            self._problem(node, loc, f"unsupported YAML tag {node.tag}")
            return None
        self._report_duplicate_keys(node, loc)
        try:
            self._loader.flatten_mapping(node)  # applies `<<: *anchor` merge keys in place
        except yaml.YAMLError:
            self._problem(node, loc, "invalid YAML merge key (<<)")
            return None
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, loc, "mapping keys must be plain strings")
                continue
            # keys stay the text the user wrote: `on:` or `1:` are keys, not booleans/ints
            name = str(key_node.value)
            result[name] = self._convert(value_node, (*loc, name), depth + 1)
        return result

    def _report_duplicate_keys(self, node: MappingNode, loc: Loc) -> None:
        # checked before merging: a key overriding a merged (`<<`) one is legitimate
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            name = str(key_node.value)
            if name in seen:
                self._problem(key_node, (*loc, name), f"duplicate key {name!r}", invalid=False)
            seen.add(name)


def _find_key(node: MappingNode, name: str) -> tuple[Node, Node] | None:
    # the last occurrence wins, as in the converted value
    for key, value in reversed(node.value):
        if isinstance(key, ScalarNode) and key.value == name:
            return key, value
    return None


def _is_empty(node: Node) -> bool:
    """A plain empty scalar: `key:` with nothing after it, or an empty document."""
    return isinstance(node, ScalarNode) and node.value == "" and not node.style


def _start(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _text_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _syntax_issue(file: Path, error: yaml.MarkedYAMLError) -> InventoryIssue:
    # only PyYAML's problem/context phrases: never its source snippet (it could hold a secret)
    mark = error.problem_mark or error.context_mark
    message = f"YAML syntax error: {error.problem or 'invalid YAML'}"
    if error.context:
        context_at = error.context_mark
        where = (
            f" at line {context_at.line + 1}, column {context_at.column + 1}" if context_at else ""
        )
        message += f" ({error.context}{where})"
    if mark is None:
        return InventoryIssue(file, None, None, "", message)
    return InventoryIssue(file, mark.line + 1, mark.column + 1, "", message)


def _reader_message(error: yaml.reader.ReaderError) -> str:
    character: object = error.character  # an int (code point) for str input
    if isinstance(character, str) and len(character) == 1:
        character = ord(character)
    if isinstance(character, int):
        return f"YAML syntax error: unacceptable character #x{character:04x}"
    return f"YAML syntax error: {error.reason}"
