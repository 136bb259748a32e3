"""What the CLI, the API and the worker call: train from history, evaluate, retrain on a
schedule, drift, threshold advice. Domain functions: the caller owns the transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads
from leadflow.errors import InvalidInput, Problem
from leadflow.model import dataset, registry
from leadflow.model.leakage import GuardSettings, rank_auc, set_after_outcome
from leadflow.workspace import Workspace

RETRAIN_EVERY = timedelta(days=7)
MIN_GAIN = 0.0  # a retrained model must beat the active one's AUC on recent outcomes by more than this


@dataclass(frozen=True)
class TrainOptions:
    target: str | None = None
    holdout: float = 0.25
    exclude: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    outcome_window_days: int = 90
    since: datetime | None = None
    max_auc: float = 0.85
    max_deterministic_share: float = 0.10


def load_dataset(ws: Workspace, conn: Connection, options: TrainOptions) -> dataset.Dataset:
    target = options.target or ws.config.stages.target
    return dataset.build(
        conn,
        order=ws.config.stages.order,
        target=target,
        as_of=ws.clock.now(),
        outcome_window=timedelta(days=options.outcome_window_days),
        since=options.since,
    )


@dataclass
class Candidate:
    """A trained version not yet stored: its row and the predictor behind it."""

    values: dict[str, Any]
    predictor: Any
    data: dataset.Dataset


def fit_version(
    ws: Workspace,
    conn: Connection,
    options: TrainOptions | None = None,
    *,
    actor: str = "cli",
    trigger: str = "manual",
    data: dataset.Dataset | None = None,
) -> Candidate:
    """Train a version from the leads with known outcomes; reads only (so it can run in a read
    transaction and keep the write lock free while the trees grow)."""
    from leadflow.model import evaluation
    from leadflow.model.training import MIN_ROWS
    from leadflow.model.training import train as fit

    options = options or TrainOptions()
    target = options.target or ws.config.stages.target
    data = data or load_dataset(ws, conn, options)
    dataset.require_outcomes(data, target, min_rows=MIN_ROWS)
    guard = GuardSettings(max_auc=options.max_auc, max_deterministic_share=options.max_deterministic_share)
    history = set_after_outcome(data.first_set, data.outcome_at, guard)
    result = fit(
        data.frame,
        data.y,
        data.times,
        holdout=options.holdout,
        exclude=options.exclude,
        force=options.force,
        guard=guard,
        history_flags=history,
    )
    predictor = result.predictor
    features = list(predictor.encoding.features)
    X = predictor.encoding.encode(data.frame)
    probability = predictor.probabilities(X)
    learned = np.concatenate([result.split.fit, result.split.calibrate])
    comparison = evaluation.compare(
        data.frame, features, data.y, learned, result.split.holdout, probability, rule_points=data.rule_scores
    )
    start, end = data.window
    report = {
        "target": target,
        "holdout_share": options.holdout,
        "outcome_window_days": options.outcome_window_days,
        "rows": len(data.y),
        "converted": int(sum(data.y)),
        "unknown_outcome": data.unknown,
        "split": {
            "fit": len(result.split.fit),
            "calibrate": len(result.split.calibrate),
            "holdout": len(result.split.holdout),
            "holdout_from": _iso(data.times[int(result.split.holdout[0])]) if len(result.split.holdout) else None,
        },
        "slices": slices(result.split, data.y, data.times),
        "leakage": [f.as_dict() for f in result.flags],
        "fields_checked": [c.as_dict() for c in result.checks],
        "holdout_ties": evaluation.ties(probability[result.split.holdout], X[result.split.holdout]),
        "forced": result.forced,
        "excluded": result.excluded,
        "constant": result.constant,
        "metrics": {k: _headline(v) for k, v in comparison.items()},
        "evaluation": comparison,
        "seconds": round(result.seconds, 3),
        **result.report,
    }
    values = {
        "target": target,
        "created_at": ws.clock.now(),
        "created_by": actor,
        "trigger": trigger,
        "train_from": start,
        "train_to": end,
        "rows": len(data.y),
        "features": features,
        "report": plain(report),
        "model_text": predictor.model_text,
        "meta": predictor.meta(),
        "config_version": ws.version,
    }
    return Candidate(values, predictor, data)


def slices(split: Any, y: Sequence[int], times: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Rows, conversion rate and time span of the training, validation and holdout slices: the
    drift a user should see before trusting a model."""
    t = np.asarray(y, dtype=float)
    out = {}
    for name, rows in (("training", split.fit), ("validation", split.calibrate), ("holdout", split.holdout)):
        out[name] = {
            "leads": len(rows),
            "conversion_rate": round(float(t[rows].mean()), 4) if len(rows) else None,
            "from": _iso(times[int(rows[0])]) if len(rows) else None,
            "to": _iso(times[int(rows[-1])]) if len(rows) else None,
        }
    return out


