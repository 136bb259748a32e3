"""A person's data on request, over real HTTP: export everything, erase it everywhere."""

from __future__ import annotations

import json

from sqlalchemy import select

from leadflow.db.tables import lead_events, notifications
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
