"""A person's data on request, over real HTTP: export everything, erase it everywhere."""

from __future__ import annotations

import json

from sqlalchemy import select

from leadflow.db.tables import lead_events, lead_match_keys, notifications, visitors, web_sessions
from tests.conftest import LiveServer


def test_export_then_erase_leaves_no_personal_data_and_stops_contact(live: LiveServer) -> None:
    lead = {
        "email": "grace.hopper@gmail.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "phone": "+49 30 1234567",
        "company": "Navy Labs",
        "consent": {"email": True},
        "notes": "prefers mornings",
    }
    created = live.client.post("/api/v1/leads", json=lead)
    assert created.status_code == 201, created.text
    lead_id = created.json()["lead"]["id"]

    exported = live.client.get(f"/api/v1/leads/{lead_id}/export")
    assert exported.status_code == 200
    body = exported.json()
    assert body["lead"]["email"] == "grace.hopper@gmail.com" and body["lead"]["notes"] == "prefers mornings"
    assert any(e["type"] == "lead_created" for e in body["events"])
    with live.ws.reader() as conn:  # the owner was told about the lead: a notification is queued
        queued = conn.execute(select(notifications.c.status).where(notifications.c.lead_id == lead_id)).scalars().all()
    assert "pending" in queued

    rep = live.create_key("rep", ["leads:read", "leads:write"])
    denied = live.anonymous.post(
        f"/api/v1/leads/{lead_id}/erase", json={"reason": "asked"}, headers={"Authorization": f"Bearer {rep}"}
    )
    assert denied.status_code == 403 and "privacy" in denied.text
    missing = live.client.post(f"/api/v1/leads/{lead_id}/erase", json={})
    assert missing.status_code == 422 and "reason" in missing.text

    erased = live.client.post(f"/api/v1/leads/{lead_id}/erase", json={"reason": "request by email of 2026-11-20"})
    assert erased.status_code == 200, erased.text
    assert live.client.post(f"/api/v1/leads/{lead_id}/erase", json={"reason": "again"}).status_code == 409
    assert live.client.get("/api/v1/leads/999999/export").status_code == 404

    after = live.client.get(f"/api/v1/leads/{lead_id}/export").json()
    text = json.dumps(after)
    for value in ("grace", "Grace", "Hopper", "1234567", "prefers mornings"):
        assert value not in text, value
    assert after["lead"]["erased_at"] is not None and after["lead"]["do_not_contact"] is True
    assert after["lead"]["company"] == "Navy Labs"  # company data is not personal: metrics keep it
    assert after["events"][-1]["type"] == "lead_erased"
    with live.ws.reader() as conn:
        personal = conn.execute(select(lead_events.c.personal).where(lead_events.c.lead_id == lead_id)).scalars().all()
        statuses = (
            conn.execute(select(notifications.c.status).where(notifications.c.lead_id == lead_id)).scalars().all()
        )
    assert personal and all(p is None for p in personal)
    assert "pending" not in statuses and "cancelled" in statuses
    # activity for an erased lead is refused
    r = live.client.post("/api/v1/events", json={"type": "email_opened", "lead_id": lead_id})
    assert r.status_code in (404, 409, 422), r.text


def test_an_erase_retried_with_its_idempotency_key_replays_the_first_answer(live: LiveServer) -> None:
    lead_id = live.client.post("/api/v1/leads", json={"email": "retry@corp.example"}).json()["lead"]["id"]
    key = {"Idempotency-Key": "erase-retry-1"}
    first = live.client.post(f"/api/v1/leads/{lead_id}/erase", json={"reason": "asked"}, headers=key)
    assert first.status_code == 200, first.text
    again = live.client.post(f"/api/v1/leads/{lead_id}/erase", json={"reason": "asked"}, headers=key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = live.client.post(f"/api/v1/leads/{lead_id}/erase", json={"reason": "asked twice"}, headers=key)
    assert other.status_code == 422
    without = live.client.post(f"/api/v1/leads/{lead_id}/erase", json={"reason": "asked"})
    assert without.status_code == 409  # erased once only


ZED = {"email": "zed@quixcorp.example", "first_name": "Zebulon", "phone": "+14155550199", "visitor_id": "vis-zed"}


def test_erasing_a_merged_lead_erases_the_person_everywhere(live: LiveServer) -> None:
    from leadflow.jobs.worker import TASKS, run_task

    ws = live.ws
    first = live.client.post(
        "/api/v1/leads",
        json=ZED,
        headers={"Idempotency-Key": "k1"},
    )
    survivor = first.json()["lead"]["id"]
    live.client.post("/api/v1/events", json={"type": "page_view", "visitor_id": "vis-zed", "url": "https://q.example/"})
    merged = live.client.post(
        "/api/v1/leads",
        json={
            "email": "zquix.private@mailbox.example",
            "first_name": "Zebby",
            "phone": "+442079460321",
            "notes": "falconry",
        },
    ).json()["lead"]["id"]
    r = live.client.post(f"/api/v1/leads/{survivor}/merge", json={"other_lead_id": merged, "reason": "same person"})
    assert r.status_code == 200, r.text
    run_task(ws, TASKS["notify.send"])  # the owners' notices, written to the outbox
    assert ws.path is not None
    outbox = ws.path / "outbox"
    assert any("Zebulon" in f.read_text() for f in outbox.glob("*.eml"))

    erased = live.client.post(f"/api/v1/leads/{merged}/erase", json={"reason": "asked"})  # the merged-away id
    assert erased.status_code == 200, erased.text
    assert erased.json()["lead_id"] == survivor and sorted(erased.json()["leads"]) == sorted([survivor, merged])

    text = json.dumps(live.client.get(f"/api/v1/leads/{survivor}/export").json())
    for value in ("zed@", "Zebulon", "4155550199", "zquix", "Zebby", "2079460321", "falconry", "vis-zed"):
        assert value not in text, (value, text[max(0, text.find(value) - 300) : text.find(value) + 50])
    assert not any("Zebulon" in f.read_text() or "zed@" in f.read_text() for f in outbox.glob("*.eml"))
    with ws.reader() as conn:
        keys = conn.execute(select(lead_match_keys).where(lead_match_keys.c.lead_id.in_([survivor, merged]))).all()
        notices = conn.execute(select(notifications.c.subject, notifications.c.body)).all()
        browsers = conn.execute(select(visitors.c.id).where(visitors.c.id == "vis-zed")).scalars().all()
        sessions = conn.execute(select(web_sessions.c.visitor_id, web_sessions.c.lead_id)).all()
    assert keys == [] and notices and all(n.body == "" and n.subject == "erased" for n in notices)
    assert browsers == [] and [s.visitor_id[:7] for s in sessions] == ["erased-"]  # the session still counts
    # the old ids and details find nobody: their email is refused (suppressed), a page view from
    # their browser is a stranger's, and no replay gives back their old answer
    again = live.client.post("/api/v1/leads", json={"email": "zquix.private@mailbox.example"})
    assert again.status_code == 409 and [e["field"] for e in again.json()["errors"]] == ["email"], again.text
    view = live.client.post(
        "/api/v1/events", json={"type": "page_view", "visitor_id": "vis-zed", "url": "https://q.example/"}
    )
    assert view.json()["anonymous"] is True
    replay = live.client.post(
        "/api/v1/leads",
        json=ZED,
        headers={"Idempotency-Key": "k1"},
    )
    assert "idempotent-replayed" not in replay.headers and replay.status_code == 409