def save_version(conn: Connection, candidate: Candidate) -> dict[str, Any]:
    version_id = registry.save(conn, candidate.values)
    return {"version": version_id, **candidate.values["report"]}


def train(
    ws: Workspace,
    conn: Connection,
    options: TrainOptions | None = None,
    *,
    actor: str = "cli",
    trigger: str = "manual",
    data: dataset.Dataset | None = None,
) -> dict[str, Any]:
    """Train a version and store it (not activated), in the caller's transaction."""
    return save_version(conn, fit_version(ws, conn, options, actor=actor, trigger=trigger, data=data))


def plain(value: Any) -> Any:
    """JSON-ready: numpy numbers as Python numbers, datetimes as ISO strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _headline(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: figures.get(k) for k in ("auc", "auc_interval", "log_loss", "brier", "leads")}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def evaluate(
    ws: Workspace, conn: Connection, version_id: int | None = None, options: TrainOptions | None = None
) -> dict[str, Any]:
    """A stored version (default: the active one, else the newest) against the rule model, naive
    Bayes and logistic regression, on the newest leads with known outcomes (the same split as
    training: baselines learn from the older rows)."""
    from leadflow.model import evaluation
    from leadflow.model.training import time_split

    version_id = version_id or registry.active_id(conn) or registry.latest_id(conn)
    if version_id is None:
        raise InvalidInput("no model to evaluate", [Problem("version", "train one first: leadflow model train")])
    version = registry.get(conn, version_id)
    stored = version["report"]
    options = options or TrainOptions(
        target=version["target"],
        holdout=stored.get("holdout_share", 0.25),
        outcome_window_days=stored.get("outcome_window_days", 90),
    )
    data = load_dataset(ws, conn, options)
    if len(data.y) < 10:
        raise InvalidInput("too few leads with known outcomes to evaluate", [Problem("rows", f"{len(data.y)} leads")])
    predictor = registry.predictor_for(ws, conn, version_id)
    split = time_split(data.times, options.holdout)
    learned = np.concatenate([split.fit, split.calibrate])
    probability = predictor.probabilities(predictor.encoding.encode(data.frame))
    features = [f for f in predictor.encoding.features if f in data.frame.columns]
    comparison = evaluation.compare(
        data.frame, features, data.y, learned, split.holdout, probability, rule_points=data.rule_scores
    )
    return plain(
        {
            "version": version_id,
            "target": version["target"],
            "holdout": len(split.holdout),
            "metrics": {k: _headline(v) for k, v in comparison.items()},
            "evaluation": comparison,
        }
    )


# -- retraining --------------------------------------------------------------------------------


def retrain(ws: Workspace) -> int:
    """``model.retrain``: once a first model exists, whenever the newest version is older than
    ``RETRAIN_EVERY``, train a new one and activate it only if it beats the model in force on
    recent outcomes (the newest leads with known outcomes, which the candidate did not learn
    from). The training runs on a read snapshot; storing it takes a short write transaction that
    first checks no other worker stored one meanwhile. Returns 1 when it stored a version."""
    with ws.reader() as conn:
        latest = registry.latest_id(conn)
        if latest is None:
            return 0  # retraining keeps a model fresh; the first one is trained on purpose
        if ws.clock.now() - registry.get(conn, latest)["created_at"] < RETRAIN_EVERY:
            return 0
        current = registry.active(ws, conn)
        options = TrainOptions(
            target=current.target if current else None,
            outcome_window_days=registry.get(conn, latest)["report"].get("outcome_window_days", 90),
        )
        try:
            candidate = fit_version(ws, conn, options, actor="worker", trigger="schedule")
        except InvalidInput:
            return 0  # not enough history yet; try again next round
        decision = challenge(ws, conn, candidate.predictor, candidate.data, options)
    candidate.values["report"] = {**candidate.values["report"], "challenge": plain(decision)}
    with ws.transaction() as conn:
        if registry.latest_id(conn) != latest:
            return 0  # another worker stored a version meanwhile
        stored = save_version(conn, candidate)
        if decision["activate"]:
            registry.activate(ws, conn, stored["version"], actor="worker", reason=decision["why"])
    return 1


def challenge(
    ws: Workspace, conn: Connection, cand: Any, data: dataset.Dataset, options: TrainOptions
) -> dict[str, Any]:
    """Whether ``candidate`` should replace the model in force: both score the recent outcomes
    (the candidate's holdout); with no model in force, the candidate must beat the rule score."""
    from leadflow.model.training import time_split

    split = time_split(data.times, options.holdout)
    recent = split.holdout
    y = np.asarray(data.y, dtype=float)[recent]
    cand_auc = rank_auc(cand.probabilities(cand.encoding.encode(data.frame.rows(recent))), y)
    current = registry.active_id(conn)
    if current is not None:
        incumbent = registry.predictor_for(ws, conn, current)
        inc_auc = rank_auc(incumbent.probabilities(incumbent.encoding.encode(data.frame.rows(recent))), y)
        against = f"version {current}"
    else:
        inc_auc = rank_auc(np.asarray(data.rule_scores, dtype=float)[recent], y)
        against = "the rule score"
    better = cand_auc is not None and (inc_auc is None or cand_auc > inc_auc + MIN_GAIN)
    return {
        "activate": bool(better),
        "candidate_auc": None if cand_auc is None else round(cand_auc, 4),
        "incumbent_auc": None if inc_auc is None else round(inc_auc, 4),
        "against": against,
        "recent_leads": len(recent),
        "why": (
            f"AUC {cand_auc:.3f} on {len(recent)} recent outcomes beats {against} ({inc_auc or 0:.3f})"
            if better
            else f"AUC {cand_auc or 0:.3f} on recent outcomes does not beat {against} ({inc_auc or 0:.3f})"
        ),
    }


# -- drift -------------------------------------------------------------------------------------


def drift(ws: Workspace, conn: Connection, *, version_id: int | None = None, period: str = "month") -> dict[str, Any]:
    """Per period: the distribution of predicted scores the model gave (from ``lead_scored``
    events it is stamped on) and its calibration (mean predicted vs converted) for leads whose
    outcome is known."""
    if period not in ("week", "month"):
        raise InvalidInput("unknown period", [Problem("period", "week or month")])
    rows = conn.execute(
        select(lead_events.c.lead_id, lead_events.c.occurred_at, lead_events.c.data)
        .where(lead_events.c.type == ev.LEAD_SCORED)
        .order_by(lead_events.c.occurred_at, lead_events.c.id)
    ).all()
    last: dict[tuple[str, int], tuple[int, float]] = {}
    for r in rows:
        model = (r.data or {}).get("model")
        if not model or (version_id is not None and model.get("version") != version_id):
            continue
        key = (_period(r.occurred_at, period), r.lead_id)
        last[key] = (model["version"], float(model["probability"]))
    if not last:
        return {"period": period, "version": version_id, "periods": []}
    ids = {lead for _, lead in last}
    stage = dict(conn.execute(select(leads.c.id, leads.c.stage).where(leads.c.id.in_(list(ids)))).all())
    converted = _converted(conn, ws, ids)
    groups: dict[str, list[tuple[float, int | None]]] = defaultdict(list)
    from leadflow.qualify.stages import CLOSED

    for (label, lead), (_, p) in last.items():
        outcome = 1 if lead in converted else (0 if stage.get(lead) in CLOSED else None)
        groups[label].append((p, outcome))
    out = []
    for label in sorted(groups):
        ps = np.array([p for p, _ in groups[label]])
        known = [(p, o) for p, o in groups[label] if o is not None]
        out.append(
            {
                "period": label,
                "scored": len(ps),
                "mean_score": round(float(ps.mean() * 100), 2),
                "p10": round(float(np.quantile(ps, 0.1) * 100), 1),
                "p50": round(float(np.quantile(ps, 0.5) * 100), 1),
                "p90": round(float(np.quantile(ps, 0.9) * 100), 1),
                "bands": {
                    b: int(((ps * 100 >= lo) & (ps * 100 < hi)).sum())
                    for b, (lo, hi) in zip(("0-19", "20-39", "40-59", "60-79", "80-100"), BANDS, strict=True)
                },
                "known_outcomes": len(known),
                "predicted_rate": round(float(np.mean([p for p, _ in known])), 4) if known else None,
                "observed_rate": round(float(np.mean([o for _, o in known])), 4) if known else None,
            }
        )
    return {"period": period, "version": version_id, "periods": out}


BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 101))


def _period(at: datetime, period: str) -> str:
    if period == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{at.year}-{at.month:02d}"


def _converted(conn: Connection, ws: Workspace, ids: Sequence[int] | set[int]) -> set[int]:
    order = ws.config.stages.order
    target = ws.config.stages.target
    reached_stages = order[order.index(target) :]
    rows = conn.execute(
        select(lead_events.c.lead_id).where(
            lead_events.c.type == ev.STAGE_CHANGED,
            lead_events.c.stage.in_(reached_stages),
            lead_events.c.lead_id.in_(list(ids)),
        )
    ).all()
    return {r.lead_id for r in rows}
