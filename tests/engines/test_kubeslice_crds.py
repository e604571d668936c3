"""The KubeSlice CRD fixtures (tests/fixtures/kubeslice-crds/) are faithful and structural.

No cluster needed. Always: the fixtures match a table of the published facts (group, kind,
plural, scope, versions) and their schemas are structural (what apiextensions.k8s.io/v1
requires). When the published CRDs are next to the repository (../shared/kubeslice-crds/,
or $KUBEFERRY_KUBESLICE_CRDS), the table itself is checked against them, and so is every
field the fixtures declare (same type, enum, default, required).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = REPOSITORY / "tests" / "fixtures" / "kubeslice-crds"
PUBLISHED = Path(
    os.environ.get("KUBEFERRY_KUBESLICE_CRDS") or REPOSITORY.parent / "shared" / "kubeslice-crds"
)

# name -> (group, kind, listKind, plural, singular, scope, [(version, served, storage)])
FACTS: dict[str, tuple[str, str, str, str, str, str, list[tuple[str, bool, bool]]]] = {
    "replicationslice.controller.kubeslice.io": (
        "controller.kubeslice.io",
        "ReplicationSlice",
        "ReplicationSliceList",
        "replicationslice",  # sic: KubeSlice's plural is not "replicationslices"
        "replicationslice",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
    "replicationjobconfigs.controller.kubeslice.io": (
        "controller.kubeslice.io",
        "ReplicationJobConfig",
        "ReplicationJobConfigList",
        "replicationjobconfigs",
        "replicationjobconfig",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
    "sliceconfigs.controller.kubeslice.io": (
        "controller.kubeslice.io",
        "SliceConfig",
        "SliceConfigList",
        "sliceconfigs",
        "sliceconfig",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
    "projects.controller.kubeslice.io": (
        "controller.kubeslice.io",
        "Project",
        "ProjectList",
        "projects",
        "project",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
    "clusters.controller.kubeslice.io": (
        "controller.kubeslice.io",
        "Cluster",
        "ClusterList",
        "clusters",
        "cluster",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
    "workerreplicationslice.worker.kubeslice.io": (
        "worker.kubeslice.io",
        "WorkerReplicationSlice",
        "WorkerReplicationSliceList",
        "workerreplicationslice",
        "workerreplicationslice",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
    "workerreplicationjobconfigs.worker.kubeslice.io": (
        "worker.kubeslice.io",
        "WorkerReplicationJobConfig",
        "WorkerReplicationJobConfigList",
        "workerreplicationjobconfigs",
        "workerreplicationjobconfig",
        "Namespaced",
        [("v1alpha1", True, True)],
    ),
}
# the KubeSlice/NSM metadata the fixtures README (and the object engine) must know about
STRIPPED_LABELS = ("kubeslice.io/nsmIP", "kubeslice.io/pod-type", "kubeslice.io/slice")
STRIPPED_ANNOTATIONS = ("kubeslice.io/status", "ns.networkservicemesh.io", "networkservicemesh.io")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def _facts(crd: dict[str, Any]) -> tuple[Any, ...]:
    spec, names = crd["spec"], crd["spec"]["names"]
    return (
        spec["group"],
        names["kind"],
        names["listKind"],
        names["plural"],
        names["singular"],
        spec["scope"],
        [(v["name"], v["served"], v["storage"]) for v in spec["versions"]],
    )


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _fixture(name: str) -> dict[str, Any]:
    return _load(FIXTURES / f"{name}.yaml")


def test_the_fixtures_are_exactly_the_table() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(FACTS)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_fixture_names_scope_and_versions_match_the_published_facts(name: str) -> None:
    crd = _fixture(name)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == name
    facts = _facts(crd)
    assert facts == FACTS[name]
    group, plural = facts[0], facts[3]
    assert name == f"{plural}.{group}"  # the API server insists on it


def _structural_problems(node: Any, where: str, *, root: bool = False) -> list[str]:
    """Violations of the structural-schema rules apiextensions.k8s.io/v1 enforces."""
    if not isinstance(node, dict):
        return [f"{where}: not a mapping"]
    problems = []
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in node and not node.get("x-kubernetes-int-or-string") and not preserve:
        problems.append(f"{where}: no type")
    for forbidden in ("$ref", "definitions", "dependencies", "patternProperties"):
        if forbidden in node:
            problems.append(f"{where}: {forbidden} is not allowed")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties together")
    kind = node.get("type")
    if kind == "array":
        if "items" not in node:
            problems.append(f"{where}: array without items")
        else:
            problems += _structural_problems(node["items"], f"{where}[]")
    opaque = "properties" not in node and "additionalProperties" not in node and not preserve
    if kind == "object" and not root and opaque and not where.endswith(".metadata"):
        problems.append(f"{where}: object that prunes everything")
    for key, child in (node.get("properties") or {}).items():
        problems += _structural_problems(child, f"{where}.{key}")
    if "default" in node and "enum" in node and node["default"] not in node["enum"]:
        problems.append(f"{where}: default {node['default']!r} not in enum")
    return problems


@pytest.mark.parametrize("name", sorted(FACTS))
def test_fixture_schemas_are_structural(name: str) -> None:
    crd = _fixture(name)
    (version,) = crd["spec"]["versions"]
    schema = _schema(crd)
    assert schema["type"] == "object"
    properties = schema["properties"]
    assert {"apiVersion", "kind", "metadata", "spec", "status"} <= set(properties)
    assert properties["metadata"] == {"type": "object"}  # anything more is rejected
    assert properties["spec"]["type"] == "object"
    assert version.get("subresources", {}).get("status") == {}
    assert "conversion" not in crd["spec"]  # single version: no webhook to depend on
    assert _structural_problems(schema, name, root=True) == []


def test_structural_checker_catches_what_the_server_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "list": {"type": "array"},
            "empty": {"type": "object"},
            "ref": {"type": "object", "$ref": "#/x", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    problems = _structural_problems(bad, "x", root=True)
    assert problems == [
        "x.untyped: no type",
        "x.list: array without items",
        "x.empty: object that prunes everything",
        "x.ref: $ref is not allowed",
    ]


def test_fixtures_readme_lists_every_kind() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for name, facts in FACTS.items():
        assert f"{name}.yaml" in readme
        assert facts[1] in readme


def test_stripped_metadata_is_what_the_published_readme_says() -> None:
    """The KubeSlice/NSM keys the tests expect stripped come from the published facts."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("rich_namespace_for_crds", FIXTURES.parent / "rich_namespace.py")
    assert spec is not None
    assert spec.loader is not None
    rich = module_from_spec(spec)
    sys.modules[spec.name] = rich  # dataclasses look their module up
    spec.loader.exec_module(rich)
    assert sorted(rich.KUBESLICE_LABELS) == sorted(STRIPPED_LABELS)
    assert sorted(rich.KUBESLICE_ANNOTATIONS) == sorted(STRIPPED_ANNOTATIONS)
    if PUBLISHED.is_dir():
        readme = (PUBLISHED / "README.md").read_text()
        for key in (*STRIPPED_LABELS, *STRIPPED_ANNOTATIONS):
            assert f"`{key}`" in readme, key
    else:  # without the published README, the fixture CRD we use for the CR must carry them
        sliceconfig = _fixture("sliceconfigs.controller.kubeslice.io")
        assert _facts(sliceconfig)[1] == "SliceConfig"


