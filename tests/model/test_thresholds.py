from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from leadflow.clock import FrozenClock
from leadflow.model import dataset
from leadflow.model.thresholds import advise, advise_from
from leadflow.simulate import simulate
from tests.conftest import T0, open_workspace


def test_the_advice_is_the_lowest_threshold_within_capacity() -> None:
    past = [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    outcomes = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    recent = [95, 85, 75, 65, 55, 45, 35, 25, 15, 5] * 2  # 20 leads in 2 weeks
    advice = advise_from(past, outcomes, recent, weeks=2, capacity_per_week=4)
    assert advice["inflow_per_week"] == 10
    a = advice["advised"]
    assert a["mql_per_week"] <= 4
    assert a["threshold"] == 56  # 55 would send 5 a week
    assert a["conversions_captured"] == 0.75
    tighter = advise_from(past, outcomes, recent, weeks=2, capacity_per_week=2)["advised"]
    assert tighter["threshold"] > a["threshold"]
    assert tighter["conversions_captured"] <= a["conversions_captured"]


def test_rule_outcomes_are_builds_without_the_features(tmp_path: Path, db_url: str) -> None:
    """Advice on the rule score reads only stage changes and scores; it must judge the same leads
    at the same moments as the training dataset does."""
    ws = open_workspace(tmp_path / "sim", db_url, FrozenClock(T0))
    simulate(ws, months=4, seed=5, end=date(2026, 3, 1))
    order, target, as_of = ws.config.stages.order, ws.config.stages.target, ws.clock.now()
    with ws.reader() as conn:
        for window in (timedelta(days=30), timedelta(days=90)):
            data = dataset.build(conn, order=order, target=target, as_of=as_of, outcome_window=window)
            scores, y = dataset.rule_outcomes(conn, order=order, target=target, as_of=as_of, outcome_window=window)
            assert sum(data.y) > 0 and len(set(data.rule_scores)) > 5
            assert (scores, y) == (data.rule_scores, data.y)
        assert advise(ws, conn, 20)["past_leads"] == len(y)
    ws.close()
