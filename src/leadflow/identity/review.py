"""The duplicate review queue: pairs of leads that may be one person, and what people decided.

A pair between the two thresholds is queued with its evidence (which fields agreed, at what
level, with what weight). A person merges it or keeps the two apart, with a reason. Every pair
ever proposed keeps its row, so a decision is remembered: a pair kept apart is not proposed
again, by capture or by the batch dedupe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.tables import leads, match_pairs
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.identity.matching import Match
from leadflow.workspace import Workspace

DECISIONS = ("merge", "keep_apart")
_INSERT = {
    "sqlite": sqlite.insert(match_pairs).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(match_pairs).on_conflict_do_nothing(),
}
_SHOWN = (
    leads.c.id,
    leads.c.first_name,
    leads.c.last_name,
    leads.c.email,
    leads.c.phone,
    leads.c.company,
    leads.c.domain,
    leads.c.source,
    leads.c.created_at,
    leads.c.merged_into_id,
)


def open_pairs(ws: Workspace, conn: Connection, pairs: Sequence[tuple[int, int, Match]], *, found_by: str) -> int:
    """Queue pairs for review; a pair already known (open or decided) is left as it is.
    Returns how many rows were offered."""
    now = ws.clock.now()
    rows = []
    seen: set[tuple[int, int]] = set()
    for a, b, match in pairs:
        lo, hi = min(a, b), max(a, b)
        if lo == hi or (lo, hi) in seen:
            continue
        seen.add((lo, hi))
        rows.append(
            {
                "lead_id": lo,
                "other_lead_id": hi,
                "probability": match.probability,
                "weight": match.weight,
                "evidence": match.evidence,
                "status": "open",
                "found_by": found_by,
                "created_at": now,
                "config_version": ws.version,
            }
        )
    if rows:
        conn.execute(_INSERT[conn.dialect.name], rows)
    return len(rows)


def decided_pairs(conn: Connection, lead_ids: Sequence[int]) -> set[tuple[int, int]]:
    """Known pairs among these leads (any status): not to be proposed again."""
    if not lead_ids:
        return set()
    ids = list(lead_ids)
    query = select(match_pairs.c.lead_id, match_pairs.c.other_lead_id).where(
        or_(match_pairs.c.lead_id.in_(ids), match_pairs.c.other_lead_id.in_(ids))
    )
    return {(row.lead_id, row.other_lead_id) for row in conn.execute(query)}


def list_pairs(
    conn: Connection, *, status: str | None = "open", limit: int = 50, after_id: int | None = None
) -> list[dict[str, Any]]:
    """Pairs with their evidence and a summary of both leads, oldest first."""
    query = select(match_pairs).order_by(match_pairs.c.id).limit(limit)
    if status is not None:
        query = query.where(match_pairs.c.status == status)
    if after_id is not None:
        query = query.where(match_pairs.c.id > after_id)
    pairs = [dict(row._mapping) for row in conn.execute(query)]
    ids = {p["lead_id"] for p in pairs} | {p["other_lead_id"] for p in pairs}
    shown = {row.id: dict(row._mapping) for row in conn.execute(select(*_SHOWN).where(leads.c.id.in_(list(ids))))}
    for p in pairs:
        p["lead"] = shown.get(p["lead_id"])
        p["other_lead"] = shown.get(p["other_lead_id"])
        p["agreed"] = [f for f, e in (p["evidence"] or {}).items() if e.get("weight", 0) > 0]
    return pairs


def get_pair(conn: Connection, pair_id: int) -> dict[str, Any]:
    row = conn.execute(select(match_pairs).where(match_pairs.c.id == pair_id)).first()
    if row is None:
        raise NotFound(f"no duplicate pair with id {pair_id}")
    return dict(row._mapping)


def decide_pair(
    ws: Workspace,
    conn: Connection,
    pair_id: int,
    decision: str,
    *,
    reason: str | None,
    actor: str,
    survivor_id: int | None = None,
) -> dict[str, Any]:
    """Merge the pair (the older lead survives unless ``survivor_id`` says otherwise) or keep the
    two apart; either way with a reason, remembered on the pair."""
    from leadflow.identity.merge import merge_leads

    if decision not in DECISIONS:
        raise InvalidInput("invalid decision", [Problem("decision", "must be 'merge' or 'keep_apart'")])
    if not (reason and reason.strip()):
        raise InvalidInput("a reason is required", [Problem("reason", "say why the two are (not) one person")])
    pair = conn.execute(select(match_pairs).where(match_pairs.c.id == pair_id).with_for_update()).first()
    if pair is None:
        raise NotFound(f"no duplicate pair with id {pair_id}")
    if pair.status != "open":
        raise Conflict(f"duplicate pair {pair_id} was already decided: {pair.status}")
    now = ws.clock.now()
    reason = reason.strip()
    if decision == "keep_apart":
        conn.execute(
            update(match_pairs)
            .where(match_pairs.c.id == pair_id)
            .values(status="kept_apart", decided_at=now, decided_by=actor, decision_reason=reason)
        )
        return {"id": pair_id, "status": "kept_apart", "merge_id": None, "survivor_id": None}
    pair_ids = (pair.lead_id, pair.other_lead_id)
    if survivor_id is None:
        survivor_id = pair.lead_id  # the older lead (ids grow with time)
    elif survivor_id not in pair_ids:
        raise InvalidInput("invalid survivor", [Problem("survivor_id", f"must be {pair_ids[0]} or {pair_ids[1]}")])
    other = pair_ids[1] if survivor_id == pair_ids[0] else pair_ids[0]
    merged = merge_leads(ws, conn, survivor_id, other, actor=actor, reason=reason, probability=pair.probability)
    return {"id": pair_id, "status": "merged", "merge_id": merged["merge_id"], "survivor_id": survivor_id}


def pair_condition(a: int, b: int) -> Any:
    return and_(match_pairs.c.lead_id == min(a, b), match_pairs.c.other_lead_id == max(a, b))
