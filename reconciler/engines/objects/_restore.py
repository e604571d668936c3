"""Restore side: sanitise, order in tiers, create in parallel within a tier, re-link owners.

Tiers run in sequence (CRDs before their custom resources, Namespace before its objects,
owners before their dependents); the objects of one tier are restored concurrently by a
thread pool, which is what makes a restore run at the API server's pace instead of one
round trip per object. Each thread does an object's whole step (sanitise, POST, read the
answer, handle a conflict) over ``BlockingRest``: no event-loop handoff per request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler._retry import is_retryable, retry
from reconciler.engines._protocols import JobSpec, Reporter
from reconciler.engines.objects._archive import ArchivedObject
from reconciler.engines.objects._collect import known_resource
from reconciler.engines.objects._order import restore_tiers
from reconciler.engines.objects._rules import restore_skip_reason
from reconciler.engines.objects._sanitize import (
    is_subset,
    portable,
    relink_owners,
    sanitize_for_restore,
)
from reconciler.kube import (
    ApiResource,
    BlockingRest,
    KubeApiError,
    KubeError,
    KubeUnreachableError,
    Manifest,
)

log = logging.getLogger("kubeferry.engines.objects")

OUTCOMES = (
    "created",
    "updated",
    "recreated",
    "exists-identical",
    "exists-differs",
    "skipped",
    "failed",
)
_ATTEMPTS = 4
_T = TypeVar("_T")
_CRD_GROUP_RESOURCE = "customresourcedefinitions.apiextensions.k8s.io"
_PVC_GROUP_RESOURCE = "persistentvolumeclaims"


@dataclass
class RestoreTally:
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    warnings: list[str] = field(default_factory=list)
    uid_map: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def warn(self, text: str) -> None:
        with self.lock:
            self.warnings.append(text)


def resource_of(item: ArchivedObject) -> ApiResource:
    """The REST address of an archived object, from its group_resource and apiVersion."""
    resource = item.group_resource.partition(".")[0]
    return known_resource(
        item.api_version, resource, item.kind, namespaced=item.namespace is not None
    )


def item_label(item: ArchivedObject) -> str:
    return f"{item.group_resource}/{item.name}"


def restore_objects(
    rest: BlockingRest,
    objects: Sequence[ArchivedObject],
    job: JobSpec,
    *,
    snapshot_id: str,
    source_namespace: str,
    target_namespace: str,
    reporter: Reporter,
    parallelism: int = 32,
    after_claims: Callable[[], None] | None = None,
) -> RestoreTally:
    """Restore ``objects`` tier by tier.

    ``after_claims`` (volume data) is called exactly once: right after the last tier that
    holds PersistentVolumeClaims, so before the workloads that mount them (owned claims can
    come later), or at the end when no tier holds one. An error it raises stops the restore.
    """
    tally = RestoreTally()
    has_namespace = any(item.group_resource == "namespaces" for item in objects)
    if not has_namespace:
        _ensure_namespace(rest, target_namespace, snapshot_id, job.name)
    progress = threading.Lock()

    def restore_one(item: ArchivedObject) -> None:
        reporter.check_cancelled()
        outcome = _restore_item(
            rest,
            item,
            job,
            tally,
            snapshot_id=snapshot_id,
            source_namespace=source_namespace,
            target_namespace=target_namespace,
        )
        tally.count(outcome)
        with progress:  # reporters need not be thread-safe
            reporter.item_done(item_label(item))

    tiers = restore_tiers(objects)
    claim_tiers = [
        index
        for index, tier in enumerate(tiers)
        if any(item.group_resource == _PVC_GROUP_RESOURCE for item in tier)
    ]
    hook_after = claim_tiers[-1] if claim_tiers else len(tiers) - 1
    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="restore") as pool:
        for index, tier in enumerate(tiers):
            reporter.check_cancelled()
            futures = [pool.submit(restore_one, item) for item in tier]
            try:
                for future in futures:
                    future.result()  # the first error (a cancellation) stops the restore
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            crds = [i for i in tier if i.group_resource == _CRD_GROUP_RESOURCE]
            if crds:
                _wait_established(rest, crds, tally)
            if after_claims is not None and index == hook_after:
                reporter.check_cancelled()
                after_claims()
    if after_claims is not None and not tiers:
        after_claims()
    return tally


def _ensure_namespace(rest: BlockingRest, name: str, snapshot_id: str, job: str) -> None:
    namespace = resource_of(ArchivedObject("namespaces", "v1", "Namespace", None, name, {}))
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"kubeferry.io/snapshot": snapshot_id, "kubeferry.io/job": job},
        },
    }
    try:
        rest.create(namespace, manifest)
    except KubeApiError as error:
        if error.status != 409:
            raise


def _transient(error: BaseException) -> bool:
    return isinstance(error, KubeUnreachableError) or is_retryable(error)


def _with_retries(call: Callable[[], _T]) -> _T:
    """Throttling, server errors and dropped connections are retried; API refusals are final."""
    return retry(call, attempts=_ATTEMPTS, base=0.1, cap=2.0, retryable=_transient)


def _restore_item(
    rest: BlockingRest,
    item: ArchivedObject,
    job: JobSpec,
    tally: RestoreTally,
    *,
    snapshot_id: str,
    source_namespace: str,
    target_namespace: str,
) -> str:
    label = item_label(item)
    source_uid = str((item.manifest.get("metadata") or {}).get("uid") or "")
    if restore_skip_reason(item.manifest) is not None:
        return "skipped"
    desired = sanitize_for_restore(
        item.manifest,
        source_namespace=source_namespace,
        target_namespace=target_namespace,
        storage_class_mapping=job.storage_class_mapping,
        snapshot_id=snapshot_id,
        job=job.name,
    )
    desired, owner_warnings = relink_owners(desired, tally.uid_map)
    for text in owner_warnings:
        tally.warn(f"{label}: {text}")
    resource = resource_of(item)
    namespace = target_namespace if item.namespace is not None else None
    name = str(desired["metadata"]["name"])
    try:
        created = _with_retries(lambda: rest.create(resource, desired, namespace))
        _remember_uid(tally, source_uid, created)
        return "created"
    except KubeApiError as error:
        # an existing object can also fail validation before the conflict is noticed
        # (a Service's fixed nodePort is "already allocated" - to itself): look before failing
        exists = error.status == 409 or (
            error.status == 422 and rest.get(resource, name, namespace) is not None
        )
        if not exists:
            tally.warn(f"{label}: {error}")
            return "failed"
    try:
        return _existing(rest, resource, name, namespace, desired, job, tally, source_uid)
    except KubeError as error:
        tally.warn(f"{label}: {error}")
        return "failed"


def _existing(
    rest: BlockingRest,
    resource: ApiResource,
    name: str,
    namespace: str | None,
    desired: Manifest,
    job: JobSpec,
    tally: RestoreTally,
    source_uid: str,
) -> str:
    label = f"{resource.group_resource}/{name}"
    current = _with_retries(lambda: rest.get(resource, name, namespace))
    if current is None:  # deleted since the conflict: create it after all
        created = _with_retries(lambda: rest.create(resource, desired, namespace))
        _remember_uid(tally, source_uid, created)
        return "created"
    identical = is_subset(portable(desired), portable(current))
    policy = job.existing_resource_policy
    if identical or policy == "none":
        _remember_uid(tally, source_uid, current)
        if not identical:
            tally.warn(
                f"{label}: exists with different content; kept (existingResourcePolicy none)"
            )
            return "exists-differs"
        return "exists-identical"
    if policy == "update":
        patch = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
        updated = _with_retries(lambda: rest.merge_patch(resource, name, patch, namespace))
        _remember_uid(tally, source_uid, updated)
        return "updated"
    _with_retries(lambda: rest.delete(resource, name, namespace))
    rest.wait_for(resource, name, namespace, gone=True, timeout=120.0)
    created = _with_retries(lambda: rest.create(resource, desired, namespace))
    _remember_uid(tally, source_uid, created)
    return "recreated"


def _remember_uid(tally: RestoreTally, source_uid: str, restored: Manifest) -> None:
    uid = (restored.get("metadata") or {}).get("uid")
    if source_uid and uid:
        with tally.lock:
            tally.uid_map[source_uid] = str(uid)


def _wait_established(
    rest: BlockingRest, crds: Sequence[ArchivedObject], tally: RestoreTally
) -> None:
    """Custom resources can be created only once their CRD is Established."""

    def established(crd: Manifest) -> bool:
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    for crd in crds:
        try:
            rest.wait_for(resource_of(crd), crd.name, condition=established, timeout=60.0)
        except KubeError as error:  # reported; its custom resources then fail one by one
            tally.warn(f"{item_label(crd)}: not Established: {error}")
