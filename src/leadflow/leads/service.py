"""Reading and locking leads. Writes happen in the pipeline and the domain services."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import leads
from leadflow.errors import NotFound

LEAD_COLUMNS = tuple(c.name for c in leads.columns if c.name != "id")
# What events change on a lead after capture: activity, score, stage, consent.
PROJECTION_COLUMNS = (
    "last_activity_at",
    "first_contact_at",
    "score",
    "fit_score",
    "engagement_score",
    "grade",
    "engagement_grade",
    "matrix",
    "engagement_as_of",
    "score_detail",
    "pql",
    "pqa",
    "criteria",
    "stage",
    "stage_entered_at",
    "stage_reason",
    "consent_email",
    "do_not_contact",
    "owner_id",
    "team_id",
    "assigned_at",
    "destination",
    "sla_policy",
    "sla_due_at",
    "sla_step",
    "sla_next_at",
    "updated_at",
    "historical",
)
_SAVE_PROJECTION = Prepared(update(leads).where(leads.c.id == bindparam("_id")), column_keys=PROJECTION_COLUMNS)


_FOR_UPDATE = Prepared(select(leads).where(leads.c.id.in_(bindparam("ids", expanding=True))).with_for_update())


def load_for_update(conn: Connection, lead_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """Current rows of these leads, locked for this transaction on PostgreSQL."""
    if not lead_ids:
        return {}
    return {row["id"]: row for row in _FOR_UPDATE.execute(conn, {"ids": list(lead_ids)})}


def require_live(found: dict[int, dict[str, Any]], lead_ids: Collection[int]) -> None:
    missing = sorted(set(lead_ids) - set(found))
    if missing:
        raise NotFound(f"no lead with id {', '.join(map(str, missing))}")


def get_lead(conn: Connection, lead_id: int) -> dict[str, Any]:
    row = conn.execute(select(leads).where(leads.c.id == lead_id)).first()
    if row is None:
        raise NotFound(f"no lead with id {lead_id}")
    return dict(row._mapping)


def list_leads(
    conn: Connection,
    *,
    limit: int = 50,
    after_id: int | None = None,
    stage: str | None = None,
    owner: str | None = None,
    external_id: str | None = None,
) -> list[dict[str, Any]]:
    """Live leads, newest first, with cursor pagination on the id; by ``external_id``, the lead
    that id names (the survivor, for an id of a merged lead)."""
    if external_id is not None:
        from leadflow.identity.service import find_by_external_ids

        found = find_by_external_ids(conn, [external_id]).get(external_id)
        return [found] if found is not None and (after_id is None or found["id"] < after_id) else []
    query = select(leads).where(leads.c.merged_into_id.is_(None)).order_by(leads.c.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(leads.c.id < after_id)
    if stage is not None:
        query = query.where(leads.c.stage == stage)
    if owner is not None:
        query = query.where(leads.c.owner_id == owner)
    return [dict(row._mapping) for row in conn.execute(query)]


def save_projections(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write back the projection columns of leads (one executemany)."""
    _SAVE_PROJECTION.executemany(conn, [{"_id": row["id"], **{k: row[k] for k in PROJECTION_COLUMNS}} for row in rows])
