"""`kubeferry mover backup|restore|verify`: the entry point inside a Job mover's pod.

The pod mounts the Secret the Job mover created as a directory (``--config``, default
$KUBEFERRY_MOVER_CONFIG): ``repository.json`` (where the repository is), ``passphrase``, and
for S3 optionally ``accessKeyId``/``secretAccessKey``/``sessionToken`` and ``ca.crt``.
The result (JSON: snapshot id, files, bytes) is printed and written to the termination log,
which Kubernetes hands back as the container's termination message. Errors: one line on
stderr, exit 1, and ``{"error": ...}`` as the result. With ``--progress <job name>`` the pod
also keeps a sealed progress object in the repository up to date while it copies (every
``--progress-interval`` seconds and once at the end), which the waiting kubeferry reads; a
failed progress write is a warning on stderr, never a failed copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reconciler.errors import KubeferryError
from reconciler.repository import (
    EnvCredentials,
    Repository,
    RepositoryBackend,
    S3Credentials,
    open_backend,
)

if TYPE_CHECKING:
    from reconciler.volumes import ProgressWriter

app = typer.Typer(
    help="In-pod entry point of the Job mover: back up, restore or verify one volume directory.",
    no_args_is_help=True,
)

CONFIG_ENV = "KUBEFERRY_MOVER_CONFIG"
DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
_MESSAGE_LIMIT = 4096  # Kubernetes keeps at most 4096 bytes of a termination message

_PATH = typer.Option(..., "--path", help="The volume directory (the mounted claim).")
_SNAPSHOT_SET = typer.Option(
    "", "--snapshot-set", help="The replication snapshot this volume belongs to (reported)."
)
_CONFIG = typer.Option(
    None,
    "--config",
    envvar=CONFIG_ENV,
    help=f"Directory with the repository settings (the mounted Secret; ${CONFIG_ENV}).",
)
_TERMINATION_LOG = typer.Option(
    None,
    "--termination-log",
    help=f"Where to write the result JSON (default {DEFAULT_TERMINATION_LOG}, when it exists).",
)
_WORKERS = typer.Option(4, "--workers", min=1, max=64, help="Parallel readers/writers.")
_PROGRESS = typer.Option(
    None,
    "--progress",
    metavar="JOB",
    help="Keep live progress in the repository as volumes/progress/JOB.json (the Job's name).",
)
_PROGRESS_INTERVAL = typer.Option(
    2.0, "--progress-interval", min=0.0, help="Seconds between progress writes."
)


class MoverConfig:
    """The mover's repository settings, read from the config directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not directory.is_dir():
            raise KubeferryError(f"mover config directory {directory} does not exist")
        try:
            settings = json.loads(self._read("repository.json"))
        except ValueError:
            raise KubeferryError(f"{directory}/repository.json is not valid JSON") from None
        if not isinstance(settings, dict):
            raise KubeferryError(f"{directory}/repository.json must be a JSON object")
        self.settings: dict[str, Any] = settings

    def _read(self, name: str) -> str:
        try:
            return (self.directory / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KubeferryError(f"mover config {self.directory} has no {name}") from None
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise KubeferryError(f"cannot read mover config {name}: {reason}") from None

    def _optional(self, name: str) -> str | None:
        return self._read(name) if (self.directory / name).is_file() else None

    def passphrase(self) -> str:
        value = self._read("passphrase").removesuffix("\n")
        if not value:
            raise KubeferryError("the mover config's passphrase is empty")
        return value

    def credentials(self) -> S3Credentials | EnvCredentials | None:
        key_id = self._optional("accessKeyId")
        secret = self._optional("secretAccessKey")
        if key_id and secret:
            token = self._optional("sessionToken")
            return S3Credentials(key_id.strip(), secret.strip(), token.strip() if token else None)
        if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
            token_var = "AWS_SESSION_TOKEN" if os.environ.get("AWS_SESSION_TOKEN") else None
            return EnvCredentials(session_token_var=token_var)
        return None  # boto3's default chain (instance roles, IRSA...)

    def backend(self) -> RepositoryBackend:
        kind = self.settings.get("kind")
        if kind == "filesystem":
            path = self.settings.get("path")
            if not path:
                raise KubeferryError("mover config: filesystem repository needs 'path'")
            return open_backend("filesystem", path=Path(str(path)))
        if kind == "s3":
            ca_name = self.settings.get("caBundle")
            return open_backend(
                "s3",
                bucket=str(self.settings.get("bucket") or ""),
                prefix=str(self.settings.get("prefix") or ""),
                endpoint=self.settings.get("endpoint") or None,
                region=self.settings.get("region") or None,
                force_path_style=bool(self.settings.get("forcePathStyle", False)),
                ca_bundle=self.directory / str(ca_name) if ca_name else None,
                credentials=self.credentials(),
            )
        raise KubeferryError(f"mover config: unknown repository kind {kind!r}")

    def repository(self) -> Repository:
        return Repository(self.backend()).unlock(self.passphrase())


def _config_dir(config: Path | None) -> Path:
    if config is None:
        raise KubeferryError(f"no mover config: pass --config or set ${CONFIG_ENV}")
    return config


def _report(result: dict[str, Any], termination_log: Path | None) -> None:
    text = json.dumps(result, sort_keys=True, separators=(",", ":"))
    typer.echo(text)
    target = termination_log
    if target is None and DEFAULT_TERMINATION_LOG.exists():
        target = DEFAULT_TERMINATION_LOG
    if target is None:
        return
    data = text.encode()
    if len(data) > _MESSAGE_LIMIT:  # never cut the JSON: keep the essentials
        keep = ("operation", "snapshot", "snapshotSet", "files", "bytes", "error")
        data = json.dumps({k: result[k] for k in keep if k in result})[:_MESSAGE_LIMIT].encode()
    try:
        target.write_bytes(data)
    except OSError as error:
        typer.secho(f"kubeferry: warning: cannot write {target}: {error.strerror}", err=True)


def _warn(text: str) -> None:
    typer.secho(f"kubeferry: warning: {text}", err=True)


def _progress_writer(
    repository: Repository, job: str | None, operation: str, interval: float
) -> ProgressWriter | None:
    if not job:
        return None
    from reconciler.volumes import ProgressWriter

    return ProgressWriter(repository, job, operation, interval=interval, warn=_warn)


def _fail(operation: str, snapshot_set: str, error: BaseException, log: Path | None) -> None:
    message = (
        str(error) if isinstance(error, KubeferryError) else f"{type(error).__name__}: {error}"
    )
    message = " ".join(message.split())
    typer.secho(f"kubeferry: error: {message}", err=True, fg="red")
    _report({"operation": operation, "snapshotSet": snapshot_set, "error": message}, log)
    raise typer.Exit(1)


@app.command("backup")
def backup(
    path: Path = _PATH,
    snapshot_set: str = _SNAPSHOT_SET,
    config: Path | None = _CONFIG,
    parent: str | None = typer.Option(
        None, "--parent", help="A previous volume snapshot (incremental)."
    ),
    termination_log: Path | None = _TERMINATION_LOG,
    workers: int = _WORKERS,
    progress: str | None = _PROGRESS,
    progress_interval: float = _PROGRESS_INTERVAL,
) -> None:
    """Back up the directory --path into a new volume snapshot."""
    from reconciler.volumes import VolumeStore, backup_tree

    try:
        repository = MoverConfig(_config_dir(config)).repository()
        writer = _progress_writer(repository, progress, "backup", progress_interval)
        store = VolumeStore(repository)
        snapshot = backup_tree(store, path, parent=parent, workers=workers, on_progress=writer)
        if writer is not None:
            writer.finish()
    except Exception as error:  # noqa: BLE001 - the pod must always report a result
        _fail("backup", snapshot_set, error, termination_log)
        return
    _report(
        {
            "operation": "backup",
            "snapshotSet": snapshot_set,
            "snapshot": snapshot.snapshot_id,
            "files": snapshot.files,
            "dirs": snapshot.dirs,
            "bytes": snapshot.bytes,
            "newBytes": snapshot.new_bytes,
            "seconds": round(snapshot.seconds, 3),
        },
        termination_log,
    )


@app.command("restore")
def restore(
    path: Path = _PATH,
    snapshot: str = typer.Option(..., "--snapshot", help="The volume snapshot to restore."),
    snapshot_set: str = _SNAPSHOT_SET,
    config: Path | None = _CONFIG,
    termination_log: Path | None = _TERMINATION_LOG,
    workers: int = _WORKERS,
    progress: str | None = _PROGRESS,
    progress_interval: float = _PROGRESS_INTERVAL,
) -> None:
    """Restore volume snapshot --snapshot into the directory --path."""
    from reconciler.volumes import VolumeStore, restore_tree

    try:
        repository = MoverConfig(_config_dir(config)).repository()
        writer = _progress_writer(repository, progress, "restore", progress_interval)
        store = VolumeStore(repository)
        restored = restore_tree(store, snapshot, path, workers=workers, on_progress=writer)
        if writer is not None:
            writer.finish()
    except Exception as error:  # noqa: BLE001 - the pod must always report a result
        _fail("restore", snapshot_set, error, termination_log)
        return
    _report(
        {
            "operation": "restore",
            "snapshotSet": snapshot_set,
            "snapshot": restored.snapshot_id,
            "files": restored.files,
            "dirs": restored.dirs,
            "bytes": restored.bytes,
            "seconds": round(restored.seconds, 3),
        },
        termination_log,
    )


_VERIFY_LISTED = 20  # mismatches named in the result (the rest are counted)


@app.command("verify")
def verify(
    path: Path = _PATH,
    snapshot: str = typer.Option(..., "--snapshot", help="The volume snapshot to compare with."),
    snapshot_set: str = _SNAPSHOT_SET,
    config: Path | None = _CONFIG,
    termination_log: Path | None = _TERMINATION_LOG,
    workers: int = _WORKERS,
) -> None:
    """Compare the directory --path with volume snapshot --snapshot (read-only): types,
    modes, sizes, links and every file's chunk digests (DR drills). Mismatches are findings,
    not errors: the result lists them and the exit status is 0."""
    from reconciler.volumes import VolumeManifest, VolumeStore, verify_tree

    try:
        store = VolumeStore(MoverConfig(_config_dir(config)).repository())
        manifest = VolumeManifest.from_bytes(store.load_manifest(snapshot))
        verified = verify_tree(manifest, path, store.chunk_id)
    except Exception as error:  # noqa: BLE001 - the pod must always report a result
        _fail("verify", snapshot_set, error, termination_log)
        return
    base = {"operation": "verify", "snapshotSet": snapshot_set, "snapshot": snapshot}
    listed = _VERIFY_LISTED
    while True:  # as many mismatches as fit in a termination message, never a cut JSON
        result = {**base, **verified.to_dict(limit=listed)}
        if listed == 0 or len(json.dumps(result, separators=(",", ":"))) <= _MESSAGE_LIMIT:
            break
        listed //= 2
    _report(result, termination_log)
