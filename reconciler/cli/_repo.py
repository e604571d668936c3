"""`kubeferry repo`: initialize a repository, manage its keys, check, prune, stats.

The work lives in ``reconciler.reconcile`` (``repo_init``, ``repo_keys``, ``repo_check``...);
this module parses options and renders results. No passphrase is ever an argument value or
part of the output: the current one comes from the inventory, a new one by reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reconciler.cli._ledger import _bytes, _time
from reconciler.cli._workflow import _FILE_OPTION, _LEDGER_OPTION
from reconciler.reconcile import (
    RepoPrune,
    RepoStats,
    Workspace,
    repo_check,
    repo_init,
    repo_key_add,
    repo_key_remove,
    repo_keys,
    repo_prune,
    repo_stats,
)

app = typer.Typer(no_args_is_help=True)
key_app = typer.Typer(no_args_is_help=True)
app.add_typer(key_app, name="key", help="Manage the passphrase keys of an encrypted repository.")

NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="A ReplicationRepository of the inventory.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _workspace(file: Path | None, ledger: Path | None = None) -> Workspace:
    return Workspace.resolve(file, ledger)


def _dump(document: object) -> None:
    typer.echo(json.dumps(document, indent=2))


@app.command("init")
def init(name: NameArgument, file: Path | None = _FILE_OPTION, as_json: JsonOption = False) -> None:
    """Initialize repository NAME (encrypted when its spec.encryption is set).

    Refuses a repository that is already initialized. The passphrase comes from
    spec.encryption.passphraseFrom; there is no default passphrase.
    """
    result = repo_init(_workspace(file), name)
    if as_json:
        _dump(result.to_dict())
        return
    how = f"encrypted, key {result.key_id}" if result.encrypted else "not encrypted"
    typer.echo(
        f"Initialized repository {name} at {result.location} (id {result.repository_id}, {how})."
    )
    if not result.encrypted:
        typer.echo("Volume data needs an encrypted repository (spec.encryption.passphraseFrom).")


@key_app.command("add")
def key_add(
    name: NameArgument,
    new_passphrase_from: Annotated[
        str,
        typer.Option(
            "--new-passphrase-from",
            metavar="env:VAR|file:PATH",
            help="Where the new passphrase is: an environment variable or a file "
            "(one trailing newline is ignored). Never the passphrase itself.",
        ),
    ],
    file: Path | None = _FILE_OPTION,
    as_json: JsonOption = False,
) -> None:
    """Add a key to repository NAME for another passphrase.

    The inventory's passphrase unlocks the repository; the new key wraps the same master
    key, so no data is re-encrypted.
    """
    key = repo_key_add(_workspace(file), name, new_passphrase_from=new_passphrase_from)
    if as_json:
        _dump(key.to_dict())
        return
    typer.echo(f"Added key {key.key_id} to repository {name} ({key.kdf}).")


@key_app.command("remove")
def key_remove(
    name: NameArgument,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="See `kubeferry repo key list`.")],
    file: Path | None = _FILE_OPTION,
) -> None:
    """Remove key KEY_ID from repository NAME.

    Refuses the last key and the key the inventory's passphrase opens.
    """
    key = repo_key_remove(_workspace(file), name, key_id)
    typer.echo(f"Removed key {key.key_id} from repository {name}.")


@key_app.command("list")
def key_list(
    name: NameArgument, file: Path | None = _FILE_OPTION, as_json: JsonOption = False
) -> None:
    """The keys of repository NAME; * marks the one the inventory's passphrase opens."""
    keys = repo_keys(_workspace(file), name)
    if as_json:
        _dump({"repository": name, "keys": [key.to_dict() for key in keys]})
        return
    typer.echo(f"  {'KEY':<16}  {'CREATED (UTC)':<16}  KDF")
    for key in keys:
        mark = "*" if key.current else " "
        typer.echo(f"{mark} {key.key_id:<16}  {_time(key.created):<16}  {key.kdf}")


