"""How far each lead has got in the funnel, kept from the event log by a watermark.

``lead_milestones`` holds one row per lead that has a stage history: the rank of the furthest
stage it has entered, in the workspace's stage order, and the lead's creation time (so a cohort
needs no join to ``leads``). It is derived from ``stage_changed`` events only, so the capture
path never writes it: :func:`refresh` folds in the events recorded since the
watermark (one set-based upsert, nothing to do when no event was written), and runs when metrics
are read (the dashboard set, the API) and from the ``metrics.fold_milestones`` task.

Reading never depends on the fold having run: :func:`per_lead` joins the table to the few stage
events past the watermark, read in the same snapshot, so a figure is the same before and after a
fold. Folding is idempotent (the upsert keeps the greater rank), which lets each fold re-read a
margin of ids below the watermark: on PostgreSQL ids are handed out before commit, so an event
can become visible after a higher id has been folded.

Merges, unmerges and erasure do not move or delete stage events (a merged lead is left out by the
queries' ``merged_into_id IS NULL``), so they leave the table correct; a change of the stage order
changes the fingerprint, and the table is rebuilt from the events (:func:`rebuild`) on the next
fold — until then readers use the stage history directly.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from leadflow.db.tables import lead_events, lead_milestones, leads, metric_watermarks
from leadflow.workspace import Workspace

NAME = "lead_milestones"
OVERLAP = 10_000  # ids below the watermark each fold and read looks at again
STAGE_CHANGED = literal_column("'stage_changed'")  # a literal, so the partial stage index applies


def fingerprint(ws: Workspace) -> str:
    order = ",".join(ws.rules.stages.order)
    return "stages:" + hashlib.sha256(order.encode()).hexdigest()[:40]


def rank(ws: Workspace, stage: Any) -> Any:
    """The rank of ``stage`` in the stage order (-1 for a stage outside it)."""
    return case({s: i for i, s in enumerate(ws.rules.stages.order)}, value=stage, else_=-1)


def _ranks_after(ws: Workspace, after: int, upto: int | None = None) -> Any:
    """The furthest rank per lead among the stage events with ``after < id (<= upto)``, with the
    lead's creation time."""
    where = [lead_events.c.id > after, lead_events.c.type == STAGE_CHANGED]
    if upto is not None:
        where.append(lead_events.c.id <= upto)
    # A range of the primary key, grouped by an expression: grouping by the bare column makes
    # SQLite walk the whole (lead_id, occurred_at) index for its order instead.
    lead_id = (lead_events.c.lead_id + 0).label("lead_id")
    created = select(leads.c.created_at).where(leads.c.id == lead_events.c.lead_id).scalar_subquery()
    return (
        select(
            lead_id, func.max(rank(ws, lead_events.c.stage)).label("furthest"), func.min(created).label("created_at")
        )
        .where(*where, lead_events.c.lead_id.is_not(None))
        .group_by(lead_id)
    )


def watermark(conn: Connection, ws: Workspace) -> int | None:
    """The last event id folded in, or None when the table is missing or folded under another order."""
    row = conn.execute(
        select(metric_watermarks.c.event_id, metric_watermarks.c.fingerprint).where(metric_watermarks.c.name == NAME)
    ).first()
    if row is None or row.fingerprint != fingerprint(ws):
        return None
    return int(row.event_id)


def _upsert(conn: Connection, rows: Any) -> None:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(lead_milestones).from_select(["lead_id", "furthest", "created_at"], rows)
    greater = func.greatest if conn.dialect.name == "postgresql" else func.max
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[lead_milestones.c.lead_id],
            set_={"furthest": greater(lead_milestones.c.furthest, stmt.excluded.furthest)},
        )
    )


def _set_watermark(conn: Connection, ws: Workspace, event_id: int) -> None:
    values = {"event_id": event_id, "fingerprint": fingerprint(ws), "updated_at": ws.clock.now()}
    done = conn.execute(update(metric_watermarks).where(metric_watermarks.c.name == NAME).values(**values))
    if not done.rowcount:
        conn.execute(insert(metric_watermarks).values(name=NAME, **values))


