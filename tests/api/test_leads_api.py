"""The API over real HTTP (uvicorn on a real port), on SQLite and PostgreSQL."""

from __future__ import annotations

from leadflow.workspace import Workspace
from tests.conftest import LiveServer, count

LEAD = {
    "email": "grace@navy.example",
    "first_name": "Grace",
    "last_name": "Hopper",
    "company": "Navy Labs",
    "title": "Director of Engineering",
    "employees": 800,
    "country": "US",
    "capture_context": "demo",
    "utm_source": "google",
}


def test_capture_returns_owner_stage_and_explained_score(live: LiveServer, ws: Workspace) -> None:
    r = live.client.post("/api/v1/leads", json=LEAD)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True
    lead = body["lead"]
    assert r.headers["location"] == f"/api/v1/leads/{lead['id']}"
    assert lead["assignment"]["owner"] == "ana"
    assert lead["stage"] == "mql"
    # director 20 + 201-1000 employees 15 + US 5 + asked for a demo 20
    assert lead["score"]["value"] == 60
    assert sum(line["points"] for line in lead["score"]["explanation"]) == 60
    assert lead["assignment"]["sla_policy"] == "warm"
    assert lead["contact"]["email"] == "grace@navy.example"
    assert lead["config_version"] == ws.version


def test_same_person_again_is_200_and_not_a_new_lead(live: LiveServer, ws: Workspace) -> None:
    first = live.client.post("/api/v1/leads", json=LEAD).json()["lead"]
    r = live.client.post("/api/v1/leads", json={"email": "GRACE@navy.example", "capture_context": "contact"})
    assert r.status_code == 200
    assert r.json()["created"] is False
    assert r.json()["lead"]["id"] == first["id"]
    assert count(ws, "leads") == 1


def test_read_lead_with_history(live: LiveServer) -> None:
    lead_id = live.client.post("/api/v1/leads", json=LEAD).json()["lead"]["id"]
    r = live.client.get(f"/api/v1/leads/{lead_id}")
    assert r.status_code == 200
    types = [e["type"] for e in r.json()["events"]]
    assert types[0] == "lead_created" and types[-2:] == ["lead_assigned", "handoff_sent"]
    assigned = r.json()["events"][-2]["data"]
    assert assigned["owner"] == "ana" and assigned["strategy"] == "round_robin"


def test_unknown_field_is_422_naming_it_and_nothing_is_written(live: LiveServer, ws: Workspace) -> None:
    r = live.client.post("/api/v1/leads", json={**LEAD, "favourite_colour": "blue"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert {"field": "favourite_colour", "message": "unknown field; remove it or check its spelling"} in r.json()[
        "errors"
    ]
    assert count(ws, "leads") == 0 and count(ws, "lead_events") == 0


def test_malformed_email_is_422_naming_it(live: LiveServer, ws: Workspace) -> None:
    r = live.client.post("/api/v1/leads", json={**LEAD, "email": "grace(at)navy"})
    assert r.status_code == 422
    [problem] = r.json()["errors"]
    assert problem["field"] == "email"
    assert "not a valid email address" in problem["message"]
    assert count(ws, "leads") == 0


def test_not_json_and_wrong_shapes_are_4xx(live: LiveServer) -> None:
    r = live.client.post("/api/v1/leads", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "(body)"
    r = live.client.post("/api/v1/leads", json=["a", "list"])
    assert r.status_code == 422
    r = live.client.post("/api/v1/leads", json={"email": 5})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email"


def test_missing_lead_is_a_404_problem(live: LiveServer) -> None:
    r = live.client.get("/api/v1/leads/4242")
    assert r.status_code == 404
    assert r.json()["detail"] == "no lead with id 4242"
    assert live.client.get("/api/v1/leads/abc").status_code == 422


def test_health_and_openapi(live: LiveServer, ws: Workspace) -> None:
    health = live.client.get("/health").json()
    assert health == {"status": "ok", "database": ws.dialect, "config_version": ws.version}
    spec = live.client.get("/openapi.json").json()
    assert {"/api/v1/leads", "/api/v1/leads/{lead_id}", "/health"} <= set(spec["paths"])
