"""Routing over real HTTP: why this owner, assigning, the handoff to sales, owners and teams
(loaded from the Maven CRM sales_teams.csv), and the webhooks that tell other systems."""

from __future__ import annotations

from collections import Counter

from leadflow.routing.directory_import import read_directory
from leadflow.workspace import Workspace
from tests.conftest import SHARED_DATA, LiveServer

MQL = {
    "email": "grace@hopper-systems.example",
    "first_name": "Grace",
    "last_name": "Hopper",
    "company": "Hopper Systems",
    "title": "VP Engineering",
    "employees": 400,
    "country": "DE",
    "capture_context": "demo",
    "source": "linkedin_ads",
    "campaign": "abm_q1",
    "custom": {"use_case": "forecasting", "timeline": "this quarter"},
}


def capture(live: LiveServer, payload: dict) -> dict:
    r = live.client.post("/api/v1/leads", json=payload)
    assert r.status_code in (200, 201), r.text
    return r.json()["lead"]


def test_why_this_owner(live: LiveServer) -> None:
    lead = capture(live, MQL)
    r = live.client.get(f"/api/v1/leads/{lead['id']}/assignment")
    assert r.status_code == 200
    body = r.json()
    assert body["owner"] == lead["assignment"]["owner"] == "ana"
    assert body["destination"] == "team:sales" and body["sla_policy"] in ("hot", "warm")
    trace = body["trace"]
    assert trace["rule"] == "fallback" and trace["strategy"] == "round_robin"
    assert trace["rules_tried"] == ["support_requests", "job_applicants", "partner_requests", "enterprise_accounts"]
    assert trace["candidates"] == ["ana", "ben", "chloe", "dmitri"]
    assert trace["sla"]["policy"] == body["sla_policy"]
    assert [h["type"] for h in body["history"]] == ["lead_assigned"]
    assert live.client.get("/api/v1/leads/999999/assignment").status_code == 404


