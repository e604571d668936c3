"""`kubeferry import kubeslice`: write a kubeferry inventory equivalent to the KubeSlice
replication objects of a controller cluster; what cannot be mapped is reported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reconciler.errors import KubeferryError
from reconciler.kube import KubeClient
from reconciler.kubeslice import build_inventory, read_projects, render_inventory

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Import objects of other tools as a kubeferry inventory."""


_DNS_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


@app.command("kubeslice")
def kubeslice(
    context: Annotated[
        str, typer.Option("--context", help="Kubeconfig context of the KubeSlice controller.")
    ],
    project: Annotated[
        str | None,
        typer.Option("--project", help="Only this project (namespace kubeslice-PROJECT)."),
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the inventory here (default: stdout).")
    ] = None,
) -> None:
    """Import ReplicationSlices, ReplicationJobConfigs and SliceConfigs as an inventory.

    Every field that could not be mapped is reported, one per line on stderr and as comments
    at the top of the inventory.
    """
    if kubeconfig is not None and not kubeconfig.is_file():
        raise KubeferryError(f"--kubeconfig {kubeconfig}: no such file")
    controller = context if set(context) <= set(_DNS_LABEL_CHARS) and context else "controller"
    with KubeClient.from_kubeconfig(kubeconfig, context=context) as client:
        projects = read_projects(client, project)
    documents, notes = build_inventory(
        controller,
        context,
        projects,
        kubeconfig=str(kubeconfig.resolve()) if kubeconfig is not None else None,
    )
    text = render_inventory(documents, notes, f"context {context}")
    for note in notes:
        typer.echo(f"kubeferry: import: {note}", err=True)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as error:
        raise KubeferryError(f"--out {out}: {error.strerror}") from None
    typer.echo(f"kubeferry: wrote {len(documents)} document(s) to {out}", err=True)
