"""Metrics that read a source's declaration in leadflow.yaml (its kind, whether it is marketing)
count only the leads and deals whose source is declared there. An imported history often carries
sources nobody declared: these metrics say so (``note``) and count what a query left out
(``left_out``), naming the undeclared sources, so the user can declare them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from leadflow.db.tables import leads, opportunities, sources
from leadflow.metrics.measures import Ctx, in_span, live

TOP = 20  # undeclared sources named, most frequent first


def note(what: str, rule: str) -> str:
    return (
        f"counts only {what} whose source is declared in leadflow.yaml (sources:) {rule}; "
        f"{what} whose source is not declared there, or that have none, are left out (see left_out)"
    )


def _summary(what: str, found: list[Any]) -> dict[str, Any]:
    undeclared = sorted(((r.source, int(r.n)) for r in found if r.source is not None), key=lambda x: (-x[1], x[0]))
    return {
        "what": what,
        "undeclared_source": sum(n for _, n in undeclared),
        "no_source": sum(int(r.n) for r in found if r.source is None),
        "undeclared_sources": dict(undeclared[:TOP]),
    }


def leads_left_out(ctx: Ctx, *where: Any) -> dict[str, Any]:
    """Live leads created in the query's span whose source is not declared (or missing)."""
    stmt = (
        select(leads.c.source.label("source"), func.count().label("n"))
        .select_from(leads.outerjoin(sources, sources.c.id == leads.c.source))
        .where(live(), in_span(ctx, leads.c.created_at), sources.c.id.is_(None), *where)
        .group_by(leads.c.source)
    )
    return _summary("leads", list(ctx.conn.execute(stmt)))


def closed_opportunities_left_out(ctx: Ctx) -> dict[str, Any]:
    """Opportunities closed (won or lost) in the query's span whose source (the lead's, else the
    opportunity's own) is not declared (or missing)."""
    source = func.coalesce(leads.c.source, opportunities.c.source)
    stmt = (
        select(source.label("source"), func.count().label("n"))
        .select_from(
            opportunities.outerjoin(leads, leads.c.id == opportunities.c.lead_id).outerjoin(
                sources, sources.c.id == source
            )
        )
        .where(
            opportunities.c.status.in_(("won", "lost")),
            in_span(ctx, opportunities.c.closed_at),
            sources.c.id.is_(None),
        )
        .group_by(source)
    )
    return _summary("closed opportunities", list(ctx.conn.execute(stmt)))
