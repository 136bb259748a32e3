"""The quality review queue and product-qualified leads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.db.tables import accounts, review_items
from leadflow.errors import Conflict, InvalidInput
from leadflow.leads.service import get_lead
from leadflow.pipeline import Activity, process, record_activities
from leadflow.qualify.review import decide, list_items
from leadflow.workspace import Workspace, starter_config_text
from tests.conftest import LiveServer, open_workspace

# director 20 + 11-50 employees 0 + software 10 + DE 5 + demo 20 = 55: just under the MQL bar (60)
BORDERLINE = {
    "email": "b@mittelstand.de",
    "first_name": "Bea",
    "last_name": "Berg",
    "company": "Mittelstand",
    "title": "IT Director",
    "industry": "Software",
    "employees": 30,
    "country": "DE",
    "capture_context": "demo",
}


def test_borderline_lead_is_queued_once(ws: Workspace, clock: FrozenClock) -> None:
    with ws.transaction() as conn:
        lead = process(ws, conn, BORDERLINE)
    assert lead.score == 55 and lead.stage == "prospect"
    with ws.transaction() as conn:
        process(ws, conn, {"email": "b@mittelstand.de", "city": "Köln"})  # +5: now 60, an MQL; no second item
    with ws.reader() as conn:
        items = list_items(conn)
        history = [e["type"] for e in ev.for_lead(conn, lead.lead_id)]
    assert len(items) == 1
    assert (items[0]["rule"], items[0]["reason"], items[0]["evidence"]["score"]) == (
        "borderline",
        "score just below the MQL threshold",
        55,
    )
    assert ev.REVIEW_OPENED in history


def test_decisions_move_the_lead_and_are_kept_as_labels(live: LiveServer, ws: Workspace) -> None:
    with ws.transaction() as conn:
        a = process(ws, conn, BORDERLINE)
        b = process(ws, conn, {**BORDERLINE, "email": "c@mittelstand.de"})
    items = live.client.get("/api/v1/reviews").json()["items"]
    by_lead = {i["lead_id"]: i["id"] for i in items}
    r = live.client.post(
        f"/api/v1/reviews/{by_lead[a.lead_id]}/decision",
        json={"decision": "accept", "reason": "real project, budget confirmed"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"id": by_lead[a.lead_id], "status": "accepted", "lead_id": a.lead_id, "stage": "mql"}
    r = live.client.post(
        f"/api/v1/reviews/{by_lead[b.lead_id]}/decision",
        json={"decision": "reject", "reason": "student project"},
    )
    assert r.json()["stage"] == "disqualified"
    # deciding twice is a conflict; bad input is 422 naming the field
    again = live.client.post(
        f"/api/v1/reviews/{by_lead[a.lead_id]}/decision", json={"decision": "reject", "reason": "x"}
    )
    assert again.status_code == 409
    bad = live.client.post(f"/api/v1/reviews/{by_lead[a.lead_id]}/decision", json={"decision": "maybe", "reason": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "decision"
    # the labels: decisions with reasons, on the items and as events
    labelled = live.client.get("/api/v1/reviews", params={"status": "all"}).json()["items"]
    assert sorted((i["status"], i["decision_reason"]) for i in labelled) == [
        ("accepted", "real project, budget confirmed"),
        ("rejected", "student project"),
    ]
    with ws.reader() as conn:
        decided = [e for e in ev.for_lead(conn, a.lead_id) if e["type"] == ev.REVIEW_DECIDED]
    assert decided[0]["data"]["label"] == 1 and decided[0]["data"]["decision"] == "accept"


def test_decision_needs_a_reason(sqlite_ws: Workspace) -> None:
    with sqlite_ws.transaction() as conn:
        process(sqlite_ws, conn, BORDERLINE)
        [item] = list_items(conn)
    with pytest.raises(InvalidInput) as caught, sqlite_ws.transaction() as conn:
        decide(sqlite_ws, conn, item["id"], "accept", reason="  ", actor="t")
    assert caught.value.problems[0].field == "reason"
    with sqlite_ws.transaction() as conn:
        decide(sqlite_ws, conn, item["id"], "accept", reason="ok", actor="t")
    with pytest.raises(Conflict), sqlite_ws.transaction() as conn:
        decide(sqlite_ws, conn, item["id"], "accept", reason="again", actor="t")


def usage(lead_id: int, at, feature: str) -> Activity:  # type: ignore[no-untyped-def]
    return Activity(type="product_usage", lead_id=lead_id, occurred_at=at, actor="product", data={"feature": feature})


def test_product_qualified_lead_and_account(ws: Workspace, clock: FrozenClock) -> None:
    """PQL: 5 usage events in 14 days with 2 distinct features. PQA: 10 events from 2 people of one account."""
    with ws.transaction() as conn:
        ada = process(ws, conn, {"email": "ada@engines.example", "company": "Engines"})
        bob = process(ws, conn, {"email": "bob@engines.example", "company": "Engines"})
        old = process(ws, conn, {"email": "old@other.example"})
    with ws.reader() as conn:
        assert get_lead(conn, ada.lead_id)["account_id"] == get_lead(conn, bob.lead_id)["account_id"] is not None
    t = clock.now()
    with ws.transaction() as conn:
        # old usage falls out of the 14-day window: only 4 of these count for "old"
        record_activities(
            ws,
            conn,
            [
                usage(old.lead_id, t + timedelta(days=d), f)
                for d, f in [(0, "a"), (20, "b"), (21, "a"), (22, "c"), (23, "a")]
            ],
        )
        record_activities(ws, conn, [usage(ada.lead_id, t + timedelta(hours=h), "dashboards") for h in range(4)])
    with ws.reader() as conn:
        assert get_lead(conn, old.lead_id)["pql"] is False
        assert get_lead(conn, ada.lead_id)["pql"] is False  # 4 events, one feature
    with ws.transaction() as conn:
        results = record_activities(ws, conn, [usage(ada.lead_id, t + timedelta(hours=5), "alerts")])
    with ws.reader() as conn:
        row = get_lead(conn, ada.lead_id)
        reached = [e for e in ev.for_lead(conn, ada.lead_id) if e["type"] == ev.PQL_REACHED]
    assert row["pql"] is True and len(reached) == 1
    assert reached[0]["data"] == {"events": 5, "distinct": 2}
    assert row["score_detail"]["lead_engagement"] == {"product_qualified": 15}
    assert results[0].score_changed
    # the account: 5 from ada plus 5 from bob = 10 events by 2 people
    with ws.transaction() as conn:
        record_activities(ws, conn, [usage(bob.lead_id, t + timedelta(hours=6 + h), "sharing") for h in range(5)])
    with ws.reader() as conn:
        assert get_lead(conn, bob.lead_id)["pqa"] is True
        assert get_lead(conn, ada.lead_id)["pqa"] is True
        assert conn.execute(select(accounts.c.pqa).where(accounts.c.id == row["account_id"])).scalar_one() is True
        pqa = [e for e in ev.for_lead(conn, bob.lead_id) if e["type"] == ev.PQA_REACHED]
    assert pqa[0]["data"]["people"] == 2 and pqa[0]["data"]["events"] == 10


def test_free_mail_links_no_account(ws: Workspace) -> None:
    with ws.transaction() as conn:
        lead = process(ws, conn, {"email": "someone@gmail.com", "company": "Own Shop"})
    with ws.reader() as conn:
        assert get_lead(conn, lead.lead_id)["account_id"] is None
        assert conn.execute(select(review_items)).all() == []


def test_competitor_is_flagged_and_penalised(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    ws = open_workspace(tmp_path / "c", db_url, clock, starter_config_text())
    with ws.transaction() as conn:
        lead = process(
            ws, conn, {"email": "spy@datadash.example", "title": "CEO", "employees": 300, "industry": "software"}
        )
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
    assert row["is_competitor"] is True
    assert "competitor" in row["score_detail"]["fit"]
    ws.close()
