"""Rules within one object that span several fields, and the inline-secret guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from pydantic import BaseModel

from reconciler.inventory._models import (
    ApplicationSlice,
    Cluster,
    InventoryObject,
    ReplicationJob,
    ReplicationRepository,
)
from reconciler.inventory._types import cpu_millicores, quantity_bytes
from reconciler.inventory._yaml import Loc

Finding = tuple[Loc, str]
"""A problem at a path inside a document."""

SECRET_FIELD_NAMES: Final = frozenset(
    {
        "accesskey",
        "secretkey",
        "accesskeyid",
        "secretaccesskey",
        "sessiontoken",
        "password",
        "passphrase",
        "token",
        "secret",
    }
)
"""Field names (case, '-' and '_' ignored) that hold a secret value, never allowed inline."""

SECRET_CHECKED_KINDS: Final = frozenset({"Cluster", "ReplicationRepository"})
"""Kinds whose spec is scanned; job specs hold user data (label maps) that may look alike."""


def strip_inline_secrets(kind: str, value: object, loc: Loc) -> tuple[object, list[Finding]]:
    """A copy of ``value`` without secret-named fields, and a finding for each one removed.

    The removed values never reach pydantic, so no error can echo them.
    """
    findings: list[Finding] = []
    done: dict[int, object] = {}  # aliases: each shared mapping is cleaned once

    def clean(item: object, at: Loc) -> object:
        if id(item) in done:
            return done[id(item)]
        result: object = item
        if isinstance(item, dict):
            kept: dict[object, object] = {}
            for key, child in item.items():
                if isinstance(key, str) and _normalized(key) in SECRET_FIELD_NAMES:
                    findings.append(((*at, key), _inline_secret_message(kind, key)))
                else:
                    kept[key] = clean(child, (*at, key) if isinstance(key, str) else at)
            result = kept
        elif isinstance(item, list):
            result = [clean(child, (*at, i)) for i, child in enumerate(item)]
        done[id(item)] = result
        return result

    return clean(value, loc), findings


def _normalized(key: str) -> str:
    return re.sub(r"[-_]", "", key).lower()


def _inline_secret_message(kind: str, key: str) -> str:
    if kind == "Cluster":
        advice = "cluster credentials belong in the kubeconfig"
    elif "passphrase" in _normalized(key):
        advice = "reference it with encryption.passphraseFrom (env, file or secretRef)"
    else:
        advice = "reference it with credentialsFrom (env, file or secretRef)"
    return f"inline secret {key!r} is not allowed (value not shown); {advice}"


def object_rules(obj: InventoryObject) -> Iterator[Finding]:
    """Problems of one valid object that no single field can see."""
    if isinstance(obj, Cluster):
        yield from _volume_mover_rules(obj)
    elif isinstance(obj, ReplicationRepository):
        yield from _repository_rules(obj)
    elif isinstance(obj, ReplicationJob):
        yield from _job_rules(obj)
    elif isinstance(obj, ApplicationSlice):
        yield from _duplicates(obj.spec.clusters, ("spec", "clusters"), "cluster")
        yield from _duplicates(obj.spec.namespaces, ("spec", "namespaces"), "namespace")


_JOB_MOVER_FIELDS: Final = ("image", "imagePullPolicy", "timeout", "serviceAccountName")


def _volume_mover_rules(cluster: Cluster) -> Iterator[Finding]:
    """Settings of the job mover only make sense with type job; tolerations as Kubernetes
    accepts them (else every mover pod would be rejected at apply time)."""
    mover = cluster.spec.volume_mover
    if mover is None:
        return
    loc = ("spec", "volumeMover")
    if mover.type != "job":
        given = mover.model_dump(by_alias=True, exclude_none=True)
        for alias in (*_JOB_MOVER_FIELDS, "tolerations", "resources"):
            if given.get(alias):
                yield (*loc, alias), f"{alias} is a setting of type job (type is {mover.type})"
    for index, toleration in enumerate(mover.tolerations):
        at = (*loc, "tolerations", index)
        if toleration.operator == "Exists" and toleration.value:
            yield (*at, "value"), "value must be empty with operator Exists"
        if toleration.operator == "Equal" and toleration.key is None:
            yield at, "key is required with operator Equal (or use operator Exists)"
        if toleration.toleration_seconds is not None and toleration.effect != "NoExecute":
            yield (*at, "tolerationSeconds"), "tolerationSeconds needs effect NoExecute"
    resources = mover.resources
    if resources is not None and resources.requests and resources.limits:
        # Kubernetes rejects a pod whose request exceeds its limit: say so before any Job
        for name, amount in (("cpu", cpu_millicores), ("memory", quantity_bytes)):
            requested = getattr(resources.requests, name)
            limit = getattr(resources.limits, name)
            if requested and limit and amount(requested) > amount(limit):
                yield (
                    (*loc, "resources", "requests", name),
                    f"request {requested} exceeds the limit {limit}: lower it or raise "
                    f"limits.{name}",
                )


def _repository_rules(repository: ReplicationRepository) -> Iterator[Finding]:
    spec = repository.spec
    storages = [
        alias
        for alias, chosen in (
            ("filesystem", spec.filesystem),
            ("s3", spec.s3),
            ("hostedIn", spec.hosted_in),
        )
        if chosen is not None
    ]
    if not storages:
        yield ("spec",), "expected exactly one of filesystem, s3 or hostedIn, got none"
    elif len(storages) > 1:
        message = (
            f"expected exactly one of filesystem, s3 or hostedIn, got {' and '.join(storages)}"
        )
        yield ("spec", storages[1]), message
    if spec.credentials_from is not None:
        if spec.hosted_in is not None:
            message = (
                "credentialsFrom does not apply to a hostedIn repository "
                "(kubeferry creates its credentials Secret)"
            )
            yield ("spec", "credentialsFrom"), message
        elif spec.s3 is None:
            message = "credentialsFrom applies only to an s3 repository"
            yield ("spec", "credentialsFrom"), message
        yield from _exactly_one(spec.credentials_from, ("spec", "credentialsFrom"))
    if spec.hosted_in is not None:
        yield from _hosted_rules(repository)
    if spec.encryption is not None:
        passphrase = spec.encryption.passphrase_from
        yield from _exactly_one(passphrase, ("spec", "encryption", "passphraseFrom"))


def _hosted_rules(repository: ReplicationRepository) -> Iterator[Finding]:
    """Defaults derived from the repository name must be valid names too."""
    hosted = repository.spec.hosted_in
    assert hosted is not None
    namespace = repository.hosted_namespace or ""
    if hosted.namespace is None and len(namespace) > 63:
        message = (
            f"the default namespace {namespace!r} is longer than 63 characters; "
            "set hostedIn.namespace"
        )
        yield ("spec", "hostedIn"), message
    if hosted.bucket is None and not 3 <= len(repository.name) <= 63:
        message = (
            f"the default bucket {repository.name!r} (the repository name) is not a valid "
            "S3 bucket name (3-63 characters); set hostedIn.bucket"
        )
        yield ("spec", "hostedIn"), message
    if hosted.node_port is not None and hosted.service_type == "ClusterIP":
        message = "nodePort needs serviceType NodePort or LoadBalancer"
        yield ("spec", "hostedIn", "nodePort"), message


def _exactly_one(choice: BaseModel, loc: Loc) -> Iterator[Finding]:
    """For `x: {env: ...} | {file: ...} | {secretRef: ...}`-style mappings."""
    aliases = [info.alias or name for name, info in type(choice).model_fields.items()]
    chosen = [
        info.alias or name
        for name, info in type(choice).model_fields.items()
        if getattr(choice, name) is not None
    ]
    expected = ", ".join(aliases[:-1]) + f" or {aliases[-1]}"
    if not chosen:
        yield loc, f"expected exactly one of {expected}, got none"
    elif len(chosen) > 1:
        yield (*loc, chosen[1]), f"expected exactly one of {expected}, got {' and '.join(chosen)}"


def _job_rules(job: ReplicationJob) -> Iterator[Finding]:
    spec = job.spec
    if spec.k8s_objects_only and spec.pv_data_only:
        yield ("spec", "pvDataOnly"), "k8sObjectsOnly and pvDataOnly cannot both be true"
    retention = spec.retention
    if retention is not None and (
        retention.keep_last is None and retention.keep_daily is None and retention.ttl is None
    ):
        yield ("spec", "retention"), "expected at least one of keepLast, keepDaily or ttl"
    if spec.notify is not None:
        yield from _exactly_one(
            spec.notify.webhook.url_from, ("spec", "notify", "webhook", "urlFrom")
        )
    both = sorted(set(spec.resources_to_include) & set(spec.resources_to_exclude))
    for resource in both:
        index = spec.resources_to_exclude.index(resource)
        message = f"{resource!r} is both included and excluded"
        yield ("spec", "resourcesToExclude", index), message


def _duplicates(names: list[str], loc: Loc, what: str) -> Iterator[Finding]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            yield (*loc, index), f"{what} {name!r} is listed twice"
        seen.add(name)
