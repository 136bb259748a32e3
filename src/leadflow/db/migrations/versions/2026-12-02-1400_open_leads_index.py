"""each owner's open leads, counted from a partial index

Revision ID: 0014_open_leads
Revises: 0011_dashboard
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_open_leads"
down_revision = "0011_dashboard"
branch_labels = None
depends_on = None

OPEN_LEAD_SQL = "merged_into_id IS NULL AND stage NOT IN ('customer', 'lost', 'disqualified', 'nurture')"


def upgrade() -> None:
    op.create_index(
        "ix_leads_open_owner",
        "leads",
        ["owner_id"],
        sqlite_where=sa.text(OPEN_LEAD_SQL),
        postgresql_where=sa.text(OPEN_LEAD_SQL),
    )


def downgrade() -> None:
    op.drop_index("ix_leads_open_owner", table_name="leads")
