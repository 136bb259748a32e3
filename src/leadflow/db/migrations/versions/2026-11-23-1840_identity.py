"""identity: blocking keys, duplicate pairs, merges, account name keys

Revision ID: 0009_identity
Revises: 0007_metrics
Create Date: 2026-11-23 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import leadflow.db.types

revision = "0009_identity"
down_revision = "0007_metrics"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lead_match_keys",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lead_id", _ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("key", "lead_id", name=op.f("pk_lead_match_keys")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "match_pairs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("other_lead_id", _ID, nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("evidence", leadflow.db.types.Json, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("found_by", sa.String(length=16), nullable=False),
        sa.Column("created_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=True),
        sa.Column("merge_id", _ID, nullable=True),
        sa.Column("config_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_match_pairs_lead_id_leads")),
        sa.ForeignKeyConstraint(["other_lead_id"], ["leads.id"], name=op.f("fk_match_pairs_other_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_pairs")),
    )
    op.create_index("uq_match_pairs_pair", "match_pairs", ["lead_id", "other_lead_id"], unique=True)
    op.create_index(op.f("ix_match_pairs_other_lead_id"), "match_pairs", ["other_lead_id"], unique=False)
    op.create_index(op.f("ix_match_pairs_status_id"), "match_pairs", ["status", "id"], unique=False)

    op.create_table(
        "lead_merges",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("survivor_id", _ID, nullable=False),
        sa.Column("merged_id", _ID, nullable=False),
        sa.Column("survivor_before", leadflow.db.types.Json, nullable=False),
        sa.Column("merged_before", leadflow.db.types.Json, nullable=False),
        sa.Column("moved", leadflow.db.types.Json, nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("unmerged_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("unmerged_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["survivor_id"], ["leads.id"], name=op.f("fk_lead_merges_survivor_id_leads")),
        sa.ForeignKeyConstraint(["merged_id"], ["leads.id"], name=op.f("fk_lead_merges_merged_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_merges")),
    )
    op.create_index(op.f("ix_lead_merges_merged_id"), "lead_merges", ["merged_id"], unique=False)
    op.create_index(op.f("ix_lead_merges_survivor_id"), "lead_merges", ["survivor_id"], unique=False)

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f("ix_accounts_name_key"), ["name_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_name_key"))
        batch_op.drop_column("name_key")
    op.drop_index(op.f("ix_lead_merges_survivor_id"), table_name="lead_merges")
    op.drop_index(op.f("ix_lead_merges_merged_id"), table_name="lead_merges")
    op.drop_table("lead_merges")
    op.drop_index(op.f("ix_match_pairs_status_id"), table_name="match_pairs")
    op.drop_index(op.f("ix_match_pairs_other_lead_id"), table_name="match_pairs")
    op.drop_index("uq_match_pairs_pair", table_name="match_pairs")
    op.drop_table("match_pairs")
    op.drop_table("lead_match_keys")
