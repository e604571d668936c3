"""DR drills, retention and garbage collection: kubeferry vs restic and borg (issue 7).

Uses the dataset of bench_volumes.py (imported, not copied), by default at half its size
(`--scale 0.5`: 8 x 50 MB "volume images" and 10,000 small files, about 550 MB), and
measures two things in ONE run, every step in its own process (wall time around it, CPU
time and peak RSS from os.wait4's rusage), each after a `sync`:

1. Drill verification of restored volume data. Setup (not timed): each tool backs the
   dataset up once into its own encrypted repository; kubeferry restores its snapshot into
   an empty directory, which is checked against the source. Timed, per round, in an order
   that rotates by round:

     kubeferry verify_tree   what a drill does for each volume (`_verify_volumes` in
                             reconciler/reconcile/_drill.py): the VolumeManifest from the
                             store, then `verify_tree(manifest, root, store.chunk_id)`:
                             types, modes, sizes, links, every file re-chunked and hashed
                             with the keyed BLAKE3, extra entries
     sha256sum walk          a runbook's check of the same restored tree:
                             `find . -type f -print0 | sort -z | xargs -0 sha256sum`; only
                             ONE side is timed (a real runbook also hashes the source, or
                             keeps a list from backup time), so the peer is favoured
     restic check            `restic check --read-data` of restic's repository holding the
       --read-data           same data: verifies the BACKUP (every pack read, decrypted,
                             hashed), not a restore
     kubeferry store check   informational, like-for-like with restic's check:
                             `VolumeStore.check(read_data=True)`, what
                             `kubeferry repo check --read-data` does for volume data
     borg check              informational: `borg check --verify-data`
       --verify-data

   After the rounds, one byte in the middle of one restored file is flipped: verify_tree
   must report exactly that one mismatch, or the benchmark fails.

2. Retention and garbage collection. Per round, fresh repositories: K backups (default 5)
   of the dataset with a different ~5% of it rewritten before each (bench_volumes'
   change() pattern, a new selection of regions and small files per generation; the
   dataset is reverted afterwards). Then keep only the newest snapshot, timed, in an order
   that rotates by round:

     kubeferry   delete the K-1 oldest volume snapshots (`VolumeStore.delete_snapshot`),
                 referenced chunk ids from the remaining manifests, then
                 `VolumeStore.prune(referenced=..., grace=timedelta(0))`, as
                 `ActionRunner.collect_volume_garbage` does (one process)
     restic      `restic forget --keep-last 1 --prune`
     borg        `borg prune --keep-last 1`, then `borg compact` (borg 1.2 frees space only
                 in compact); both and their sum are reported

   Repository size (apparent size of its files, as bench_volumes' du_bytes) before and
   after, and each tool's kept snapshot is restored (not timed) and compared with the
   dataset it was taken of (BLAKE3 of every file, sizes, directory set).

    .venv/bin/python bench/bench_drills.py [--scale 0.5] [--repeat N] [--backups 5]
        [--work DIR] [--json FILE] [--parts verify,gc] [--keep] [--clean]

Work directory default: /tmp/kubeferry-bench-drills (refused inside the checkout); its
dataset is reused when seed and scale match. Repositories and restores are deleted at the
end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_volumes as bv
from bench_volumes import MB, Measured, StepResult

DEFAULT_WORK = Path(tempfile.gettempdir()) / "kubeferry-bench-drills"
DEFAULT_SCALE = 0.5
DEFAULT_BACKUPS = 5
SHA_WALK = "set -o pipefail; find . -type f -print0 | sort -z | xargs -0 sha256sum"
PLANTED_FILE = "large/volume-2.img"
PARTS = ("verify", "gc")

# part 1: (tool, step) in table order, with what each one checks
VERIFY_ROWS: dict[tuple[str, str], str] = {
    ("kubeferry", "verify_tree"): "restored tree vs snapshot manifest (what a drill runs)",
    ("sha256sum", "find | sort | xargs sha256sum"): "restored tree, one side only (favoured)",
    ("restic", "check --read-data"): "restic's repository: the backup, not the restore",
    ("kubeferry", "store check --read-data"): "informational: its repository, like restic check",
    ("borg", "check --verify-data"): "informational: borg's repository",
}


class BenchFailure(Exception):
    """A correctness check failed: the figures of this run must not be used."""


# -- the dataset: a different change per generation -------------------------------------------


# -- the tools ----------------------------------------------------------------------------------


class KubeferryTool(bv.Kubeferry):
    """bench_volumes' kubeferry (init/backup/restore steps) plus this file's drill steps."""

    def __init__(self, work: Path, source: Path, passphrase: str, log: Path) -> None:
        super().__init__(work, source, passphrase, log)
        self.snapshots: list[str] = []

    def prepare(self) -> None:
        super().prepare()
        self.snapshots = []

    def backup(self, number: int) -> tuple[Measured, dict[str, Any]]:
        measured, result = super().backup(number)
        self.snapshots.append(result["snapshot_id"])
        return measured, result

    def drill_step(self, *args: str) -> tuple[Measured, dict[str, Any]]:
        argv = [sys.executable, str(Path(__file__).resolve()), "--kubeferry-step", *args]
        measured = self.run([*argv, "--repo", str(self.repo)])
        lines = measured.stdout.strip().splitlines()
        return measured, json.loads(lines[-1]) if lines else {}


def make_tools(
    work: Path, source: Path, passphrase: str, log: Path
) -> tuple[bv.Restic, bv.Borg, KubeferryTool]:
    return (
        bv.Restic(work, source, passphrase, log),
        bv.Borg(work, source, passphrase, log),
        KubeferryTool(work, source, passphrase, log),
    )


def fresh_repositories(tools: tuple[bv.Tool, ...]) -> None:
    for tool in tools:
        tool.prepare()
        tool.init()
    # ext4 without a journal (this machine) skips inodes deleted in the last 5 s (300 s while
    # their blocks are dirty) when it creates files: write back, then wait (bench/README.md)
    os.sync()
    time.sleep(6)


def result_of(
    tool: str,
    step: str,
    measured: Measured,
    *,
    data_mb: float = 0.0,
    ok: bool = True,
    note: str = "",
    **extra: Any,
) -> StepResult:
    return StepResult(
        tool,
        step,
        measured.seconds,
        measured.cpu_seconds,
        measured.peak_rss_mb,
        data_mb=data_mb,
        ok=ok,
        note=note,
        extra=dict(extra),
    )


# -- part 1: drill verification -------------------------------------------------------------


class VerifySetup:
    """Repositories holding one snapshot of the dataset, and kubeferry's restore of it."""

    def __init__(self, work: Path, dataset: bv.Dataset, passphrase: str, log: Path) -> None:
        self.restic, self.borg, self.kubeferry = make_tools(work, dataset.root, passphrase, log)
        self.dataset = dataset
        self.log = log
        self.restored = self.kubeferry.restore_dir
        self.files = 0
        self.data_bytes = 0
        self.data_mb = 0.0
        self.source_sums = ""
        self.setup: dict[str, float] = {}

    @property
    def tools(self) -> tuple[bv.Tool, ...]:
        return (self.restic, self.borg, self.kubeferry)

    def build(self) -> None:
        fresh_repositories(self.tools)
        for tool in self.tools:
            print(f"  {tool.name}: backup ... ", end="", flush=True)
            os.sync()
            measured, _ = tool.backup(1)
            self.setup[f"{tool.name} backup s"] = measured.seconds
            print(f"{measured.seconds:.2f} s", flush=True)
        print("  kubeferry: restore ... ", end="", flush=True)
        os.sync()
        measured, restored, _ = self.kubeferry.restore()
        self.setup["kubeferry restore s"] = measured.seconds
        assert restored == self.restored
        print(f"{measured.seconds:.2f} s", flush=True)
        problems = bv.compare(bv.tree_digest(self.dataset.root), bv.tree_digest(self.restored))
        if problems:
            raise BenchFailure(f"kubeferry's restore differs from the source: {problems}")
        self.files, self.data_bytes = bv.tree_bytes(self.restored)
        self.data_mb = self.data_bytes / MB
        # the peer's expected output, from the source (not timed)
        self.source_sums = sha_walk(self.dataset.root, self.log).stdout
        os.sync()

    # the timed checks ------------------------------------------------------------------------

    def verify_tree(self) -> StepResult:
        measured, out = self.kubeferry.drill_step(
            "verify", "--snapshot", self.kubeferry.snapshots[-1], "--target", str(self.restored)
        )
        ok = (
            out["mismatch_count"] == 0
            and out["files"] == self.files
            and out["bytes"] == self.data_bytes
        )
        note = (
            f"in-process {out['verify_seconds']:.2f} s "
            f"({self.data_mb / out['verify_seconds']:,.1f} MB/s); imports "
            f"{out['import_seconds']:.2f} s, unlock + manifest {out['open_seconds']:.2f} s"
        )
        if not ok:
            note = (
                f"FAILED: {out['mismatch_count']} mismatches, {out['files']} files, "
                f"{out['bytes']} bytes; {note}"
            )
        return result_of(
            "kubeferry", "verify_tree", measured, data_mb=self.data_mb, ok=ok, note=note, **out
        )

    def sha_walk(self) -> StepResult:
        measured = sha_walk(self.restored, self.log)
        ok = measured.stdout == self.source_sums
        note = "output equals the source's sums" if ok else "FAILED: output differs from source"
        return result_of(
            "sha256sum",
            "find | sort | xargs sha256sum",
            measured,
            data_mb=self.data_mb,
            ok=ok,
            note=note,
        )

    def restic_check(self) -> StepResult:
        measured = self.restic.run(["restic", "check", "--read-data"])
        repo_mb = bv.du_bytes(self.restic.repo) / MB
        return result_of(
            "restic",
            "check --read-data",
            measured,
            data_mb=self.data_mb,
            note=f"read {repo_mb:,.1f} MB of repository",
            repo_mb=repo_mb,
        )

    def store_check(self) -> StepResult:
        measured, out = self.kubeferry.drill_step("check")
        repo_mb = bv.du_bytes(self.kubeferry.repo) / MB
        ok = not out["problems"]
        note = f"read {repo_mb:,.1f} MB of repository; in-process {out['check_seconds']:.2f} s"
        if not ok:
            note = f"FAILED: {out['problems'][:3]}; {note}"
        return result_of(
            "kubeferry",
            "store check --read-data",
            measured,
            data_mb=self.data_mb,
            ok=ok,
            note=note,
            repo_mb=repo_mb,
            **out,
        )

    def borg_check(self) -> StepResult:
        measured = self.borg.run(["borg", "check", "--verify-data"])
        repo_mb = bv.du_bytes(self.borg.repo) / MB
        return result_of(
            "borg",
            "check --verify-data",
            measured,
            data_mb=self.data_mb,
            note=f"read {repo_mb:,.1f} MB of repository",
            repo_mb=repo_mb,
        )

    def one_round(self, round_number: int) -> list[StepResult]:
        checks = [
            self.verify_tree,
            self.sha_walk,
            self.restic_check,
            self.store_check,
            self.borg_check,
        ]
        shift = (round_number - 1) % len(checks)
        done: dict[tuple[str, str], StepResult] = {}
        for check in checks[shift:] + checks[:shift]:
            os.sync()
            result = check()
            done[(result.tool, result.step)] = result
            print(
                f"  {result.tool} {result.step}: {result.seconds:.2f} s, "
                f"{result.mb_per_s:,.1f} MB/s{'' if result.ok else ' — ' + result.note}",
                flush=True,
            )
        return [done[key] for key in VERIFY_ROWS]

    def planted_change(self) -> dict[str, Any]:
        """Flip one byte mid-file in the restored tree: verify_tree must report exactly it."""
        path = self.restored / PLANTED_FILE
        size = path.stat().st_size
        offset = size // 2 + 4321 if size > 8642 else size // 2
        fd = os.open(path, os.O_RDWR)
        try:
            original = os.pread(fd, 1, offset)
            os.pwrite(fd, bytes([original[0] ^ 0xFF]), offset)
            try:
                measured, out = self.kubeferry.drill_step(
                    "verify",
                    "--snapshot",
                    self.kubeferry.snapshots[-1],
                    "--target",
                    str(self.restored),
                )
            finally:
                os.pwrite(fd, original, offset)
        finally:
            os.close(fd)
        found = out["mismatches"]
        caught = (
            out["mismatch_count"] == 1
            and found[0]["path"] == PLANTED_FILE
            and "content differs" in found[0]["problem"]
        )
        if not caught:
            raise BenchFailure(
                f"verify_tree did not report exactly the planted change (byte {offset} of "
                f"{PLANTED_FILE}): {out['mismatch_count']} mismatch(es): {found[:5]}"
            )
        return {
            "file": PLANTED_FILE,
            "offset": offset,
            "reported": found[0],
            "seconds": measured.seconds,
            "verify_seconds": out["verify_seconds"],
        }


