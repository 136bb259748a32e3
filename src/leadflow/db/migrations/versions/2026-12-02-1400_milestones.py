"""metric milestones: how far each lead got, folded from the stage history up to a watermark

Revision ID: 0012_milestones
Revises: 0011_dashboard
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import leadflow.db.types

revision = "0012_milestones"
down_revision = "0011_dashboard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_milestones",
        sa.Column("lead_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("furthest", sa.Integer(), nullable=False),
        sa.Column("created_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_milestones")),
    )
    op.create_table(
        "metric_watermarks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("updated_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_metric_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("metric_watermarks")
    op.drop_table("lead_milestones")
