"""The model endpoints over real HTTP: problems name the field, scopes are enforced."""

from __future__ import annotations

import math

from leadflow.clock import FrozenClock
from tests.conftest import LiveServer
from tests.model.conftest import make_history


def _problem(response, status: int, field: str | None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert field in [e["field"] for e in response.json().get("errors", [])], response.text


def test_model_endpoints(live: LiveServer, clock: FrozenClock) -> None:
    c = live.client
    # nothing yet
    _problem(c.get("/api/v1/leads/1/prediction"), 404, None)
    _problem(c.get("/api/v1/models/evaluation"), 422, "version")
    _problem(c.post("/api/v1/models/rollback"), 409, "version")
    _problem(c.post("/api/v1/models/999/activate"), 404, "version")
    _problem(c.get("/api/v1/models/999"), 404, "version")
    _problem(c.post("/api/v1/models", json={"holdout": 2}), 422, "holdout")
    _problem(c.post("/api/v1/models", json={"bogus": 1}), 422, "bogus")
    _problem(c.post("/api/v1/models", json={}), 422, "rows")
    _problem(c.get("/api/v1/models/threshold", params={"capacity": 0}), 422, "query.capacity")
    _problem(c.post("/api/v1/models/backtest", json={"config": "scoring: [1"}), 422, "config.(syntax)")
    _problem(c.post("/api/v1/models/backtest", json={"config": "a: \u0005"}), 422, "config")

    reader = LiveServer.create_key(live, "reader", ["leads:read", "metrics:read"])
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert c.post("/api/v1/models", json={}, headers=as_reader).status_code == 403

    make_history(live.ws, clock, n=160, leak=False)
    _problem(c.post("/api/v1/models", json={"force": ["nope"], "outcome_window_days": 30}), 422, "force")
    trained = c.post("/api/v1/models", json={"outcome_window_days": 30, "activate": True})
    assert trained.status_code == 201, trained.text
    version = trained.json()["version"]
    assert trained.headers["location"] == f"/api/v1/models/{version}"
    listed = c.get("/api/v1/models", headers=as_reader).json()
    assert listed["active"] == version and listed["items"][0]["id"] == version

    lead = c.post("/api/v1/leads", json={"email": "a@b.example", "company": "B", "industry": "software"}).json()
    lead_id = lead["lead"]["id"]
    prediction = c.get(f"/api/v1/leads/{lead_id}/prediction", headers=as_reader).json()
    assert prediction["version"] == version and 0 <= prediction["score"] <= 100
    assert math.isclose(
        sum(x["contribution"] for x in prediction["contributions"]) + prediction["base_value"],
        prediction["margin"],
        abs_tol=1e-4,
    )
    history = c.get(f"/api/v1/leads/{lead_id}").json()["events"]
    scored = [e for e in history if e["type"] == "lead_scored"][-1]
    assert scored["data"]["model"]["version"] == version

    evaluation = c.get("/api/v1/models/evaluation", headers=as_reader)
    assert evaluation.status_code == 200
    assert set(evaluation.json()["metrics"]) == {"predictive", "rules", "naive_bayes", "logistic_regression"}
    png = c.get("/api/v1/models/evaluation", params={"format": "png"}, headers=as_reader)
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert c.get("/api/v1/models/drift", headers=as_reader).json()["periods"][0]["scored"] >= 1
    advice = c.get("/api/v1/models/threshold", params={"capacity": 5}, headers=as_reader).json()
    assert advice["advised"]["mql_per_week"] <= 5
    # as of a day before any lead: no inflow, and a note that says so
    early = c.get("/api/v1/models/threshold", params={"capacity": 5, "as_of": "2001-01-01"}, headers=as_reader)
    assert early.status_code == 200 and early.json()["as_of"].startswith("2001-01-01")
    assert "the inflow is 0" in early.json()["note"]
    _problem(c.get("/api/v1/models/threshold", params={"capacity": 5, "as_of": "2999-01-01"}), 422, "as_of")

    again = c.post("/api/v1/models/rollback", headers={"Idempotency-Key": "rb-1"})
    assert again.json() == {"active": None, "previous": version}
    replayed = c.post("/api/v1/models/rollback", headers={"Idempotency-Key": "rb-1"})
    assert replayed.headers.get("idempotent-replayed") == "true" and replayed.json() == again.json()
