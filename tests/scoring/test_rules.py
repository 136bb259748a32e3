"""The rule model: explanations always sum to the score; caps, bounds, decay and the matrix hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.config.workspace import ScoringSection
from leadflow.scoring.rules import BOUNDS_RULE, Engagement, RuleModel, apportion

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def model(rules: list[dict], **kw: object) -> RuleModel:
    return RuleModel(ScoringSection.model_validate({"rules": rules, **kw}))


def feed(m: RuleModel, events: list[tuple[str, datetime]], lead: dict | None = None) -> Engagement:
    state = Engagement()
    for type_, at in events:
        state, _ = m.add_event(state, {"type": type_}, lead or {}, at)
    return state


def test_fit_rules_grade_and_bounds() -> None:
    m = model(
        [
            {"id": "senior", "points": 30, "when": {"field": "seniority", "eq": "executive"}},
            {"id": "big", "points": 15, "when": {"field": "employees", "gte": 500}},
            {"id": "student", "points": -40, "when": {"field": "seniority", "eq": "student"}},
        ]
    )
    s = m.score({"seniority": "executive", "employees": 800}, Engagement())
    assert (s.score, s.fit, s.grade, s.engagement_grade, s.matrix) == (45, 45, "A", 4, "A4")
    s = m.score({"seniority": "student"}, Engagement())
    assert (s.score, s.grade) == (0, "D")
    assert s.explanation(m) == [
        {"rule": "student", "kind": "fit", "points": -40, "why": "seniority eq 'student'"},
        {"rule": BOUNDS_RULE, "kind": "bounds", "points": 40, "why": "score is kept within 0..100"},
    ]


def test_engagement_caps_accumulate() -> None:
    m = model([{"id": "clicks", "points": 3, "cap": 7, "on_event": "email_clicked"}])
    state = feed(m, [("email_clicked", T0)] * 5)
    assert state.points == {"clicks": 7}


def test_negative_engagement_cap() -> None:
    m = model([{"id": "bounce", "points": -10, "cap": 15, "on_event": "email_bounced"}])
    assert feed(m, [("email_bounced", T0)] * 3).points == {"bounce": -15}


def test_engagement_rule_reads_the_event() -> None:
    m = model(
        [
            {
                "id": "pricing",
                "points": 5,
                "on_event": "page_view",
                "when": {"field": "event.url", "contains": "/pricing"},
            }
        ]
    )
    assert m.add_event(Engagement(), {"type": "page_view", "url": "/pricing"}, {}, T0)[1] == {"pricing": 5}
    assert m.add_event(Engagement(), {"type": "page_view", "url": "/blog"}, {}, T0)[1] == {}
    assert m.add_event(Engagement(), {"type": "email_opened"}, {}, T0)[1] == {}


def test_engagement_halves_every_half_life() -> None:
    m = model([{"id": "meeting", "points": 40, "on_event": "meeting_held"}], engagement_half_life="30d")
    state = feed(m, [("meeting_held", T0)])
    assert m.score({}, state).score == 40
    assert m.score({}, m.decayed(state, T0 + timedelta(days=30))).score == 20
    assert m.score({}, m.decayed(state, T0 + timedelta(days=60))).score == 10
    # a new event 30 days on adds to what is left: 20 + 40
    later, added = m.add_event(state, {"type": "meeting_held"}, {}, T0 + timedelta(days=30))
    assert added == {"meeting": 40}
    assert later.points["meeting"] == pytest.approx(60)
    assert later.as_of == T0 + timedelta(days=30)
    # long after, nothing is left and the lead stops needing decay
    gone = m.decayed(state, T0 + timedelta(days=400))
    assert (gone.points, gone.as_of) == ({}, None)


def test_decay_caps_apply_to_what_is_left() -> None:
    m = model([{"id": "opens", "points": 10, "cap": 10, "on_event": "email_opened"}], engagement_half_life="10d")
    state = feed(m, [("email_opened", T0), ("email_opened", T0 + timedelta(days=10))])
    assert state.points["opens"] == pytest.approx(10)  # 5 left after 10 days, room for 5 more


def test_late_event_counts_as_already_decayed() -> None:
    m = model([{"id": "clicks", "points": 8, "on_event": "email_clicked"}], engagement_half_life="7d")
    state = feed(m, [("email_clicked", T0 + timedelta(days=7)), ("email_clicked", T0)])
    assert state.points["clicks"] == pytest.approx(12)
    assert state.as_of == T0 + timedelta(days=7)


def test_engagement_figures_on_the_lead() -> None:
    m = model(
        [
            {
                "id": "long_visits",
                "kind": "engagement",
                "points": 20,
                "when": {"field": "custom.minutes_on_site", "gte": 15},
            }
        ]
    )
    s = m.score({"custom": {"minutes_on_site": 22}}, Engagement())
    assert (s.fit, s.engagement, s.engagement_grade, s.matrix) == (0, 20, 2, "D2")
    assert s.stored()["lead_engagement"] == {"long_visits": 20}
    assert m.stored_score({"score_detail": s.stored()}).lines == s.lines


def test_matrix_levels() -> None:
    m = model([{"id": "e", "points": 1, "on_event": "page_view"}], engagement_grades={"1": 3, "2": 2, "3": 1})
    assert [m.engagement_level(n) for n in (0, 1, 2, 3, 9)] == [4, 3, 2, 1, 1]


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.floats(-50, 50, allow_nan=False), max_size=12))
def test_apportion_sums_to_the_rounded_total(values: dict[str, float]) -> None:
    whole = apportion(values)
    assert sum(whole.values()) == round(sum(values.values()))
    assert all(abs(whole[k] - values[k]) < 1.0001 for k in values)


rules_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "points": st.integers(-60, 60),
            "gte": st.integers(0, 100),
            "event": st.booleans(),
            "cap": st.one_of(st.none(), st.integers(1, 80)),
        }
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(
    rules=rules_strategy,
    value=st.integers(0, 100),
    gaps=st.lists(st.integers(0, 90), max_size=12),
    max_score=st.integers(10, 200),
    half_life=st.one_of(st.none(), st.sampled_from(["3d", "30d"])),
)
def test_explanation_sums_exactly_to_the_score(
    rules: list[dict], value: int, gaps: list[int], max_score: int, half_life: str | None
) -> None:
    spec = []
    for i, r in enumerate(rules):
        rule: dict = {"id": f"r{i}", "points": r["points"], "when": {"field": "employees", "gte": r["gte"]}}
        if r["event"]:
            rule["on_event"] = "page_view"
            if r["cap"]:
                rule["cap"] = r["cap"]
        spec.append(rule)
    m = model(spec, max_score=max_score, engagement_half_life=half_life)
    lead = {"employees": value}
    state, at = Engagement(), T0
    for gap in gaps:
        at += timedelta(days=gap)
        state, _ = m.add_event(state, {"type": "page_view"}, lead, at)
    score = m.score(lead, m.decayed(state, at + timedelta(days=5)))
    assert 0 <= score.score <= max_score
    assert sum(line["points"] for line in score.explanation(m)) == score.score
    for rule in spec:
        if rule.get("cap"):
            assert abs(state.points.get(rule["id"], 0)) <= rule["cap"] + 1e-9
