"""Status write-back end to end on the sandbox: a replication worker-1 -> worker-2 whose slice
has statusWriteBack mirrors its runs into the ReplicationJobConfig on the controller cluster
(the project's minimal KubeSlice CRDs; the written status is also checked against the
published CRD's schema when ../shared/kubeslice-crds/ exists)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.kube import ApiResource, KubeClient, KubeRest
from reconciler.kubeslice import (
    FAILED_EVENT,
    JOB_CONFIG_API,
    JOB_CONFIG_KIND,
    SKIPPED_EVENT,
    MirroredRun,
    rfc3339,
    status_patch,
)
from state import Ledger, RunKind, RunPhase
from tests._inventory import (
    cluster,
    filesystem_repository,
    inventory,
    job,
    replication_slice,
    write_inventory,
)
from tests._kube_objects import settings_namespace
from tests.fixtures.kubeslice_crds import (
    create_when_served,
    install_controller_crds,
    install_published_copy,
)

if TYPE_CHECKING:
    from reconciler.sandbox import SandboxInfo

pytestmark = pytest.mark.sandbox


def _inventory(s: str, ns: str) -> str:
    return inventory(
        cluster("controller", role="controller"),
        cluster("worker-1"),
        cluster("worker-2"),
        filesystem_repository("local"),
        replication_slice(f"sw-{s}", "worker-1", "worker-2", "local", statusWriteBack=True),
        replication_slice(f"sq-{s}", "worker-1", "worker-2", "local"),
        job(f"copy-{s}", f"sw-{s}", ns, retention={"ttl": "30d"}),
        job(f"orphan-{s}", f"sw-{s}", ns, targetNamespace=f"{ns}-o"),
        job(f"quiet-{s}", f"sq-{s}", ns, targetNamespace=f"{ns}-q"),
    )


PUBLISHED_GROUP = "published.kubeferry.test"
"""The group the published ReplicationJobConfig CRD is installed under (beside the fixture)."""


def _kubeferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _job_config(name: str, namespace: str, slice_name: str, api: str = JOB_CONFIG_API) -> Any:
    return {
        "apiVersion": api,
        "kind": JOB_CONFIG_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicationSliceName": slice_name, "namespace": "unused"},
    }


@pytest.fixture
def setup(sandbox: SandboxInfo, tmp_path: Path) -> Iterator[dict[str, Any]]:
    s = uuid.uuid4().hex[:8]
    namespace, project_ns = f"sw-{s}", f"kubeslice-p{s}"
    with sandbox.client("worker-1") as client:
        settings_namespace(client, namespace, count=2)
    with sandbox.client("controller") as client:
        install_controller_crds(client)
        client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": project_ns}})
        # copy is mirrored; quiet has a ReplicationJobConfig too, but no statusWriteBack
        create_when_served(client, _job_config(f"copy-{s}", project_ns, f"sw-{s}"))
        create_when_served(client, _job_config(f"quiet-{s}", project_ns, f"sq-{s}"))
    inventory_path = write_inventory(tmp_path, _inventory(s, namespace))
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    env.pop("KUBEFERRY_LEDGER", None)
    yield {
        "s": s,
        "namespace": namespace,
        "project_ns": project_ns,
        "inventory": str(inventory_path),
        "env": env,
        "ledger": tmp_path / ".kubeferry" / "ledger.sqlite",
    }
    with sandbox.client("worker-1") as client:
        client.delete("v1", "Namespace", namespace)
    with sandbox.client("worker-2") as client:
        for name in (namespace, f"{namespace}-o", f"{namespace}-q"):
            client.delete("v1", "Namespace", name)
    with sandbox.client("controller") as client:
        client.delete("v1", "Namespace", project_ns)


def _status(sandbox: SandboxInfo, name: str, namespace: str) -> dict[str, Any]:
    with sandbox.client("controller") as client:
        found = client.get(JOB_CONFIG_API, JOB_CONFIG_KIND, name, namespace)
    assert found is not None
    status: dict[str, Any] = found.get("status") or {}
    return status


def test_runs_are_mirrored_into_the_replication_job_config(
    setup: dict[str, Any], sandbox: SandboxInfo
) -> None:
    s, inv, env, project_ns = setup["s"], setup["inventory"], setup["env"], setup["project_ns"]
    where = f"ReplicationJobConfig {project_ns}/copy-{s} on controller"

    plan = _kubeferry("plan", "-f", inv, env=env)
    assert f"status written back to {where}" in plan.stdout, plan.stdout + plan.stderr
    assert (
        f"x ReplicationJob/orphan-{s}: statusWriteBack: no ReplicationJobConfig orphan-{s} for "
        f"slice sw-{s} in any kubeslice-* namespace on controller"
    ) in plan.stdout

    applied = _kubeferry("apply", "-f", inv, "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    status = _status(sandbox, f"copy-{s}", project_ns)
    with Ledger.open(setup["ledger"], create=False) as ledger:
        runs = {run.kind: run for run in ledger.runs(job=f"copy-{s}")}
        backup_run, restore_run = runs[RunKind.BACKUP], runs[RunKind.RESTORE]
        assert backup_run.phase is RunPhase.COMPLETED
        assert restore_run.phase is RunPhase.COMPLETED
        copy_events = [e.kind for e in ledger.events(job=f"copy-{s}")]
        orphan_runs = ledger.runs(job=f"orphan-{s}")
        orphan_events = [e for e in ledger.events(job=f"orphan-{s}") if e.kind.startswith("status")]
        quiet_events = [e.kind for e in ledger.events(job=f"quiet-{s}")]

    backup = status["backup"]
    assert backup["phase"] == "Completed"
    assert backup["progress"] == {
        "totalItems": backup_run.total_items,
        "itemsBackedUp": backup_run.items_done,
    }
    assert backup_run.items_done >= 3  # 2 ConfigMaps + the Namespace (+ its ServiceAccount)
    assert backup["startTimestamp"] == rfc3339(backup_run.started_at)
    assert backup["startTimestamp"] <= backup["completionTimestamp"]  # RFC 3339 Z sorts
    assert backup["expiration"] == rfc3339(backup_run.started_at + timedelta(days=30))
    assert backup["formatVersion"] == "1.1.0"
    assert backup["errors"] == 0
    assert "failureReason" not in backup

    restore = status["restore"]
    assert restore["phase"] == "Completed"
    assert restore["progress"] == {
        "totalItems": restore_run.total_items,
        "itemsRestored": restore_run.items_done,
    }
    assert restore["startTimestamp"] <= restore["completionTimestamp"]
    assert backup["completionTimestamp"] <= restore["startTimestamp"]
    precheck = restore_run.details["precheck"]
    assert status["overallCompatibility"] == precheck["overallCompatibility"]
    assert [c["name"] for c in status["compatibilityChecks"]] == [
        c["name"] for c in precheck["compatibilityChecks"]
    ]
    assert not [k for k in copy_events if k in (SKIPPED_EVENT, FAILED_EVENT)]

    # no ReplicationJobConfig: the runs complete, each run says once that nothing was written
    assert {(r.kind, r.phase) for r in orphan_runs} == {
        (RunKind.BACKUP, RunPhase.COMPLETED),
        (RunKind.RESTORE, RunPhase.COMPLETED),
    }
    assert [e.kind for e in orphan_events] == [SKIPPED_EVENT, SKIPPED_EVENT]
    assert {e.run_id for e in orphan_events} == {r.id for r in orphan_runs}
    assert f"no ReplicationJobConfig orphan-{s} for slice sw-{s}" in orphan_events[0].message

    # statusWriteBack false: its ReplicationJobConfig is left alone
    assert _status(sandbox, f"quiet-{s}", project_ns) == {}
    assert not [k for k in quiet_events if k.startswith("status.")]

    # a failed run: Failed with its reason; the restore's status stays the last restore's
    with sandbox.client("worker-1") as client:
        client.delete("v1", "Namespace", setup["namespace"])
        client.wait_for_deletion("v1", "Namespace", setup["namespace"], timeout=120)
    failed = _kubeferry("backup", f"copy-{s}", "-f", inv, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    after = _status(sandbox, f"copy-{s}", project_ns)
    assert after["backup"]["phase"] == "Failed"
    assert f"namespace {setup['namespace']} does not exist" in after["backup"]["failureReason"]
    assert after["backup"]["startTimestamp"] <= after["backup"]["completionTimestamp"]
    assert "expiration" not in after["backup"]  # reset: the failed run has no snapshot
    assert after["backup"]["errors"] == 1
    assert after["restore"] == restore

    with sandbox.client("controller") as client:
        _survives_the_published_schema(client, project_ns, [status, after])


def _survives_the_published_schema(
    client: KubeClient, namespace: str, statuses: list[dict[str, Any]]
) -> None:
    """What was written, and a fresh run's patch with its nulls, are kept whole by the API
    server under the published ReplicationJobConfig schema (nothing pruned or rejected)."""
    api = install_published_copy(
        client, "replicationjobconfigs.controller.kubeslice.io", PUBLISHED_GROUP
    )
    if api is None:
        return  # the published CRDs are not next to the repository
    group, version = api.split("/")
    resource = ApiResource(
        group, version, "replicationjobconfigs", JOB_CONFIG_KIND, True, frozenset()
    )
    rest = KubeRest.from_client(client, max_connections=1)
    try:
        for index, status in enumerate(statuses):
            name = f"published-{index}"
            create_when_served(client, _job_config(name, namespace, "sw", api=api))
            written = rest.blocking.merge_patch(
                resource, name, {"status": status}, namespace, subresource="status"
            )
            assert written["status"] == status
        # a new run over the first status: its nulls remove what that run does not have
        start = MirroredRun("backup", RunPhase.IN_PROGRESS, datetime.now(UTC))
        written = rest.blocking.merge_patch(
            resource, "published-0", status_patch(start), namespace, subresource="status"
        )
        kept = {k: v for k, v in status_patch(start)["status"]["backup"].items() if v is not None}
        kept["progress"] = {"itemsBackedUp": 0}
        assert written["status"]["backup"] == kept
    finally:
        rest.close()
