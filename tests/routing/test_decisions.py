"""Routing decisions as pure functions: rules, strategies, availability, business-time deadlines."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from leadflow.config.loader import load_config_text
from leadflow.config.workspace import RoutingSection, SlaSection
from leadflow.errors import ConfigError
from leadflow.routing.availability import Candidate, screen
from leadflow.routing.rules import RoutingRules
from leadflow.routing.sla import SlaPolicies, add_business_time
from leadflow.routing.strategies import Rotation, by_load
from leadflow.workspace import starter_config_text

ROUTING = RoutingSection.model_validate(
    {
        "rules": [
            {"id": "vip", "owner": "zoe", "when": {"field": "custom.vip", "eq": True}},
            {"id": "help", "workflow": "support", "when": {"field": "custom.inquiry", "eq": "support"}},
            {"id": "students", "nurture": "education", "when": {"field": "title", "matches": "(?i)student"}},
            {"id": "emea_pool", "queue": "emea", "when": {"field": "country", "in": ["DE", "FR"]}},
            {"id": "enterprise", "team": "ent", "when": {"field": "employees", "gte": 1000}},
        ],
        "fallback": {"team": "sales"},
    }
)
WEEK = {d: (9 * 60, 17 * 60) for d in range(5)}  # Monday to Friday, 09:00-17:00


def test_first_matching_rule_wins_then_fallback() -> None:
    rules = RoutingRules(ROUTING)
    cases = [
        ({"employees": 5000, "custom": {"vip": True}}, "owner:zoe", []),
        ({"custom": {"inquiry": "support"}}, "workflow:support", ["vip"]),
        ({"title": "PhD Student"}, "nurture:education", ["vip", "help"]),
        ({"country": "DE", "employees": 5000}, "queue:emea", ["vip", "help", "students"]),
        ({"employees": 5000}, "team:ent", ["vip", "help", "students", "emea_pool"]),
        ({"employees": 10}, "team:sales", ["vip", "help", "students", "emea_pool", "enterprise"]),
    ]
    for lead, destination, tried in cases:
        route, seen = rules.choose(lead)
        assert route is not None
        assert (route.destination, seen) == (destination, tried)
    assert not rules.choose({"title": "student"})[0].assigns_owner  # type: ignore[union-attr]


def test_a_destination_names_exactly_one_place() -> None:
    with pytest.raises(ValueError, match="exactly one of team, owner, queue, nurture or workflow"):
        RoutingSection.model_validate({"rules": [{"id": "x", "team": "a", "nurture": "b"}]})
    with pytest.raises(ValueError, match="workflow"):
        RoutingSection.model_validate({"rules": [{"id": "x", "workflow": "billing"}]})


def test_config_refers_to_teams_and_stages_that_exist() -> None:
    text = starter_config_text().replace("fallback: {team: sales}", "fallback: {queue: nowhere}")
    with pytest.raises(ConfigError, match=r"routing\.fallback\.queue.*nowhere"):
        load_config_text(text)
    text = starter_config_text().replace("accepted_stage: sql", "accepted_stage: prospect")
    with pytest.raises(ConfigError, match="must come after the handoff stage"):
        load_config_text(text)
    text = starter_config_text().replace(
        "reasons: [not_a_fit, bad_contact_info", "reasons: [too_small, bad_contact_info"
    )
    with pytest.raises(ConfigError, match="too_small"):
        load_config_text(text)


def _c(id_: str, position: int, **kw: object) -> Candidate:
    return Candidate(id=id_, team="t", position=position, **kw)  # type: ignore[arg-type]


def _turns(members: list[Candidate], n: int, *, weighted: bool = False) -> list[str]:
    rotation = Rotation(members, weighted=weighted)
    out = []
    for _ in range(n):
        first = rotation.order()[0]
        rotation.take(first)
        out.append(first.id)
    return out


def test_weighted_round_robin_spreads_by_weight() -> None:
    a, b, c = _c("a", 0, weight=3), _c("b", 1, weight=1), _c("c", 2, weight=2)
    cycle = _turns([a, b, c], 6, weighted=True)
    assert Counter(cycle) == {"a": 3, "c": 2, "b": 1}
    assert cycle[:2] != ["a", "a"] or cycle[2] != "a"  # spread out, not a block of a's
    assert Counter(_turns([a, b, c], 600, weighted=True)) == {"a": 300, "c": 200, "b": 100}


def test_rotation_tries_the_next_in_turn_after_the_one_whose_turn_it_is() -> None:
    members = [_c(x, i) for i, x in enumerate("abcd")]
    rotation = Rotation(members, {"a": 1, "b": 1})
    assert [m.id for m in rotation.order()] == ["c", "d", "a", "b"]
    assert [m.id for m in by_load(rotation.order(), {"c": 4, "d": 1, "a": 1, "b": 0})] == ["b", "d", "a", "c"]


def test_screening_gives_a_reason_for_every_owner_it_skips() -> None:
    monday_10_utc = datetime(2026, 3, 2, 10, tzinfo=UTC)
    people = [
        _c("away", 0, out_of_office=((date(2026, 3, 1), date(2026, 3, 6)),), languages=frozenset({"de"})),
        _c("english", 1, languages=frozenset({"en"})),
        _c("tokyo", 2, timezone="Asia/Tokyo", languages=frozenset({"de"}), skills=frozenset({"fintech"})),
        _c("berlin", 3, timezone="Europe/Berlin", languages=frozenset({"de", "en"}), skills=frozenset({"fintech"})),
        _c("nolang", 4),
        _c("noskill", 5, timezone="Europe/Berlin", languages=frozenset({"de"})),
    ]
    seen = screen(people, at=monday_10_utc, default_hours=WEEK, language="DE", skills=["fintech"])
    assert [c.id for c in seen.eligible] == ["berlin"]
    assert [c.id for c in seen.off_hours] == ["tokyo"]  # 19:00 in Tokyo
    assert {s["owner"]: s["why"] for s in seen.skipped} == {
        "away": "out of office",
        "english": "does not speak DE",
        "nolang": "no languages listed (needs DE)",
        "noskill": "lacks skill fintech",
    }


def test_owner_working_hours_are_read_in_their_own_time_zone() -> None:
    ny = _c("ny", 0, timezone="America/New_York", working_hours={0: (8 * 60, 12 * 60)})
    assert ny.working(datetime(2026, 3, 2, 14, tzinfo=UTC), WEEK)  # 09:00 in New York
    assert not ny.working(datetime(2026, 3, 2, 18, tzinfo=UTC), WEEK)  # 13:00 in New York
    assert not ny.working(datetime(2026, 3, 3, 14, tzinfo=UTC), WEEK)  # Tuesday: no hours given


def test_business_time_counts_only_open_hours_and_whole_business_days() -> None:
    tz, none = "Europe/Berlin", frozenset[date]()

    def at(day: int, hour: int, minute: int = 0) -> datetime:  # March 2026, Berlin is UTC+1
        return datetime(2026, 3, day, hour - 1, minute, tzinfo=UTC)

    assert add_business_time(at(2, 10), timedelta(hours=1), WEEK, tz, none) == at(2, 11)
    assert add_business_time(at(2, 16, 30), timedelta(hours=1), WEEK, tz, none) == at(3, 9, 30)
    assert add_business_time(at(6, 15), timedelta(days=1), WEEK, tz, none) == at(9, 15)  # Friday → Monday
    assert add_business_time(at(7, 10), timedelta(hours=1), WEEK, tz, none) == at(9, 10)  # Saturday → Monday 09:00+1h
    assert add_business_time(at(2, 20), timedelta(minutes=5), WEEK, tz, none) == at(3, 9, 5)
    assert add_business_time(at(6, 15), timedelta(days=1), WEEK, tz, frozenset({date(2026, 3, 9)})) == at(10, 15)
    assert add_business_time(at(2, 10), timedelta(days=1, hours=8), WEEK, tz, none) == at(4, 10)


def test_sla_policy_by_priority_with_reminder_and_escalation_chain() -> None:
    section = SlaSection.model_validate(
        {
            "policies": [
                {
                    "id": "hot",
                    "first_touch": "5m",
                    "when": {"field": "score", "gte": 70},
                    "remind_before": "2m",
                    "escalate": [{"after": "10m", "action": "notify_manager"}, {"after": "30m", "action": "reassign"}],
                },
                {"id": "cold", "first_touch": "1d", "business_hours": True},
            ]
        }
    )
    policies = SlaPolicies(section, "Europe/Berlin")
    start = datetime(2026, 3, 6, 14, tzinfo=UTC)  # Friday 15:00 in Berlin
    hot = policies.deadline({"score": 90}, start)
    cold = policies.deadline({"score": 10}, start)
    assert hot is not None and cold is not None
    assert (hot.policy, hot.due_at) == ("hot", start + timedelta(minutes=5))
    assert (cold.policy, cold.due_at) == ("cold", datetime(2026, 3, 9, 14, tzinfo=UTC))
    steps = policies.steps("hot", hot.due_at)
    assert [(s.action, s.at - start) for s in steps] == [
        ("remind", timedelta(minutes=3)),
        ("notify_manager", timedelta(minutes=15)),
        ("reassign", timedelta(minutes=35)),
    ]
    assert policies.steps("cold", cold.due_at) == []
