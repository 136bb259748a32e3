"""API keys (hashed, scoped) and Idempotency-Key, over real HTTP."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from leadflow.access.keys import revoke_key
from leadflow.db.tables import api_keys
from leadflow.workspace import Workspace
from tests.conftest import LiveServer, count

LEAD = {"email": "kay@keys.example", "company": "Keys Ltd"}


def test_keys_are_required_checked_and_scoped(live: LiveServer, ws: Workspace) -> None:
    r = live.anonymous.post("/api/v1/leads", json=LEAD)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "API key is required" in r.json()["detail"]
    assert (
        live.anonymous.post("/api/v1/leads", json=LEAD, headers={"Authorization": "Bearer lf_nope_nope"}).status_code
        == 401
    )
    reader = live.create_key("dashboard", ["leads:read"])
    r = live.anonymous.post("/api/v1/leads", json=LEAD, headers={"X-API-Key": reader})
    assert r.status_code == 403 and "leads:write" in r.json()["detail"]
    assert count(ws, "leads") == 0
    writer = live.create_key("website", ["leads:write"])
    r = live.anonymous.post("/api/v1/leads", json=LEAD, headers={"X-API-Key": writer})
    assert r.status_code == 201
    # the actor on the events is the key's name, never the key
    lead = live.client.get(f"/api/v1/leads/{r.json()['lead']['id']}").json()
    assert {e["actor"] for e in lead["events"]} == {"api:website"}


def test_keys_are_stored_hashed_and_can_be_revoked(live: LiveServer, ws: Workspace) -> None:
    key = live.create_key("partner", ["leads:write"])
    with ws.reader() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.name == "partner")).one()
    assert key not in str(dict(row._mapping))
    assert row.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    with ws.transaction() as conn:
        revoke_key(conn, "partner", ws.clock.now())
    live.server.config.app.state.keys._entries.clear()  # revocation is honoured within seconds; skip the wait
    assert live.anonymous.post("/api/v1/leads", json=LEAD, headers={"X-API-Key": key}).status_code == 401


def test_idempotency_key_replays_the_first_response(live: LiveServer, ws: Workspace) -> None:
    headers = {"Idempotency-Key": "order-7781"}
    first = live.client.post("/api/v1/leads", json=LEAD, headers=headers)
    again = live.client.post("/api/v1/leads", json=LEAD, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(ws, "leads") == 1
    events = count(ws, "lead_events")
    # a new key is a new request: the same person again is recognised (200, updated)
    third = live.client.post("/api/v1/leads", json=LEAD, headers={"Idempotency-Key": "order-7782"})
    assert third.status_code == 200 and third.json()["created"] is False
    assert count(ws, "lead_events") > events


def test_idempotency_key_with_other_parameters_is_refused(live: LiveServer, ws: Workspace) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert live.client.post("/api/v1/leads", json=LEAD, headers=headers).status_code == 201
    r = live.client.post("/api/v1/leads", json={**LEAD, "company": "Other"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert count(ws, "leads") == 1


def test_failed_requests_are_not_remembered(live: LiveServer) -> None:
    headers = {"Idempotency-Key": "k-2"}
    assert live.client.post("/api/v1/leads", json={"email": "bad"}, headers=headers).status_code == 422
    assert live.client.post("/api/v1/leads", json=LEAD, headers=headers).status_code == 201


def test_idempotency_keys_expire_after_a_day(live: LiveServer, ws: Workspace, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from leadflow.api.idempotency import expire

    live.client.post("/api/v1/leads", json=LEAD, headers={"Idempotency-Key": "k-3"})
    clock.advance(timedelta(hours=25))
    with ws.transaction() as conn:
        assert expire(ws, conn) == 1
    r = live.client.post("/api/v1/leads", json={**LEAD, "company": "Changed"}, headers={"Idempotency-Key": "k-3"})
    assert r.status_code == 200  # treated as new: the same person, recognised
