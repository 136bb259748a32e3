"""The one pipeline, on SQLite and PostgreSQL: every step decides, explains itself in an event,
and the lead and its events are written together or not at all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from leadflow import events as ev
from leadflow.capture.service import prepare
from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events, leads
from leadflow.errors import InvalidInput, NotFound
from leadflow.leads.service import get_lead
from leadflow.pipeline import Activity, process, process_many, record_activities, record_activity
from leadflow.workspace import Workspace
from tests.conftest import count

ADA = {
    "email": "Ada.Lovelace@Analytical-Engines.co.uk",
    "first_name": "ada",
    "last_name": "LOVELACE",
    "company": "Analytical Engines Ltd",
    "title": "Head of Data",
    "employees": 340,
    "industry": "Software",
    "country": "United Kingdom",
    "phone": "020 7946 0018",
    "capture_context": "demo",
    "utm_source": "LinkedIn_Ads",
    "utm_campaign": "ABM Q1",
    "consent": {"email": True, "lawful_basis": "consent", "wording": "Send me product news"},
}


def test_new_lead_goes_through_every_step(ws: Workspace) -> None:
    with ws.transaction() as conn:
        result = process(ws, conn, ADA)
    assert result.created
    assert result.events == [
        ev.LEAD_CREATED,
        ev.CONSENT_CHANGED,
        ev.LEAD_ENRICHED,
        ev.LEAD_SCORED,
        ev.LEAD_QUALIFIED,
        ev.STAGE_CHANGED,
        ev.LEAD_ASSIGNED,
        ev.HANDOFF_SENT,  # 70 is past the MQL threshold: handed to sales
    ]
    with ws.reader() as conn:
        lead = get_lead(conn, result.lead_id)
        history = ev.for_lead(conn, result.lead_id)
    # capture: cleaned
    assert lead["email"] == "Ada.Lovelace@analytical-engines.co.uk"
    assert lead["email_key"] == "ada.lovelace@analytical-engines.co.uk"
    assert (lead["first_name"], lead["last_name"]) == ("Ada", "Lovelace")
    assert lead["phone"] == "+442079460018"
    assert lead["country"] == "GB"
    assert (lead["source"], lead["campaign"]) == ("linkedin_ads", "abm_q1")
    assert lead["consent_email"] is True
    # enrich
    assert (lead["domain"], lead["is_free_mail"], lead["company_size"], lead["seniority"]) == (
        "analytical-engines.co.uk",
        False,
        "201-1000",
        "director",
    )
    # score: senior 20 + size 15 + industry 10 + country 5 + asked for a demo 20 = 70
    assert lead["score"] == 70 and lead["grade"] == "A"
    scored = next(e for e in history if e["type"] == ev.LEAD_SCORED)
    assert sum(line["points"] for line in scored["data"]["explanation"]) == 70
    assert {line["rule"] for line in scored["data"]["explanation"]} == {
        "senior_title",
        "company_size_fit",
        "target_industry",
        "target_country",
        "asked_for_contact",
    }
    # qualify: a new lead enters at the furthest stage whose rule holds (here MQL by score)
    stages = [(e["data"]["from"], e["stage"], e["data"]["rule"]) for e in history if e["type"] == ev.STAGE_CHANGED]
    assert stages == [(None, "mql", "stage_rules:mql")]
    assert lead["stage"] == "mql"
    # route: fallback team, round robin from the first member, warm SLA (50 <= score < 75 → 1 hour)
    assigned = next(e for e in history if e["type"] == ev.LEAD_ASSIGNED)
    assert (lead["owner_id"], lead["team_id"]) == ("ana", "sales")
    assert assigned["data"]["strategy"] == "round_robin"
    assert assigned["data"]["rules_tried"] == [
        "support_requests",
        "job_applicants",
        "partner_requests",
        "enterprise_accounts",
    ]
    assert lead["sla_policy"] == "warm"
    assert lead["sla_due_at"] - lead["created_at"] == timedelta(hours=1)
    # every event carries the configuration version; personal data only under `personal`
    assert {e["config_version"] for e in history} == {ws.version}
    created = history[0]
    assert created["personal"]["email"] == lead["email"]
    for e in history:
        assert "Lovelace" not in str(e["data"]) and "7946" not in str(e["data"])


def test_returning_person_is_recognised_and_keeps_owner(ws: Workspace, clock: FrozenClock) -> None:
    with ws.transaction() as conn:
        first = process(ws, conn, ADA)
    clock.advance(days=3)
    with ws.transaction() as conn:
        again = process(
            ws,
            conn,
            {
                "email": "ADA.LOVELACE@analytical-engines.co.uk",
                "capture_context": "contact",
                "source": "google_ads",
                "city": "London",
            },
        )
    assert not again.created
    assert again.lead_id == first.lead_id
    assert again.owner_id == first.owner_id
    assert count(ws, "leads") == 1
    with ws.reader() as conn:
        lead = get_lead(conn, first.lead_id)
        captured = [e for e in ev.for_lead(conn, first.lead_id) if e["type"] == ev.LEAD_CAPTURED]
    assert lead["source"] == "linkedin_ads"  # first touch keeps the attribution
    assert lead["city"] == "London"  # most recent non-empty value wins
    assert captured[0]["data"]["source"] == "google_ads"  # the new touch is on its event
    assert captured[0]["data"]["identity"] == {"matched": True, "on": "email", "lead_id": first.lead_id}
    assert lead["score"] == 75  # the second submission is a form_submit engagement (+5)


def test_batch_sees_its_own_duplicates(ws: Workspace) -> None:
    region, now = ws.config.workspace.default_region, ws.clock.now()
    captures = [
        prepare({"email": "a@example.org", "company": "A"}, default_region=region, now=now),
        prepare({"email": "b@example.org", "company": "B"}, default_region=region, now=now),
        prepare({"email": "A@example.org", "title": "CTO"}, default_region=region, now=now),
    ]
    with ws.transaction() as conn:
        results = process_many(ws, conn, captures)
    assert [r.created for r in results] == [True, True, False]
    assert results[2].lead_id == results[0].lead_id
    assert count(ws, "leads") == 2
    with ws.reader() as conn:
        assert get_lead(conn, results[0].lead_id)["seniority"] == "executive"


def test_round_robin_over_a_batch_is_fair(ws: Workspace) -> None:
    region, now = ws.config.workspace.default_region, ws.clock.now()
    captures = [prepare({"email": f"p{i}@firm{i}.example"}, default_region=region, now=now) for i in range(40)]
    with ws.transaction() as conn:
        results = process_many(ws, conn, captures)
    owners = [r.owner_id for r in results]
    assert owners[:4] == ["ana", "ben", "chloe", "dmitri"]
    assert {o: owners.count(o) for o in set(owners)} == {"ana": 10, "ben": 10, "chloe": 10, "dmitri": 10}


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"email": "not-an-email"}, "email", "not a valid email address"),
        ({"email": "a@example.org", "favourite_colour": "blue"}, "favourite_colour", "unknown field"),
        ({"email": "a@example.org", "phone": "call me maybe"}, "phone", "not a phone number"),
        ({"email": "a@example.org", "country": "Atlantis"}, "country", "unknown country"),
        ({"title": "CTO"}, "(body)", "at least one of email"),
        ({"email": "a@example.org", "employees": -3}, "employees", "greater than or equal to 0"),
        ({"email": "a@example.org", "occurred_at": "2026-03-01T09:00:00"}, "occurred_at", "time zone"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(ws: Workspace, payload: dict, field: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught, ws.transaction() as conn:
        process(ws, conn, payload)
    problems = {p.field: p.message for p in caught.value.problems}
    assert field in problems, problems
    assert fragment in problems[field]
    assert count(ws, "leads") == 0
    assert count(ws, "lead_events") == 0


def test_failure_mid_transaction_leaves_nothing(ws: Workspace) -> None:
    with pytest.raises(RuntimeError), ws.transaction() as conn:
        process(ws, conn, ADA)
        raise RuntimeError("crash after the pipeline, before commit")
    assert count(ws, "leads") == 0
    assert count(ws, "lead_events") == 0


def test_activity_rescores_and_moves_stage(ws: Workspace, clock: FrozenClock) -> None:
    with ws.transaction() as conn:
        lead = process(
            ws, conn, {"email": "c@bigco.de", "company": "BigCo", "employees": 120, "title": "Marketing Manager"}
        )
    assert (lead.score, lead.stage) == (25, "prospect")  # size 15 + manager 10
    clock.advance(hours=1)
    views = [
        Activity(
            type="page_view", lead_id=lead.lead_id, occurred_at=clock.now(), data={"url": "https://x.example/pricing"}
        ),
        Activity(
            type="page_view", lead_id=lead.lead_id, occurred_at=clock.now(), data={"url": "https://x.example/pricing"}
        ),
        Activity(
            type="page_view", lead_id=lead.lead_id, occurred_at=clock.now(), data={"url": "https://x.example/pricing"}
        ),
        Activity(type="trial_started", lead_id=lead.lead_id, occurred_at=clock.now()),
    ]
    with ws.transaction() as conn:
        results = record_activities(ws, conn, views)
    # pricing page capped at 20 (10+10+0), page views 1 each, trial 20: 25 + 20 + 3 + 20 = 68
    assert [r.score for r in results] == [36, 47, 48, 68]
    assert results[-1].stage == "mql"
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
        scored = [e for e in ev.for_lead(conn, lead.lead_id) if e["type"] == ev.LEAD_SCORED]
    assert row["score_detail"]["engagement"] == {"pricing_page": 20, "page_views": 3, "trial": 20}
    assert scored[-1]["data"]["trigger"] == "trial_started"
    assert sum(line["points"] for line in scored[-1]["data"]["explanation"]) == 68
    assert row["last_activity_at"] == clock.now()


def test_first_outbound_contact_stops_the_sla_clock(ws: Workspace, clock: FrozenClock) -> None:
    with ws.transaction() as conn:
        lead = process(ws, conn, ADA)
    clock.advance(minutes=3)
    with ws.transaction() as conn:
        record_activity(
            ws, conn, Activity(type="email_opened", lead_id=lead.lead_id, occurred_at=clock.now(), actor="recipient")
        )
        first = record_activity(
            ws, conn, Activity(type="call", lead_id=lead.lead_id, occurred_at=clock.now(), actor="owner:ana")
        )
        clock.advance(minutes=10)
        second = record_activity(
            ws, conn, Activity(type="call", lead_id=lead.lead_id, occurred_at=clock.now(), actor="owner:ana")
        )
    assert (first.first_contact, second.first_contact) == (True, False)
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
        [stopped] = [e for e in ev.for_lead(conn, lead.lead_id) if e["type"] == ev.SLA_STOPPED]
    assert row["first_contact_at"] == row["created_at"] + timedelta(minutes=3)
    assert stopped["data"]["met"] is True
    assert stopped["data"]["response_seconds"] == 180


def test_unsubscribe_withdraws_email_consent(ws: Workspace) -> None:
    with ws.transaction() as conn:
        lead = process(ws, conn, ADA)
        record_activity(
            ws,
            conn,
            Activity(type="email_unsubscribed", lead_id=lead.lead_id, occurred_at=ws.clock.now(), actor="recipient"),
        )
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
        types = [e["type"] for e in ev.for_lead(conn, lead.lead_id)]
    assert row["consent_email"] is False
    assert types[-3:] == ["email_unsubscribed", ev.CONSENT_CHANGED, ev.LEAD_SCORED]
    assert row["score"] == 50  # 70 - 20 for unsubscribing


def test_activity_on_unknown_lead_is_not_found_and_writes_nothing(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="no lead with id 999"), ws.transaction() as conn:
        record_activity(ws, conn, Activity(type="call", lead_id=999, occurred_at=ws.clock.now()))
    assert count(ws, "lead_events") == 0


def test_anonymous_history_joins_the_lead_and_counts(ws: Workspace, clock: FrozenClock) -> None:
    from leadflow.tracking.service import PageView, track_page_views

    views = [
        PageView(visitor_id="v-1", url=f"https://northwind.example{p}", occurred_at=clock.now() + timedelta(minutes=i))
        for i, p in enumerate(["/", "/pricing", "/pricing", "/demo"])
    ]
    with ws.transaction() as conn:
        track_page_views(ws, conn, views)
    clock.advance(minutes=10)
    with ws.transaction() as conn:
        lead = process(ws, conn, {"email": "v@shop.example", "visitor_id": "v-1"})
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
        linked = conn.execute(
            select(lead_events.c.id).where(
                lead_events.c.visitor_id == "v-1",
                lead_events.c.lead_id == lead.lead_id,
                lead_events.c.type == "page_view",
            )
        ).all()
    assert len(linked) == 4
    # (points decay with the starter's 30-day half-life: ten minutes take off a hair)
    assert row["score_detail"]["engagement"] == {
        "page_views": pytest.approx(4, abs=0.01),
        "pricing_page": pytest.approx(20, abs=0.01),
    }
    # later views by the now-known visitor are activities on the lead
    with ws.transaction() as conn:
        known = track_page_views(
            ws, conn, [PageView(visitor_id="v-1", url="https://northwind.example/pricing", occurred_at=clock.now())]
        )
    assert known == [lead.lead_id]
    with ws.reader() as conn:
        assert get_lead(conn, lead.lead_id)["score_detail"]["engagement"]["page_views"] == pytest.approx(5, abs=0.01)


def test_concurrent_round_robin_cursor_is_atomic(ws: Workspace) -> None:
    """Two units of work each reserve positions; together they never hand out one twice."""
    from leadflow.routing.strategies import advance_cursor

    with ws.transaction() as conn:
        a = advance_cursor(conn, "sales", 3)
    with ws.transaction() as conn:
        b = advance_cursor(conn, "sales", 2)
    assert (a, b) == (3, 5)
    with ws.reader() as conn:
        assert conn.execute(select(leads.c.id)).all() == []
