"""The pure diff: inventory x ledger x observed -> actions with symbols and reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.errors import KubeferryError
from reconciler.plan import (
    ActionType,
    ClusterObservation,
    DesiredJob,
    DesiredObject,
    DesiredState,
    NamespaceObservation,
    ObservedState,
    RecordedJob,
    RecordedState,
    RepositoryObservation,
    compute_plan,
    load_plan,
    render_plan,
    save_plan,
)
from reconciler.plan._diff import MISSED_COUNT_LIMIT

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _job(**overrides: object) -> DesiredJob:
    values: dict[str, object] = {
        "name": "web",
        "slice": "s1",
        "source_cluster": "worker-1",
        "destination_cluster": "worker-2",
        "repository": "repo",
        "namespace": "web",
        "target_namespace": "web",
        "spec_digest": "spec-1",
        "content_digest": "content-1",
    }
    values.update(overrides)
    return DesiredJob(**values)  # type: ignore[arg-type]


def _desired(*jobs: DesiredJob) -> DesiredState:
    return DesiredState(
        inventory_path="inv.yaml",
        inventory_digest="d1",
        clusters={n: DesiredObject("Cluster", n, f"c-{n}") for n in ("worker-1", "worker-2")},
        repositories={"repo": DesiredObject("ReplicationRepository", "repo", "r")},
        slices={"s1": DesiredObject("ReplicationSlice", "s1", "s")},
        jobs={job.name: job for job in jobs},
    )


def _recorded_all(*jobs: tuple[str, RecordedJob]) -> RecordedState:
    return RecordedState(
        serial=7,
        objects={
            "Cluster": {"worker-1": "c-worker-1", "worker-2": "c-worker-2"},
            "ReplicationRepository": {"repo": "r"},
            "ReplicationSlice": {"s1": "s"},
        },
        jobs=dict(jobs),
    )


def _observed(
    reachable: dict[str, bool] | None = None,
    source_fingerprint: str = "fp-1",
    repo_available: bool = True,
) -> ObservedState:
    reach = reachable or {"worker-1": True, "worker-2": True}
    return ObservedState(
        clusters={n: ClusterObservation(n, ok, "v1.20.2") for n, ok in reach.items()},
        repositories={"repo": RepositoryObservation("repo", repo_available, initialized=True)},
        namespaces={
            ("worker-1", "web"): NamespaceObservation(
                "worker-1", "web", True, "Active", source_fingerprint
            ),
            ("worker-2", "web"): NamespaceObservation("worker-2", "web", True, "Active", "dst-1"),
        },
    )


def _synced(**overrides: object) -> RecordedJob:
    values: dict[str, object] = {
        "spec_digest": "spec-1",
        "content_digest": "content-1",
        "last_success_at": NOW - timedelta(minutes=1),
        "source_fingerprint": "fp-1",
        "destination_fingerprint": "dst-1",
    }
    values.update(overrides)
    return RecordedJob(**values)  # type: ignore[arg-type]


def test_empty_ledger_registers_everything_and_replicates_new_job() -> None:
    plan = compute_plan(_desired(_job()), RecordedState(serial=0), _observed(), now=NOW)
    by_address = {a.address: a for a in plan.actions}
    assert by_address["Cluster/worker-1"].type is ActionType.CREATE
    assert by_address["Cluster/worker-1"].symbol == "+"
    assert by_address["ReplicationRepository/repo"].type is ActionType.CREATE
    job = by_address["ReplicationJob/web"]
    assert job.type is ActionType.REPLICATE
    assert job.symbol == "»"
    assert job.reasons == ["new job"]
    assert set(job.depends_on) == {
        "Cluster/worker-1",
        "Cluster/worker-2",
        "ReplicationRepository/repo",
        "ReplicationSlice/s1",
    }
    assert plan.summary() == "Plan: 4 to add, 0 to change, 0 to destroy, 1 to replicate."


def test_converged_state_has_no_changes() -> None:
    plan = compute_plan(_desired(_job()), _recorded_all(("web", _synced())), _observed(), now=NOW)
    assert plan.actions == []
    assert not plan.has_changes
    assert plan.summary().startswith("No changes.")


def test_source_change_replicates_when_unscheduled() -> None:
    plan = compute_plan(
        _desired(_job()),
        _recorded_all(("web", _synced())),
        _observed(source_fingerprint="fp-2"),
        now=NOW,
    )
    (action,) = plan.actions
    assert action.type is ActionType.REPLICATE
    assert action.reasons == ["source namespace changed since the last snapshot"]


def test_scheduled_job_waits_for_its_schedule() -> None:
    job = _job(backup_frequency="0 * * * *")
    recorded = _recorded_all(("web", _synced(last_success_at=NOW - timedelta(minutes=30))))
    # changed source, but the next hourly slot (12:00) is after the last success (11:30)...
    plan = compute_plan(_desired(job), recorded, _observed(source_fingerprint="fp-2"), now=NOW)
    assert [a.reasons for a in plan.actions] == [
        ["due by backupFrequency '0 * * * *' (since 2026-11-25 12:00Z)"]
    ]
    # ...and one minute before the slot nothing is due
    early = compute_plan(
        _desired(job),
        recorded,
        _observed(source_fingerprint="fp-2"),
        now=NOW - timedelta(minutes=1),
    )
    assert early.actions == []


def test_missed_runs_collapse_into_one_action() -> None:
    job = _job(backup_frequency="*/5 * * * *")
    recorded = _recorded_all(("web", _synced(last_success_at=NOW - timedelta(days=2))))
    plan = compute_plan(_desired(job), recorded, _observed(), now=NOW)
    assert len(plan.actions) == 1


def test_missed_scheduled_runs_are_counted_in_reason_and_details() -> None:
    # hourly; last success 08:30, now 12:00 (fake clock): 09:00, 10:00, 11:00 and 12:00
    # passed; one backup serves the latest slot, the 3 before it were missed
    job = _job(backup_frequency="0 * * * *")
    last = NOW.replace(hour=8, minute=30)
    recorded = _recorded_all(("web", _synced(last_success_at=last)))
    (action,) = compute_plan(_desired(job), recorded, _observed(), now=NOW).actions
    assert action.type is ActionType.REPLICATE
    assert action.reasons == [
        "due by backupFrequency '0 * * * *' (since 2026-11-25 09:00Z); "
        "3 scheduled runs missed (one backup now)"
    ]
    assert action.details["missedRuns"] == 3
    assert action.details["dueSince"] == last.replace(hour=9, minute=0).isoformat()


def test_one_due_slot_reports_no_missed_runs() -> None:
    job = _job(backup_frequency="0 * * * *")
    recorded = _recorded_all(("web", _synced(last_success_at=NOW.replace(hour=11, minute=30))))
    (action,) = compute_plan(_desired(job), recorded, _observed(), now=NOW).actions
    assert "missed" not in action.reasons[0]
    assert action.details["missedRuns"] == 0


def test_missed_count_stops_at_its_limit() -> None:
    job = _job(backup_frequency="* * * * *")
    recorded = _recorded_all(("web", _synced(last_success_at=NOW - timedelta(days=30))))
    (action,) = compute_plan(_desired(job), recorded, _observed(), now=NOW).actions
    assert action.details["missedRuns"] == MISSED_COUNT_LIMIT - 1
    assert f"{MISSED_COUNT_LIMIT - 1}+ scheduled runs missed" in action.reasons[0]


def test_schedule_only_change_is_an_update_not_a_copy() -> None:
    job = _job(spec_digest="spec-2")
    plan = compute_plan(_desired(job), _recorded_all(("web", _synced())), _observed(), now=NOW)
    (action,) = plan.actions
    assert action.type is ActionType.UPDATE
    assert action.symbol == "~"


def test_content_change_replicates() -> None:
    job = _job(spec_digest="spec-2", content_digest="content-2")
    plan = compute_plan(_desired(job), _recorded_all(("web", _synced())), _observed(), now=NOW)
    (action,) = plan.actions
    assert action.type is ActionType.REPLICATE
    assert action.reasons == ["spec changed"]


def test_unreachable_cluster_blocks_only_its_jobs() -> None:
    other = _job(
        name="local", destination_cluster="worker-1", namespace="web", target_namespace="web-copy"
    )
    plan = compute_plan(
        _desired(_job(), other),
        _recorded_all(),
        _observed(reachable={"worker-1": True, "worker-2": False}),
        now=NOW,
    )
    by_address = {a.address: a for a in plan.actions}
    assert by_address["ReplicationJob/web"].blocked == "cluster worker-2 unreachable"
    assert by_address["ReplicationJob/local"].blocked is None
    assert any(
        p.address == "Cluster/worker-2" and "unreachable" in p.message for p in plan.problems
    )
    assert plan.summary().endswith("1 blocked.")


def test_removed_job_is_forgotten_unless_delete_policy() -> None:
    retained = compute_plan(_desired(), _recorded_all(("web", _synced())), _observed(), now=NOW)
    (forget,) = retained.actions
    assert forget.type is ActionType.FORGET
    assert "snapshots kept" in forget.reasons[0]
    deleting = _synced(
        deletion_policy="Delete", destination_cluster="worker-2", target_namespace="web"
    )
    deleted = compute_plan(_desired(), _recorded_all(("web", deleting)), _observed(), now=NOW)
    (delete,) = deleted.actions
    assert delete.type is ActionType.DELETE
    assert delete.details == {"cluster": "worker-2", "namespace": "web"}


def test_destination_drift_is_shown() -> None:
    recorded = _recorded_all(("web", _synced(destination_fingerprint="dst-0")))
    plan = compute_plan(_desired(_job()), recorded, _observed(), now=NOW)
    assert [d.message for d in plan.drift] == ["destination worker-2/web changed outside kubeferry"]


def test_targets_limit_the_plan() -> None:
    plan = compute_plan(
        _desired(_job()),
        RecordedState(serial=0),
        _observed(),
        now=NOW,
        targets=["ReplicationJob/web"],
    )
    assert [a.address for a in plan.actions] == ["ReplicationJob/web"]


def test_refresh_only_reports_observed_changes_without_actions() -> None:
    recorded = replace(
        _recorded_all(("web", _synced())),
        cluster_reachable={"worker-1": True, "worker-2": True},
        cluster_versions={"worker-1": "v1.20.1"},
    )
    plan = compute_plan(
        _desired(_job()),
        recorded,
        _observed(reachable={"worker-1": True, "worker-2": False}, source_fingerprint="fp-9"),
        now=NOW,
        refresh_only=True,
    )
    assert plan.actions == []
    messages = {(d.address, d.message) for d in plan.drift}
    assert ("Cluster/worker-2", "now unreachable") in messages
    assert ("Cluster/worker-1", "version v1.20.1 -> v1.20.2") in messages
    assert ("ReplicationJob/web", "source namespace changed since last snapshot") in messages
    assert plan.has_changes


def test_saved_plan_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = compute_plan(_desired(_job()), RecordedState(serial=3), _observed(), now=NOW)
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    assert load_plan(path) == plan


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not a kubeferry plan file"),
        ('{"format_version": 99}', "format_version 1"),
        ('{"format_version": 1, "created_at": "x"}', "invalid plan file"),
    ],
)
def test_bad_saved_plan_is_one_line(tmp_path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(KubeferryError) as caught:
        load_plan(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


_NOT_COMPATIBLE = {
    "overallCompatibility": "not_compatible",
    "compatibilityChecks": [
        {"name": "destination-access", "status": "compatible", "message": "reachable"},
        {"name": "storage-classes", "status": "not_compatible", "message": "missing: fast"},
    ],
}


def test_precheck_not_compatible_blocks_the_job_with_stop_on_precheck() -> None:
    observed = replace(_observed(), prechecks={"web": _NOT_COMPATIBLE})
    plan = compute_plan(_desired(_job()), RecordedState(serial=0), observed, now=NOW)
    job = {a.address: a for a in plan.actions}["ReplicationJob/web"]
    assert job.details["precheck"] == _NOT_COMPATIBLE
    assert job.blocked == "pre-checks not_compatible: storage-classes: missing: fast"
    assert any("storage-classes" in p.message for p in plan.problems)


def test_precheck_not_compatible_proceeds_with_ignore_prechecks() -> None:
    observed = replace(_observed(), prechecks={"web": _NOT_COMPATIBLE})
    desired = _desired(_job(pre_check_flag="ignorePrechecks"))
    plan = compute_plan(desired, RecordedState(serial=0), observed, now=NOW)
    job = {a.address: a for a in plan.actions}["ReplicationJob/web"]
    assert job.blocked is None
    assert job.details["precheck"]["overallCompatibility"] == "not_compatible"
    assert any("ignorePrechecks" in p.message for p in plan.problems)


def test_precheck_warning_is_shown_but_does_not_block() -> None:
    warning = {
        "overallCompatibility": "warning",
        "compatibilityChecks": [
            {"name": "namespace", "status": "warning", "message": "web exists with 3 objects"}
        ],
    }
    observed = replace(_observed(), prechecks={"web": warning})
    plan = compute_plan(_desired(_job()), RecordedState(serial=0), observed, now=NOW)
    job = {a.address: a for a in plan.actions}["ReplicationJob/web"]
    assert job.blocked is None
    assert job.details["precheck"] == warning


def test_backup_mode_job_has_no_prechecks() -> None:
    backup = _job(destination_cluster="worker-1")
    observed = replace(_observed(), prechecks={"web": _NOT_COMPATIBLE})
    plan = compute_plan(_desired(backup), RecordedState(serial=0), observed, now=NOW)
    job = {a.address: a for a in plan.actions}["ReplicationJob/web"]
    assert "precheck" not in job.details
    assert job.blocked is None


def test_rendered_plan_shows_overall_compatibility_and_failing_checks() -> None:
    from rich.console import Console

    observed = replace(_observed(), prechecks={"web": _NOT_COMPATIBLE})
    plan = compute_plan(_desired(_job()), RecordedState(serial=0), observed, now=NOW)
    console = Console(record=True, width=120)
    render_plan(plan, console)
    text = console.export_text()
    assert "pre-checks: not_compatible" in text
    assert "not_compatible: storage-classes: missing: fast" in text
    assert "destination-access" not in text  # compatible checks stay quiet


# -- restoreFrequency ------------------------------------------------------------------------


def test_restore_frequency_backup_without_restore_until_due() -> None:
    # hourly backups, restores once a day at 02:00; last restore today 02:00
    job = _job(backup_frequency="0 * * * *", restore_frequency="0 2 * * *")
    recorded = _recorded_all(
        (
            "web",
            _synced(
                last_success_at=NOW - timedelta(minutes=30),
                last_restore_at=NOW.replace(hour=2, minute=5),
            ),
        )
    )
    (action,) = compute_plan(_desired(job), recorded, _observed(), now=NOW).actions
    assert action.type is ActionType.REPLICATE
    assert action.details["steps"] == ["backup"]
    assert action.details["restoreFrequency"] == "0 2 * * *"
    assert action.reasons[-1] == (
        "destination not refreshed: restoreFrequency '0 2 * * *' (next 2026-11-26 02:00Z)"
    )
    from rich.console import Console

    console = Console(record=True, width=160)
    render_plan(compute_plan(_desired(job), recorded, _observed(), now=NOW), console)
    assert "restoreFrequency '0 2 * * *' (next 2026-11-26 02:00Z)" in console.export_text()


def test_restore_frequency_due_without_a_backup_restores_the_newest_snapshot() -> None:
    job = _job(backup_frequency="0 * * * *", restore_frequency="0 2 * * *")
    # the next day 02:30: the 02:00 restore is due, the last backup (02:10) is not stale
    later = NOW.replace(hour=2, minute=30) + timedelta(days=1)
    recorded = _recorded_all(
        (
            "web",
            _synced(
                last_success_at=later - timedelta(minutes=20),
                last_restore_at=NOW.replace(hour=2, minute=5),
            ),
        )
    )
    (action,) = compute_plan(_desired(job), recorded, _observed(), now=later).actions
    assert action.type is ActionType.REPLICATE
    assert action.details["steps"] == ["restore"]
    assert action.reasons == [
        "restore of the newest snapshot due by restoreFrequency '0 2 * * *' (since 2026-11-26 02:00Z)"
    ]
    # a minute before 02:00 nothing is due at all
    early = compute_plan(_desired(job), recorded, _observed(), now=later.replace(hour=1, minute=59))
    assert early.actions == []


def test_restore_frequency_both_due_restores_the_new_backup() -> None:
    job = _job(backup_frequency="0 * * * *", restore_frequency="0 2 * * *")
    recorded = _recorded_all(
        (
            "web",
            _synced(
                last_success_at=NOW - timedelta(hours=2),
                last_restore_at=NOW - timedelta(days=2),
            ),
        )
    )
    (action,) = compute_plan(_desired(job), recorded, _observed(), now=NOW).actions
    assert action.details["steps"] == ["backup", "restore"]
    assert action.reasons[-1].startswith("restore of this backup due by restoreFrequency")


def test_restore_frequency_new_job_backs_up_and_restores() -> None:
    job = _job(restore_frequency="0 2 * * *")
    plan = compute_plan(_desired(job), RecordedState(serial=0), _observed(), now=NOW)
    (action,) = [a for a in plan.actions if a.address == "ReplicationJob/web"]
    assert action.details["steps"] == ["backup", "restore"]


def test_restore_frequency_is_ignored_for_a_backup_job_and_absent_keeps_every_restore() -> None:
    backup_job = _job(destination_cluster="worker-1", restore_frequency="0 2 * * *")
    recorded = _recorded_all(("web", _synced(source_fingerprint="old")))
    (action,) = compute_plan(_desired(backup_job), recorded, _observed(), now=NOW).actions
    assert "steps" not in action.details
    (plain,) = compute_plan(_desired(_job()), recorded, _observed(), now=NOW).actions
    assert "steps" not in plain.details  # apply then restores after the backup