def sha_walk(root: Path, log: Path) -> Measured:
    return bv.run_measured(
        ["bash", "-c", SHA_WALK], env={**os.environ, "LC_ALL": "C"}, cwd=root, log=log
    )


# -- part 2: retention and garbage collection ----------------------------------------------


def gc_steps(backups: int) -> list[tuple[str, str]]:
    return [
        ("kubeferry", f"delete {backups - 1} + prune"),
        ("restic", "forget --keep-last 1 --prune"),
        ("borg", "prune --keep-last 1"),
        ("borg", "compact"),
        ("borg", "prune + compact"),
    ]


def gc_round(
    work: Path,
    dataset: bv.Dataset,
    passphrase: str,
    log: Path,
    backups: int,
    round_number: int,
    info: dict[str, Any],
) -> list[StepResult]:
    restic, borg, kubeferry = make_tools(work, dataset.root, passphrase, log)
    tools: tuple[bv.Tool, ...] = (restic, borg, kubeferry)
    changed = False
    done: dict[tuple[str, str], StepResult] = {}
    try:
        fresh_repositories(tools)
        backup_seconds: dict[str, list[float]] = {tool.name: [] for tool in tools}
        changed_mb: list[float] = []
        for number in range(1, backups + 1):
            if number > 1:
                changed = True
                changed_mb.append(dataset.change(number - 1) / MB)
            for tool in tools:
                os.sync()
                measured, _ = tool.backup(number)
                backup_seconds[tool.name].append(round(measured.seconds, 3))
            print(f"  backup {number} of {backups} done by all tools", flush=True)
        info["changed_mb_per_generation"] = [round(value, 1) for value in changed_mb]
        info.setdefault("gc_backup_seconds", []).append(backup_seconds)
        expected = bv.tree_digest(dataset.root)
        size = {tool.name: bv.du_bytes(tool.repo) / MB for tool in tools}

        def run_kubeferry() -> None:
            before = size["kubeferry"]
            old = kubeferry.snapshots[:-1]
            measured, out = kubeferry.drill_step("gc", "--delete", ",".join(old))
            if out["remaining"] != kubeferry.snapshots[-1:]:
                raise BenchFailure(f"kubeferry kept {out['remaining']}, wanted the newest only")
            stats = out["prune"]
            in_process = out["delete_seconds"] + out["reference_seconds"] + out["prune_seconds"]
            note = (
                f"in-process {in_process:.2f} s (delete "
                f"{out['delete_seconds']:.2f}, references {out['reference_seconds']:.2f}, "
                f"prune {out['prune_seconds']:.2f}); packs deleted {stats['deleted_packs']}, "
                f"repacked {stats['repacked_packs']}, kept {stats['kept_packs']}"
            )
            done[("kubeferry", f"delete {backups - 1} + prune")] = after(
                kubeferry, f"delete {backups - 1} + prune", measured, before, note, out
            )

        def run_restic() -> None:
            before = size["restic"]
            measured = restic.run(["restic", "forget", "--keep-last", "1", "--prune"])
            listed = json.loads(restic.run(["restic", "snapshots", "--json"]).stdout or "[]")
            if len(listed) != 1:
                raise BenchFailure(f"restic kept {len(listed)} snapshots, wanted 1")
            step = "forget --keep-last 1 --prune"
            done[("restic", step)] = after(restic, step, measured, before, "", {})

        def run_borg() -> None:
            before = size["borg"]
            pruned = borg.run(["borg", "prune", "--keep-last", "1"])
            done[("borg", "prune --keep-last 1")] = after(
                borg, "prune --keep-last 1", pruned, before, "borg 1.2 frees space in compact", {}
            )
            middle = bv.du_bytes(borg.repo) / MB
            os.sync()
            compacted = borg.run(["borg", "compact"])
            done[("borg", "compact")] = after(borg, "compact", compacted, middle, "", {})
            names = borg.run(["borg", "list", "--short"]).stdout.split()
            if names != [borg.archive]:
                raise BenchFailure(f"borg kept {names}, wanted [{borg.archive}]")
            total = Measured(
                pruned.seconds + compacted.seconds,
                pruned.cpu_seconds + compacted.cpu_seconds,
                max(pruned.peak_rss_mb, compacted.peak_rss_mb),
                0,
                "",
                "",
            )
            done[("borg", "prune + compact")] = after(
                borg, "prune + compact", total, before, "sum of the two", {}
            )

        steps = [run_kubeferry, run_restic, run_borg]
        shift = (round_number - 1) % len(steps)
        for run in steps[shift:] + steps[:shift]:
            os.sync()
            run()
        for key in gc_steps(backups):
            result = done[key]
            print(
                f"  {result.tool} {result.step}: {result.seconds:.2f} s, repo "
                f"{result.extra['repo_mb_before']:,.1f} -> {result.repo_mb or 0:,.1f} MB",
                flush=True,
            )

        # the kept snapshot must still restore, byte for byte (not timed)
        restored_ok: dict[str, str] = {}
        for tool in tools:
            os.sync()
            measured, restored, _ = tool.restore()
            problems = bv.compare(expected, bv.tree_digest(restored))
            restored_ok[tool.name] = (
                "kept snapshot restores identically"
                if not problems
                else "RESTORE AFTER GC FAILED: " + "; ".join(problems)
            )
            print(f"  {tool.name}: restore of the kept snapshot: {restored_ok[tool.name]}")
            for (name, step), result in done.items():
                if name == tool.name and step != "prune --keep-last 1" and step != "compact":
                    result.ok = not problems
                    result.note = "; ".join(filter(None, [restored_ok[name], result.note]))
                    result.extra["restore_seconds"] = measured.seconds
        if "gc_floor_mb" not in info:
            info["gc_floor_mb"] = floor_sizes(work.parent / "gc-floor", dataset, passphrase, log)
    finally:
        if changed:
            dataset.revert((dataset.read_marker() or {}).get("changed") or {})
        for tool in tools:
            shutil.rmtree(tool.restore_dir, ignore_errors=True)
        os.sync()
    return [done[key] for key in gc_steps(backups)]


