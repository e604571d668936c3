"""Volume selection: every PVC unless excluded; other pod volumes only when named."""

from __future__ import annotations

from typing import Any

from reconciler.volumes import (
    EXCLUDE_ANNOTATION,
    VOLUMES_ANNOTATION,
    PodVolume,
    claim_volume_dir,
    is_excluded,
    requested_volumes,
    select_volumes,
)


def _claim(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "annotations": annotations},
    }


_VOLUMES = [
    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    {"name": "cache", "emptyDir": {}},
    {"name": "config", "configMap": {"name": "settings"}},
    {"name": "token", "secret": {"secretName": "token"}},
    {"name": "all", "projected": {"sources": []}},
    {"name": "info", "downwardAPI": {"items": []}},
    {"name": "host", "hostPath": {"path": "/var/log"}},
]


def _deployment(name: str, annotations: dict[str, str] | None = None, **template: str) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "template": {
                "metadata": {"annotations": template},
                "spec": {"containers": [], "volumes": _VOLUMES},
            }
        },
    }


def test_every_claim_is_selected_by_default_and_sorted() -> None:
    selection = select_volumes([_claim("b"), _claim("a")])
    assert selection.claims == ("a", "b")
    assert selection.excluded == ()
    assert not selection.empty


def test_the_exclude_annotation_opts_a_claim_out() -> None:
    claims = [
        _claim("kept"),
        _claim("out", **{EXCLUDE_ANNOTATION: "true"}),
        _claim("shouting", **{EXCLUDE_ANNOTATION: " TRUE "}),
        _claim("false", **{EXCLUDE_ANNOTATION: "false"}),
    ]
    selection = select_volumes(claims)
    assert selection.claims == ("false", "kept")
    assert selection.excluded == ("out", "shouting")
    assert is_excluded(claims[1])
    assert not is_excluded(claims[3])
    assert not is_excluded({"metadata": {}})


def test_non_pvc_volumes_are_skipped_unless_named() -> None:
    selection = select_volumes([], [_deployment("web")])
    assert selection.pod_volumes == ()
    assert selection.notes == ()
    assert selection.empty


def test_named_empty_dir_is_selected_from_the_workload_or_its_pod_template() -> None:
    on_workload = _deployment("web", {VOLUMES_ANNOTATION: "cache"})
    on_template = _deployment("api", **{VOLUMES_ANNOTATION: " cache , cache "})
    selection = select_volumes([], [on_workload, on_template])
    assert selection.pod_volumes == (
        PodVolume("deployments.apps/api", "cache", "emptyDir"),
        PodVolume("deployments.apps/web", "cache", "emptyDir"),
    )


def test_named_object_backed_and_unknown_volumes_are_noted_not_selected() -> None:
    names = "config,token,all,info,host,missing,data"
    selection = select_volumes([_claim("data")], [_deployment("web", {VOLUMES_ANNOTATION: names})])
    assert selection.pod_volumes == ()
    assert selection.claims == ("data",)  # a PVC volume named again changes nothing
    notes = "\n".join(selection.notes)
    for name in ("config", "token", "all", "info"):
        assert f"volume {name!r}" in notes
        assert "carry it" in notes
    assert "'host' (hostPath) cannot be copied" in notes
    assert "names 'missing', no such volume" in notes
    assert len(selection.notes) == 6


def test_pods_cronjobs_and_unrelated_kinds() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {VOLUMES_ANNOTATION: "cache"}},
        "spec": {"volumes": _VOLUMES},
    }
    cronjob = {
        "kind": "CronJob",
        "metadata": {"name": "c", "annotations": {VOLUMES_ANNOTATION: "cache"}},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"volumes": _VOLUMES}}}}},
    }
    other = {"kind": "ConfigMap", "metadata": {"name": "x", "annotations": {}}}
    selection = select_volumes([], [pod, cronjob, other])
    assert [(v.owner, v.name) for v in selection.pod_volumes] == [
        ("cronjobs.batch/c", "cache"),
        ("pods/p", "cache"),
    ]


def test_requested_volumes_parsing() -> None:
    assert requested_volumes({VOLUMES_ANNOTATION: "a, b,,a , c"}) == ["a", "b", "c"]
    assert requested_volumes({}) == []
    assert requested_volumes({VOLUMES_ANNOTATION: 3}) == []


def test_claim_volume_dir_reads_host_path_and_local_volumes() -> None:
    assert claim_volume_dir({"spec": {"hostPath": {"path": "/tmp/hostpath_pv/x"}}}) == (
        "/tmp/hostpath_pv/x"
    )
    assert claim_volume_dir({"spec": {"local": {"path": "/mnt/disk"}}}) == "/mnt/disk"
    assert claim_volume_dir({"spec": {"csi": {"driver": "x"}}}) is None
    assert claim_volume_dir({}) is None
