"""``/api/v1/models``: the predictive model — train, list, activate, roll back, evaluate, drift,
threshold advice and backtests — and ``/api/v1/leads/{id}/prediction``, a lead's predicted score
with every contribution. Reading needs ``metrics:read`` (``leads:read`` for a lead's prediction);
changing which model scores leads needs ``admin``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from leadflow.access.keys import ApiKey
from leadflow.api import idempotency
from leadflow.api.deps import api_key, workspace

router = APIRouter(tags=["models"])
VersionId = Annotated[int, Path(ge=1, le=2**62, description="model version id")]
Reader = Annotated[ApiKey, Depends(api_key("metrics:read"))]
Admin = Annotated[ApiKey, Depends(api_key("admin"))]
FeatureName = Annotated[str, Field(min_length=1, max_length=200)]
_ws = workspace


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(default=None, max_length=32, description="funnel stage to predict (default customer)")
    holdout: float = Field(default=0.25, ge=0.05, le=0.5, description="share of the newest leads held out")
    exclude: list[FeatureName] = Field(default_factory=list, max_length=500)
    force: list[FeatureName] = Field(default_factory=list, max_length=500, description="keep these despite the guard")
    outcome_window_days: int = Field(default=90, ge=1, le=3650)
    since: datetime | None = None
    activate: bool = False


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="activated through the API", min_length=1, max_length=300)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=300)


class BacktestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: str = Field(min_length=1, max_length=1_000_000, description="the proposed leadflow.yaml, as text")
    since: datetime | None = None
    target: str | None = Field(default=None, max_length=32, description="the stage that counts as converted")


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    from leadflow.model.service import plain

    report = row.get("report") or {}
    return plain(
        {
            "id": row["id"],
            "active": row.get("active", False),
            "target": row["target"],
            "created_at": row["created_at"],
            "created_by": row["created_by"],
            "trigger": row["trigger"],
            "train_from": row["train_from"],
            "train_to": row["train_to"],
            "rows": row["rows"],
            "features": row["features"],
            "excluded": report.get("excluded", []),
            "leakage": report.get("leakage", []),
            "metrics": report.get("metrics", {}),
            "challenge": report.get("challenge"),
        }
    )


@router.get("/api/v1/models", summary="Model versions, newest first")
def list_models(
    request: Request,
    key: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$", description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    from leadflow.model import registry

    ws = _ws(request)
    with ws.reader() as conn:
        rows = registry.versions(conn, limit=limit, before=int(cursor) if cursor else None)
        current = registry.active_id(conn)
    return {
        "active": current,
        "items": [_summary(r) for r in rows],
        "next_cursor": str(rows[-1]["id"]) if len(rows) == limit else None,
    }


@router.post("/api/v1/models", status_code=201, summary="Train a model version from leads with known outcomes")
def train_model(request: Request, body: Annotated[TrainIn, Body()], key: Admin) -> Response:
    """Trains on the leads whose outcome is known (older leads train, the newest validate), with
    the leakage guard; the report lists flagged fields and the figures against the rule model,
    naive Bayes and logistic regression. ``activate: true`` puts it in force at once."""
    from leadflow.model import registry, service

    ws = _ws(request)
    options = service.TrainOptions(
        target=body.target,
        holdout=body.holdout,
        exclude=tuple(body.exclude),
        force=tuple(body.force),
        outcome_window_days=body.outcome_window_days,
        since=body.since,
    )

    with ws.reader() as conn:  # the trees grow on a snapshot, without the write lock
        candidate = service.fit_version(ws, conn, options, actor=key.actor)

    def work(conn: Connection) -> tuple[int, dict[str, Any], dict[str, str]]:
        report = service.save_version(conn, candidate)
        if body.activate:
            registry.activate(ws, conn, report["version"], actor=key.actor, reason="activated when trained")
        report["active"] = body.activate
        return 201, report, {"Location": f"/api/v1/models/{report['version']}"}

    return idempotency.run(ws, request, key.actor, body, work)


@router.get("/api/v1/models/evaluation", summary="Predictive model vs rule model vs baselines")
def evaluate_model(
    request: Request,
    key: Reader,
    version: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    format: Annotated[Literal["json", "png", "html"], Query()] = "json",
) -> Response:
    """AUC, log loss, Brier, calibration curve, gains and lift by decile and conversion per score
    band, on the newest leads with known outcomes; ``format=png|html`` for the charts."""
    from leadflow.model import charts, service

    ws = _ws(request)
    with ws.reader() as conn:
        result = service.evaluate(ws, conn, version)
    title = f"model version {result['version']} on {result['holdout']} recent leads"
    if format == "png":
        return Response(charts.png(result["evaluation"], title), media_type="image/png")
    if format == "html":
        return HTMLResponse(charts.html_page(result["evaluation"], title))
    return idempotency._fast_response(200, result, {})


@router.get("/api/v1/models/drift", summary="Score distribution and calibration over time")
def model_drift(
    request: Request,
    key: Reader,
    version: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    period: Annotated[Literal["week", "month"], Query()] = "month",
) -> dict[str, Any]:
    from leadflow.model import service

    ws = _ws(request)
    with ws.reader() as conn:
        return service.drift(ws, conn, version_id=version, period=period)


@router.get("/api/v1/models/threshold", summary="The MQL threshold that fits the team's capacity")
def threshold_advice(
    request: Request,
    key: Reader,
    capacity: Annotated[float, Query(gt=0, le=1_000_000, description="leads per week the team can work")],
    weeks: Annotated[int, Query(ge=1, le=104, description="recent weeks of inflow to judge by")] = 8,
    using: Annotated[Literal["auto", "model", "rules"], Query()] = "auto",
    as_of: Annotated[
        datetime | None,
        Query(description="advise as of this moment (ISO 8601), e.g. on imported history; default: now"),
    ] = None,
) -> dict[str, Any]:
    from leadflow.model import thresholds

    ws = _ws(request)
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    with ws.reader() as conn:
        return thresholds.advise(ws, conn, capacity, weeks=weeks, using=using, as_of=as_of)


@router.post("/api/v1/models/rollback", summary="Go back to the model in force before the current one")
def rollback_model(request: Request, key: Admin, body: Annotated[RollbackIn | None, Body()] = None) -> Response:
    from leadflow.model import registry

    ws = _ws(request)
    reason = body.reason if body else None

    def work(conn: Connection) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, registry.rollback(ws, conn, actor=key.actor, reason=reason), {}

    return idempotency.run(ws, request, key.actor, body, work)


@router.post("/api/v1/models/backtest", summary="Replay history under a proposed configuration")
def backtest_config(request: Request, body: Annotated[BacktestIn, Body()], key: Admin) -> Response:
    """MQL volume, conversions captured and load per owner under the proposed configuration and
    under the current one, over this workspace's history (nothing is written)."""
    from leadflow.model import backtest

    ws = _ws(request)
    result = backtest.backtest(ws, body.config, since=body.since, target=body.target)
    return idempotency.run(ws, request, key.actor, body, lambda conn: (200, result, {}))


