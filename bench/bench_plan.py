"""Plan time for a large inventory, cluster I/O excluded (issue 3).

Generates a synthetic inventory (10 clusters, 5 slices, 1 filesystem repository, N
ReplicationJobs with distinct namespaces, a third of them with a backupFrequency) and a
ledger pre-filled as if the inventory had been applied before: about 90% of the jobs are
converged, about 10% need a copy (spec changed, source namespace changed, backup due or
never run, new job). The observed state (what `refresh` would read from the clusters) is
built directly, so no cluster or repository is contacted.

Then it times, in-process and phase by phase, what `kubeferry plan` does after refresh:

  load + validate inventory    load_inventory(path)
  open ledger                  Ledger.open(path) (engine + migration check), as plan does
  read ledger                  recorded_state(ledger)
  desired view                 desired_state(inventory) (job digests)
  compute_plan                 the pure diff
  render text                  render_plan to a rich Console writing to io.StringIO
  render JSON                  plan_to_json

The peer, measured in the same run: the same pipeline at a tenth of the jobs (scaling), and
`kubeferry validate -f` of both inventories as subprocesses (end-to-end CLI, including
interpreter start-up), next to `kubeferry --version` (start-up and imports only).

    .venv/bin/python bench/bench_plan.py [--jobs 1000] [--repeat 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from reconciler.inventory import Inventory, load_inventory
from reconciler.plan import (
    ActionType,
    ClusterObservation,
    NamespaceObservation,
    ObservedState,
    Plan,
    RepositoryObservation,
    compute_plan,
    plan_to_json,
    render_plan,
)
from reconciler.reconcile._refresh import REQUIRED_PERMISSIONS, _permission_key
from reconciler.reconcile._views import desired_job, desired_state, recorded_state
from state import Availability, Ledger, Reachability

API = "kubeferry.io/v1alpha1"
CLUSTERS = [f"cluster-{i:02d}" for i in range(10)]
# (name, source, destination): four replication slices and one backup slice
SLICES = [
    ("repl-a", "cluster-01", "cluster-02"),
    ("repl-b", "cluster-03", "cluster-04"),
    ("repl-c", "cluster-05", "cluster-06"),
    ("repl-d", "cluster-07", "cluster-08"),
    ("backup-e", "cluster-09", "cluster-09"),
]
REPOSITORY = "local"
HOURLY = "0 * * * *"
# fixed clock: converged jobs succeeded 10 minutes ago, so an hourly backup is not due yet
NOW = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
RECENT = NOW - timedelta(minutes=10)
LONG_AGO = NOW - timedelta(hours=3)

PHASES = (
    "load + validate inventory",
    "open ledger",
    "read ledger (recorded_state)",
    "desired view (desired_state)",
    "compute_plan",
    "render text",
    "render JSON",
)


# -- the synthetic inventory ---------------------------------------------------------------


def _documents(jobs: int, repository_dir: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for index, name in enumerate(CLUSTERS):
        docs.append(
            {
                "apiVersion": API,
                "kind": "Cluster",
                "metadata": {"name": name},
                "spec": {
                    "context": name,
                    "role": "controller" if index == 0 else "worker",
                    **({"protected": True} if index in (2, 4) else {}),
                },
            }
        )
    docs.append(
        {
            "apiVersion": API,
            "kind": "ReplicationRepository",
            "metadata": {"name": REPOSITORY},
            "spec": {"filesystem": {"path": str(repository_dir)}},
        }
    )
    for name, source, destination in SLICES:
        docs.append(
            {
                "apiVersion": API,
                "kind": "ReplicationSlice",
                "metadata": {"name": name},
                "spec": {
                    "sourceCluster": source,
                    "destinationCluster": destination,
                    "repository": REPOSITORY,
                    "statusWriteBack": source != destination,
                },
            }
        )
    for i in range(jobs):
        spec: dict[str, Any] = {
            "replicationSliceName": SLICES[i % len(SLICES)][0],
            "namespace": f"app-{i:04d}",
            "existingResourcePolicy": "update" if i % 2 else "none",
        }
        if i % 3 == 0:
            spec["backupFrequency"] = HOURLY
            spec["retention"] = {"keepLast": 5, "keepDaily": 7, "ttl": "30d"}
        if i % 7 == 0:
            spec["resourcesToExclude"] = ["events", "events.events.k8s.io"]
        if i % 11 == 0:
            spec["labelSelector"] = {"matchLabels": {"app": f"app-{i:04d}", "tier": "web"}}
        docs.append(
            {
                "apiVersion": API,
                "kind": "ReplicationJob",
                "metadata": {"name": f"job-{i:04d}"},
                "spec": spec,
            }
        )
    return docs


def write_inventory(directory: Path, jobs: int) -> Path:
    path = directory / "kubeferry.yaml"
    text = yaml.safe_dump_all(_documents(jobs, directory / "repository"), sort_keys=False)
    path.write_text("# synthetic inventory of bench/bench_plan.py\n" + text, encoding="utf-8")
    return path


# -- the observed state and the pre-filled ledger ------------------------------------------


def _source_fingerprint(namespace: str) -> str:
    return f"src-{namespace}-v1"


def _destination_fingerprint(namespace: str) -> str:
    return f"dst-{namespace}-v1"


def observed_state(inventory: Inventory) -> ObservedState:
    """What refresh would see: everything reachable, permitted, and namespaces present."""
    permissions = {_permission_key(*p): True for p in REQUIRED_PERMISSIONS}
    clusters = {
        name: ClusterObservation(name, True, version="v1.30.2", permissions=dict(permissions))
        for name in inventory.clusters
    }
    repositories = {
        name: RepositoryObservation(name, available=True, initialized=True)
        for name in inventory.repositories
    }
    namespaces: dict[tuple[str, str], NamespaceObservation] = {}
    for job in inventory.jobs.values():
        replication_slice = inventory.slice_of(job)
        source = (replication_slice.spec.source_cluster, job.spec.namespace)
        destination = (replication_slice.spec.destination_cluster, job.spec.destination_namespace)
        namespaces.setdefault(
            source, NamespaceObservation(*source, True, "Active", _source_fingerprint(source[1]))
        )
        namespaces.setdefault(
            destination,
            NamespaceObservation(
                *destination, True, "Active", _destination_fingerprint(destination[1])
            ),
        )
    return ObservedState(clusters=clusters, repositories=repositories, namespaces=namespaces)


def prefill_ledger(path: Path, inventory: Inventory) -> Counter[str]:
    """Record the inventory as applied; every 10th job is left needing a copy.

    Returns how many jobs were left changed, by the reason the plan should give.
    """
    changed: Counter[str] = Counter()
    with Ledger.open(path) as ledger:
        for name, cluster in inventory.clusters.items():
            ledger.upsert_cluster(
                name,
                spec_digest=cluster.spec_digest,
                observed_version="v1.30.2",
                reachability=Reachability.REACHABLE,
                last_refresh=RECENT,
            )
        for name, repository in inventory.repositories.items():
            ledger.upsert_repository(
                name,
                spec_digest=repository.spec_digest,
                availability=Availability.AVAILABLE,
                last_validation=RECENT,
            )
        for name, replication_slice in inventory.slices.items():
            ledger.upsert_slice(
                name,
                source_cluster=replication_slice.spec.source_cluster,
                destination_cluster=replication_slice.spec.destination_cluster,
                repository=replication_slice.spec.repository,
                spec_digest=replication_slice.spec_digest,
                last_applied=RECENT,
            )
        for index, (name, job) in enumerate(inventory.jobs.items()):
            wanted = desired_job(inventory, job)
            content_digest = wanted.content_digest
            source_fingerprint = _source_fingerprint(wanted.namespace)
            last_success_at: datetime | None = RECENT
            if index % 10 == 0:
                kind = (index // 10) % 4
                if kind == 0:
                    content_digest = "0" * 64
                    changed["spec changed"] += 1
                elif kind == 1 and not wanted.backup_frequency:
                    source_fingerprint = "src-old"
                    changed["source changed"] += 1
                elif kind in (1, 2):
                    last_success_at = LONG_AGO if wanted.backup_frequency else None
                    changed["due / never run"] += 1
                else:
                    changed["new job"] += 1
                    continue  # never applied: not in the ledger
            ledger.upsert_job(
                name,
                slice=wanted.slice,
                namespace=wanted.namespace,
                spec_digest=wanted.spec_digest,
                content_digest=content_digest,
                mode=wanted.mode,
                source_cluster=wanted.source_cluster,
                destination_cluster=wanted.destination_cluster,
                target_namespace=wanted.target_namespace,
                deletion_policy=wanted.deletion_policy,
                source_fingerprint=source_fingerprint,
                destination_fingerprint=(
                    _destination_fingerprint(wanted.target_namespace)
                    if wanted.mode == "replicate"
                    else None
                ),
                last_success_at=last_success_at,
                last_applied=RECENT,
            )
    return changed


# -- the timed pipeline ------------------------------------------------------------------


def plan_once(inventory_path: Path, ledger_path: Path, observed: ObservedState) -> dict[str, Any]:
    """One plan, timed phase by phase.

    Returns {phase: wall seconds, "cpu": CPU seconds of the whole, "plan": Plan,
    "text": the rendered text, "json": the JSON document}.
    """
    times: dict[str, Any] = {}
    clock = time.perf_counter

    cpu0 = time.process_time()
    t0 = clock()
    inventory = load_inventory(inventory_path)
    t1 = clock()
    ledger = Ledger.open(ledger_path, create=False)
    t2 = clock()
    try:
        recorded = recorded_state(ledger)
    finally:
        ledger.close()
    t3 = clock()
    desired = desired_state(inventory)
    t4 = clock()
    plan = compute_plan(desired, recorded, observed, now=NOW)
    t5 = clock()
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, highlight=False, soft_wrap=True)
    render_plan(plan, console)
    t6 = clock()
    document = plan_to_json(plan)
    t7 = clock()
    times["cpu"] = time.process_time() - cpu0

    stamps = (t0, t1, t2, t3, t4, t5, t6, t7)
    for phase, start, end in zip(PHASES, stamps, stamps[1:], strict=False):
        times[phase] = end - start
    times["plan"] = plan
    times["text"] = buffer.getvalue()
    times["json"] = document
    return times


def _ms(values: list[float]) -> str:
    """`median | min | max` in milliseconds."""
    return " | ".join(
        f"{value * 1000:,.1f}" for value in (statistics.median(values), min(values), max(values))
    )


@dataclass
class Sample:
    label: str
    wall: list[float]
    cpu: list[float]

    def cells(self) -> str:
        return f"| {self.label} | {_ms(self.wall)} | {statistics.median(self.cpu) * 1000:,.1f} |"


@dataclass
class SizeResult:
    jobs: int
    phases: dict[str, list[float]]
    totals: list[float]
    cpu: list[float]
    plan: Plan
    expected: Counter[str]
    prefill_seconds: float
    text_lines: int
    json_bytes: int


def bench_size(
    workdir: Path, jobs: int, repeat: int
) -> tuple[SizeResult, Path, Path, ObservedState]:
    directory = workdir / f"jobs-{jobs}"
    directory.mkdir()
    inventory_path = write_inventory(directory, jobs)
    ledger_path = directory / "ledger.db"
    inventory = load_inventory(inventory_path)
    started = time.perf_counter()
    expected = prefill_ledger(ledger_path, inventory)
    prefill_seconds = time.perf_counter() - started
    observed = observed_state(inventory)

    plan_once(inventory_path, ledger_path, observed)  # warm-up, not counted
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    totals: list[float] = []
    cpu: list[float] = []
    last: dict[str, Any] = {}
    for _ in range(repeat):
        last = plan_once(inventory_path, ledger_path, observed)
        for phase in PHASES:
            phases[phase].append(last[phase])
        totals.append(sum(last[phase] for phase in PHASES))
        cpu.append(last["cpu"])

    plan: Plan = last["plan"]
    _check(plan, expected, jobs)
    result = SizeResult(
        jobs=jobs,
        phases=phases,
        totals=totals,
        cpu=cpu,
        plan=plan,
        expected=expected,
        prefill_seconds=prefill_seconds,
        text_lines=last["text"].count("\n"),
        json_bytes=len(last["json"].encode()),
    )
    return result, inventory_path, ledger_path, observed


def _check(plan: Plan, expected: Counter[str], jobs: int) -> None:
    """The plan must be the one the ledger was filled for: only the changed jobs copy."""
    counts = Counter(action.type for action in plan.actions)
    want = sum(expected.values())
    if counts != Counter({ActionType.REPLICATE: want}) or plan.drift or plan.problems:
        raise SystemExit(
            f"unexpected plan for {jobs} jobs: {dict(counts)}, drift {len(plan.drift)}, "
            f"problems {len(plan.problems)}; expected {want} replicate actions ({dict(expected)})"
        )


# -- the CLI peer --------------------------------------------------------------------------


def _kubeferry() -> list[str]:
    script = Path(sys.executable).parent / "kubeferry"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(args: list[str], repeat: int, cwd: Path) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + sys) seconds of each run; the first run is a warm-up."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat + 1):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        wall.append(elapsed)
        cpu.append(_children_cpu() - cpu_before)
    return wall[1:], cpu[1:]


# -- output ----------------------------------------------------------------------------------


def _table(results: list[SizeResult], cli: list[Sample], repeat: int) -> str:
    lines = [
        f"In-process plan pipeline, {repeat} repetitions after one warm-up (ms):",
        "",
        "| phase | " + " | ".join(f"{r.jobs} jobs median | min | max" for r in results) + " |",
        "|---|" + "---:|---:|---:|" * len(results),
    ]

    def row(label: str, series: list[list[float]]) -> str:
        return f"| {label} | " + " | ".join(_ms(values) for values in series) + " |"

    for phase in PHASES:
        lines.append(row(phase, [r.phases[phase] for r in results]))
    lines.append(row("**total (wall)**", [r.totals for r in results]))
    lines.append(row("total (CPU time of the process)", [r.cpu for r in results]))
    lines += [
        "",
        f"End-to-end CLI as a subprocess, {len(cli[0].wall)} runs after one warm-up (ms):",
        "",
        "| command | wall median | min | max | CPU median |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [sample.cells() for sample in cli]
    return "\n".join(lines)


def _profile(inventory_path: Path, ledger_path: Path, observed: ObservedState, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        plan_once(inventory_path, ledger_path, observed)
    profiler.disable()
    for key in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(key).print_stats(top)
        print(f"\n## cProfile, 3 plans, sorted by {key}\n")
        print(stream.getvalue())


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in averages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the main inventory")
    parser.add_argument("--peer-jobs", type=int, default=100, help="jobs in the scaling peer")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions per size")
    parser.add_argument("--cli-repeat", type=int, default=5, help="timed CLI runs per command")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile")
    parser.add_argument("--top", type=int, default=30, help="profile rows to print")
    options = parser.parse_args(argv)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kubeferry-bench-plan-") as tmp:
        workdir = Path(tmp)
        results: list[SizeResult] = []
        paths: dict[int, tuple[Path, Path, ObservedState]] = {}
        for jobs in (options.jobs, options.peer_jobs):
            result, inventory_path, ledger_path, observed = bench_size(
                workdir, jobs, options.repeat
            )
            results.append(result)
            paths[jobs] = (inventory_path, ledger_path, observed)

        kubeferry = _kubeferry()
        commands: list[tuple[str, list[str]]] = [
            ("`kubeferry --version` (start-up only)", [*kubeferry, "--version"]),
        ]
        for jobs in (options.jobs, options.peer_jobs):
            commands.append(
                (
                    f"`kubeferry validate`, {jobs} jobs",
                    [*kubeferry, "validate", "-f", str(paths[jobs][0])],
                )
            )
        cli = [
            Sample(label, *time_command(args, options.cli_repeat, workdir))
            for label, args in commands
        ]
        load_after = os.getloadavg()

        print(f"# kubeferry plan time ({time.strftime('%Y-%m-%d %H:%M')})\n")
        print(
            f"Python {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} CPUs; "
            f"load average (1/5/15 min) {_load(load_before)} before, {_load(load_after)} after\n"
        )
        for r in results:
            size = (r.plan.summary(), r.text_lines, r.json_bytes / 1024)
            print(
                f"- {r.jobs} jobs: ledger pre-filled in {r.prefill_seconds:.1f} s (not timed); "
                f"plan: {size[0]!r}; changed jobs: {dict(r.expected)}; text {size[1]} lines, "
                f"JSON {size[2]:,.0f} KiB"
            )
        print()
        print(_table(results, cli, options.repeat))
        if options.profile:
            inventory_path, ledger_path, observed = paths[options.jobs]
            _profile(inventory_path, ledger_path, observed, options.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