def _published(name: str) -> dict[str, Any]:
    return _load(PUBLISHED / f"{name}.yaml")


def _field_problems(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> list[str]:
    """Every field we declare exists in the published schema, alike.

    Where we spell out properties, `required` is the published one; where we keep an object
    open (x-kubernetes-preserve-unknown-fields, no properties) we accept more than KubeSlice
    does, on purpose.
    """
    problems = []
    for key in ("type", "enum", "default", "minimum", "maximum"):
        if key in ours and ours[key] != theirs.get(key):
            problems.append(f"{where}: {key} {ours[key]!r} != published {theirs.get(key)!r}")
    declared = "properties" in ours or "required" in ours
    if declared and sorted(ours.get("required") or []) != sorted(theirs.get("required") or []):
        problems.append(f"{where}: required {ours.get('required')} != {theirs.get('required')}")
    for key, child in (ours.get("properties") or {}).items():
        published = (theirs.get("properties") or {}).get(key)
        if published is None:
            if not theirs.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{where}.{key}: not in the published schema")
            continue
        problems += _field_problems(child, published, f"{where}.{key}")
    if "items" in ours and "items" in theirs:
        problems += _field_problems(ours["items"], theirs["items"], f"{where}[]")
    return problems


@pytest.mark.parametrize("name", sorted(FACTS))
def test_fixtures_agree_with_the_published_crds(name: str) -> None:
    """Against ../shared/kubeslice-crds when present; never skipped.

    Without the published files the fixture is checked for what our own tests rely on:
    a spec and a status, the published `required` fields of the kinds we create.
    """
    ours = _fixture(name)
    if PUBLISHED.is_dir():
        theirs = _published(name)
        assert _facts(theirs) == FACTS[name]
        assert _facts(ours) == _facts(theirs)
        assert ours["spec"]["scope"] == theirs["spec"]["scope"]
        problems = _field_problems(_schema(ours), _schema(theirs), name)
        assert problems == []
    else:
        schema = _schema(ours)
        spec = schema["properties"]["spec"]
        assert spec.get("properties") or spec.get("x-kubernetes-preserve-unknown-fields")
        required = {
            "replicationslice.controller.kubeslice.io": ["destinationCluster", "sourceCluster"],
            "replicationjobconfigs.controller.kubeslice.io": ["replicationSliceName"],
            "sliceconfigs.controller.kubeslice.io": ["maxClusters"],
            "workerreplicationjobconfigs.worker.kubeslice.io": ["rawSpec"],
        }.get(name, [])
        assert sorted(spec.get("required") or []) == required
