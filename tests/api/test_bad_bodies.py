"""Bodies that are not what the API reads, over real HTTP: each a 4xx naming the body or the
field, and nothing written."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select

from leadflow.db.tables import leads
from leadflow.workspace import Workspace
from tests.conftest import LiveServer, count


def test_malformed_json_says_where_it_breaks(live: LiveServer, ws: Workspace) -> None:
    r = live.client.post("/api/v1/leads", content=b'{"email":', headers={"content-type": "application/json"})
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["field"] == "(body)" and "at character 9" in error["message"]
    deep = b"[" * 5000 + b"]" * 5000
    r = live.client.post("/api/v1/leads", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "(body)"
    latin1 = '{"email":"zoé@corp.example"}'.encode("latin-1")
    r = live.client.post("/api/v1/leads", content=latin1, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["errors"][0]["message"]
    assert count(ws, "leads") == 0


def test_api_bodies_must_be_json(live: LiveServer, ws: Workspace) -> None:
    body = b'{"email":"plain@corp.example"}'
    r = live.client.post("/api/v1/leads", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = live.client.post("/api/v1/leads", data={"email": "form@corp.example"})
    assert r.status_code == 415
    r = live.client.post("/api/v1/leads", content=body, headers={"content-type": ""})  # none: not JSON either
    assert r.status_code == 415
    assert count(ws, "leads") == 0
    r = live.client.post("/api/v1/leads", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


def test_nul_only_where_the_encoding_writes_one(live: LiveServer, ws: Workspace) -> None:
    nul = live.client.post(
        "/api/v1/leads",
        content=b'{"email":"n@corp.example","notes":"a\\u0000b"}',
        headers={"content-type": "application/json"},
    )
    assert nul.status_code == 422 and "NUL" in nul.json()["errors"][0]["message"]
    assert count(ws, "leads") == 0
    # "%00" is text in JSON, and an escaped backslash before u0000 is the text \u0000
    r = live.client.post("/api/v1/leads", json={"email": "p@corp.example", "notes": "grew 100%00 this year, \\u0000"})
    assert r.status_code == 201, r.text
    with ws.reader() as conn:
        notes = conn.execute(select(leads.c.notes).where(leads.c.id == r.json()["lead"]["id"])).scalar_one()
    assert notes == "grew 100%00 this year, \\u0000"


def test_custom_values_every_database_can_store(live: LiveServer, ws: Workspace) -> None:
    too_big = live.client.post("/api/v1/leads", json={"email": "big@corp.example", "custom": {"n": 2**64}})
    assert too_big.status_code == 422
    assert too_big.json()["errors"] == [
        {"field": "custom.n", "message": "must be a whole number between -2^63 and 2^63-1"}
    ]
    for raw in (b"1e400", b"NaN", b"-Infinity"):
        body = b'{"email":"inf@corp.example","custom":{"x":' + raw + b"}}"
        r = live.client.post("/api/v1/leads", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, raw
        assert r.json()["errors"][0] == {"field": "custom.x", "message": "must be a finite number"}
    event = live.client.post("/api/v1/events", json={"type": "call", "lead_id": 1, "data": {"seconds": -(2**70)}})
    assert event.status_code == 422 and event.json()["errors"][0]["field"] == "data.seconds"
    assert count(ws, "leads") == 0
    batch = live.client.post(
        "/api/v1/leads/batch",
        json={
            "leads": [
                {"email": "ok@corp.example", "custom": {"n": 2**63 - 1}},
                {"email": "no@corp.example", "custom": {"n": 2**63}},
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["created", "rejected"]
    assert results[1]["errors"][0]["field"] == "custom.n"
    assert count(ws, "leads") == 1


def test_an_unexpected_failure_is_a_500_that_logs_no_personal_data(
    live: LiveServer, ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    with ws.engine.begin() as conn:  # the database breaks under the running server (mended below)
        conn.exec_driver_sql("ALTER TABLE lead_match_keys RENAME TO lead_match_keys_away")
    server_log = logging.getLogger("uvicorn")  # uvicorn's loggers do not propagate to the root
    server_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG):
            r = live.client.post(
                "/api/v1/leads", json={"email": "secret.person@private.example", "first_name": "Secretia"}
            )
            deadline = time.monotonic() + 2  # a server logs a request's exception after its response
            while time.monotonic() < deadline and not any(rec.name.startswith("uvicorn") for rec in caplog.records):
                time.sleep(0.05)
    finally:
        server_log.removeHandler(caplog.handler)
        with ws.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE lead_match_keys_away RENAME TO lead_match_keys")
    assert r.status_code == 500 and r.json()["title"] == "Internal error"
    logged = "\n".join(f"{rec.getMessage()} {rec.exc_text or ''}" for rec in caplog.records)
    assert "unexpected" in logged and "POST /api/v1/leads" in logged
    assert "secret.person" not in logged and "Secretia" not in logged and "Traceback" not in logged
    assert all(rec.exc_info is None for rec in caplog.records)
