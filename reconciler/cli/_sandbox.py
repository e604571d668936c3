"""`kubeferry sandbox`: real local Kubernetes control planes for demos and tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from reconciler.errors import KubeferryError

if TYPE_CHECKING:
    from reconciler.sandbox import Sandbox, SandboxInfo, SandboxStatus

app = typer.Typer(
    help=(
        "Real local clusters (etcd + kube-apiserver + kube-controller-manager) and an S3 "
        "endpoint, for demos and tests.\n\n"
        "The sandbox lives in $KUBEFERRY_SANDBOX_DIR (default "
        "${XDG_STATE_HOME:-~/.local/state}/kubeferry/sandbox); the Kubernetes binaries are "
        "built once from Debian's source and cached in ${XDG_CACHE_HOME:-~/.cache}/kubeferry."
    ),
    no_args_is_help=True,
)

_DirectoryOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Sandbox directory (default: $KUBEFERRY_SANDBOX_DIR or the XDG state dir).",
        show_default=False,
    ),
]


class _RichReporter:
    """Shows each step with a spinner and elapsed time, plus the step's latest output line."""

    _DETAIL_WIDTH = 70

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _RichReporter:
        if self._console.is_terminal:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._finish_step()
        self._progress.stop()

    def step(self, message: str) -> None:
        if not self._console.is_terminal:
            # logs and CI: one plain line per step, no live display
            typer.echo(f"kubeferry: {message}", err=True)
            return
        self._finish_step()
        self._task = self._progress.add_task(message, total=1, detail="")

    def detail(self, message: str) -> None:
        if self._task is not None:
            short = message if len(message) <= self._DETAIL_WIDTH else message[:67] + "..."
            self._progress.update(self._task, detail=short)

    def _finish_step(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=1, detail="")
            self._task = None


def _sandbox(directory: Path | None) -> Sandbox:
    # imported on use: the sandbox pulls in the kubernetes client, which every other
    # command (and `kubeferry --help`) would otherwise pay for at start-up
    from reconciler.sandbox import Sandbox

    return Sandbox(directory)


def _print_usage(info: SandboxInfo) -> None:
    typer.echo(
        f"S3 endpoint: {info.s3.endpoint_url}  bucket: {info.s3.bucket}  "
        f"keys: {info.s3.credentials_file}"
    )
    typer.echo("\nUse it:")
    typer.echo("  export KUBECONFIG=$(kubeferry sandbox kubeconfig)")
    typer.echo(f"  contexts: {', '.join(info.cluster_names)} (current: {info.controller.name})")
    typer.echo(f"  set -a; . {info.s3.credentials_file}; set +a   # S3 keys for aws/boto3")


def _cluster_table(status: SandboxStatus) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("CLUSTER", "ROLE", "API URL", "READY"):
        table.add_column(column)
    for cluster in status.clusters:
        problem = cluster.problem
        ready = "[green]yes[/]" if problem is None else f"[red]no[/] ({problem})"
        table.add_row(cluster.cluster.name, cluster.cluster.role, cluster.cluster.api_url, ready)
    return table


@app.command()
def up(
    clusters: Annotated[
        int | None,
        typer.Option(
            "--clusters",
            "-n",
            min=1,
            help="Number of clusters: controller plus worker-1..worker-(N-1). Default 3.",
            show_default=False,
        ),
    ] = None,
    names: Annotated[
        list[str] | None,
        typer.Option(
            "--name",
            help="A cluster name; repeat for several. The first is the controller.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=10, help="Seconds to wait for the daemons (not the build)."),
    ] = 300.0,
    directory: _DirectoryOption = None,
) -> None:
    """Start the sandbox and wait until every cluster works.

    Starts one etcd, a kube-apiserver and kube-controller-manager per cluster (RBAC, token
    auth, TLS) and a moto S3 endpoint with bucket `kubeferry`; workers get a default
    `hostpath` StorageClass. Idempotent: a running sandbox is left alone, dead processes are
    restarted. The first run installs missing Debian packages (as root) and builds the
    Kubernetes binaries (about 7.5 minutes, cached).
    """
    if clusters is not None and names:
        raise KubeferryError("use either --clusters or --name, not both")
    from reconciler.sandbox import cluster_names_for

    chosen = cluster_names_for(clusters) if clusters is not None else (names or None)
    sandbox = _sandbox(directory)
    progress_console = Console(stderr=True)
    with _RichReporter(progress_console) as reporter:
        result = sandbox.up(chosen, reporter=reporter, timeout=timeout)
    sandbox.keep_running()  # asked for explicitly: test sessions sharing it must not stop it
    if result.action == "unchanged":
        typer.echo(f"The sandbox in {sandbox.directory} is already running.")
    elif result.action == "restarted":
        typer.echo(f"Restarted {', '.join(result.started)} in {sandbox.directory}.")
    else:
        typer.echo(f"Sandbox started in {sandbox.directory}.")
    Console(highlight=False).print(_cluster_table(sandbox.status()))
    _print_usage(result.info)


@app.command()
def down(
    directory: _DirectoryOption = None,
) -> None:
    """Stop the sandbox and delete its data.

    Stops exactly the processes recorded in the state file (SIGTERM, then SIGKILL after 10 s;
    a PID now used by another program is never touched), then deletes etcd's data, the
    certificates, tokens, kubeconfig and S3 keys, and the host-path volume directories of
    the clusters' PersistentVolumes. Logs stay in the sandbox directory.
    """
    sandbox = _sandbox(directory)
    if sandbox.info() is None:
        typer.echo(f"No sandbox in {sandbox.directory}: nothing to stop.")
        return
    with _RichReporter(Console(stderr=True)) as reporter:
        result = sandbox.down(reporter=reporter)
    typer.echo(
        f"Sandbox in {sandbox.directory} is down: stopped {len(result.stopped)} processes, "
        f"deleted its data and {len(result.removed_volume_dirs)} volume directories."
    )


@app.command()
def status(
    directory: _DirectoryOption = None,
) -> None:
    """Show which clusters are ready (their /readyz) and the S3 endpoint.

    Exits 0 when every cluster, etcd and the S3 endpoint are up, 1 otherwise.
    """
    sandbox = _sandbox(directory)
    current = sandbox.status()
    if current.info is None:
        raise KubeferryError(
            f"no sandbox in {sandbox.directory}", hint="start one with `kubeferry sandbox up`"
        )
    typer.echo(f"Sandbox in {current.directory}")
    Console(highlight=False).print(_cluster_table(current))
    s3 = current.info.s3
    typer.echo(f"S3 endpoint: {s3.endpoint_url} ({_up(current.s3_running)})  bucket: {s3.bucket}")
    typer.echo(f"etcd: {_up(current.etcd_running)}")
    typer.echo(f"kubeconfig: {current.info.kubeconfig}")
    if not current.running:
        for problem in current.problems():
            typer.echo(f"not ready: {problem}")
        raise typer.Exit(1)


def _up(running: bool) -> str:
    return "up" if running else "down"


@app.command()
def kubeconfig(
    directory: _DirectoryOption = None,
) -> None:
    """Print the path of the sandbox kubeconfig (one context per cluster, mode 0600).

    Use it as: export KUBECONFIG=$(kubeferry sandbox kubeconfig)
    """
    sandbox = _sandbox(directory)
    if not sandbox.kubeconfig_path.is_file():
        raise KubeferryError(
            f"no sandbox kubeconfig in {sandbox.directory}",
            hint="start the sandbox with `kubeferry sandbox up`",
        )
    typer.echo(str(sandbox.kubeconfig_path))
