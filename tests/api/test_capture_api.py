"""Batch capture, activity, and sales records over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events, opportunities, revenue, spend
from leadflow.workspace import Workspace
from tests.conftest import LiveServer, count


def test_batch_gives_each_lead_its_own_result(live: LiveServer, ws: Workspace) -> None:
    batch = {
        "leads": [
            {"email": "a@batch.example", "company": "A"},
            {"email": "not an email"},
            {"email": "b@batch.example", "title": "CTO", "employees": 400},
            {"email": "A@batch.example", "city": "Berlin"},
            {"email": "c@batch.example", "shoe_size": 43},
        ]
    }
    r = live.client.post("/api/v1/leads/batch", json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["updated"], body["rejected"]) == (2, 1, 2)
    statuses = [(x["index"], x["status"]) for x in body["results"]]
    assert statuses == [(0, "created"), (1, "rejected"), (2, "created"), (3, "updated"), (4, "rejected")]
    assert body["results"][1]["errors"][0]["field"] == "email"
    assert body["results"][4]["errors"][0] == {
        "field": "shoe_size",
        "message": "unknown field; remove it or check its spelling",
    }
    assert body["results"][3]["lead_id"] == body["results"][0]["lead_id"]
    assert count(ws, "leads") == 2


def test_batch_limits(live: LiveServer) -> None:
    assert live.client.post("/api/v1/leads/batch", json={"leads": []}).status_code == 422
    too_many = {"leads": [{"email": f"p{i}@x.example"} for i in range(1001)]}
    r = live.client.post("/api/v1/leads/batch", json=too_many)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "leads"


def test_anonymous_page_views_join_the_lead(live: LiveServer, ws: Workspace) -> None:
    for page in ("/", "/pricing", "/demo"):
        r = live.client.post(
            "/api/v1/events",
            json={
                "type": "page_view",
                "visitor_id": "v-77",
                "url": f"https://acme.example{page}",
                "utm_source": "google",
                "utm_medium": "cpc",
            },
        )
        assert r.status_code == 201 and r.json()["anonymous"] is True
    lead = live.client.post("/api/v1/leads", json={"email": "v@anon.example", "visitor_id": "v-77"}).json()["lead"]
    assert lead["score"]["engagement"] == 13  # three page views (3) and the pricing page (10)
    r = live.client.post(
        "/api/v1/events", json={"type": "page_view", "visitor_id": "v-77", "url": "https://acme.example/pricing"}
    )
    assert r.json() == {
        "lead_id": lead["id"],
        "visitor_id": "v-77",
        "anonymous": False,
        "score": 24,
        "stage": "prospect",
    }
    views = [e for e in live.client.get(f"/api/v1/leads/{lead['id']}").json()["events"] if e["type"] == "page_view"]
    assert len(views) == 4


def test_activity_by_email_rescores(live: LiveServer, ws: Workspace) -> None:
    lead = live.client.post("/api/v1/leads", json={"email": "o@open.example"}).json()["lead"]
    r = live.client.post(
        "/api/v1/events",
        json={
            "type": "email_clicked",
            "email": "O@open.example",
            "url": "https://acme.example/pricing",
            "data": {"campaign": "nurture_1"},
        },
    )
    assert r.status_code == 201 and r.json()["score"] == 3
    r = live.client.post(
        "/api/v1/events",
        json={"type": "call", "lead_id": lead["id"], "direction": "outbound", "text": "left a voicemail"},
    )
    assert r.status_code == 201
    events = live.client.get(f"/api/v1/leads/{lead['id']}").json()["events"]
    call = next(e for e in events if e["type"] == "call")
    assert call["personal"] == {"text": "left a voicemail"} and "voicemail" not in str(call["data"])
    assert any(e["type"] == "sla_stopped" for e in events)


def test_bad_activity_is_4xx_and_writes_nothing(live: LiveServer, ws: Workspace) -> None:
    before = count(ws, "lead_events")
    cases = [
        ({"type": "email_opend", "lead_id": 1}, 422, "type"),
        ({"type": "email_opened"}, 422, "(body)"),
        ({"type": "page_view", "visitor_id": "v"}, 422, "(body)"),
        ({"type": "email_opened", "email": "nobody@none.example"}, 422, "email"),
        ({"type": "email_opened", "visitor_id": "stranger"}, 422, "visitor_id"),
        ({"type": "call", "lead_id": 424242}, 404, None),
        ({"type": "call", "lead_id": 1, "occurred_at": "2026-01-01T10:00:00"}, 422, "occurred_at"),
    ]
    for body, status, field in cases:
        r = live.client.post("/api/v1/events", json=body)
        assert r.status_code == status, (body, r.text)
        if field:
            assert r.json()["errors"][0]["field"] == field, (body, r.json())
    assert count(ws, "lead_events") == before


def test_referral_links_the_referred_lead(live: LiveServer) -> None:
    referrer = live.client.post("/api/v1/leads", json={"email": "fan@customer.example"}).json()["lead"]
    friend = live.client.post("/api/v1/leads", json={"email": "friend@new.example", "source": "referral"}).json()[
        "lead"
    ]
    r = live.client.post(
        "/api/v1/events", json={"type": "referral", "lead_id": referrer["id"], "referred_lead_id": friend["id"]}
    )
    assert r.status_code == 201
    missing = live.client.post(
        "/api/v1/events", json={"type": "referral", "lead_id": referrer["id"], "referred_lead_id": 999999}
    )
    assert missing.status_code == 404


def test_opportunity_win_records_revenue(live: LiveServer, ws: Workspace, clock: FrozenClock) -> None:
    lead = live.client.post("/api/v1/leads", json={"email": "buyer@corp.example", "company": "Corp"}).json()["lead"]
    r = live.client.post(
        "/api/v1/opportunities",
        json={"name": "Corp deal", "lead_id": lead["id"], "amount": "24000.50", "external_id": "opp-1"},
    )
    assert r.status_code == 201
    opp = r.json()["id"]
    assert live.client.post("/api/v1/opportunities", json={"name": "again", "external_id": "opp-1"}).status_code == 409
    clock.advance(days=30)
    assert (
        live.client.post(f"/api/v1/opportunities/{opp}/close", json={"won": False}).status_code == 422
    )  # a loss needs a reason
    r = live.client.post(f"/api/v1/opportunities/{opp}/close", json={"won": True})
    assert r.status_code == 200
    assert live.client.post(f"/api/v1/opportunities/{opp}/close", json={"won": True}).status_code == 409
    with ws.reader() as conn:
        assert conn.execute(select(revenue.c.amount, revenue.c.kind)).one() == (Decimal("24000.50"), "new")
        assert conn.execute(select(opportunities.c.status)).scalar_one() == "won"
    assert live.client.get(f"/api/v1/leads/{lead['id']}").json()["stage"] == "customer"
    r = live.client.post(
        "/api/v1/revenue",
        json={
            "amount": "2000",
            "recognized_at": (clock.now() + timedelta(days=30)).isoformat(),
            "lead_id": lead["id"],
            "kind": "recurring",
        },
    )
    assert r.status_code == 201
    with ws.reader() as conn:
        assert conn.execute(select(func.sum(revenue.c.amount))).scalar_one() == Decimal("26000.50")
        assert conn.execute(select(func.count()).where(lead_events.c.type == "revenue_recorded")).scalar_one() == 1


def test_spend_and_revenue_validation(live: LiveServer, ws: Workspace) -> None:
    ok = live.client.post(
        "/api/v1/spend",
        json={
            "source": "google_ads",
            "campaign": "spring",
            "period_start": "2026-03-01",
            "period_end": "2026-04-01",
            "amount": 1250.5,
        },
    )
    assert ok.status_code == 201 and ok.json()["amount"] == {"amount": "1250.50", "currency": "EUR"}
    bad = live.client.post(
        "/api/v1/spend",
        json={"source": "google_ads", "period_start": "2026-04-01", "period_end": "2026-03-01", "amount": 5},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "period_end"
    negative = live.client.post(
        "/api/v1/spend", json={"source": "x", "period_start": "2026-03-01", "period_end": "2026-04-01", "amount": -5}
    )
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "amount"
    orphan = live.client.post("/api/v1/revenue", json={"amount": "10", "recognized_at": "2026-03-01T00:00:00Z"})
    assert orphan.status_code == 422 and orphan.json()["errors"][0]["field"] == "lead_id"
    with ws.reader() as conn:
        assert conn.execute(select(func.count()).select_from(spend).where(spend.c.origin == "api")).scalar_one() == 1


def test_capture_context_requires_its_fields(live: LiveServer, ws: Workspace) -> None:
    r = live.client.post("/api/v1/leads", json={"email": "t@trial.example", "capture_context": "trial"})
    assert r.status_code == 422
    assert sorted(e["field"] for e in r.json()["errors"]) == ["company", "custom.use_case", "title"]
    ok = live.client.post(
        "/api/v1/leads",
        json={
            "email": "t@trial.example",
            "capture_context": "trial",
            "company": "T",
            "title": "CTO",
            "custom": {"use_case": "forecasting"},
        },
    )
    assert ok.status_code == 201
    assert count(ws, "leads") == 1


def test_consent_with_its_wording_is_an_event(live: LiveServer) -> None:
    lead = live.client.post(
        "/api/v1/leads",
        json={
            "email": "c@consent.example",
            "consent": {"email": True, "sms": False, "lawful_basis": "consent", "wording": "Send me product news"},
        },
    ).json()["lead"]
    assert lead["consent"] == {"email": True, "phone": None, "sms": False, "do_not_contact": False}
    [event] = [
        e for e in live.client.get(f"/api/v1/leads/{lead['id']}").json()["events"] if e["type"] == "consent_changed"
    ]
    assert event["data"] == {
        "email": True,
        "sms": False,
        "do_not_contact": False,
        "lawful_basis": "consent",
        "wording": "Send me product news",
        "via": "capture",
    }
    assert event["occurred_at"] == lead["created_at"]


def test_source_from_rules_utm_and_referrer(live: LiveServer) -> None:
    def source(body: dict) -> tuple[str | None, str | None, str | None]:
        lead = live.client.post("/api/v1/leads", json=body).json()["lead"]["attribution"]
        return lead["source"], lead["medium"], lead["campaign"]

    assert source({"email": "1@s.example", "utm_source": "adwords", "utm_campaign": "Brand"}) == (
        "google_ads",
        "cpc",
        "brand",
    )
    assert source({"email": "2@s.example", "referrer": "https://www.linkedin.com/feed"}) == (
        "linkedin_ads",
        "paid_social",
        None,
    )
    assert source({"email": "3@s.example", "utm_source": "Bing", "utm_medium": "CPC"}) == ("bing", "cpc", None)
    assert source({"email": "4@s.example", "referrer": "https://duckduckgo.com/?q=x"}) == (
        "organic_search",
        "organic",
        None,
    )
    assert source({"email": "5@s.example", "source": "Partner", "utm_source": "google"}) == ("partner", None, None)


def test_throwaway_addresses_are_flagged_and_scored_down(live: LiveServer) -> None:
    lead = live.client.post("/api/v1/leads", json={"email": "x@mailinator.com", "company": "Real Co"}).json()["lead"]
    rules = {line["rule"]: line["points"] for line in lead["score"]["explanation"]}
    assert rules.get("throwaway_email") == -30
