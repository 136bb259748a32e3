"""indexes for the capture path: each owner's open leads; a lead's open review items

Revision ID: 0014_open_leads
Revises: 0012_milestones
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_open_leads"
down_revision = "0012_milestones"
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
    # Without statistics SQLite preferred (status, kind, created_at) and read every open item.
    op.drop_index("ix_review_items_lead_id", table_name="review_items")
    op.create_index("ix_review_items_lead_id_kind_status", "review_items", ["lead_id", "kind", "status"])


def downgrade() -> None:
    op.drop_index("ix_review_items_lead_id_kind_status", table_name="review_items")
    op.create_index("ix_review_items_lead_id", "review_items", ["lead_id"])
    op.drop_index("ix_leads_open_owner", table_name="leads")
