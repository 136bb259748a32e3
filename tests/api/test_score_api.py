"""The score and stage endpoints over real HTTP."""

from __future__ import annotations

from leadflow.clock import FrozenClock
from leadflow.pipeline import Activity, record_activities
from leadflow.workspace import Workspace
from tests.conftest import LiveServer

LEAD = {
    "email": "ops@shipping.example",
    "first_name": "Olu",
    "last_name": "Ade",
    "company": "Shipping",
    "title": "Head of Operations",
    "employees": 2000,
    "industry": "Logistics",
    "country": "NL",
    "capture_context": "demo",
}


def test_score_endpoint_explains_and_decays(live: LiveServer, ws: Workspace, clock: FrozenClock) -> None:
    lead = live.client.post("/api/v1/leads", json=LEAD).json()["lead"]
    with ws.transaction() as conn:
        record_activities(ws, conn, [Activity(type="trial_started", lead_id=lead["id"], occurred_at=clock.now())])
    score = live.client.get(f"/api/v1/leads/{lead['id']}/score").json()
    # director 20 + 1001-5000 15 + logistics 10 + NL 5 + demo 20 = 70 fit; trial 20 engagement
    assert (
        score["value"],
        score["fit"],
        score["engagement"],
        score["grade"],
        score["engagement_grade"],
        score["matrix"],
    ) == (
        90,
        70,
        20,
        "A",
        2,
        "A2",
    )
    assert sum(line["points"] for line in score["explanation"]) == 90
    assert score["mql_threshold"] == 60 and score["config_version"] == ws.version
    assert score["now"]["value"] == 90
    clock.advance(days=60)  # two half-lives later the trial counts 5
    assert live.client.get(f"/api/v1/leads/{lead['id']}/score").json()["now"]["value"] == 75
    full = live.client.get(f"/api/v1/leads/{lead['id']}").json()
    assert full["criteria"]["intent"] == {
        "level": "high",
        "reason": "asked for a demo, quote or trial, or studies pricing",
    }
    assert full["criteria"]["value"]["level"] == "high"
    assert full["score"]["matrix"] == "A2"


def test_stage_moves_and_refusals(live: LiveServer) -> None:
    lead = live.client.post("/api/v1/leads", json=LEAD).json()["lead"]
    url = f"/api/v1/leads/{lead['id']}/stage"
    r = live.client.post(url, json={"stage": "sql", "reason": "discovery call went well"})
    assert r.status_code == 200 and r.json() == {"lead_id": lead["id"], "from": "mql", "to": "sql"}
    back = live.client.post(url, json={"stage": "prospect"})
    assert back.status_code == 422
    assert "cannot move back from 'sql' to 'prospect'" in back.json()["errors"][0]["message"]
    no_reason = live.client.post(url, json={"stage": "disqualified"})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    unknown = live.client.post(url, json={"stage": "won"})
    assert unknown.status_code == 422 and "not a stage" in unknown.json()["errors"][0]["message"]
    history = [
        e for e in live.client.get(f"/api/v1/leads/{lead['id']}").json()["events"] if e["type"] == "stage_changed"
    ]
    assert [e["stage"] for e in history] == ["mql", "sql"]  # refused moves left no trace
    assert live.client.post("/api/v1/leads/999999/stage", json={"stage": "sql"}).status_code == 404
