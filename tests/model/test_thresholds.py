from __future__ import annotations

from leadflow.model.thresholds import advise_from


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
