"""Compute a metric by id: the one entry point for the API, the CLI, the dashboard and the demo."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from leadflow.errors import NotFound
from leadflow.metrics import catalogue as _catalogue  # noqa: F401 - registers every metric
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.registry import METRICS
from leadflow.workspace import Workspace


def catalogue() -> list[dict[str, str]]:
    return [m.describe() for m in METRICS.values()]


def compute(ws: Workspace, conn: Connection, metric_id: str, query: MetricQuery) -> dict[str, Any]:
    metric = METRICS.get(metric_id)
    if metric is None:
        raise NotFound(f"no metric {metric_id!r}; see the catalogue for the ids")
    rows = metric.compute(conn, ws, query)
    return {
        **metric.describe(),
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "grain": query.grain,
        "by": query.by,
        "basis": query.basis,
        "rows": rows,
    }


def overview(ws: Workspace, conn: Connection, start: Any, end: Any) -> dict[str, Any]:
    """The short report the demo prints: leads and net lead flow per month, funnel by source."""
    monthly = MetricQuery(start=start, end=end, grain="month")
    volume = {r["period"]: r["value"] for r in compute(ws, conn, "lead_volume", monthly)["rows"]}
    flow = {r["period"]: r for r in compute(ws, conn, "net_lead_flow", monthly)["rows"]}
    months = sorted(set(volume) | set(flow))
    funnel = compute(ws, conn, "stage_reached", MetricQuery(start=start, end=end, by="source"))["rows"]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "months": [
            {
                "month": m,
                "leads": volume.get(m, 0),
                "closed": flow.get(m, {}).get("closed", 0),
                "inactive": flow.get(m, {}).get("inactive", 0),
                "net_lead_flow": flow.get(m, {}).get("value", volume.get(m, 0)),
            }
            for m in months
        ],
        "stages": list(ws.rules.stages.order),
        "funnel_by_source": [{"source": r["group"], "leads": r["cohort"], "reached": r["reached"]} for r in funnel],
    }
