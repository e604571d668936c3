"""The ledger's first schema: inventory mirror, runs, snapshot catalog, event log, lock.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("spec_digest", sa.String(), nullable=True),
        sa.Column("observed_version", sa.String(), nullable=True),
        sa.Column("reachability", sa.String(length=32), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("last_refresh", sa.DateTime(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lock_id", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="lock_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name="meta_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "repositories",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("spec_digest", sa.String(), nullable=True),
        sa.Column("availability", sa.String(length=32), nullable=False),
        sa.Column("last_validation", sa.DateTime(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("total_items", sa.Integer(), nullable=True),
        sa.Column("items_done", sa.Integer(), nullable=False),
        sa.Column("bytes_total", sa.Integer(), nullable=True),
        sa.Column("bytes_done", sa.Integer(), nullable=False),
        sa.Column("warning_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_job_id", "runs", ["job", "id"])
    op.create_index("ix_runs_phase", "runs", ["phase"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("repository", sa.String(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=False),
        sa.Column("source_cluster", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("total_items", sa.Integer(), nullable=True),
        sa.Column("items_backed_up", sa.Integer(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_snapshots_job", "snapshots", ["job"])
    op.create_index("ix_snapshots_repository", "snapshots", ["repository"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("job", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_job", "events", ["job"])
    op.create_index("ix_events_run_id", "events", ["run_id"])
    op.create_table(
        "run_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("item", sa.String(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_run_issues_run_id", "run_issues", ["run_id"])
    op.create_table(
        "slices",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("source_cluster", sa.String(), nullable=False),
        sa.Column("destination_cluster", sa.String(), nullable=False),
        sa.Column("repository", sa.String(), nullable=False),
        sa.Column("spec_digest", sa.String(), nullable=True),
        sa.Column("last_applied", sa.DateTime(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_cluster"],
            ["clusters.name"],
        ),
        sa.ForeignKeyConstraint(
            ["repository"],
            ["repositories.name"],
        ),
        sa.ForeignKeyConstraint(
            ["source_cluster"],
            ["clusters.name"],
        ),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_slices_destination_cluster", "slices", ["destination_cluster"])
    op.create_index("ix_slices_repository", "slices", ["repository"])
    op.create_index("ix_slices_source_cluster", "slices", ["source_cluster"])
    op.create_table(
        "application_slices",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("controller_cluster", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("spec_digest", sa.String(), nullable=True),
        sa.Column("last_applied", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("slice", sa.String(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=False),
        sa.Column("spec_digest", sa.String(), nullable=True),
        sa.Column("content_digest", sa.String(), nullable=True),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("source_cluster", sa.String(), nullable=False),
        sa.Column("destination_cluster", sa.String(), nullable=False),
        sa.Column("target_namespace", sa.String(), nullable=False),
        sa.Column("deletion_policy", sa.String(), nullable=False),
        sa.Column("source_fingerprint", sa.String(), nullable=True),
        sa.Column("destination_fingerprint", sa.String(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("last_applied", sa.DateTime(), nullable=True),
        sa.Column("last_snapshot_id", sa.String(), nullable=True),
        sa.Column("last_backup_at", sa.DateTime(), nullable=True),
        sa.Column("last_restore_at", sa.DateTime(), nullable=True),
        sa.Column("last_drill_at", sa.DateTime(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["slice"],
            ["slices.name"],
        ),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_jobs_slice", "jobs", ["slice"])

    # the serial number's single row; every write transaction of the Ledger API bumps it
    op.execute("INSERT INTO meta (id, serial) VALUES (1, 0)")

    # the event log is append-only: refuse edits at the database, not only in our code
    for statement in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER events_append_only_{statement.lower()} BEFORE {statement} ON events "
            f"BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER events_append_only_delete")
    op.execute("DROP TRIGGER events_append_only_update")
    for table in (
        "jobs",
        "application_slices",
        "slices",
        "run_issues",
        "events",
        "snapshots",
        "runs",
        "repositories",
        "meta",
        "lock",
        "clusters",
    ):
        op.drop_table(table)  # drops its indexes too