@router.get("/api/v1/models/{version_id}", summary="A model version with its training report")
def read_model(request: Request, version_id: VersionId, key: Reader) -> dict[str, Any]:
    from leadflow.model import registry
    from leadflow.model.service import plain

    ws = _ws(request)
    with ws.reader() as conn:
        row = registry.get(conn, version_id)
    return {**_summary(row), "report": plain(row["report"])}


@router.post("/api/v1/models/{version_id}/activate", summary="Put a model version in force")
def activate_model(
    request: Request, version_id: VersionId, key: Admin, body: Annotated[ActivateIn | None, Body()] = None
) -> Response:
    from leadflow.model import registry

    ws = _ws(request)
    reason = body.reason if body else "activated through the API"

    def work(conn: Connection) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, registry.activate(ws, conn, version_id, actor=key.actor, reason=reason), {}

    return idempotency.run(ws, request, key.actor, (version_id, body), work)


@router.get("/api/v1/leads/{lead_id}/prediction", summary="A lead's predicted score and why")
def lead_prediction(
    request: Request,
    lead_id: Annotated[int, Path(ge=1, le=2**62, description="lead id")],
    key: Annotated[ApiKey, Depends(api_key("leads:read"))],
    version: Annotated[int | None, Query(ge=1, le=2**62, description="default: the active model")] = None,
) -> dict[str, Any]:
    """The calibrated probability of reaching the model's target as a 0-100 score, the model's
    version, and every feature's contribution (log-odds); with the base value they sum to the
    margin."""
    from leadflow.model.scoring import predict_lead
    from leadflow.model.service import plain

    ws = _ws(request)
    with ws.reader() as conn:
        return plain(predict_lead(ws, conn, lead_id, version_id=version))
