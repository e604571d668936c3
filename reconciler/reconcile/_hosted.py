"""Apply's part for a hostedIn repository: its MinIO deployed, ready, with its bucket."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.hosting import MinioSettings, deploy, ensure_bucket, wait_ready
from reconciler.reconcile._connect import Connections
from reconciler.repository import S3Backend
from state import Ledger


def deploy_hosted(
    connections: Connections, ledger: Ledger, name: str, check_cancelled: Callable[[], None]
) -> str:
    """Create/update the MinIO objects, wait until they serve, create the bucket.

    Idempotent: a timed-out wait leaves the objects for the next apply to resume. Events
    name objects, never credentials.
    """
    settings = MinioSettings.of(connections.inventory.repositories[name])
    client = connections.client(settings.cluster)
    where = settings.location
    base = {"repository": name, "cluster": settings.cluster, "namespace": settings.namespace}
    result = deploy(client, settings)
    if result.created or result.updated:
        changed = [f"created {', '.join(result.created)}"] if result.created else []
        changed += [f"updated {', '.join(result.updated)}"] if result.updated else []
        ledger.record_event(
            "hosting.deployed",
            f"ReplicationRepository/{name}: MinIO in {where}: {'; '.join(changed)}",
            data={
                **base,
                "created": ", ".join(result.created),
                "updated": ", ".join(result.updated),
            },
        )
    wait_ready(client, settings, check_cancelled=check_cancelled)
    ledger.record_event(
        "hosting.ready", f"ReplicationRepository/{name}: MinIO in {where} is ready", data=base
    )
    # the transport only: an encrypted repository's marker cannot be read before its bucket
    backend = connections.backend(name)
    assert isinstance(backend, S3Backend)  # a hosted repository is an S3 repository
    if ensure_bucket(backend):
        ledger.record_event(
            "hosting.bucket-created",
            f"ReplicationRepository/{name}: created bucket {settings.bucket} in {where}",
            data={**base, "bucket": settings.bucket},
        )
    return f"MinIO ready in {where}"
