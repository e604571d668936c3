"""Paths written in the inventory: `~`, `${ENV}` and paths relative to the declaring file."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from reconciler.errors import KubeferryError

_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def path_problem(declared: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why ``declared`` cannot be resolved (empty, malformed `${...}`, unset variable), or None."""
    env = os.environ if environ is None else environ
    if not declared.strip():
        return "expected a non-empty path"
    if "${" in _VARIABLE.sub("", declared):
        return "malformed ${VARIABLE} reference in path (expected ${NAME} with letters, digits, _)"
    unset = [name for name in _VARIABLE.findall(declared) if name not in env]
    if unset:
        return f"environment variable {unset[0]} is not set (used in this path)"
    if declared.startswith("~"):
        try:
            Path(declared.split("/", 1)[0]).expanduser()
        except RuntimeError:  # `~someone` for an unknown user, or no home directory
            return "cannot expand '~' (unknown user or no home directory)"
    return None


def resolve_declared_path(
    declared: str, base_dir: Path, environ: Mapping[str, str] | None = None
) -> Path:
    """Expand ``${NAME}`` and a leading ``~``; a relative result is relative to ``base_dir``.

    ``base_dir`` is the directory of the inventory file that declares the path.
    """
    env = os.environ if environ is None else environ
    problem = path_problem(declared, env)
    if problem is not None:
        raise KubeferryError(f"cannot resolve path {declared!r}: {problem}")
    expanded = Path(_VARIABLE.sub(lambda match: env[match.group(1)], declared)).expanduser()
    # lexically normalized (`a/../b` -> `b`); symlinks are left for the OS to follow
    return Path(os.path.normpath(base_dir / expanded))
