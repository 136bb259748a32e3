"""Matching at capture, merge and unmerge, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from leadflow import events as ev
from leadflow.capture.activity import record_event
from leadflow.capture.schemas import EventIn
from leadflow.capture.service import prepare
from leadflow.db.tables import lead_events, lead_match_keys, leads, match_pairs, opportunities
from leadflow.errors import Conflict, InvalidInput
from leadflow.identity.merge import LEAD_MERGED, merge_leads, unmerge_leads
from leadflow.leads.service import get_lead
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.service import compute
from leadflow.opportunities.service import create_opportunity
from leadflow.pipeline import Activity, process, process_many, record_activity
from leadflow.workspace import Workspace
from tests.conftest import T0

ADA = {
    "email": "ada.lovelace@analytical.example",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "phone": "+44 20 7946 0958",
    "company": "Analytical Engines Ltd",
    "country": "GB",
    "source": "webinar",
}


def capture(ws: Workspace, payload: dict) -> object:
    with ws.transaction() as conn:
        return process(ws, conn, payload)


def live_leads(ws: Workspace) -> int:
    with ws.reader() as conn:
        return conn.execute(
            select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
        ).scalar_one()


def test_a_returning_person_with_another_email_is_recognised(ws: Workspace) -> None:
    first = capture(ws, ADA)
    again = capture(
        ws,
        {
            "email": "ada.l@gmail.com",
            "first_name": "Lovelace",
            "last_name": "Ada",
            "phone": "020 7946 0958",
            "country": "GB",
        },
    )
    assert again.lead_id == first.lead_id and not again.created
    assert live_leads(ws) == 1
    with ws.reader() as conn:
        touch = ev.for_lead(conn, first.lead_id, types=[ev.LEAD_CAPTURED])[0]
    identity = touch["data"]["identity"]
    assert identity["on"] == "probabilistic" and identity["probability"] >= 0.99
    assert identity["evidence"]["phone"]["level"] == "exact" and identity["evidence"]["name"]["level"] == "swapped"


def test_a_likely_duplicate_is_created_and_queued_for_review(ws: Workspace) -> None:
    first = capture(ws, ADA)
    # same name at the same company, another mailbox at the same domain: likely, not sure
    second = capture(ws, {**ADA, "email": "a@analytical.example", "phone": None})
    assert second.created and second.lead_id != first.lead_id
    with ws.reader() as conn:
        pairs = conn.execute(select(match_pairs)).all()
    assert [(p.lead_id, p.other_lead_id, p.status, p.found_by) for p in pairs] == [
        (first.lead_id, second.lead_id, "open", "capture")
    ]
    assert 0.8 <= pairs[0].probability < 0.99
    assert pairs[0].evidence["name"]["level"] == "exact" and pairs[0].evidence["email"]["weight"] < 0


def test_no_usable_identifier_is_captured_but_never_merged(ws: Workspace) -> None:
    capture(ws, {"first_name": "Bea", "last_name": "Berg", "phone": "+49 221 1234567", "city": "Köln", "country": "DE"})
    lone = capture(ws, {"first_name": "Bea", "last_name": "Berg", "city": "Köln"})
    assert lone.created
    assert live_leads(ws) == 2


def test_candidates_come_from_the_blocking_index_only(ws: Workspace) -> None:
    first = capture(ws, ADA)
    with ws.reader() as conn:
        keys = conn.execute(
            select(func.count()).select_from(lead_match_keys).where(lead_match_keys.c.lead_id == first.lead_id)
        ).scalar_one()
    assert keys >= 4
    with ws.transaction() as conn:
        conn.execute(delete(lead_match_keys))
    # without its keys the lead cannot be found, however similar (no scan of the leads table)
    again = capture(ws, {**ADA, "email": "ada.l@gmail.com"})
    assert again.created


def test_merge_moves_everything_and_unmerge_restores_both_exactly(ws: Workspace, clock: object) -> None:
    a = capture(ws, {**ADA, "consent": {"email": True}})
    b = capture(
        ws,
        {
            "email": "countess@lovelace.example",
            "first_name": "Augusta Ada",
            "last_name": "King",
            "title": "Mathematician",
            "source": "referral",
            "consent": {"email": False},
        },
    )
    with ws.transaction() as conn:
        record_activity(
            ws, conn, Activity(type="page_view", lead_id=b.lead_id, occurred_at=T0, data={"url": "/pricing"})
        )
        opp = create_opportunity(ws, conn, lead_id=b.lead_id, name="Engine", amount=Decimal("1000"))
    with ws.reader() as conn:
        before_a, before_b = get_lead(conn, a.lead_id), get_lead(conn, b.lead_id)
        events_b = {e["id"] for e in ev.for_lead(conn, b.lead_id)}

    with ws.transaction() as conn:
        out = merge_leads(ws, conn, a.lead_id, b.lead_id, actor="test", reason="same person")
    with ws.reader() as conn:
        survivor, merged = get_lead(conn, a.lead_id), get_lead(conn, b.lead_id)
        moved = {e["id"] for e in ev.for_lead(conn, a.lead_id)}
        opp_lead = conn.execute(select(opportunities.c.lead_id).where(opportunities.c.id == opp)).scalar_one()
        merge_event = ev.for_lead(conn, a.lead_id, types=[LEAD_MERGED])[0]
    assert merged["merged_into_id"] == a.lead_id
    assert events_b <= moved and opp_lead == a.lead_id
    assert survivor["consent_email"] is False  # the most restrictive choice
    assert survivor["title"] == "Mathematician"  # only value
    assert survivor["email"] == "countess@lovelace.example"  # most recent non-empty (the default rule)
    assert survivor["source"] == "webinar"  # the first touch keeps its attribution
    assert merge_event["data"]["merge_id"] == out["merge_id"] and "email" in merge_event["personal"]["after"]
    assert live_leads(ws) == 1
    with ws.reader() as conn:
        volume = compute(ws, conn, "lead_volume", MetricQuery(start=T0.date(), end=T0.date().replace(day=28)))
    assert sum(r["value"] for r in volume["rows"]) == 1  # one person, counted once

    with ws.transaction() as conn:
        unmerge_leads(ws, conn, b.lead_id, actor="test")
    with ws.reader() as conn:
        after_a, after_b = get_lead(conn, a.lead_id), get_lead(conn, b.lead_id)
        back = {e["id"] for e in ev.for_lead(conn, b.lead_id)}
        opp_lead = conn.execute(select(opportunities.c.lead_id).where(opportunities.c.id == opp)).scalar_one()
    assert after_a == before_a and after_b == before_b
    assert events_b <= back and opp_lead == b.lead_id
    assert live_leads(ws) == 2


def test_unmerge_of_a_lead_that_is_not_merged_is_an_error(ws: Workspace) -> None:
    a = capture(ws, ADA)
    with ws.transaction() as conn, pytest.raises(Conflict, match="not merged"):
        unmerge_leads(ws, conn, a.lead_id, actor="test")
    b = capture(ws, {"email": "x@y.example", "first_name": "X"})
    with ws.transaction() as conn:
        merge_leads(ws, conn, a.lead_id, b.lead_id, actor="test")
    with ws.transaction() as conn, pytest.raises(Conflict, match="already merged"):
        merge_leads(ws, conn, a.lead_id, b.lead_id, actor="test")


def test_a_merged_lead_is_no_longer_matched(ws: Workspace) -> None:
    a = capture(ws, ADA)
    b = capture(ws, {"email": "grace@navy.example", "first_name": "Grace", "last_name": "Hopper"})
    with ws.transaction() as conn:
        merge_leads(ws, conn, a.lead_id, b.lead_id, actor="test")
    again = capture(ws, {"email": "grace@navy.example", "first_name": "Grace", "last_name": "Hopper"})
    assert again.lead_id == a.lead_id  # the survivor holds the mailbox now
    with ws.reader() as conn:
        n = conn.execute(
            select(func.count()).select_from(lead_events).where(lead_events.c.lead_id == b.lead_id)
        ).scalar_one()
    assert n == 1  # only the lead_merged_into marker stays on the merged lead


def test_the_email_and_id_of_a_merged_lead_still_find_the_person(ws: Workspace) -> None:
    old = capture(ws, {"email": "ada@home.example", "first_name": "Ada", "last_name": "Lovelace"})
    new = capture(ws, {"email": "ada@analytical.example", "first_name": "Ada", "last_name": "King"})
    third = capture(ws, {"email": "countess@analytical.example", "first_name": "Augusta", "last_name": "King"})
    with ws.transaction() as conn:
        merge_leads(ws, conn, new.lead_id, old.lead_id, actor="test")  # the survivor keeps its own email
        merge_leads(ws, conn, third.lead_id, new.lead_id, actor="test")  # and is merged in turn
    with ws.reader() as conn:
        assert get_lead(conn, third.lead_id)["email"] == "countess@analytical.example"
    again = capture(ws, {"email": "ADA@home.example", "city": "London"})
    assert again.lead_id == third.lead_id and not again.created  # through both merges
    own = capture(ws, {"email": "countess@analytical.example"})  # the survivor kept its own address
    assert own.lead_id == third.lead_id and not own.created
    assert live_leads(ws) == 1
    with ws.transaction() as conn:
        by_email = record_event(ws, conn, EventIn(type="email_replied", email="ada@home.example"), actor="test")
        by_id = record_event(ws, conn, EventIn(type="call", lead_id=old.lead_id, direction="outbound"), actor="test")
    assert by_email.lead_id == by_id.lead_id == third.lead_id
    with ws.reader() as conn:
        on_old = conn.execute(
            select(lead_events.c.type).where(lead_events.c.lead_id == old.lead_id, lead_events.c.type == "call")
        ).all()
    assert on_old == []
    with ws.transaction() as conn, pytest.raises(InvalidInput) as refused:
        record_event(
            ws, conn, EventIn(type="referral", lead_id=third.lead_id, referred_lead_id=old.lead_id), actor="test"
        )
    assert refused.value.problems[0].field == "referred_lead_id"
    other = capture(ws, {"email": "babbage@analytical.example"})
    with ws.transaction() as conn, pytest.raises(InvalidInput) as mixed:
        record_event(ws, conn, EventIn(type="call", lead_id=other.lead_id, email="ada@home.example"), actor="test")
    assert mixed.value.problems[0].message == f"belongs to lead {third.lead_id}, not to lead {other.lead_id}"


FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "John",
    "Margaret",
    "Dennis",
    "Ken",
    "Bjarne",
    "Guido",
    "Linus",
    "Frances",
    "Radia",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "McCarthy",
    "Hamilton",
    "Ritchie",
    "Thompson",
    "Stroustrup",
    "Rossum",
    "Torvalds",
    "Allen",
    "Perlman",
    "Lamport",
    "Hoare",
    "Wirth",
    "Milner",
    "Goldwasser",
    "Wilson",
    "Lamarr",
    "Johnson",
    "Easley",
    "Sammet",
]
TRADES = ["Compilers", "Kernels", "Networks", "Databases", "Graphics", "Robotics", "Storage", "Security"]


def _person(i: int, email: str) -> dict:
    """Distinct people: no two share a name, a phone or a company."""
    first, last = FIRST[i % len(FIRST)], LAST[i // len(FIRST) % len(LAST)]
    return {
        "email": email,
        "first_name": first,
        "last_name": last,
        "phone": f"+1 415 555 {1000 + i:04d}",
        "company": f"{last} {first} {TRADES[i % len(TRADES)]}",
        "country": "US",
    }


def test_a_returning_person_in_the_same_batch_is_recognised(ws: Workspace) -> None:
    """The second submission is matched against the lead the first one created moments before,
    in the same transaction, as it would be one batch later."""
    region = ws.config.workspace.default_region
    now = ws.clock.now()
    submissions = [ADA, {**ADA, "email": "ada.l@gmail.com", "source": "linkedin_ads"}]
    with ws.transaction() as conn:
        results = process_many(ws, conn, [prepare(s, default_region=region, now=now) for s in submissions])
    assert results[0].created and not results[1].created
    assert results[1].lead_id == results[0].lead_id
    assert live_leads(ws) == 1


def test_a_big_batch_recognises_every_returning_person(ws: Workspace) -> None:
    """Each submission of a 375-row batch (an import) is compared with its own candidates: the
    batch does not share one small candidate budget (300 rows for the whole batch, before)."""
    region = ws.config.workspace.default_region
    now = ws.clock.now()
    people = [_person(i, f"person.{i}@compiler.example") for i in range(len(FIRST) * len(LAST))]
    with ws.transaction() as conn:
        first = process_many(ws, conn, [prepare(p, default_region=region, now=now) for p in people])
    assert all(r.created for r in first)
    again = [{**p, "email": f"hopper.{i}@mail.example"} for i, p in enumerate(people)]
    with ws.transaction() as conn:
        second = process_many(ws, conn, [prepare(p, default_region=region, now=now) for p in again])
    assert [r.created for r in second] == [False] * len(people)
    assert [r.lead_id for r in second] == [r.lead_id for r in first]
    assert live_leads(ws) == len(people)
