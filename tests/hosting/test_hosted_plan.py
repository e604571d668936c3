"""Plans of a hostedIn repository (pure diff): a visible MinIO change, blocked only by its
cluster, and jobs that run after it instead of being blocked."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from reconciler.plan import (
    ActionType,
    ClusterObservation,
    DesiredJob,
    DesiredObject,
    DesiredState,
    HostingObservation,
    ObservedState,
    Plan,
    RecordedState,
    RepositoryObservation,
    compute_plan,
    plan_to_json,
    render_plan,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALL_OBJECTS = (
    "Namespace/kubeferry-store",
    "Secret/minio-credentials",
    "PersistentVolumeClaim/minio-data",
    "Service/minio",
    "Deployment/minio",
)
REPO = "ReplicationRepository/store"
JOB = "ReplicationJob/web"


def _desired() -> DesiredState:
    clusters = ("controller", "worker-1")
    return DesiredState(
        inventory_path="inv.yaml",
        inventory_digest="d1",
        clusters={n: DesiredObject("Cluster", n, f"c-{n}") for n in clusters},
        repositories={"store": DesiredObject("ReplicationRepository", "store", "r")},
        slices={"b": DesiredObject("ReplicationSlice", "b", "s")},
        jobs={
            "web": DesiredJob(
                name="web",
                slice="b",
                source_cluster="worker-1",
                destination_cluster="worker-1",
                repository="store",
                namespace="web",
                target_namespace="web",
                spec_digest="j",
                content_digest="jc",
            )
        },
    )


def _recorded(*, repository: bool = False) -> RecordedState:
    objects = {
        "Cluster": {"controller": "c-controller", "worker-1": "c-worker-1"},
        "ReplicationSlice": {"b": "s"},
    }
    if repository:
        objects["ReplicationRepository"] = {"store": "r"}
    return RecordedState(serial=1, objects=objects)


def _observed(
    hosting: HostingObservation, *, available: bool = False, controller: bool = True
) -> ObservedState:
    return ObservedState(
        clusters={
            "controller": ClusterObservation("controller", controller, "v1.20.2"),
            "worker-1": ClusterObservation("worker-1", True, "v1.20.2"),
        },
        repositories={
            "store": RepositoryObservation(
                "store",
                available,
                initialized=available,
                message="" if available else "MinIO in controller/kubeferry-store not ready",
                hosting=hosting,
            )
        },
    )


def _plan(observed: ObservedState, *, repository_recorded: bool = False) -> Plan:
    return compute_plan(_desired(), _recorded(repository=repository_recorded), observed, now=NOW)


def _action(plan: Plan, address: str):  # type: ignore[no-untyped-def]
    return next(a for a in plan.actions if a.address == address)


def test_missing_minio_is_a_visible_unblocked_deploy() -> None:
    plan = _plan(_observed(HostingObservation("controller", "kubeferry-store", ALL_OBJECTS)))
    repository = _action(plan, REPO)
    assert repository.type is ActionType.CREATE
    assert repository.blocked is None
    assert repository.reasons == [
        "new in inventory",
        "MinIO to deploy in controller/kubeferry-store",
    ]
    assert repository.details["hosting"] == {
        "cluster": "controller",
        "namespace": "kubeferry-store",
        "create": list(ALL_OBJECTS),
    }
    assert repository.details["initialize"] is True
    # the job runs after the deploy instead of being blocked by "repository unavailable"
    job = _action(plan, JOB)
    assert job.type is ActionType.REPLICATE
    assert job.blocked is None
    assert REPO in job.depends_on
    # apply deploys it: not listed as a problem
    assert plan.problems == []


def test_an_unreachable_controller_blocks_the_deploy_and_the_jobs() -> None:
    hosting = HostingObservation("controller", "kubeferry-store", message="cannot reach")
    plan = _plan(_observed(hosting, controller=False))
    assert _action(plan, REPO).blocked == "cluster controller unreachable"
    assert _action(plan, JOB).blocked == "repository store unavailable"


def test_drifted_minio_of_a_registered_repository_plans_an_update() -> None:
    hosting = HostingObservation(
        "controller", "kubeferry-store", update=("Deployment/minio",), ready=False
    )
    plan = _plan(_observed(hosting), repository_recorded=True)
    repository = _action(plan, REPO)
    assert repository.type is ActionType.UPDATE
    assert repository.reasons == ["MinIO to update in controller/kubeferry-store"]
    assert repository.details["hosting"]["update"] == ["Deployment/minio"]
    assert _action(plan, JOB).blocked is None


def test_not_ready_minio_is_waited_for() -> None:
    hosting = HostingObservation(
        "controller", "kubeferry-store", message="Deployment minio: 0/1 replicas available"
    )
    plan = _plan(_observed(hosting), repository_recorded=True)
    assert _action(plan, REPO).reasons == [
        "MinIO in controller/kubeferry-store not ready yet (apply waits for it): "
        "Deployment minio: 0/1 replicas available"
    ]


def test_a_missing_bucket_is_created() -> None:
    hosting = HostingObservation(
        "controller", "kubeferry-store", create=("Bucket/store",), ready=True
    )
    plan = _plan(_observed(hosting), repository_recorded=True)
    repository = _action(plan, REPO)
    assert repository.reasons == ["bucket store to create"]
    assert repository.blocked is None


def test_a_ready_minio_plans_nothing_for_the_repository() -> None:
    hosting = HostingObservation("controller", "kubeferry-store", ready=True)
    plan = _plan(_observed(hosting, available=True), repository_recorded=True)
    assert REPO not in {a.address for a in plan.actions}
    assert _action(plan, JOB).blocked is None
    # a ready MinIO whose S3 side fails blocks as any repository does
    broken = _plan(_observed(hosting, available=False), repository_recorded=True)
    assert REPO not in {a.address for a in broken.actions}
    assert _action(broken, JOB).blocked == "repository store unavailable"
    assert [p.address for p in broken.problems] == [REPO]


def test_rendered_plan_lists_the_objects() -> None:
    hosting = HostingObservation(
        "controller", "kubeferry-store", create=ALL_OBJECTS[:-1], update=("Deployment/minio",)
    )
    plan = _plan(_observed(hosting))
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "MinIO to update in controller/kubeferry-store" in text
    for name in ALL_OBJECTS[:-1]:
        assert f"          + {name}\n" in text
    assert "          ~ Deployment/minio\n" in text
    assert '"namespace": "kubeferry-store"' in plan_to_json(plan)
