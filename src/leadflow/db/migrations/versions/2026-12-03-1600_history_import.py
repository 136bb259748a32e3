"""history imports: external ids of leads and activity, leads kept as history, custom fields on
opportunities, revenue and spend

Revision ID: 0016_history_import
Revises: 0015_merged_emails
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.db.types import Id, Json

revision = "0016_history_import"
down_revision = "0015_merged_emails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("external_id", sa.String(100)))
        batch.add_column(sa.Column("historical", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.create_table(
        "lead_external_ids",
        sa.Column("external_id", sa.String(100), primary_key=True),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id"), nullable=False),
    )
    op.create_index("ix_lead_external_ids_lead_id", "lead_external_ids", ["lead_id"])
    with op.batch_alter_table("lead_events") as batch:
        batch.add_column(sa.Column("external_id", sa.String(100)))
    op.create_index(
        "uq_lead_events_external_id",
        "lead_events",
        ["external_id"],
        unique=True,
        sqlite_where=sa.text("external_id IS NOT NULL"),
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    for table in ("opportunities", "revenue", "spend"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("custom", Json))


def downgrade() -> None:
    for table in ("spend", "revenue", "opportunities"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("custom")
    op.drop_index("uq_lead_events_external_id", table_name="lead_events")
    with op.batch_alter_table("lead_events") as batch:
        batch.drop_column("external_id")
    op.drop_index("ix_lead_external_ids_lead_id", table_name="lead_external_ids")
    op.drop_table("lead_external_ids")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("historical")
        batch.drop_column("external_id")
