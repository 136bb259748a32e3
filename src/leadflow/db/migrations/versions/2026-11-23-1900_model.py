"""model registry: model_versions, model_activations

Revision ID: 0008_model
Revises: 0006_routing
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import leadflow.db.types

revision = "0008_model"
down_revision = "0006_routing"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("created_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("train_from", leadflow.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("train_to", leadflow.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("model_text", sa.Text(), nullable=False),
        sa.Column("meta", JSON, nullable=False),
        sa.Column("config_version", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(op.f("ix_model_versions_created_at"), "model_versions", ["created_at"], unique=False)
    op.create_table(
        "model_activations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("version_id", ID, nullable=True),
        sa.Column("previous_version_id", ID, nullable=True),
        sa.Column("activated_at", leadflow.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name=op.f("fk_model_activations_version_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_activations")),
    )


def downgrade() -> None:
    op.drop_table("model_activations")
    op.drop_index(op.f("ix_model_versions_created_at"), table_name="model_versions")
    op.drop_table("model_versions")
