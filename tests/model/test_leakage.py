from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow.model.leakage import screen, set_after_outcome
from leadflow.model.xeducation import load
from tests.conftest import SHARED_DATA
from tests.model.conftest import synthetic_frame


def test_planted_leaks_are_flagged_and_honest_fields_are_not() -> None:
    frame, y, _ = synthetic_frame()
    flagged = {f.feature: f for f in screen(frame, y)}
    assert set(flagged) == {"sales_status", "deal_days"}
    assert "AUC" in flagged["deal_days"].reason
    assert flagged["sales_status"].evidence["deterministic_share"] > 0.5


def test_xeducation_sales_columns_are_caught_without_naming_them() -> None:
    frame, y, _, _ = load(SHARED_DATA / "xeducation" / "leads.csv")
    flagged = {f.feature for f in screen(frame, y)}
    assert {"Tags", "Lead Quality"} <= flagged
    # what the person told the form, and what they did, stay in
    for honest in ("Lead Source", "Lead Origin", "Last Activity", "Total Time Spent on Website", "Specialization"):
        assert honest not in flagged


def test_fields_set_after_the_outcome_are_flagged_from_history() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    outcome_at = {i: t0 + timedelta(days=10) for i in range(10)}
    first_set = {
        "status": {i: t0 + timedelta(days=11) for i in range(10)},  # written after the win
        "industry": {i: t0 for i in range(20)},  # known at capture
    }
    flags = set_after_outcome(first_set, outcome_at)
    assert [f.feature for f in flags] == ["status"]
    assert flags[0].evidence == {"converted_with_field": 10, "set_after_outcome": 10}