def floor_sizes(work: Path, dataset: bv.Dataset, passphrase: str, log: Path) -> dict[str, float]:
    """Each tool's repository holding one fresh backup of the current dataset (not timed):
    what a perfect collection would leave after keeping only the newest snapshot."""
    print("  floor: one fresh backup of the kept state per tool ... ", end="", flush=True)
    sizes: dict[str, float] = {}
    for tool in make_tools(work, dataset.root, passphrase, log):
        tool.prepare()
        tool.init()
        tool.backup(1)
        sizes[tool.name] = bv.du_bytes(tool.repo) / MB
    shutil.rmtree(work, ignore_errors=True)
    print(", ".join(f"{name} {size:,.1f} MB" for name, size in sizes.items()), flush=True)
    return sizes


def after(
    tool: bv.Tool,
    step: str,
    measured: Measured,
    before_mb: float,
    note: str,
    extra: dict[str, Any],
) -> StepResult:
    result = result_of(tool.name, step, measured, note=note, **extra)
    result.repo_mb = bv.du_bytes(tool.repo) / MB
    result.extra["repo_mb_before"] = before_mb
    return result


# -- kubeferry steps (run in their own process) -----------------------------------------------


def kubeferry_step(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from reconciler._allocator import limit_malloc_arenas

    limit_malloc_arenas()  # as the `kubeferry` command and the Job mover do at start-up
    from reconciler.repository import FilesystemBackend, Repository
    from reconciler.volumes import VolumeManifest, VolumeStore

    if args.kubeferry_step == "verify":
        from reconciler.reconcile._drill_verify import verify_tree
    imported = time.perf_counter()
    # as _verify_volumes: the unlocked repository's VolumeStore, its manifest and chunk_id
    stored = Repository(FilesystemBackend(args.repo)).unlock(
        os.environ["KUBEFERRY_BENCH_PASSPHRASE"]
    )
    store = VolumeStore(stored)
    output: dict[str, Any] = {"import_seconds": imported - started}

    if args.kubeferry_step == "verify":
        manifest = VolumeManifest.from_bytes(store.load_manifest(args.snapshot))
        opened = time.perf_counter()
        mismatches, files, size = verify_tree(
            manifest, Path(args.target), store.chunk_id, item="bench"
        )
        output.update(
            open_seconds=opened - imported,
            verify_seconds=time.perf_counter() - opened,
            files=files,
            bytes=size,
            mismatch_count=len(mismatches),
            mismatches=[m.to_dict() for m in mismatches[:20]],
        )
    elif args.kubeferry_step == "check":
        # what `kubeferry repo check --read-data` does for volume data
        referenced: set[str] = set()
        for snapshot_id in store.list_snapshots():
            referenced.update(
                VolumeManifest.from_bytes(store.load_manifest(snapshot_id)).chunk_ids()
            )
        opened = time.perf_counter()
        problems = store.check(read_data=True, referenced=referenced)
        output.update(check_seconds=time.perf_counter() - opened, problems=problems[:20])
    else:  # gc: as ActionRunner.collect_volume_garbage after retention, without the grace
        begun = time.perf_counter()
        for snapshot_id in filter(None, args.delete.split(",")):
            store.delete_snapshot(snapshot_id)
        deleted = time.perf_counter()
        remaining = store.list_snapshots()
        referenced = set()
        for snapshot_id in remaining:
            referenced.update(
                VolumeManifest.from_bytes(store.load_manifest(snapshot_id)).chunk_ids()
            )
        collected = time.perf_counter()
        stats = store.prune(referenced=referenced, grace=timedelta(0))
        output.update(
            delete_seconds=deleted - begun,
            reference_seconds=collected - deleted,
            prune_seconds=time.perf_counter() - collected,
            remaining=remaining,
            prune=asdict(stats),
        )
    print(json.dumps(output))
    return 0


# -- the run ----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _mb(value: float) -> str:
    return f"{round(value, 1) + 0.0:,.1f}"  # + 0.0: no "-0.0"


def render(verify: list[StepResult], gc: list[StepResult], info: dict[str, Any]) -> str:
    machine = info["machine"]
    lines = [
        f"Dataset: {info['files']:,} files, {info['data_mb']:.1f} MB (bench_volumes' dataset "
        f"at scale {info['scale']}, seed {info['seed']}).",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory']}, "
        f"Python {machine['python']}, kernel {machine['kernel']}; load average (1/5/15 min) "
        f"{info['load_before']} before, {info['load_after']} after.",
        f"Started {info['started']}; {info['rounds']} round(s), each row the median round "
        f"(by wall time); versions: {'; '.join(info['versions'].values())}.",
    ]
    if verify:
        lines += [
            "",
            "Drill verification of the restored dataset (MB/s = dataset MB / wall s; page "
            "cache warm):",
            "",
            "| tool | verification | checks | wall s | MB/s | CPU s | peak RSS MB | notes |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for r in verify:
            lines.append(
                f"| {r.tool} | {_cell(r.step)} | {VERIFY_ROWS[(r.tool, r.step)]} | "
                f"{r.seconds:.2f} | {r.mb_per_s:,.1f} | {r.cpu_seconds:.2f} | "
                f"{r.peak_rss_mb:.0f} | {_cell(r.note)} |"
            )
        planted = info.get("planted")
        if planted:
            lines += [
                "",
                f"Planted change: byte {planted['offset']:,} of {planted['file']} flipped in "
                f"the restored tree; verify_tree reported exactly 1 mismatch: "
                f"{planted['reported']['path']}: {planted['reported']['problem']}.",
            ]
    if gc:
        k = info["backups"]
        per_gen = ", ".join(f"{value:.1f}" for value in info.get("changed_mb_per_generation", []))
        lines += [
            "",
            f"Retention + GC: {k} backups per tool ({per_gen} MB rewritten before backups "
            f"2-{k}), then keep only the newest. Repo MB = apparent size of its files; "
            "floor = a fresh repository with one backup of the kept state (not timed); "
            "left over = after - floor (unreferenced data the collection kept):",
            "",
            "| tool | step | wall s | CPU s | peak RSS MB | repo MB before | repo MB after "
            "| freed MB | floor MB | left over MB | notes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        floors: dict[str, float] = info.get("gc_floor_mb", {})
        for r in gc:
            before = float(r.extra["repo_mb_before"])
            after_mb = r.repo_mb or 0.0
            floor = floors.get(r.tool)
            floor_cells = f"{floor:,.1f} | {_mb(after_mb - floor)}" if floor is not None else " | "
            lines.append(
                f"| {r.tool} | {_cell(r.step)} | {r.seconds:.2f} | {r.cpu_seconds:.2f} | "
                f"{r.peak_rss_mb:.0f} | {before:,.1f} | {after_mb:,.1f} | "
                f"{_mb(before - after_mb)} | {floor_cells} | {_cell(r.note)} |"
            )
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> int:
    work: Path = args.work.resolve()
    checkout = Path(__file__).resolve().parent.parent
    if work == checkout or checkout in work.parents:
        print(f"--work must be outside the checkout ({checkout})", file=sys.stderr)
        return 2
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or any(p not in PARTS for p in parts):
        print(f"--parts: a comma-separated subset of {', '.join(PARTS)}", file=sys.stderr)
        return 2
    if args.backups < 2:
        print("--backups must be at least 2", file=sys.stderr)
        return 2
    for program in ("restic", "borg", "sha256sum", "find", "xargs", "sort", "bash"):
        if not shutil.which(program):
            print(f"{program} not found (restic, borg: apt-get install restic borgbackup)")
            return 2

    work.mkdir(parents=True, exist_ok=True)
    dataset = bv.Dataset(work / "data", args.seed, args.scale)
    print(f"dataset in {dataset.root}: ", end="", flush=True)
    print(dataset.ensure(), flush=True)
    files, size = bv.tree_bytes(dataset.root)
    print(f"  {files:,} files, {size / MB:.1f} MB")
    log = work / "commands.log"
    log.write_text("")
    passphrase = secrets.token_urlsafe(24)
    probe = make_tools(work / "verify", dataset.root, passphrase, log)
    info: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "backups": args.backups,
        "files": files,
        "data_mb": size / MB,
        "machine": bv.machine_info(),
        "versions": {tool.name: tool.version() for tool in probe},
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": bv.fmt_load(os.getloadavg()),
        "shell_peer": SHA_WALK,
    }
    verify_rounds: list[list[StepResult]] = []
    gc_rounds: list[list[StepResult]] = []
    setup: VerifySetup | None = None
    try:
        if "verify" in parts:
            print("-- drill verification: setup (backups, kubeferry restore)", flush=True)
            setup = VerifySetup(work / "verify", dataset, passphrase, log)
            setup.build()
            info["verify_setup_seconds"] = setup.setup
            for round_number in range(1, args.repeat + 1):
                print(f"-- drill verification: round {round_number} of {args.repeat}")
                verify_rounds.append(setup.one_round(round_number))
            print("-- drill verification: planted change", flush=True)
            info["planted"] = setup.planted_change()
            print(f"  caught: {info['planted']['reported']}", flush=True)
            # its restore is deleted before part 2 creates files (ext4 without a journal)
            if not args.keep:
                for tool in setup.tools:
                    shutil.rmtree(tool.work, ignore_errors=True)
        if "gc" in parts:
            for round_number in range(1, args.repeat + 1):
                print(f"-- retention + GC: round {round_number} of {args.repeat}", flush=True)
                gc_rounds.append(
                    gc_round(
                        work / "gc",
                        dataset,
                        passphrase,
                        log,
                        args.backups,
                        round_number,
                        info,
                    )
                )
    finally:
        info["load_after"] = bv.fmt_load(os.getloadavg())
        if not args.keep:
            for sub in ("verify", "gc"):
                shutil.rmtree(work / sub, ignore_errors=True)
    verify = bv.median_results(verify_rounds) if verify_rounds else []
    gc = bv.median_results(gc_rounds) if gc_rounds else []
    info["rounds"] = max(len(verify_rounds), len(gc_rounds))
    if args.clean:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(render(verify, gc, info))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "info": info,
                    "verification": [asdict(r) for r in verify],
                    "retention_gc": [asdict(r) for r in gc],
                    "rounds": {
                        "verification": [[asdict(r) for r in rs] for rs in verify_rounds],
                        "retention_gc": [[asdict(r) for r in rs] for rs in gc_rounds],
                    },
                },
                indent=2,
                default=str,
            )
        )
    failed = [r for r in (*verify, *gc) if not r.ok]
    for r in failed:
        print(f"FAILED: {r.tool} {r.step}: {r.note}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=DEFAULT_SCALE, help="of bench_volumes' dataset"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; rows are medians")
    parser.add_argument("--backups", type=int, default=DEFAULT_BACKUPS, help="K for part 2")
    parser.add_argument("--work", "--workdir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--parts", default=",".join(PARTS), help="verify,gc or one of them")
    parser.add_argument("--keep", action="store_true", help="keep repositories and restores")
    parser.add_argument("--clean", action="store_true", help="also delete the dataset")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    # internal: one kubeferry step, run in its own process by the benchmark
    parser.add_argument("--kubeferry-step", choices=["verify", "check", "gc"])
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--snapshot")
    parser.add_argument("--target")
    parser.add_argument("--delete", default="")
    args = parser.parse_args()
    if args.kubeferry_step:
        return kubeferry_step(args)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        return bench(args)
    except BenchFailure as failure:
        print(f"\nBENCH FAILED: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
