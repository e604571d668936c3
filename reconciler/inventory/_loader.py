"""`load_inventory`: files -> YAML documents -> typed objects -> cross-checked inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from reconciler.inventory._documents import CheckedDocument, check_document
from reconciler.inventory._inventory import Inventory
from reconciler.inventory._issues import InventoryError, InventoryIssue
from reconciler.inventory._references import cross_reference_issues
from reconciler.inventory._yaml import parse_yaml

YAML_SUFFIXES: Final = (".yaml", ".yml")
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""An inventory is a few kilobytes; this only keeps a wrong path from eating memory."""


def load_inventory(path: Path) -> Inventory:
    """Load and validate the inventory at ``path`` (one multi-document file or a directory).

    A directory contributes its ``*.yaml`` and ``*.yml`` files (not subdirectories,
    not hidden files), sorted by name. Raises ``InventoryError`` listing every issue.
    """
    files, issues = inventory_files(path)
    checked: list[CheckedDocument] = []
    unparsable = False
    for file in files:
        text, read_issue = _read_text(file)
        if read_issue is not None:
            issues.append(read_issue)
            unparsable = True
            continue
        parsed = parse_yaml(file, text)
        issues.extend(parsed.issues)
        unparsable = unparsable or bool(parsed.issues)
        checked.extend(check_document(document) for document in parsed.documents)
    for document in checked:
        issues.extend(document.issues)
    if not unparsable:
        # with a file cut short, "unknown" references would mostly be noise
        issues.extend(cross_reference_issues(checked))
    if files and not checked and not issues:
        issues.append(InventoryIssue(path, None, None, "", "no inventory documents found"))
    if issues:
        order = {file: index for index, file in enumerate(files)}
        issues.sort(key=lambda i: (order.get(i.file, -1), i.line or 0, i.column or 0))
        raise InventoryError(issues)
    objects = [document.obj for document in checked if document.obj is not None]
    return Inventory.from_objects(path, files, objects)


def inventory_files(path: Path) -> tuple[list[Path], list[InventoryIssue]]:
    """The YAML files of ``path``, or the issue that there are none."""

    def fail(message: str) -> tuple[list[Path], list[InventoryIssue]]:
        return [], [InventoryIssue(path, None, None, "", message)]

    try:
        if path.is_dir():
            files = sorted(
                child
                for child in path.iterdir()
                if child.suffix in YAML_SUFFIXES and not child.name.startswith(".")
                if child.is_file()
            )
            if not files:
                return fail("no *.yaml or *.yml files in this directory")
            return files, []
        if path.is_file():
            return [path], []
        if path.exists():
            return fail("not a regular file or directory")
    except OSError as error:
        return fail(f"cannot read: {error.strerror or error}")
    return fail("inventory not found (give -f PATH or set KUBEFERRY_INVENTORY)")


def _read_text(file: Path) -> tuple[str, InventoryIssue | None]:
    try:
        with file.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return "", InventoryIssue(file, None, None, "", f"cannot read: {error.strerror or error}")
    if len(raw) > MAX_FILE_BYTES:
        message = f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        return "", InventoryIssue(file, None, None, "", message)
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line, column = before.count(b"\n") + 1, error.start - (before.rfind(b"\n") + 1) + 1
        return "", InventoryIssue(file, line, column, "", "not valid UTF-8 text")