@app.command("check")
def check(
    name: NameArgument,
    file: Path | None = _FILE_OPTION,
    read_data: Annotated[
        bool,
        typer.Option(
            "--read-data", help="Also decrypt and re-hash every chunk of the volume data."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify repository NAME.

    Every object snapshot is read (decrypted when encrypted) and compared with the digests
    of its metadata; the volume data's index, packs and manifests are checked (with
    --read-data every chunk too). Exit codes: 0 healthy, 1 problems (one per line) or an
    error.
    """
    report = repo_check(_workspace(file), name, read_data=read_data)
    if as_json:
        _dump(report.to_dict())
    elif report.ok:
        typer.echo(f"repository {name} OK ({report.snapshots} snapshots, {report.packs} packs)")
    else:
        for problem in report.problems:
            typer.echo(problem)
        count = len(report.problems)
        typer.secho(
            f"repository {name}: {count} problem{'s' * (count != 1)} found",
            err=True,
            fg="red",
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("prune")
def prune(
    name: NameArgument,
    file: Path | None = _FILE_OPTION,
    ledger: Path | None = _LEDGER_OPTION,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; change nothing.")
    ] = False,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", min=0, help="Seconds to wait for the ledger lock.")
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Apply the retention of the jobs using repository NAME, then delete unused data.

    Removes snapshots no retention rule keeps, incomplete snapshots older than an hour, and
    volume data no remaining volume snapshot uses. Takes the ledger lock like `backup`.
    Exit codes: 0 done, 1 an error (or a snapshot retention could not delete), 3 the ledger
    is locked.
    """
    result = repo_prune(_workspace(file, ledger), name, dry_run=dry_run, lock_timeout=lock_timeout)
    if as_json:
        _dump(result.to_dict())
    else:
        _print_prune(result)
    if result.errors:
        raise typer.Exit(1)


def _print_prune(result: RepoPrune) -> None:
    would = "would delete" if result.dry_run else "deleted"
    for retention in result.retention:
        if not retention.rules:
            typer.echo(f"job {retention.job}: no retention, every snapshot is kept")
            continue
        deleted = ", ".join(retention.deleted) or "none"
        typer.echo(
            f"job {retention.job} ({retention.rules}): kept {len(retention.kept)}, "
            f"{would} {len(retention.deleted)}: {deleted}"
        )
        for error in retention.errors:
            typer.secho(f"job {retention.job}: {error}", fg="yellow")
    if not result.retention:
        typer.echo("no job uses this repository: no retention to apply")
    if result.incomplete:
        typer.echo(f"incomplete snapshots: {would} {', '.join(result.incomplete)}")
    volume = result.volume
    if volume is not None:
        typer.echo(
            f"volume data ({result.volume_snapshots} snapshots): deleted "
            f"{volume.deleted_packs + volume.orphan_packs} packs, repacked "
            f"{volume.repacked_packs}, kept {volume.kept_packs}, removed "
            f"{volume.removed_chunks} chunks, freed {_bytes(max(volume.freed_bytes, 0))}"
        )
    elif result.unreferenced_chunks is not None and result.dry_run:
        typer.echo(
            f"volume data ({result.volume_snapshots} snapshots): "
            f"{result.unreferenced_chunks} chunks unused (removed by prune once older than "
            "the grace period)"
        )
    for note in result.notes:
        typer.echo(f"volume data: {note}")
    if result.dry_run:
        typer.echo("Dry run: nothing was changed.")


@app.command("stats")
def stats(
    name: NameArgument, file: Path | None = _FILE_OPTION, as_json: JsonOption = False
) -> None:
    """Counts and sizes of repository NAME: snapshots, keys, volume data."""
    result = repo_stats(_workspace(file), name)
    if as_json:
        _dump(result.to_dict())
        return
    _print_stats(result)


def _print_stats(result: RepoStats) -> None:
    encryption = f"encrypted, {result.keys} keys" if result.encrypted else "not encrypted"
    typer.echo(f"repository {result.name} at {result.location} (id {result.repository_id})")
    typer.echo(f"  encryption:  {encryption}")
    typer.echo(f"  snapshots:   {result.snapshots} ({_bytes(result.snapshot_bytes)})")
    volume = result.volume
    if volume is None:
        typer.echo("  volume data: none (needs an encrypted repository)")
        return
    typer.echo(
        f"  volume data: {volume.snapshots} snapshots, {volume.chunks} chunks "
        f"({_bytes(volume.raw_bytes)} raw) in {volume.packs} packs "
        f"({_bytes(volume.stored_bytes)} stored), {volume.index_files} index files"
    )
    typer.echo(f"  total:       {_bytes(result.snapshot_bytes + volume.stored_bytes)}")
