"""Volume data: kubeferry's file-system backup engine vs restic and borg (issue 5).

Generates a deterministic (seeded) dataset, by default about 1.1 GB:

  large/   8 files of 100 MB, 64 KiB blocks that are either random bytes (40%) or text made
           of words from a 4,096-word vocabulary (60%); files 6 and 7 are near-copies of
           files 0 and 1 (2% of their blocks differ), as cloned images would be
  small/   20,000 files of 1-64 KiB (log-uniform sizes, 70% text, 30% random) in 200
           nested directories

`--scale` shrinks both (0.1: 8 x 10 MB and 2,000 small files). The dataset lives in a work
directory outside the checkout (default /tmp/kubeferry-bench-volumes) and is reused when it
was generated with the same seed and scale.

Then, in ONE run, each tool backs the same directory up into its own local repository with
encryption on, step by step, all tools for a step before the next step:

  first       the first backup
  no-change   a second backup with nothing changed (restic: parent snapshot; borg: files
              cache; kubeferry: parent snapshot via `backup_tree(parent=...)`)
  changed     a third backup after 5% of the bytes changed: parts of 4 of the 8 large files
              rewritten in place (10% of each, 256 KiB regions) and ~5% of the small files
              rewritten, deterministically
  restore     a full restore of the last snapshot into an empty directory, verified against
              the source with a checksum walk (BLAKE3 of every file, sizes, directory set)

Every step is its own subprocess: wall time is measured around it and the peak RSS and CPU
time come from os.wait4's rusage of that process (and its children). Repository size is
the apparent size of all files in the repository directory after each backup.

  restic      `restic init --repository-version 2` (zstd auto compression), RESTIC_PASSWORD,
              `restic backup DIR`, `restic restore latest --target DIR`
  borg        `borg init --encryption=repokey` (default lz4 compression), BORG_PASSPHRASE,
              `borg create REPO::name DIR`, `borg extract REPO::name`
  kubeferry   this script with `--kubeferry-step init|backup|restore`: an encrypted
              FilesystemBackend Repository, reconciler.volumes.VolumeStore,
              backup_tree / restore_tree

A passphrase is generated for each run. Tool caches (restic's cache, borg's base dir) live
in the work directory; repositories and restores are deleted at the end (the dataset is
kept for the next run unless --clean).

    .venv/bin/python bench/bench_volumes.py [--scale 1.0] [--seed 5] [--workdir DIR]
        [--peers-only] [--tools restic,borg,kubeferry] [--keep] [--clean] [--json FILE]

Goals (issue 5): kubeferry backup and restore throughput >= 2x restic's, no-change backup
no slower than restic, repository no larger than restic's, peak RSS < 512 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1
BLOCK = 64 * 1024
LARGE_FILES = 8
LARGE_SIZE = 100 * 1000 * 1000
SMALL_FILES = 20_000
RANDOM_BLOCK_SHARE = 0.4
NEAR_COPIES = {6: 0, 7: 1}  # file index -> file it is a near-copy of
NEAR_COPY_DIFF = 0.02
CHANGE_REGION = 256 * 1024
CHANGED_LARGE = (1, 3, 5, 7)
CHANGED_LARGE_SHARE = 0.10
CHANGED_SMALL_SHARE = 0.05
MB = 1_000_000
RSS_GOAL_MB = 512
STEPS = ("first", "no-change", "changed", "restore")
TOOLS = ("restic", "borg", "kubeferry")
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "kubeferry-bench-volumes"


# -- dataset ----------------------------------------------------------------------------------


class Dataset:
    """The generated tree under `root`; every file can be regenerated on its own."""

    def __init__(self, root: Path, seed: int, scale: float) -> None:
        self.root = root
        self.seed = seed
        self.scale = scale
        self.large_size = max(BLOCK, int(LARGE_SIZE * scale) // BLOCK * BLOCK)
        self.small_count = max(100, int(SMALL_FILES * scale))
        vocab_rng = random.Random(f"{seed}:vocab")
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = [
            "".join(vocab_rng.choices(letters, k=vocab_rng.randint(2, 10))) for _ in range(4096)
        ]
        # a newline about every 12 words, some punctuation
        self.vocab = [*words, *(["\n"] * 350), *([","] * 200), *(["."] * 150)]
        self.marker = root.parent / "dataset.json"

    def params(self) -> dict[str, Any]:
        return {"version": GENERATOR_VERSION, "seed": self.seed, "scale": self.scale}

    # content ----------------------------------------------------------------------------------

    def _text(self, rng: random.Random, size: int) -> bytes:
        parts: list[bytes] = []
        have = 0
        while have < size:
            chunk = " ".join(rng.choices(self.vocab, k=size // 5 + 16)).encode()
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)[:size]

    def _block(self, tag: str) -> bytes:
        rng = random.Random(f"{self.seed}:{tag}")
        if rng.random() < RANDOM_BLOCK_SHARE:
            return rng.randbytes(BLOCK)
        return self._text(rng, BLOCK)

    def large_block(self, index: int, block: int) -> bytes:
        base = NEAR_COPIES.get(index)
        if base is not None:
            rng = random.Random(f"{self.seed}:copy:{index}:{block}")
            if rng.random() >= NEAR_COPY_DIFF:
                return self._block(f"large:{base}:{block}")
        return self._block(f"large:{index}:{block}")

    def large_path(self, index: int) -> Path:
        return self.root / "large" / f"volume-{index}.img"

    def small_path(self, index: int) -> Path:
        rng = random.Random(f"{self.seed}:small:{index}")
        suffix = ".bin" if rng.random() < 0.3 else ".txt"
        return (
            self.root
            / "small"
            / f"d{index % 20:02d}"
            / f"e{index // 20 % 10:02d}"
            / (f"f{index:05d}{suffix}")
        )

    def small_content(self, index: int) -> bytes:
        rng = random.Random(f"{self.seed}:small:{index}")
        binary = rng.random() < 0.3
        size = int(1024 * 64 ** rng.random())
        return rng.randbytes(size) if binary else self._text(rng, size)

    def write_large(self, index: int) -> None:
        path = self.large_path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for block in range(self.large_size // BLOCK):
                out.write(self.large_block(index, block))

    def write_small(self, index: int) -> None:
        path = self.small_path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.small_content(index))

    # lifecycle --------------------------------------------------------------------------------

    def read_marker(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return None
        return data

    def _write_marker(self, state: str, changed: dict[str, list[int]] | None = None) -> None:
        self.marker.write_text(
            json.dumps({**self.params(), "state": state, "changed": changed or {}})
        )

    def ensure(self) -> str:
        """Generate the dataset, or reuse (and revert to the base state) a matching one."""
        marker = self.read_marker()
        if marker and {k: marker.get(k) for k in self.params()} == self.params():
            if marker.get("state") == "changed":
                self.revert(marker.get("changed") or {})
                return "reused (reverted the previous run's changes)"
            if marker.get("state") == "base":
                return "reused"
        if self.marker.exists():
            self.marker.unlink()
        if self.root.exists():
            shutil.rmtree(self.root)
        started = time.perf_counter()
        for index in range(LARGE_FILES):
            self.write_large(index)
        for index in range(self.small_count):
            self.write_small(index)
        self._write_marker("base")
        return f"generated in {time.perf_counter() - started:.1f} s"

    def change(self, generation: int = 1) -> int:
        """Rewrite ~5% of the bytes in place; returns the number of bytes rewritten.

        Each ``generation`` rewrites other regions with other bytes (1 is the volume bench's
        change), so successive generations are distinct states. The marker lists every file
        changed so far, so ``revert``/``ensure`` restore all of them, also after a crash.
        """
        tag = "" if generation == 1 else f"{generation}:"
        marker = self.read_marker() or {}
        before: dict[str, list[int]] = (
            marker.get("changed") or {} if marker.get("state") == "changed" else {}
        )
        changed_small = [
            i
            for i in range(self.small_count)
            if random.Random(f"{self.seed}:pick:{tag}{i}").random() < CHANGED_SMALL_SHARE
        ]
        large = [i for i in CHANGED_LARGE if i < LARGE_FILES]
        # written first: a crash mid-change still reverts everything
        self._write_marker(
            "changed",
            {
                "large": sorted({*before.get("large", []), *large}),
                "small": sorted({*before.get("small", []), *changed_small}),
            },
        )
        rewritten = 0
        region = min(CHANGE_REGION, self.large_size)
        for index in large:
            rng = random.Random(f"{self.seed}:change:{tag}{index}")
            count = max(1, math.ceil(self.large_size * CHANGED_LARGE_SHARE / region))
            slots = self.large_size // region
            fd = os.open(self.large_path(index), os.O_WRONLY)
            try:
                for slot in sorted(rng.sample(range(slots), min(count, slots))):
                    data = rng.randbytes(region // 2) + self._text(rng, region - region // 2)
                    os.pwrite(fd, data, slot * region)
                    rewritten += len(data)
            finally:
                os.close(fd)
        for index in changed_small:
            path = self.small_path(index)
            size = path.stat().st_size
            rng = random.Random(f"{self.seed}:change-small:{tag}{index}")
            data = self._text(rng, size) if path.suffix == ".txt" else rng.randbytes(size)
            path.write_bytes(data)
            rewritten += size
        return rewritten

    def revert(self, changed: dict[str, list[int]]) -> None:
        for index in changed.get("large", []):
            self.write_large(index)
        for index in changed.get("small", []):
            self.write_small(index)
        self._write_marker("base")


def tree_digest(root: Path) -> dict[str, Any]:
    """{relative path: [size, blake3]} for files, plus the sorted list of directories."""
    import blake3

    files: dict[str, list[Any]] = {}
    dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames:
            dirs.append(str((base / name).relative_to(root)))
        for name in filenames:
            path = base / name
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            with path.open("rb") as handle:
                while block := handle.read(4 * 2**20):
                    hasher.update(block)
            files[str(path.relative_to(root))] = [path.stat().st_size, hasher.hexdigest()]
    return {"files": files, "dirs": sorted(dirs)}


def tree_bytes(root: Path) -> tuple[int, int]:
    count = size = 0
    for dirpath, _dirs, filenames in os.walk(root):
        for name in filenames:
            count += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return count, size


def du_bytes(path: Path) -> int:
    """Apparent size of every file under path (what an object store would bill)."""
    return tree_bytes(path)[1] if path.exists() else 0


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    missing = expected["files"].keys() - actual["files"].keys()
    extra = actual["files"].keys() - expected["files"].keys()
    if missing:
        problems.append(f"{len(missing)} files missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected files, e.g. {sorted(extra)[:3]}")
    wrong = [
        path
        for path, value in expected["files"].items()
        if path in actual["files"] and actual["files"][path] != value
    ]
    if wrong:
        problems.append(f"{len(wrong)} files differ, e.g. {sorted(wrong)[:3]}")
    if expected["dirs"] != actual["dirs"]:
        problems.append("the directory sets differ")
    return problems


# -- measuring a subprocess -------------------------------------------------------------------


@dataclass
class StepResult:
    tool: str
    step: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    repo_mb: float | None = None
    data_mb: float = 0.0
    ok: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.data_mb / self.seconds if self.seconds else 0.0


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(
    argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, check: bool = True
) -> Measured:
    """Run argv as its own process; wall time, and rusage of it (and its children)."""
    with (
        tempfile.TemporaryFile(mode="w+") as out,
        tempfile.TemporaryFile(mode="w+") as err,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(argv)}\n# rc={process.returncode} {seconds:.2f}s\n")
        handle.write(stdout[-20_000:])
        handle.write(stderr[-20_000:])
        handle.write("\n")
    if check and process.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed (rc={process.returncode}): {stderr.strip()[-2000:]}\n"
            f"(full output in {log})"
        )
    return Measured(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss * 1024 / MB,  # ru_maxrss is in KiB on Linux
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
    )


# -- the tools --------------------------------------------------------------------------------


class Tool:
    name = ""

    def __init__(self, work: Path, source: Path, passphrase: str, log: Path) -> None:
        self.work = work / self.name
        self.repo = self.work / "repo"
        self.restore_dir = self.work / "restore"
        self.source = source
        self.passphrase = passphrase
        self.log = log
        self.env = dict(os.environ)

    def prepare(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.env["XDG_CACHE_HOME"] = str(self.work / "cache")
        self.env["HOME"] = str(self.work / "home")

    def run(self, argv: list[str], cwd: Path | None = None) -> Measured:
        return run_measured(argv, env=self.env, cwd=cwd or self.source.parent, log=self.log)

    def init(self) -> None:
        raise NotImplementedError

    def backup(self, number: int) -> tuple[Measured, dict[str, Any]]:
        raise NotImplementedError

    def restore(self) -> tuple[Measured, Path, dict[str, Any]]:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class Restic(Tool):
    name = "restic"

    def prepare(self) -> None:
        super().prepare()
        self.env.update(
            RESTIC_PASSWORD=self.passphrase,
            RESTIC_REPOSITORY=str(self.repo),
            RESTIC_CACHE_DIR=str(self.work / "cache"),
        )

    def version(self) -> str:
        return subprocess.run(
            ["restic", "version"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def init(self) -> None:
        self.run(["restic", "init", "--repository-version", "2"])

    def backup(self, number: int) -> tuple[Measured, dict[str, Any]]:
        measured = self.run(["restic", "backup", "--json", "--quiet", self.source.name])
        summary: dict[str, Any] = {}
        for line in measured.stdout.splitlines():
            if '"summary"' in line:
                summary = json.loads(line)
        extra = {
            k: summary[k] for k in ("data_added", "files_new", "files_changed") if k in summary
        }
        return measured, extra

    def restore(self) -> tuple[Measured, Path, dict[str, Any]]:
        self.restore_dir.mkdir()
        measured = self.run(["restic", "restore", "latest", "--target", str(self.restore_dir)])
        # restic names the top of the tree after the last element of the backed-up path
        # (older versions kept the whole absolute path)
        restored = self.restore_dir / self.source.name
        if not restored.exists():
            restored = self.restore_dir / self.source.relative_to("/")
        return measured, restored, {}


class Borg(Tool):
    name = "borg"
    archive = ""

    def prepare(self) -> None:
        super().prepare()
        self.env.update(
            BORG_PASSPHRASE=self.passphrase,
            BORG_REPO=str(self.repo),
            BORG_BASE_DIR=str(self.work / "base"),
        )

    def version(self) -> str:
        return subprocess.run(
            ["borg", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def init(self) -> None:
        self.run(["borg", "init", "--encryption=repokey"])

    def backup(self, number: int) -> tuple[Measured, dict[str, Any]]:
        self.archive = f"backup-{number}"
        measured = self.run(["borg", "create", "--json", f"::{self.archive}", self.source.name])
        stats = json.loads(measured.stdout).get("archive", {}).get("stats", {})
        extra = {k: stats[k] for k in ("deduplicated_size", "nfiles") if k in stats}
        return measured, extra

    def restore(self) -> tuple[Measured, Path, dict[str, Any]]:
        self.restore_dir.mkdir()
        measured = self.run(["borg", "extract", f"::{self.archive}"], cwd=self.restore_dir)
        return measured, self.restore_dir / self.source.name, {}


class Kubeferry(Tool):
    name = "kubeferry"

    def __init__(self, *args: Any, workers: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workers = workers
        self.last_snapshot: str | None = None

    def prepare(self) -> None:
        super().prepare()
        self.last_snapshot = None  # a new round starts from an empty repository
        self.env["KUBEFERRY_BENCH_PASSPHRASE"] = self.passphrase

    def version(self) -> str:
        from importlib.metadata import version

        return f"kubeferry {version('kubeferry')} (Python {platform.python_version()})"

    def step(self, *args: str) -> tuple[Measured, dict[str, Any]]:
        argv = [sys.executable, str(Path(__file__).resolve()), "--kubeferry-step", *args]
        argv += ["--repo", str(self.repo)]
        if self.workers:
            argv += ["--workers", str(self.workers)]
        measured = self.run(argv)
        lines = measured.stdout.strip().splitlines()
        return measured, json.loads(lines[-1]) if lines else {}

    def init(self) -> None:
        self.step("init")

    def backup(self, number: int) -> tuple[Measured, dict[str, Any]]:
        args = ["backup", "--source", str(self.source)]
        if self.last_snapshot:
            args += ["--parent", self.last_snapshot]
        measured, result = self.step(*args)
        self.last_snapshot = result["snapshot_id"]
        return measured, result

    def restore(self) -> tuple[Measured, Path, dict[str, Any]]:
        assert self.last_snapshot
        self.restore_dir.mkdir()
        measured, result = self.step(
            "restore", "--snapshot", self.last_snapshot, "--target", str(self.restore_dir)
        )
        return measured, self.restore_dir, result


# -- kubeferry steps (run in their own process) -----------------------------------------------


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def kubeferry_step(args: argparse.Namespace) -> int:
    from reconciler._allocator import limit_malloc_arenas
    from reconciler.repository import FilesystemBackend, Repository

    limit_malloc_arenas()  # as the `kubeferry` command and the Job mover do at start-up

    passphrase = os.environ["KUBEFERRY_BENCH_PASSPHRASE"]
    repository = Repository(FilesystemBackend(args.repo))
    if args.kubeferry_step == "init":
        repository.initialize("bench-volumes", passphrase=passphrase)
        print(json.dumps({"initialized": str(args.repo)}))
        return 0

    from reconciler.volumes import VolumeStore

    try:
        from reconciler.volumes import backup_tree, restore_tree  # type: ignore[attr-defined]
    except ImportError:  # before the package exports them
        from reconciler.volumes._tree import backup_tree, restore_tree

    store = VolumeStore(repository.unlock(passphrase))
    options: dict[str, Any] = {"workers": args.workers} if args.workers else {}
    started = time.perf_counter()
    # backup_tree and restore_tree take the repository's shared lock themselves
    if args.kubeferry_step == "backup":
        result: Any = backup_tree(store, Path(args.source), parent=args.parent, **options)
    else:
        result = restore_tree(store, args.snapshot, Path(args.target), **options)
    output = _plain(result) if hasattr(result, "__dataclass_fields__") else {"result": str(result)}
    output["in_process_seconds"] = time.perf_counter() - started
    print(json.dumps(output))
    return 0


# -- the run ----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def render(results: list[StepResult], info: dict[str, Any]) -> str:
    lines = [
        f"Dataset: {info['files']:,} files, {info['data_mb']:.1f} MB (scale {info['scale']}, "
        f"seed {info['seed']}); changed step rewrote {info['changed_mb']:.1f} MB "
        f"({info['changed_mb'] / info['data_mb'] * 100:.1f}%).",
        f"Machine: {info['machine']['cpus']} CPUs ({info['machine']['cpu_model']}), "
        f"{info['machine']['memory']}, Python {info['machine']['python']}; load average "
        f"(1/5/15 min) {info['load_before']} before, {info['load_after']} after.",
        f"Started {info['started']}; {info.get('rounds', 1)} round(s), each step's median "
        f"shown; versions: {'; '.join(info['versions'].values())}.",
        "",
        "| tool | step | wall s | MB/s | CPU s | peak RSS MB | repo MB | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        repo = f"{r.repo_mb:,.1f}" if r.repo_mb is not None else ""
        lines.append(
            f"| {r.tool} | {r.step} | {r.seconds:.2f} | {r.mb_per_s:,.1f} | "
            f"{r.cpu_seconds:.2f} | {r.peak_rss_mb:.0f} | {repo} | {r.note} |"
        )
    goals = goal_lines(results)
    if goals:
        lines += ["", "Goals (kubeferry vs restic, same run):", "", *goals]
    return "\n".join(lines)


def goal_lines(results: list[StepResult]) -> list[str]:
    by = {(r.tool, r.step): r for r in results}
    if not any(tool == "kubeferry" for tool, _ in by) or not any(t == "restic" for t, _ in by):
        return []

    def ratio(step: str) -> str:
        ours, theirs = by.get(("kubeferry", step)), by.get(("restic", step))
        if not ours or not theirs or not ours.ok:
            return "not measured"
        value = ours.mb_per_s / theirs.mb_per_s
        verdict = "met" if value >= 2 else "NOT met"
        return f"{value:.2f}x ({ours.mb_per_s:.1f} vs {theirs.mb_per_s:.1f} MB/s) — {verdict}"

    lines = [
        f"- first backup throughput (goal >= 2x): {ratio('first')}",
        f"- changed backup throughput (goal >= 2x): {ratio('changed')}",
        f"- restore throughput (goal >= 2x): {ratio('restore')}",
    ]
    ours, theirs = by.get(("kubeferry", "no-change")), by.get(("restic", "no-change"))
    if ours and theirs:
        verdict = "met" if ours.seconds <= theirs.seconds else "NOT met"
        lines.append(
            f"- no-change backup: {ours.seconds:.2f} s vs {theirs.seconds:.2f} s "
            f"(goal: no slower) — {verdict}"
        )
    ours, theirs = by.get(("kubeferry", "changed")), by.get(("restic", "changed"))
    if ours and theirs and ours.repo_mb is not None and theirs.repo_mb is not None:
        verdict = "met" if ours.repo_mb <= theirs.repo_mb else "NOT met"
        lines.append(
            f"- repository after 3 backups: {ours.repo_mb:,.1f} MB vs {theirs.repo_mb:,.1f} MB "
            f"(goal: no larger) — {verdict}"
        )
    peak = max((r.peak_rss_mb for r in results if r.tool == "kubeferry"), default=0.0)
    verdict = "met" if peak < RSS_GOAL_MB else "NOT met"
    lines.append(f"- kubeferry peak RSS: {peak:.0f} MB (goal < {RSS_GOAL_MB} MB) — {verdict}")
    return lines


def one_round(
    runners: list[Tool],
    dataset: Dataset,
    workdir: Path,
    log: Path,
    data_mb: float,
    info: dict[str, Any],
    args: argparse.Namespace,
    round_number: int = 1,
) -> tuple[bool, list[StepResult]]:
    """Every tool through init, three backups and a restore; the results in order."""
    results: list[StepResult] = []
    changed = False
    try:
        for tool in runners:
            tool.prepare()
            tool.init()
        # ext4 without a journal (this machine) skips inodes deleted in the last 5 s (300 s
        # while their blocks are dirty) when it creates files: write back, then wait
        os.sync()
        time.sleep(6)
        for number, step in enumerate(STEPS[:3], start=1):
            if step == "changed":
                info["changed_mb"] = dataset.change() / MB
                changed = True
            for tool in runners:
                print(f"{tool.name}: {step} backup ... ", end="", flush=True)
                os.sync()  # nobody pays for writing back the previous step's dirty pages
                measured, extra = tool.backup(number)
                result = StepResult(
                    tool.name,
                    step,
                    measured.seconds,
                    measured.cpu_seconds,
                    measured.peak_rss_mb,
                    repo_mb=du_bytes(tool.repo) / MB,
                    data_mb=data_mb,
                    extra=extra,
                )
                if "in_process_seconds" in extra:
                    result.note = f"in-process {extra['in_process_seconds']:.2f} s"
                results.append(result)
                print(f"{measured.seconds:.2f} s, {measured.peak_rss_mb:.0f} MB RSS", flush=True)
        print("checksum walk of the source ... ", end="", flush=True)
        expected = tree_digest(dataset.root)
        print("done", flush=True)
        # the first restore of a round creates its files in cold block groups and pays
        # more: the order rotates every round, so the median is nobody's cold start
        shift = (round_number - 1) % len(runners)
        restored_by: dict[str, StepResult] = {}
        for tool in runners[shift:] + runners[:shift]:
            print(f"{tool.name}: restore ... ", end="", flush=True)
            os.sync()
            measured, restored, extra = tool.restore()
            problems = compare(expected, tree_digest(restored))
            result = StepResult(
                tool.name,
                "restore",
                measured.seconds,
                measured.cpu_seconds,
                measured.peak_rss_mb,
                data_mb=data_mb,
                ok=not problems,
                note="verified" if not problems else "VERIFY FAILED: " + "; ".join(problems),
                extra=extra,
            )
            if "in_process_seconds" in extra:
                result.note += f", in-process {extra['in_process_seconds']:.2f} s"
            restored_by[tool.name] = result
            print(f"{measured.seconds:.2f} s, {result.note}", flush=True)
        # the floor under any restore, after them: a plain copy of the dataset from the
        # page cache (the same file creations and bytes written; no repository, no crypto)
        floor_dir = workdir / "floor-copy"
        shutil.rmtree(floor_dir, ignore_errors=True)
        print("cp -a (reference): restore ... ", end="", flush=True)
        os.sync()
        copied = run_measured(
            ["cp", "-a", str(dataset.root), str(floor_dir)],
            env=dict(os.environ),
            cwd=workdir,
            log=log,
        )
        floor = StepResult(
            "cp -a",
            "restore",
            copied.seconds,
            copied.cpu_seconds,
            copied.peak_rss_mb,
            data_mb=data_mb,
            note="reference: plain copy, no repository",
        )
        results.extend([floor, *(restored_by[tool.name] for tool in runners)])
        print(f"{copied.seconds:.2f} s", flush=True)
        # restores are deleted only after all of them: on a journal-less ext4 (this
        # machine's), creating files soon after deleting 20,000 costs seconds of kernel
        # time (ext4 skips recently deleted inodes), which penalised whoever restored next
        for tool in runners:
            shutil.rmtree(tool.restore_dir, ignore_errors=True)
        shutil.rmtree(floor_dir, ignore_errors=True)
    finally:
        info["load_after"] = fmt_load(os.getloadavg())
        if changed:
            dataset.revert((dataset.read_marker() or {}).get("changed") or {})
        if not args.keep:
            for tool in runners:
                shutil.rmtree(tool.work, ignore_errors=True)

    return all(r.ok for r in results), results


def median_results(rounds: list[list[StepResult]]) -> list[StepResult]:
    """Per tool and step, the round with the median wall time (its row, whole); the notes
    give the spread when there were several rounds."""
    if len(rounds) == 1:
        return rounds[0]
    merged: list[StepResult] = []
    for index in range(len(rounds[0])):
        runs = sorted(
            (r[index] for r in rounds if index < len(r)), key=lambda result: result.seconds
        )
        chosen = runs[len(runs) // 2]
        spread = f"median of {len(runs)}: {runs[0].seconds:.2f}-{runs[-1].seconds:.2f} s"
        chosen.note = f"{spread}; {chosen.note}" if chosen.note else spread
        chosen.ok = all(r.ok for r in runs)
        merged.append(chosen)
    return merged


def bench(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    checkout = Path(__file__).resolve().parent.parent
    if workdir == checkout or checkout in workdir.parents:
        print(f"--workdir must be outside the checkout ({checkout})", file=sys.stderr)
        return 2
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.peers_only:
        tools = [t for t in tools if t != "kubeferry"]
    for tool in tools:
        if tool not in TOOLS:
            print(f"unknown tool {tool!r}; known: {', '.join(TOOLS)}", file=sys.stderr)
            return 2
        if tool != "kubeferry" and not shutil.which(tool):
            print(f"{tool} not found: apt-get install -y restic borgbackup", file=sys.stderr)
            return 2
    if "kubeferry" in tools:
        try:
            from reconciler.volumes import VolumeStore  # noqa: F401
            from reconciler.volumes._tree import backup_tree, restore_tree  # noqa: F401
        except ImportError as exc:
            print(f"kubeferry's volume engine is not importable ({exc}); use --peers-only")
            return 2

    workdir.mkdir(parents=True, exist_ok=True)
    dataset = Dataset(workdir / "data", args.seed, args.scale)
    print(f"dataset in {dataset.root}: ", end="", flush=True)
    print(dataset.ensure(), flush=True)
    files, size = tree_bytes(dataset.root)
    data_mb = size / MB
    print(f"  {files:,} files, {data_mb:.1f} MB")

    log = workdir / "commands.log"
    log.write_text("")
    passphrase = secrets.token_urlsafe(24)
    runners: list[Tool] = []
    for name in tools:
        if name == "restic":
            runners.append(Restic(workdir, dataset.root, passphrase, log))
        elif name == "borg":
            runners.append(Borg(workdir, dataset.root, passphrase, log))
        else:
            runners.append(Kubeferry(workdir, dataset.root, passphrase, log, workers=args.workers))
    info: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "files": files,
        "data_mb": data_mb,
        "changed_mb": 0.0,
        "machine": machine_info(),
        "versions": {tool.name: tool.version() for tool in runners},
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": fmt_load(os.getloadavg()),
    }
    rounds: list[list[StepResult]] = []
    for round_number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"-- round {round_number} of {args.repeat}", flush=True)
        ok, round_results = one_round(
            runners, dataset, workdir, log, data_mb, info, args, round_number
        )
        rounds.append(round_results)
        if not ok:
            break
    results = median_results(rounds)
    info["rounds"] = len(rounds)
    if args.clean:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(render(results, info))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"info": info, "results": [asdict(r) for r in results]}, indent=2, default=str
            )
        )
    return 0 if all(r.ok for r in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size factor")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--peers-only", action="store_true", help="restic and borg only")
    parser.add_argument("--workers", type=int, help="kubeferry workers (default: its own)")
    parser.add_argument("--keep", action="store_true", help="keep repositories afterwards")
    parser.add_argument("--clean", action="store_true", help="also delete the dataset")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds; the report gives each step's median"
    )
    # internal: one kubeferry step, run in its own process by the benchmark
    parser.add_argument("--kubeferry-step", choices=["init", "backup", "restore"])
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--source")
    parser.add_argument("--parent")
    parser.add_argument("--snapshot")
    parser.add_argument("--target")
    args = parser.parse_args()
    if args.kubeferry_step:
        return kubeferry_step(args)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
