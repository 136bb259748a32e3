"""the emails of merged leads, which still find their survivor; who is running an import;
sessions ended by signing out, sign-ins refused after repeated failures

Revision ID: 0015_merged_emails
Revises: 0014_open_leads
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.db.types import UtcDateTime

revision = "0015_merged_emails"
down_revision = "0014_open_leads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_leads_merged_email_key",
        "leads",
        ["email_key"],
        sqlite_where=sa.text("merged_into_id IS NOT NULL"),
        postgresql_where=sa.text("merged_into_id IS NOT NULL"),
    )
    with op.batch_alter_table("import_runs") as batch:
        batch.add_column(sa.Column("claim", sa.String(32)))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("failed_sign_ins", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("locked_until", UtcDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_sign_ins")
        batch.drop_column("session_epoch")
    with op.batch_alter_table("import_runs") as batch:
        batch.drop_column("claim")
    op.drop_index("ix_leads_merged_email_key", table_name="leads")
