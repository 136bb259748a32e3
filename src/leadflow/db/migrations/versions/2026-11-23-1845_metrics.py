"""metrics: the source of imported opportunities, and indexes for metric queries

Revision ID: 0007_metrics
Revises: 0010_nurture
Create Date: 2026-11-23 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_metrics"
down_revision = "0010_nurture"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lead_events_stage_changes",
            ["stage", "lead_id", "occurred_at"],
            unique=False,
            sqlite_where=sa.text("type = 'stage_changed'"),
            postgresql_where=sa.text("type = 'stage_changed'"),
        )
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_opportunities_closed_at"), ["closed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_events_stage_changes")
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunities_closed_at"))
        batch_op.drop_column("source")
