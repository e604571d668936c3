"""The snapshot tarball: layout, determinism, round trips and hostile archives."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.engines.objects import (
    ArchivedObject,
    ArchiveError,
    member_path,
    read_archive,
    resource_list,
    write_archive,
)


def cm(name: str, namespace: str = "shop", **data: str) -> ArchivedObject:
    return ArchivedObject.from_manifest(
        "configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "managedFields": [{"manager": "kubectl"}],
            },
            "data": data,
        },
    )


DEPLOY = ArchivedObject.from_manifest(
    "deployments.apps",
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web"},
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1},
    },
)
NAMESPACE = ArchivedObject.from_manifest(
    "namespaces",
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "uid": "uid-ns"}},
)


def tarball(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def member(
    name: str, body: Any = None, kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    data = b"" if body is None else json.dumps(body).encode()
    return info, data if kind == tarfile.REGTYPE else b""


def test_layout_and_kept_content() -> None:
    data = write_archive([DEPLOY, cm("b"), NAMESPACE, cm("a")])
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        infos = tar.getmembers()
        names = [i.name for i in infos]
        assert names == [
            "resources/configmaps/namespaces/shop/a.json",
            "resources/configmaps/namespaces/shop/b.json",
            "resources/deployments.apps/namespaces/shop/web.json",
            "resources/namespaces/cluster/shop.json",
        ]
        assert {(i.mtime, i.uid, i.gid, i.mode, i.uname) for i in infos} == {(0, 0, 0, 0o600, "")}
        extracted = tar.extractfile(names[2])
        assert extracted is not None
        stored = json.loads(extracted.read())
    # as read from the source: uid and status kept, managedFields left out
    assert stored["metadata"]["uid"] == "uid-web"
    assert stored["status"] == {"readyReplicas": 1}
    assert "managedFields" not in cm("a").manifest["metadata"]


def test_round_trip_preserves_objects_and_bytes() -> None:
    items = [DEPLOY, cm("a", k="v"), NAMESPACE]
    data = write_archive(items)
    read = read_archive(data)
    assert sorted(read, key=lambda o: o.path) == sorted(items, key=lambda o: o.path)
    assert write_archive(read) == data
    assert write_archive(reversed(items)) == data
    by_key = {o.key: o for o in read}
    assert by_key["namespaces/shop"].namespace is None
    assert by_key["deployments.apps/shop/web"].uid == "uid-web"
    assert by_key["deployments.apps/shop/web"].group == "apps"


def test_resource_list() -> None:
    assert resource_list([DEPLOY, cm("b"), NAMESPACE, cm("a", namespace="x")]) == {
        "configmaps": ["shop/b", "x/a"],
        "deployments.apps": ["shop/web"],
        "namespaces": ["shop"],
    }


def test_duplicates_and_bad_names_are_refused_on_write() -> None:
    with pytest.raises(ArchiveError, match="same archive member"):
        write_archive([cm("a"), cm("a")])
    with pytest.raises(ArchiveError):
        member_path("configmaps", "shop", "../x")
    with pytest.raises(ArchiveError):
        member_path("configmaps", "..", "x")


GOOD = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([member("../x", GOOD)], "escapes"),
        ([member("resources/configmaps/namespaces/../../x.json", GOOD)], "escapes"),
        ([member("/etc/x.json", GOOD)], "absolute"),
        ([member("resources/configmaps/namespaces/n/x.json", GOOD, tarfile.SYMTYPE)], "regular"),
        ([member("resources/configmaps/namespaces/n", None, tarfile.DIRTYPE)], "layout"),
        ([member("resources/configmaps/x.json", GOOD)], "layout"),
        ([member("notes.txt", GOOD)], "layout"),
        ([member("resources/configmaps/namespaces/n/y.json", GOOD)], "does not match"),
        ([member("resources/configmaps/cluster/x.json", GOOD)], "does not match"),
        ([member("resources/configmaps/namespaces/n/x.json", {"kind": "ConfigMap"})],
         "not a Kubernetes object"),
        ([member("resources/configmaps/namespaces/n/x.json", GOOD)] * 2, "twice"),
    ],
)  # fmt: skip
def test_hostile_archives_are_refused(
    members: list[tuple[tarfile.TarInfo, bytes]], message: str
) -> None:
    with pytest.raises(ArchiveError, match=message):
        read_archive(tarball(members))


def test_limits() -> None:
    data = write_archive([cm(f"c{i}") for i in range(5)])
    with pytest.raises(ArchiveError, match="more than 4 members"):
        read_archive(data, max_members=4)
    assert len(read_archive(data, max_members=5)) == 5
    with pytest.raises(ArchiveError, match="limit 10"):
        read_archive(data, max_member_bytes=10)
    with pytest.raises(ArchiveError, match="expands beyond"):
        read_archive(data, max_total_bytes=2048)


def test_oversized_member_is_refused_by_default() -> None:
    info = tarfile.TarInfo("resources/configmaps/namespaces/n/x.json")
    body = b" " * (16 * 1024 * 1024 + 1)
    with pytest.raises(ArchiveError, match="refused"):
        read_archive(tarball([(info, body)]))


@pytest.mark.parametrize("data", [b"", b"not zstd at all", write_archive([cm("a")])[:-20]])
def test_corrupt_archives(data: bytes) -> None:
    with pytest.raises(ArchiveError):
        read_archive(data)


def test_velero_metadata_member_is_ignored() -> None:
    info = tarfile.TarInfo("metadata/version")
    assert read_archive(tarball([(info, b"1.1.0\n")])) == []


_NAMES = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True).filter(
    lambda s: s not in (".", "..") and ".." not in s
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["configmaps", "secrets", "widgets.example.com"]), _NAMES,
                  st.one_of(st.none(), _NAMES)),
        _JSON,
        max_size=8,
    )
)  # fmt: skip
def test_round_trip_property(entries: dict[tuple[str, str, str | None], Any]) -> None:
    items = []
    for (group_resource, name, namespace), payload in entries.items():
        metadata: dict[str, Any] = {"name": name, "uid": f"u-{name}"}
        if namespace:
            metadata["namespace"] = namespace
        manifest = {"apiVersion": "v1", "kind": "K", "metadata": metadata, "data": payload}
        items.append(ArchivedObject.from_manifest(group_resource, manifest))
    data = write_archive(items)
    read = read_archive(data)
    assert {o.path: o.manifest for o in read} == {o.path: o.manifest for o in items}
    assert write_archive(read) == data
