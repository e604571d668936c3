"""Comparing a drill's restore with its snapshot (pure): objects field by field after the
restore's sanitising, workload specs, and volume trees against their manifests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.engines.objects import (
    api_group,
    sanitize_for_restore,
)
from reconciler.kube import Manifest
from reconciler.reconcile._drill_report import Mismatch, WorkloadCheck
from reconciler.volumes import TreeVerification, VolumeManifest
from reconciler.volumes import verify_tree as _verify_tree

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
_WORKLOAD_GROUPS = frozenset({"apps", "batch"})
_KUBEFERRY_LABEL = "kubeferry.io/"
_MAX_VALUE = 60


# -- comparing objects (pure) ----------------------------------------------------------------


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def field_differences(
    desired: Any, existing: Any, path: str = "", *, show_values: bool = True
) -> Iterator[tuple[str, str]]:
    """(field path, problem) for every field of ``desired`` that ``existing`` lacks or holds
    otherwise; the semantics of ``is_subset`` (extra fields in ``existing`` are fine, an empty
    or null desired value matches an absent field, lists match element by element)."""
    if isinstance(desired, dict):
        if not isinstance(existing, dict):
            yield path or "(object)", f"expected an object, found {type(existing).__name__}"
            return
        for key, value in desired.items():
            sub = _key_path(path, str(key))
            if key not in existing:
                if value is None or value == {} or value == []:
                    continue
                yield sub, "missing"
            else:
                yield from field_differences(value, existing[key], sub, show_values=show_values)
        return
    if isinstance(desired, list):
        if not isinstance(existing, list):
            yield path, f"expected a list, found {type(existing).__name__}"
            return
        if len(desired) != len(existing):
            yield path, f"{len(existing)} item(s), expected {len(desired)}"
            return
        for index, (d, e) in enumerate(zip(desired, existing, strict=True)):
            yield from field_differences(d, e, f"{path}[{index}]", show_values=show_values)
        return
    same = (
        type(desired) is type(existing) and desired == existing
        if isinstance(desired, bool) or isinstance(existing, bool)
        else desired == existing
    )
    if not same:
        if show_values:
            yield path, f"differs: expected {_short(desired)}, found {_short(existing)}"
        else:
            yield path, "differs (value not shown)"


def _without_owner_uids(obj: Manifest) -> Manifest:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return obj
    refs = metadata.get("ownerReferences")
    if not isinstance(refs, list):
        return obj
    cleaned = [
        {k: v for k, v in r.items() if k != "uid"} if isinstance(r, dict) else r for r in refs
    ]
    return {**obj, "metadata": {**metadata, "ownerReferences": cleaned}}


def _comparable_desired(obj: Manifest) -> Manifest:
    """The restore's object without kubeferry's own labels (an object the scratch namespace
    already had, such as the default ServiceAccount, never got them)."""
    obj = _without_owner_uids(obj)
    metadata = dict(obj.get("metadata") or {})
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        kept = {k: v for k, v in labels.items() if not str(k).startswith(_KUBEFERRY_LABEL)}
        if kept:
            metadata["labels"] = kept
        else:
            metadata.pop("labels", None)
    return {**obj, "metadata": metadata}


def object_label(obj: Manifest) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def compare_object(
    archived: Manifest,
    live: Manifest | None,
    *,
    source_namespace: str,
    target_namespace: str,
    storage_class_mapping: Mapping[str, str],
    snapshot_id: str,
    job: str,
) -> list[Mismatch]:
    """How the live object differs from what restoring ``archived`` creates (empty: equal)."""
    desired = sanitize_for_restore(
        archived,
        source_namespace=source_namespace,
        target_namespace=target_namespace,
        storage_class_mapping=storage_class_mapping,
        snapshot_id=snapshot_id,
        job=job,
    )
    item = object_label(desired)
    if live is None:
        return [Mismatch(item, "", "missing from the scratch namespace")]
    show = not (
        archived.get("kind") == "Secret" and api_group(str(archived.get("apiVersion"))) == ""
    )
    return [
        Mismatch(item, path, problem)
        for path, problem in field_differences(
            _comparable_desired(desired), _without_owner_uids(live), show_values=show
        )
    ]


def is_workload(obj: Manifest) -> bool:
    return (
        obj.get("kind") in WORKLOAD_KINDS
        and api_group(str(obj.get("apiVersion", ""))) in _WORKLOAD_GROUPS
    )


def workload_checks(
    archived: Sequence[Manifest], mismatches: Sequence[Mismatch]
) -> list[WorkloadCheck]:
    """Workloads of the snapshot and whether their spec came back equal."""
    differing = {m.item for m in mismatches if m.path == "" or m.path.startswith("spec")}
    checks = []
    for obj in archived:
        if is_workload(obj):
            item = object_label(obj)
            checks.append(WorkloadCheck(item, item not in differing))
    return sorted(checks, key=lambda c: c.item)


# -- comparing volume data -------------------------------------------------------------------


def verify_tree(
    manifest: VolumeManifest,
    root: Path,
    chunk_id: Callable[[bytes], str],
    *,
    item: str,
) -> tuple[list[Mismatch], int, int]:
    """Compare directory ``root`` with a volume manifest: (mismatches, files, bytes checked);
    see :func:`reconciler.volumes.verify_tree`."""
    return drill_mismatches(_verify_tree(manifest, root, chunk_id), item)


def drill_mismatches(verified: TreeVerification, item: str) -> tuple[list[Mismatch], int, int]:
    """A volume check's result as the drill report counts it (one report item per claim)."""
    found = [Mismatch(item, m.path, m.problem) for m in verified.mismatches]
    hidden = verified.mismatch_count - len(found)
    if hidden > 0:
        found.append(Mismatch(item, "…", f"{hidden} more mismatch(es) not listed by the mover"))
    return found, verified.files, verified.bytes
