"""Whatever the input, loading raises nothing but InventoryError, and never leaks a secret."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from reconciler.inventory import Inventory, InventoryError, load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# words the schema knows, so random documents get past the first checks now and then
WORDS = [
    "apiVersion", "kind", "metadata", "name", "spec", "kubeferry.io/v1alpha1", "Cluster",
    "ReplicationRepository", "ReplicationSlice", "ReplicationJob", "ApplicationSlice",
    "context", "role", "worker", "controller", "protected", "kubeconfig", "filesystem",
    "path", "s3", "bucket", "credentialsFrom", "env", "file", "secretRef", "encryption",
    "passphraseFrom", "sourceCluster", "destinationCluster", "repository", "namespace",
    "replicationSliceName", "targetNamespace", "retention", "keepLast", "ttl",
    "backupFrequency", "labelSelector", "matchLabels", "onboard", "applicationSlice",
    "clusters", "namespaces", "project", "controllerCluster", "k8sObjectsOnly",
    "pvDataOnly", "password", "token", "*/5 * * * *", "30d", "a", "worker-1", "${HOME}",
    "${UNSET_KUBEFERRY_FUZZ}", "~nobody-xyz/x",
]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=25,
)


def _load_text(text: str) -> Inventory | None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "inventory.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return _load(path)


def _load(path: Path) -> Inventory | None:
    """Load; anything but an InventoryError propagates and fails the test."""
    try:
        inventory = load_inventory(path)
    except InventoryError as error:
        failure = error
    else:
        event("valid inventory")
        assert inventory.digest()
        return inventory
    event(f"invalid: {len(failure.issues)} issue(s)" if len(failure.issues) < 3 else "invalid: 3+")
    assert failure.issues
    assert all(len(str(issue).splitlines()) == 1 for issue in failure.issues)
    assert len(str(failure).splitlines()) == 1
    return None


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _load_text(text)


YAML_PIECES = [
    "---\n", "- ", ": ", "\n", "  ", "{", "}", "[", "]", ",", "&a ", "*a", "<<: ", "? ",
    "!!int ", "!!str ", "!!binary ", "!!timestamp ", "!!set ", "!tag ", "'", '"', "|\n",
    ">-\n", "#", "%YAML 1.1\n", "kind", "Cluster", "apiVersion", "spec", "metadata",
    "name", "x", "1", "2001-13-45", "~", "null", "\t", "\\", "\ufeff", "@",
]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=40))
@example(["!!int ", "'", "'"])  # found by CI: PyYAML's int constructor raised IndexError
def test_random_yaml_like_text(pieces: list[str]) -> None:
    _load_text("".join(pieces))


@FUZZ
@given(st.lists(values, min_size=1, max_size=4))
def test_random_document_structures(documents: list[Any]) -> None:
    _load_text(yaml.safe_dump_all(documents, allow_unicode=True))


def _example_documents() -> list[tuple[str, list[Any]]]:
    files = [EXAMPLES / "demo" / "kubeferry.yaml", *sorted(EXAMPLES.glob("*.yaml"))]
    return [(file.name, list(yaml.safe_load_all(file.read_text()))) for file in files]


EXAMPLE_DOCUMENTS = _example_documents()


def _mutate(node: Any, path: list[int], replacement: Any, delete: bool) -> Any:
    """Replace (or delete) the node reached by following ``path`` (indexes modulo size)."""
    if not path or not isinstance(node, dict | list) or not node:
        return replacement
    index, rest = path[0], path[1:]
    if isinstance(node, dict):
        key = sorted(node)[index % len(node)]
        copy = dict(node)
        if delete and not rest:
            del copy[key]
        else:
            copy[key] = _mutate(node[key], rest, replacement, delete)
        return copy
    position = index % len(node)
    items = list(node)
    if delete and not rest:
        del items[position]
    else:
        items[position] = _mutate(node[position], rest, replacement, delete)
    return items


@FUZZ
@given(
    example=st.sampled_from(range(len(EXAMPLE_DOCUMENTS))),
    mutations=st.lists(
        st.tuples(st.lists(st.integers(0, 50), max_size=5), values, st.booleans()),
        min_size=0,
        max_size=3,
    ),
)
def test_mutated_examples(example: int, mutations: list[tuple[list[int], Any, bool]]) -> None:
    documents: Any = EXAMPLE_DOCUMENTS[example][1]
    for path, replacement, delete in mutations:
        documents = _mutate(documents, path, replacement, delete)
    if not isinstance(documents, list):
        documents = [documents]
    _load_text(yaml.safe_dump_all(documents, allow_unicode=True))


SECRET_KEYS = ["accessKey", "secretKey", "accessKeyId", "secretAccessKey", "password",
               "passphrase", "token"]  # fmt: skip


@FUZZ
@given(
    key=st.sampled_from(SECRET_KEYS),
    secret=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24),
    where=st.sampled_from([(), ("s3",), ("credentialsFrom",), ("encryption",),
                           ("credentialsFrom", "env"), ("s3", "extra")]),
    storage=st.sampled_from(["s3", "filesystem", "none"]),
)  # fmt: skip
def test_inline_secrets_never_appear_in_messages(
    key: str, secret: str, where: tuple[str, ...], storage: str
) -> None:
    spec: dict[str, Any] = {}
    if storage == "s3":
        spec["s3"] = {"bucket": "backups"}
    elif storage == "filesystem":
        spec["filesystem"] = {"path": "/srv"}
    target = spec
    for step in where:
        target = target.setdefault(step, {})
    target[key] = secret
    document = {
        "apiVersion": "kubeferry.io/v1alpha1",
        "kind": "ReplicationRepository",
        "metadata": {"name": "store"},
        "spec": spec,
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "inventory.yaml"
        path.write_text(yaml.safe_dump(document))
        try:
            load_inventory(path)
        except InventoryError as error:
            shown = [str(error), *(str(issue) for issue in error.issues)]
            assert any(f"inline secret {key!r}" in line for line in shown)
            assert not any(secret in line for line in shown)
        else:
            raise AssertionError("an inline secret must be rejected")
