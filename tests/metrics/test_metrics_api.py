"""The metrics API over HTTP: catalogue, a metric with breakdown and comparison, source tests,
and bad parameters refused as 422 problems naming the parameter (never a 500)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from leadflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.metrics.test_kpis import jan  # noqa: F401 - the hand-built January

JAN = {"from": "2026-01-01", "to": "2026-02-01"}


@pytest.fixture
def api(jan: Workspace) -> Iterator[LiveServer]:  # noqa: F811
    with LiveServer(jan) as server:
        yield server


def test_catalogue_and_scope(api: LiveServer) -> None:
    r = api.client.get("/api/v1/metrics")
    assert r.status_code == 200
    ids = {m["id"]: m for m in r.json()["metrics"]}
    assert ids["cac"]["definition"] == "spend per new customer" and len(ids) >= 64
    reader = api.create_key("leads-only", ["leads:read"])
    denied = httpx.get(f"{api.url}/api/v1/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    assert api.anonymous.get("/api/v1/metrics").status_code == 401


def test_a_metric_by_source_with_the_previous_period(api: LiveServer) -> None:
    r = api.client.get("/api/v1/metrics/lead_volume", params={**JAN, "by": "source", "compare": "true"})
    assert r.status_code == 200
    body = r.json()
    got = {row["group"]: (row["value"], row["previous"]) for row in body["rows"]}
    assert got["google"] == (2, 1)  # L5 came from google in December
    assert body["previous"]["from"] == "2025-12-01"


def test_rates_carry_their_interval_and_basis(api: LiveServer) -> None:
    body = api.client.get("/api/v1/metrics/qualification_rate", params={**JAN, "basis": "period"}).json()
    [row] = body["rows"]
    assert body["basis"] == "period" and row["denominator"] == 4 and row["ci_low"] < row["value"] < row["ci_high"]


def test_attribution_model_parameter(api: LiveServer) -> None:
    body = api.client.get("/api/v1/metrics/revenue_by_source", params={**JAN, "model": "u_shaped"}).json()
    assert {r["group"]: r["value"] for r in body["rows"]} == {
        "google": "800.00",
        "referral": "200.00",
        "outbound": "500.00",
    }


def test_source_comparison_says_whether_it_is_significant(api: LiveServer) -> None:
    r = api.client.get("/api/v1/metrics/lead_to_sql_rate/compare", params={**JAN, "a": "google", "b": "referral"})
    assert r.status_code == 200
    [c] = r.json()["comparisons"]
    assert (c["a_rate"], c["b_rate"]) == (0.5, 1.0)
    assert c["significant"] is False and c["test"] == "fisher" and "no significant difference" in c["verdict"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "query.from"),
        ({"to": "yesterday"}, "query.to"),
        ({"by": "shoe_size"}, "query.by"),
        ({"basis": "vibes"}, "query.basis"),
        ({"grain": "decade"}, "query.grain"),
        ({"model": "magic"}, "query.model"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
        ({"from": "0001-01-01", "to": "9999-12-31", "grain": "day"}, "from"),
        ({"from": "2000-01-01", "to": "2026-01-01", "grain": "day"}, "grain"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(api: LiveServer, params: dict, field: str) -> None:
    r = api.client.get("/api/v1/metrics/lead_volume", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json()["errors"]]


def test_breakdown_a_metric_does_not_offer_is_a_422(api: LiveServer) -> None:
    r = api.client.get("/api/v1/metrics/ltv", params={**JAN, "by": "source"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "by"


def test_unknown_metric_is_404(api: LiveServer) -> None:
    r = api.client.get("/api/v1/metrics/happiness")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
