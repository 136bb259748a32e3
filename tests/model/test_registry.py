"""Training from the database, the registry, the pipeline stamp and scheduled retraining, on
SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import select

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events
from leadflow.errors import Conflict, InvalidInput, NotFound
from leadflow.model import registry, service
from leadflow.model.scoring import predict_lead
from leadflow.pipeline import Activity, process, record_activity
from leadflow.workspace import Workspace
from tests.model.conftest import make_history

OPTIONS = service.TrainOptions(outcome_window_days=30)


def _scored_events(ws: Workspace, lead_id: int) -> list[dict]:
    with ws.reader() as conn:
        rows = conn.execute(
            select(lead_events.c.data)
            .where(lead_events.c.lead_id == lead_id, lead_events.c.type == ev.LEAD_SCORED)
            .order_by(lead_events.c.id)
        ).all()
    return [r.data for r in rows]


def _capture(ws: Workspace, i: int, **fields) -> int:  # type: ignore[no-untyped-def]
    with ws.transaction() as conn:
        return process(ws, conn, {"email": f"new{i}@fresh{i}.example", "company": f"Fresh {i}", **fields}).lead_id


def test_train_activate_stamp_and_roll_back(ws: Workspace, clock: FrozenClock) -> None:
    history = make_history(ws, clock)
    with ws.transaction() as conn:
        report = service.train(ws, conn, OPTIONS)
    converted = sum(history["converted"].values())
    assert report["rows"] == len(history["converted"]) and report["converted"] == converted
    # the field sales fill in after the win is caught from the event log
    leaks = {f["feature"]: f["reason"] for f in report["leakage"]}
    assert "after the outcome" in leaks["segment"]
    assert "segment" in report["excluded"]
    with ws.reader() as conn:
        stored = registry.get(conn, report["version"])
    assert "segment" not in stored["features"] and "custom.plan" in stored["features"]
    assert {"predictive", "rules", "naive_bayes", "logistic_regression"} <= set(report["metrics"])
    v1 = report["version"]

    # trained is not active: the pipeline is unchanged
    lead = _capture(ws, 1, industry="software", custom={"plan": "pro"})
    assert all("model" not in d for d in _scored_events(ws, lead))

    with ws.transaction() as conn:
        registry.activate(ws, conn, v1, actor="test", reason="first model")
    hot = _capture(ws, 2, industry="software", employees=2000, custom={"plan": "pro"})
    cold = _capture(ws, 3, industry="education", employees=5, custom={"plan": "free"})
    stamped = _scored_events(ws, hot)[-1]["model"]
    assert stamped["version"] == v1
    assert 0 <= stamped["score"] <= 100
    assert math.isclose(
        sum(c["contribution"] for c in stamped["contributions"]) + stamped["base_value"],
        stamped["margin"],
        abs_tol=1e-4,
    )
    assert stamped["score"] > _scored_events(ws, cold)[-1]["model"]["score"]
    # the API's view: every contribution, same version
    with ws.reader() as conn:
        now = predict_lead(ws, conn, hot)
    assert now["version"] == v1
    assert math.isclose(
        sum(c["contribution"] for c in now["contributions"]) + now["base_value"], now["margin"], abs_tol=1e-4
    )

    # activity recomputes the score: the new score event carries the model too
    with ws.transaction() as conn:
        record_activity(ws, conn, Activity(type="form_submit", lead_id=cold, occurred_at=clock.now()))
    assert _scored_events(ws, cold)[-1]["model"]["version"] == v1

    with ws.transaction() as conn:
        v2 = service.train(ws, conn, service.TrainOptions(outcome_window_days=30, exclude=("industry",)))["version"]
        registry.activate(ws, conn, v2, actor="test", reason="second")
    assert "model" in _scored_events(ws, _capture(ws, 4, industry="retail"))[-1]
    assert _scored_events(ws, _capture(ws, 5, industry="retail"))[-1]["model"]["version"] == v2
    with ws.transaction() as conn:
        assert registry.rollback(ws, conn, actor="test") == {"active": v1, "previous": v2}
    assert _scored_events(ws, _capture(ws, 6, industry="retail"))[-1]["model"]["version"] == v1
    with ws.transaction() as conn:
        assert registry.rollback(ws, conn, actor="test") == {"active": None, "previous": v1}
    assert all("model" not in d for d in _scored_events(ws, _capture(ws, 7, industry="retail")))
    with ws.transaction() as conn, pytest.raises(Conflict):
        registry.rollback(ws, conn, actor="test")
    with ws.transaction() as conn, pytest.raises(NotFound):
        registry.activate(ws, conn, 999, actor="test", reason="x")
    with ws.reader() as conn:
        listed = registry.versions(conn)
    assert [v["id"] for v in listed] == [v2, v1] and not any(v["active"] for v in listed)


def test_retrain_activates_only_a_better_model(ws: Workspace, clock: FrozenClock) -> None:
    make_history(ws, clock, leak=False)
    assert service.retrain(ws) == 0  # no first model: nothing to keep fresh
    with ws.transaction() as conn:
        weak = service.train(
            ws, conn, service.TrainOptions(outcome_window_days=30, exclude=("industry", "custom.plan"))
        )["version"]
        registry.activate(ws, conn, weak, actor="test", reason="weak on purpose")
    assert service.retrain(ws) == 0  # the newest version is fresh
    clock.advance(days=8)
    assert service.retrain(ws) == 1
    with ws.reader() as conn:
        fresh = registry.latest_id(conn)
        challenge = registry.get(conn, fresh)["report"]["challenge"]
        assert challenge["activate"] and challenge["candidate_auc"] > challenge["incumbent_auc"]
        assert registry.active_id(conn) == fresh
    clock.advance(days=8)
    assert service.retrain(ws) == 1  # the same data again: equal, so not better
    with ws.reader() as conn:
        newest = registry.latest_id(conn)
        assert newest != fresh
        assert registry.get(conn, newest)["report"]["challenge"]["activate"] is False
        assert registry.active_id(conn) == fresh


def test_evaluate_drift_and_threshold(ws: Workspace, clock: FrozenClock) -> None:
    from leadflow.model.thresholds import advise

    make_history(ws, clock, n=160, leak=False)
    with ws.transaction() as conn:
        version = service.train(ws, conn, OPTIONS)["version"]
        registry.activate(ws, conn, version, actor="test", reason="go")
    with ws.reader() as conn:
        result = service.evaluate(ws, conn)
    assert result["version"] == version
    assert result["metrics"]["predictive"]["auc"] > 0.6
    deciles = result["evaluation"]["predictive"]["deciles"]
    assert deciles[-1]["captured"] == 1.0
    for i in range(3):
        _capture(ws, 10 + i, industry="software")
    clock.advance(days=40)
    for i in range(2):
        _capture(ws, 20 + i, industry="retail")
    with ws.reader() as conn:
        drift = service.drift(ws, conn, period="month")
        advice = advise(ws, conn, capacity_per_week=1, weeks=8)
        with pytest.raises(InvalidInput) as caught:
            advise(ws, conn, capacity_per_week=0)
    assert [p["scored"] for p in drift["periods"]] == [3, 2]
    assert advice["score"] == f"model version {version}"
    assert advice["advised"]["mql_per_week"] <= 1
    assert caught.value.problems[0].field == "capacity"


def test_training_needs_known_outcomes(ws: Workspace, clock: FrozenClock) -> None:
    _capture(ws, 1)
    with ws.transaction() as conn, pytest.raises(InvalidInput) as caught:
        service.train(ws, conn)
    assert caught.value.problems[0].field == "rows"
    with ws.transaction() as conn, pytest.raises(InvalidInput) as caught:
        service.train(ws, conn, service.TrainOptions(target="nowhere"))
    assert caught.value.problems[0].field == "target"
    clock.advance(timedelta(days=1))