def test_handoff_package_accept_and_reject(live: LiveServer, ws: Workspace) -> None:
    lead = capture(live, MQL)
    lead_id = lead["id"]
    assert lead["stage"] == "mql"
    capture(
        live, {**MQL, "source": "webinar", "campaign": None, "capture_context": "contact", "notes": "Call after 3pm"}
    )
    r = live.client.post("/api/v1/events", json={"type": "note", "lead_id": lead_id, "text": "Budget approved in Q2"})
    assert r.status_code == 201, r.text

    package = live.client.get(f"/api/v1/leads/{lead_id}/handoff").json()
    assert package["handoff"]["status"] == "pending" and package["handoff"]["owner"] == "ana"
    assert [t["source"] for t in package["source"]["touches"]] == ["linkedin_ads", "webinar"]
    assert package["source"]["first_touch"]["campaign"] == "abm_q1"
    assert package["qualification"]["answers"] == {"use_case": "forecasting", "timeline": "this quarter"}
    assert set(package["qualification"]["criteria"]) >= {"fit", "need", "timing"}
    explained = package["score"]["explanation"]
    assert sum(line["points"] for line in explained) == package["score"]["value"] > 0
    assert package["assignment"]["owner"] == "ana"
    assert {n["text"] for n in package["notes"]} == {"Call after 3pm", "Budget approved in Q2"}
    assert package["history"][0]["type"] == "lead_created"

    r = live.client.post(f"/api/v1/leads/{lead_id}/handoff/accept", json={"note": "good fit"})
    assert r.status_code == 200 and r.json() == {
        "lead_id": lead_id,
        "status": "accepted",
        "stage": "sql",
        "reason": None,
    }
    again = live.client.post(f"/api/v1/leads/{lead_id}/handoff/accept", json={})
    assert again.status_code == 409 and "already accepted" in again.json()["detail"]

    # rejections: the reason decides where the lead goes
    outcomes = {}
    for i, reason in enumerate(["not_a_fit", "bad_timing"]):
        other = capture(live, {**MQL, "email": f"r{i}@hopper{i}.example"})
        r = live.client.post(f"/api/v1/leads/{other['id']}/handoff/reject", json={"reason": reason, "note": "n"})
        assert r.status_code == 200, r.text
        shown = live.client.get(f"/api/v1/leads/{other['id']}").json()
        outcomes[reason] = (r.json()["stage"], shown["stage"], shown["assignment"]["owner"])
    assert outcomes["not_a_fit"][:2] == ("disqualified", "disqualified") and outcomes["not_a_fit"][2] is not None
    assert outcomes["bad_timing"] == ("nurture", "nurture", None)  # recycled to marketing: no owner

    bad = live.client.post(f"/api/v1/leads/{lead_id}/handoff/reject", json={"reason": "meh"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reason"
    assert "not_a_fit" in bad.json()["errors"][0]["message"]
    cold = capture(live, {"email": "cold@gmail.com"})
    assert cold["stage"] == "lead"
    never = live.client.post(f"/api/v1/leads/{cold['id']}/handoff/accept", json={})
    assert never.status_code == 409 and "never handed off" in never.json()["detail"]


def test_a_recycled_lead_reaching_mql_again_is_routed_and_handed_off_again(live: LiveServer) -> None:
    lead = capture(live, MQL)
    r = live.client.post(f"/api/v1/leads/{lead['id']}/handoff/reject", json={"reason": "bad_timing"})
    assert r.json()["stage"] == "nurture"
    assert live.client.get(f"/api/v1/leads/{lead['id']}/assignment").json()["owner"] is None
    r = live.client.post(f"/api/v1/leads/{lead['id']}/stage", json={"stage": "mql", "reason": "asked for pricing"})
    assert r.status_code == 200, r.text
    why = live.client.get(f"/api/v1/leads/{lead['id']}/assignment").json()
    # routed afresh: round robin would say ben, but ana owns the account since the first time
    assert why["owner"] == "ana" and why["trace"]["strategy"] == "account owner"
    assert [h["owner"] for h in why["history"] if h["type"] == "lead_assigned"] == ["ana", "ana"]
    package = live.client.get(f"/api/v1/leads/{lead['id']}/handoff").json()
    assert package["handoff"]["status"] == "pending" and package["handoff"]["owner"] == "ana"


def test_owners_and_teams_from_the_maven_crm_file(live: LiveServer) -> None:
    teams, owners = read_directory(SHARED_DATA / "maven_crm" / "sales_teams.csv")
    assert len(teams) == 6 and len([o for o in owners if o.active]) == 35 and len(owners) == 41
    body = {"teams": [t.model_dump() for t in teams], "owners": [o.model_dump(by_alias=True) for o in owners]}
    r = live.client.post("/api/v1/owners", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"teams": {"created": 6, "updated": 0}, "owners": {"created": 41, "updated": 0}}
    assert live.client.post("/api/v1/owners", json=body).json()["owners"] == {"created": 0, "updated": 41}

    listed = {o["id"]: o for o in live.client.get("/api/v1/owners").json()}
    assert listed["anna_snelling"]["team"] == "central-dustin_brinkmann"
    assert listed["anna_snelling"]["manager"] == "dustin_brinkmann" and listed["anna_snelling"]["managed_in"] == "api"
    assert listed["dustin_brinkmann"]["active"] is False  # managers take no leads
    assert listed["ana"]["managed_in"] == "config"
    members = {t["id"]: t["members"] for t in live.client.get("/api/v1/teams").json()}
    assert Counter(v for k, v in members.items() if "-" in k) == {6: 5, 5: 1}

    lead = capture(live, {"email": "x@gmail.com"})
    r = live.client.post(f"/api/v1/leads/{lead['id']}/assign", json={"team": "east-cara_losch", "reason": "east coast"})
    assert r.status_code == 200 and r.json()["team"] == "east-cara_losch"
    assert listed[r.json()["owner"]]["manager"] == "cara_losch"
    why = live.client.get(f"/api/v1/leads/{lead['id']}/assignment").json()
    assert why["trace"]["rule"] == "manual" and why["trace"]["previous_owner"] == lead["assignment"]["owner"]

    # bad input: named, 4xx, nothing written
    clash = live.client.post("/api/v1/owners", json={"owners": [{"id": "ana", "name": "Other Ana"}]})
    assert clash.status_code == 422 and "managed in leadflow.yaml" in clash.json()["errors"][0]["message"]
    unknown = live.client.post("/api/v1/owners", json={"owners": [{"id": "zed", "name": "Zed", "team": "mars"}]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "owners[0].team"
    hours = live.client.post(
        "/api/v1/owners", json={"owners": [{"id": "zed", "name": "Zed", "working_hours": {"mon": "9-5"}}]}
    )
    assert hours.status_code == 422 and "HH:MM-HH:MM" in hours.text
    assert live.client.get("/api/v1/owners/zed").status_code == 404
    both = live.client.post(f"/api/v1/leads/{lead['id']}/assign", json={"team": "sales", "owner": "ana"})
    assert both.status_code == 422
    nobody = live.client.post(f"/api/v1/leads/{lead['id']}/assign", json={"owner": "nobody"})
    assert nobody.status_code == 422 and nobody.json()["errors"][0]["field"] == "owner"
    reader = live.create_key("reader", ["leads:read"])
    denied = live.anonymous.post("/api/v1/owners", json=body, headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
