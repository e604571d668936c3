"""The image cannot be built here (no Docker engine); check what can be checked statically."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _instructions() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    parsed = []
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            parsed.append((keyword.upper(), rest.strip()))
    return parsed


def _packages() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*") for p in patterns})


def test_multi_stage_non_root_with_kubeferry_entrypoint() -> None:
    instructions = _instructions()
    stages = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(stages) >= 2, "build and runtime stages"
    final_stage = instructions[max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM") :]
    users = [rest for kw, rest in final_stage if kw == "USER"]
    assert users, "the runtime stage must switch user"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert ("ENTRYPOINT", '["kubeferry"]') in final_stage


def test_copies_every_file_the_package_needs() -> None:
    copied = {
        src.rstrip("/")
        for kw, rest in _instructions()
        if kw == "COPY" and not rest.startswith("--from")
        for src in rest.split()[:-1]
    }
    needed = {"pyproject.toml", "README.md", *_packages()}
    assert needed <= copied, f"Dockerfile misses {sorted(needed - copied)}"


def test_dockerignore_keeps_package_files() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for package in _packages():
        for source in (ROOT / package).rglob("*"):
            relative = source.relative_to(ROOT).as_posix()
            if "__pycache__" in relative:
                continue
            hits = [
                p for p in ignored if fnmatch.fnmatch(relative, p) or relative.startswith(p + "/")
            ]
            assert not hits, f"{relative} is excluded by .dockerignore {hits}"