def rebuild(ws: Workspace, conn: Connection) -> int:
    """Recompute the whole table from the stage history; returns the new watermark."""
    last = int(conn.execute(select(func.coalesce(func.max(lead_events.c.id), 0))).scalar_one())
    conn.execute(delete(lead_milestones))
    conn.execute(insert(lead_milestones).from_select(["lead_id", "furthest", "created_at"], _ranks_after(ws, 0, last)))
    _set_watermark(conn, ws, last)
    return last


def fold(ws: Workspace, conn: Connection) -> int:
    """Bring the table up to the last event (in the caller's write transaction); returns the watermark."""
    if conn.dialect.name == "postgresql":
        # One folder at a time; a second one waits and then finds little or nothing to do.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('leadflow.lead_milestones'))")
    done = watermark(conn, ws)
    if done is None:
        return rebuild(ws, conn)
    last = int(conn.execute(select(func.coalesce(func.max(lead_events.c.id), 0))).scalar_one())
    if last <= done:
        return done
    _upsert(conn, _ranks_after(ws, max(done - OVERLAP, 0), last))
    _set_watermark(conn, ws, last)
    return last


def refresh(ws: Workspace) -> int:
    """Fold in a transaction of its own (call it outside any write transaction of the thread)."""
    with ws.transaction() as conn:
        return fold(ws, conn)


def per_lead(conn: Connection, ws: Workspace, periods: Any, group: Any, by: bool) -> Any | None:
    """One row (period, grp, furthest) per live lead created in one of ``periods`` that has a stage
    history: the folded rank, raised by any stage event past the watermark, plus the leads whose
    whole history is past it. Without a breakdown the table alone gives the cohort (no join to
    ``leads`` but for the few merged ones). None when the table cannot serve (never folded, or
    folded under another stage order): read the stage history instead."""
    done = watermark(conn, ws)
    if done is None:
        return None
    after = max(done - OVERLAP, 0) if conn.dialect.name == "postgresql" else done
    e = lead_events.alias("recent")
    recent_ids = select(e.c.lead_id).where(e.c.id > after, e.c.type == STAGE_CHANGED)
    m = lead_milestones

    def recent(lead_id: Any) -> Any:
        return (
            select(func.max(rank(ws, e.c.stage)))
            .where(e.c.lead_id == lead_id, e.c.id > after, e.c.type == STAGE_CHANGED)
            .scalar_subquery()
        )

    # Leads with a folded rank (only those with recent stage events look their events up).
    changed = m.c.lead_id.in_(recent_ids)
    raised = case((and_(changed, recent(m.c.lead_id) > m.c.furthest), recent(m.c.lead_id)), else_=m.c.furthest)
    in_period = and_(m.c.created_at >= periods.c.p_start, m.c.created_at < periods.c.p_end)
    if by:
        folded = (
            select(periods.c.label.label("period"), group, raised.label("furthest"))
            .select_from(m.join(periods, in_period).join(leads, leads.c.id == m.c.lead_id))
            .where(leads.c.merged_into_id.is_(None))
        )
    else:
        merged = select(leads.c.id).where(leads.c.merged_into_id.is_not(None))
        folded = (
            select(periods.c.label.label("period"), group, raised.label("furthest"))
            .select_from(m.join(periods, in_period))
            .where(m.c.lead_id.not_in(merged))
        )
    # Leads whose stage history is all past the watermark.
    unfolded = (
        select(periods.c.label.label("period"), group, recent(leads.c.id).label("furthest"))
        .select_from(
            leads.join(periods, and_(leads.c.created_at >= periods.c.p_start, leads.c.created_at < periods.c.p_end))
        )
        .where(
            leads.c.merged_into_id.is_(None),
            leads.c.id.in_(recent_ids),
            leads.c.id.not_in(select(m.c.lead_id).where(m.c.lead_id.in_(recent_ids))),
        )
    )
    # OFFSET 0 keeps each rank computed once per lead (not inlined into every sum over it).
    return folded.union_all(unfolded).offset(0).subquery("per_lead")
