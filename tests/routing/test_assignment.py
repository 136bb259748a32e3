"""Assignment through the pipeline, on SQLite and PostgreSQL: strategies, caps, availability,
account owners, returning leads, ownerless destinations, and the trace behind every decision."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.db.tables import accounts, leads, owner_counters
from leadflow.jobs.worker import TASKS, run_task
from leadflow.routing.service import reassign
from leadflow.simulate.engine import sample_leads
from tests.routing.helpers import capture, events_of, lead_row, team, workspace

SEVEN = ["ana", "ben", "chloe", "dmitri", "emma", "farid", "gus"]
ROUTE_ALL = {"rules": [], "fallback": {"team": "sales"}, "account_owner_first": False}


def test_round_robin_over_10000_simulated_leads_is_fair(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> None:
    """(On PostgreSQL, fairness under concurrent processes is tested in test_concurrency.py.)"""
    ws = workspace(tmp_path, sqlite_url, clock, **team("sales", SEVEN), routing=ROUTE_ALL)
    payloads = sample_leads(ws, 10_000, seed=7)
    results = capture(ws, payloads, batch=500)
    created = [r for r in results if r.created]
    counts = Counter(r.owner_id for r in created)
    assert set(counts) == set(SEVEN) and sum(counts.values()) == len(created) > 9_000
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    # and the stored leads agree with what the pipeline answered
    with ws.reader() as conn:
        stored = dict(conn.execute(select(leads.c.owner_id, func.count()).group_by(leads.c.owner_id)).all())
    assert stored == dict(counts)
    ws.close()


def test_capacity_caps_are_never_exceeded_and_waiting_leads_get_owners_later(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    ws = workspace(
        tmp_path, db_url, clock, **team("sales", ["ana", "ben", "chloe"], capacity={"per_day": 5, "per_week": 12}),
        routing=ROUTE_ALL,
    )  # fmt: skip
    per_day: Counter[tuple[str, int]] = Counter()
    for day in range(5):  # Monday to Friday, 20 new leads a day
        results = capture(ws, [{"email": f"d{day}p{i}@gmail.com"} for i in range(20)])
        run_task(ws, TASKS["routing.retry"])
        with ws.reader() as conn:
            rows = conn.execute(
                select(leads.c.owner_id, leads.c.assigned_at).where(leads.c.owner_id.is_not(None))
            ).all()
        per_day = Counter((r.owner_id, (r.assigned_at - clock.now()).days) for r in rows)
        if day == 0:
            assert Counter(r.owner_id for r in results) == {"ana": 5, "ben": 5, "chloe": 5, None: 5}
            waiting = next(r for r in results if r.owner_id is None)
            trace = events_of(ws, waiting.lead_id, ev.LEAD_ASSIGNED)[0]["data"]
            assert trace["owner"] is None and "waiting" in trace
            assert {s["why"] for s in trace["skipped"]} == {"daily cap of 5 reached"}
            assert lead_row(ws, waiting.lead_id)["destination"] == "team:sales"
        clock.advance(days=1)
    assert max(per_day.values()) <= 5
    totals = Counter(owner for owner, _ in per_day.elements())
    assert totals == {"ana": 12, "ben": 12, "chloe": 12}  # the weekly cap, and every slot used
    with ws.reader() as conn:
        assert (
            conn.execute(select(func.max(owner_counters.c.assigned)).where(owner_counters.c.period == "d")).scalar()
            == 5
        )
        unassigned = conn.execute(select(func.count()).where(leads.c.owner_id.is_(None))).scalar_one()
    assert unassigned == 100 - 36
    ws.close()


def test_weighted_round_robin_and_least_load(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    config = team("sales", ["ana", "ben"], strategy="weighted_round_robin")
    config["owners"][0]["weight"] = 3
    config["teams"].append({"id": "ent", "name": "Enterprise", "strategy": "least_load"})
    config["owners"] += [{"id": x, "name": x.title(), "team": "ent"} for x in ("emma", "farid", "gina")]
    routing = {**ROUTE_ALL, "rules": [{"id": "big", "team": "ent", "when": {"field": "custom.big", "eq": True}}]}
    ws = workspace(tmp_path, db_url, clock, **config, routing=routing)
    results = capture(ws, [{"email": f"w{i}@gmail.com"} for i in range(400)])
    assert Counter(r.owner_id for r in results) == {"ana": 300, "ben": 100}
    # least load: emma already has 4 open leads, farid 1, gina none
    big = capture(ws, [{"email": f"b{i}@gmail.com", "custom": {"big": True}} for i in range(5)])
    with ws.transaction() as conn:
        for r in big:
            reassign(
                ws, conn, r.lead_id, owner="emma" if r is not big[-1] else "farid", team=None, actor="test", reason=None
            )
    more = capture(ws, [{"email": f"m{i}@gmail.com", "custom": {"big": True}} for i in range(7)])
    assert more[0].owner_id == "gina"
    assert Counter(r.owner_id for r in more) == {"gina": 4, "farid": 3}  # now all three have 4 open leads
    assert events_of(ws, more[0].lead_id, ev.LEAD_ASSIGNED)[0]["data"]["strategy"] == "least_load"
    ws.close()


def test_out_of_office_language_skills_and_working_hours_with_reasons(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    owners = [
        {"id": "ana", "name": "Ana", "team": "sales", "languages": ["en", "de"], "out_of_office": [{"from": "2026-03-01", "to": "2026-03-04"}]},
        {"id": "ben", "name": "Ben", "team": "sales", "languages": ["en"]},
        {"id": "chloe", "name": "Chloe", "team": "sales", "languages": ["de", "fr"], "skills": ["fintech"]},
        {"id": "kenji", "name": "Kenji", "team": "sales", "languages": ["de", "ja"], "skills": ["fintech"], "timezone": "Asia/Tokyo"},
    ]  # fmt: skip
    routing = {
        "account_owner_first": False,
        "rules": [
            {
                "id": "fintech",
                "team": "sales",
                "require_skills": ["fintech"],
                "when": {"field": "custom.vertical", "eq": "fintech"},
            },
            {
                "id": "by_language",
                "team": "sales",
                "require_language": True,
                "when": {"field": "language", "exists": True},
            },
        ],
        "fallback": {"team": "sales"},
    }
    ws = workspace(tmp_path, db_url, clock, teams=[{"id": "sales", "name": "Sales"}], owners=owners, routing=routing)
    german, plain, fintech = capture(
        ws,
        [
            {"email": "g@gmail.com", "language": "de"},
            {"email": "p@gmail.com"},
            {"email": "f@gmail.com", "custom": {"vertical": "fintech"}},
        ],
    )
    assert german.owner_id == "chloe"  # ana speaks German but is away; kenji is asleep in Tokyo
    trace = events_of(ws, german.lead_id, ev.LEAD_ASSIGNED)[0]["data"]
    assert trace["rule"] == "by_language" and trace["rules_tried"] == ["fintech"]
    assert {s["owner"]: s["why"] for s in trace["skipped"]} == {
        "ana": "out of office",
        "ben": "does not speak de",
        "kenji": "outside working hours",
    }
    assert trace["candidates"] == ["ana", "ben", "chloe", "kenji"]
    assert plain.owner_id in {"ben", "chloe"}
    assert fintech.owner_id == "chloe"
    # at 01:00 UTC (10:00 in Tokyo) kenji is the only one working who has the skill
    clock.set(clock.now().replace(hour=1) + timedelta(days=1))
    night = capture(ws, [{"email": "n@gmail.com", "custom": {"vertical": "fintech"}}])[0]
    assert night.owner_id == "kenji"
    ws.close()


def test_account_owner_first_and_returning_leads_keep_their_owner(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    routing = {**ROUTE_ALL, "account_owner_first": True}
    ws = workspace(tmp_path, db_url, clock, **team("sales", ["ana", "ben", "chloe"]), routing=routing)
    first = capture(ws, [{"email": "cto@globex.example", "company": "Globex"}])[0]
    others = capture(ws, [{"email": f"x{i}@gmail.com"} for i in range(2)])
    colleague = capture(ws, [{"email": "cfo@globex.example", "company": "Globex"}])[0]
    assert [first.owner_id, *(o.owner_id for o in others)] == ["ana", "ben", "chloe"]
    assert colleague.owner_id == "ana"  # round robin would say ana's turn is over: it is her account
    trace = events_of(ws, colleague.lead_id, ev.LEAD_ASSIGNED)[0]["data"]
    assert trace["strategy"] == "account owner" and "owns the lead's account" in trace["owner_why"]
    with ws.reader() as conn:
        assert conn.execute(select(accounts.c.owner_id).where(accounts.c.domain == "globex.example")).scalar() == "ana"
    # in one batch: the second lead of a new company follows the first
    pair = capture(ws, [{"email": "a@initech.example"}, {"email": "b@initech.example"}])
    assert pair[0].owner_id == pair[1].owner_id
    # a returning lead goes back to its owner, and is not assigned again
    clock.advance(days=2)
    again = capture(ws, [{"email": "x0@gmail.com", "notes": "any news?"}])[0]
    assert (again.created, again.owner_id) == (False, "ben")
    assert len(events_of(ws, again.lead_id, ev.LEAD_ASSIGNED)) == 1
    ws.close()


def test_a_returning_lead_whose_owner_left_is_routed_again(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    ws = workspace(tmp_path, db_url, clock, **team("sales", ["ana", "ben"]), routing=ROUTE_ALL)
    lead = capture(ws, [{"email": "x@gmail.com"}])[0]
    assert lead.owner_id == "ana"
    ws.close()
    config = team("sales", ["ana", "ben"])
    config["owners"][0]["active"] = False
    ws = workspace(tmp_path, db_url, clock, **config, routing=ROUTE_ALL)
    again = capture(ws, [{"email": "x@gmail.com"}])[0]
    assert again.owner_id == "ben"
    assert [e["data"]["owner"] for e in events_of(ws, lead.lead_id, ev.LEAD_ASSIGNED)] == ["ana", "ben"]
    ws.close()


def test_ownerless_destinations_get_no_owner_and_no_deadline(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    routing = {
        "rules": [
            {"id": "students", "nurture": "education", "when": {"field": "title", "matches": "(?i)student"}},
            {"id": "help", "workflow": "support", "when": {"field": "custom.inquiry", "eq": "support"}},
            {"id": "pool", "queue": "sales", "when": {"field": "country", "eq": "FR"}},
        ],
        "fallback": {"team": "sales"},
    }
    ws = workspace(tmp_path, db_url, clock, **team("sales", ["ana"]), routing=routing)
    student, support, pooled = capture(
        ws,
        [
            {"email": "s@gmail.com", "title": "Student"},
            {"email": "h@gmail.com", "custom": {"inquiry": "support"}},
            {"email": "f@gmail.com", "country": "FR"},
        ],
    )
    for result, destination in ((student, "nurture:education"), (support, "workflow:support")):
        row = lead_row(ws, result.lead_id)
        assert (row["owner_id"], row["destination"], row["sla_due_at"], row["sla_next_at"]) == (
            None,
            destination,
            None,
            None,
        )
    row = lead_row(ws, pooled.lead_id)
    assert (row["owner_id"], row["team_id"], row["destination"]) == (None, "sales", "queue:sales")
    assert row["sla_due_at"] is not None  # the team's pool still owes the lead an answer
    # a rep takes it from the pool
    with ws.transaction() as conn:
        trace = reassign(ws, conn, pooled.lead_id, owner="ana", team=None, actor="owner:ana", reason="mine")
    assert trace["owner"] == "ana" and trace["previous_owner"] is None
    assert lead_row(ws, pooled.lead_id)["owner_id"] == "ana"
    ws.close()
