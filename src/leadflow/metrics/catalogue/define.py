"""How a catalogue metric is declared (``@metric``) and the small pieces most of them share:
the lead breakdown column, the (period, group) keys to report, "reached stage X" and event
filters, and events counted per period."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_

from leadflow.db.tables import lead_events, leads
from leadflow.metrics.measures import STAGE_CHANGED, Ctx, counts
from leadflow.metrics.registry import Metric, register

Rows = list[dict[str, Any]]


def metric(
    id: str,
    name: str,
    definition: str,
    unit: str,
    formula: str,
    *,
    note: str | None = None,
    left_out: Callable[[Ctx], dict[str, Any]] | None = None,
) -> Callable[[Callable[[Ctx], Rows]], Any]:
    """Register the decorated computation under ``id``; ``note`` says what it leaves out by
    definition and ``left_out`` counts what a query left out (both shown with the result)."""

    def wrap(fn: Callable[[Ctx], Rows]) -> Callable[[Ctx], Rows]:
        register(
            Metric(
                id,
                name,
                definition,
                unit,
                formula,
                lambda conn, ws, q: fn(Ctx(conn, ws, q)),
                note=note,
                left_out=None if left_out is None else (lambda conn, ws, q: left_out(Ctx(conn, ws, q))),
            )
        )
        return fn

    return wrap


def legacy_metric(id: str, name: str, definition: str, unit: str, formula: str, fn: Callable[..., Rows]) -> None:
    register(Metric(id, name, definition, unit, formula, fn))


def _lead_grp(ctx: Ctx) -> Any:
    return ctx.grp()


def _keys(ctx: Ctx, *found: dict[tuple[str, Any], Any], fill: bool = True) -> list[tuple[str, Any]]:
    keys: set[tuple[str, Any]] = set()
    for f in found:
        keys |= set(f)
    if ctx.q.by is None and fill:
        keys |= {(p.label, None) for p in ctx.periods}
    return sorted(keys, key=lambda k: (k[0], str(k[1])))


def _stage_is(ctx: Ctx, stage: str) -> Callable[[Any], Any]:
    later = ctx.later(stage)
    return lambda e: and_(e.c.type == STAGE_CHANGED, e.c.stage.in_(later))


def _event_is(*types: str) -> Callable[[Any], Any]:
    return lambda e: e.c.type.in_(types)


def _events_grouped(
    ctx: Ctx, types: tuple[str, ...], value: Any = None, extra: Any = None
) -> dict[tuple[str, Any], Any]:
    """Events of ``types`` in each period (anonymous ones count under no group)."""
    frm = lead_events.outerjoin(leads, leads.c.id == lead_events.c.lead_id)
    where = [lead_events.c.type.in_(types)]
    if extra is not None:
        where.append(extra)
    return counts(ctx, frm, lead_events.c.occurred_at, _lead_grp(ctx), *where, value=value)
