"""erasure suppressions (salted hashes of an erased person's email and phone) and one row per
webhook delivery attempt

Revision ID: 0017_suppressions_attempts
Revises: 0016_history_import
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.db.types import Id, UtcDateTime

revision = "0017_suppressions_attempts"
down_revision = "0016_history_import"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_suppressions",
        sa.Column("kind", sa.String(8), primary_key=True),  # email | phone
        sa.Column("digest", sa.String(64), primary_key=True),  # HMAC-SHA256 with the workspace's salt, hex
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("event_id", Id, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("status", sa.Integer()),  # the receiver's HTTP status, when it answered
        sa.Column("outcome", sa.String(16), nullable=False),  # delivered | failed | error | sending
        sa.Column("error", sa.String(300)),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_delivery_id", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_table("erasure_suppressions")
