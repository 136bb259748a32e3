"""``/api/v1/metrics``: the KPI catalogue, any metric for any period and breakdown, and whether
two sources really differ. Parameters are checked here or by the service; a bad one is a 422
naming it, never a 500."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder

from leadflow.access.keys import ApiKey
from leadflow.api.deps import api_key, viewer, workspace
from leadflow.errors import InvalidInput, Problem
from leadflow.metrics.milestones import refresh as refresh_milestones
from leadflow.metrics.service import catalogue, compare_sources, compute, default_period, get_metric, make_query

router = APIRouter(prefix="/api/v1", tags=["metrics"])
Reader = Annotated[ApiKey, Depends(api_key("metrics:read"))]
# Who reads a figure: an API key (the whole workspace) or a signed-in user (their readable leads).
Viewer = Annotated[Any, Depends(viewer("metrics:read"))]
MetricId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
From = Annotated[
    date | None,
    Query(
        alias="from",
        description="first day (default: 12 months before `to`, or the month the data begins when that is later)",
    ),
]
To = Annotated[
    date | None,
    Query(
        alias="to",
        description="day after the last (default: tomorrow, or the day after the data ends when that is earlier)",
    ),
]
By = Annotated[
    Literal["source", "medium", "campaign", "landing_page", "capture_context", "country", "segment", "owner", "team"]
    | None,
    Query(description="break down by a lead dimension"),
]
Grain = Annotated[Literal["day", "week", "month", "quarter", "year"] | None, Query(description="one row per period")]
Basis = Annotated[Literal["cohort", "period"], Query(description="cohort (default) or period-over-period rates")]
Model = Annotated[
    Literal["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay"] | None,
    Query(description="attribution model for roas, revenue_by_source and pipeline_contribution"),
]


def _range(request: Request, start: date | None, end: date | None, readable: Any = None) -> tuple[date, date]:
    """The period asked for; a bound not given fits the data the viewer reads (imported history
    that ended before today is shown where it is, not as twelve empty months)."""
    if start is None or end is None:
        ws = workspace(request)
        with ws.reader() as conn:
            start, end, _ = default_period(ws, conn, start, end, readable=readable)
    if end <= start:
        raise InvalidInput("empty period", [Problem("to", "must be after from")])
    return start, end


@router.get("/metrics", summary="The KPI catalogue: every metric with its definition, unit and formula")
def list_metrics(_key: Reader) -> dict[str, Any]:
    return {"metrics": catalogue()}


@router.get("/metrics/{metric_id}", summary="A metric for a period, by period grain and breakdown")
def get_one(
    request: Request,
    metric_id: MetricId,
    readable: Viewer,
    start: From = None,
    end: To = None,
    by: By = None,
    grain: Grain = None,
    basis: Basis = "cohort",
    model: Model = None,
    stage: Annotated[str | None, Query(max_length=64, description="stage, for conversion_curve")] = None,
    maturity: Annotated[
        int | None,
        Query(
            ge=1,
            le=3650,
            description="days after creation conversion_curve reads its value at (7, 14, 30, 60, 90 or 180; "
            "default: metrics.maturity_days)",
        ),
    ] = None,
    compare: Annotated[bool, Query(description="add the previous period's value and the change")] = False,
) -> Any:
    get_metric(metric_id)
    ws = workspace(request)
    lo, hi = _range(request, start, end, readable)
    query = make_query(lo, hi, grain=grain, by=by, basis=basis, model=model, stage=stage, maturity=maturity)
    refresh_milestones(ws)
    with ws.reader() as conn:
        return jsonable_encoder(compute(ws, conn, metric_id, query, compare=compare, readable=readable))


@router.get("/metrics/{metric_id}/compare", summary="Is one source's rate really different from another's?")
def compare(
    request: Request,
    metric_id: MetricId,
    readable: Viewer,
    start: From = None,
    end: To = None,
    by: By = None,
    basis: Basis = "cohort",
    a: Annotated[str | None, Query(max_length=200, description="a source (or other group)")] = None,
    b: Annotated[str | None, Query(max_length=200, description="another; without it, a against all the others")] = None,
) -> Any:
    get_metric(metric_id)
    ws = workspace(request)
    lo, hi = _range(request, start, end, readable)
    query = make_query(lo, hi, by=by, basis=basis)
    with ws.reader() as conn:
        return jsonable_encoder(compare_sources(ws, conn, metric_id, query, a, b, readable=readable))
