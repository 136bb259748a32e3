"""Threshold advice: where to set the MQL bar so that the team works the leads most likely to
convert without drowning.

Given the team's capacity (leads it can work per week) and the recent inflow, every threshold is
judged by the MQLs per week it would send (the recent leads' scores) and the share of conversions
it would have caught (the scores and outcomes of past leads). The advice is the lowest threshold
whose MQL volume fits in the capacity: any higher one catches fewer conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from leadflow.db.tables import leads
from leadflow.errors import InvalidInput, Problem
from leadflow.model import dataset, registry
from leadflow.workspace import Workspace


def advise_from(
    past_scores: Sequence[float],
    past_outcomes: Sequence[int],
    recent_scores: Sequence[float],
    weeks: float,
    capacity_per_week: float,
    step: int = 1,
) -> dict[str, Any]:
    """The pure decision: a table of thresholds and the advised one."""
    past = np.asarray(past_scores, dtype=float)
    y = np.asarray(past_outcomes, dtype=float)
    recent = np.asarray(recent_scores, dtype=float)
    conversions = y.sum()
    inflow = len(recent) / weeks if weeks else 0.0
    table = []
    for t in range(0, 101):
        above = past >= t
        table.append(
            {
                "threshold": t,
                "mql_per_week": round(float((recent >= t).sum() / weeks), 2) if weeks else 0.0,
                "conversions_captured": round(float(y[above].sum() / conversions), 4) if conversions else None,
                "mql_conversion_rate": round(float(y[above].mean()), 4) if above.any() else None,
            }
        )
    fitting = [row for row in table if row["mql_per_week"] <= capacity_per_week]
    advised = fitting[0] if fitting else table[-1]
    return {
        "capacity_per_week": capacity_per_week,
        "inflow_per_week": round(inflow, 2),
        "weeks": weeks,
        "past_leads": len(past),
        "past_conversions": int(conversions),
        "advised": advised,
        "within_capacity": bool(fitting),
        "table": [row for row in table if row["threshold"] % step == 0 or row is advised],
    }


@dataclass(frozen=True)
class AdviceInputs:
    """What advice is computed from, whatever the capacity: the past leads' scores and outcomes
    and the recent leads' scores. Building them reads every past lead's history (seconds on a
    year of leads); judging a capacity against them takes a millisecond, so a caller may keep
    them and ask about many capacities."""

    past: Any  # scores of past leads with a known outcome
    outcomes: list[int]
    recent: list[float]  # scores of the leads created in the last ``weeks``
    weeks: int
    score: str  # "rules" or "model version N"
    as_of: datetime
    newest_lead_at: datetime | None = None  # set when no lead was created in the ``weeks`` before ``as_of``


def _check_request(
    *, weeks: int | None = None, using: str | None = None, capacity_per_week: float | None = None
) -> None:
    """Every problem of an advice request at once, each naming its field (what is given is checked)."""
    problems = []
    if capacity_per_week is not None and capacity_per_week <= 0:
        problems.append(Problem("capacity", "the team's capacity must be more than 0 leads per week"))
    if weeks is not None and not 1 <= weeks <= 104:
        problems.append(Problem("weeks", "look back between 1 and 104 weeks"))
    if using is not None and using not in ("auto", "model", "rules"):
        problems.append(Problem("using", "one of auto, model, rules"))
    if problems:
        raise InvalidInput("cannot advise a threshold", problems)


def _newest_lead_at(conn: Connection, as_of: datetime) -> datetime | None:
    """When the newest lead was created (asked when the inflow window is empty, so the advice
    can say when leads last arrived and suggest ``--as-of`` that date)."""
    return conn.execute(
        select(func.max(leads.c.created_at)).where(leads.c.merged_into_id.is_(None), leads.c.created_at <= as_of)
    ).scalar()


def advice_inputs(
    ws: Workspace,
    conn: Connection,
    *,
    weeks: int = 8,
    using: str = "auto",
    outcome_window_days: int = 90,
    as_of: datetime | None = None,
) -> AdviceInputs:
    """The scores and outcomes advice needs, on the active model's score (``using="model"``), the
    rule score (``"rules"``), or the model when one is active (``"auto"``).

    ``as_of`` (default: now) judges the workspace at an earlier moment: imported history, whose
    leads were created years ago, has no inflow "now", but has the inflow and outcomes it had."""
    _check_request(weeks=weeks, using=using)
    now = ws.clock.now()
    if as_of is not None and as_of > now:
        raise InvalidInput("cannot advise a threshold", [Problem("as_of", "the date is in the future")])
    active = registry.active(ws, conn)
    if using == "model" and active is None:
        raise InvalidInput("no model is active", [Problem("using", "activate a model or use rules")])
    use_model = active is not None and using != "rules"
    now = as_of or now
    window = timedelta(days=outcome_window_days)
    if not use_model or active is None:
        past_scores, y = dataset.rule_outcomes(
            conn, order=ws.config.stages.order, target=ws.config.stages.target, as_of=now, outcome_window=window
        )
        recent_scores = conn.execute(
            select(leads.c.score).where(
                leads.c.merged_into_id.is_(None),
                leads.c.created_at >= now - timedelta(weeks=weeks),
                leads.c.created_at <= now,
            )
        ).scalars()
        past = np.asarray(past_scores, dtype=float)
        recent_rules = list(recent_scores)
        newest = None if recent_rules else _newest_lead_at(conn, now)
        return AdviceInputs(past, y, recent_rules, weeks, "rules", now, newest)
    data = dataset.build(conn, order=ws.config.stages.order, target=active.target, as_of=now, outcome_window=window)
    recent_rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(leads).where(
                leads.c.merged_into_id.is_(None),
                leads.c.created_at >= now - timedelta(weeks=weeks),
                leads.c.created_at <= now,
            )
        )
    ]
    predictor = active.predictor
    past = predictor.scores(predictor.encoding.encode(data.frame)) if len(data.y) else np.array([])
    history = dataset.events_of(conn, [r["id"] for r in recent_rows])
    recent = [
        predictor.predict(dataset.lead_features(r, history.get(r["id"], []), now), top=1).score for r in recent_rows
    ]
    newest = None if recent else _newest_lead_at(conn, now)
    return AdviceInputs(past, list(data.y), recent, weeks, f"model version {active.version_id}", now, newest)


def advise_with(ws: Workspace, inputs: AdviceInputs, capacity_per_week: float) -> dict[str, Any]:
    """Advice for a capacity from inputs already built."""
    _check_request(capacity_per_week=capacity_per_week)
    out = advise_from(inputs.past, inputs.outcomes, inputs.recent, inputs.weeks, capacity_per_week, step=5)
    out["score"] = inputs.score
    out["current_mql_threshold"] = ws.rules.scoring.mql_threshold
    out["as_of"] = inputs.as_of
    out["note"] = None
    if not inputs.recent:
        out["note"] = (
            f"no leads were created in the {inputs.weeks} weeks before {inputs.as_of:%Y-%m-%d}, so the inflow is 0"
            + (
                f"; the newest lead was created on {inputs.newest_lead_at:%Y-%m-%d}: "
                f"for advice on that history, ask with --as-of {inputs.newest_lead_at:%Y-%m-%d}"
                if inputs.newest_lead_at is not None
                else ""
            )
        )
    return out


def advise(
    ws: Workspace,
    conn: Connection,
    capacity_per_week: float,
    *,
    weeks: int = 8,
    using: str = "auto",
    outcome_window_days: int = 90,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Advice for this workspace, on the active model's score (``using="model"``), the rule
    score (``"rules"``), or the model when one is active (``"auto"``), as of now or ``as_of``."""
    _check_request(weeks=weeks, using=using, capacity_per_week=capacity_per_week)
    inputs = advice_inputs(ws, conn, weeks=weeks, using=using, outcome_window_days=outcome_window_days, as_of=as_of)
    return advise_with(ws, inputs, capacity_per_week)
