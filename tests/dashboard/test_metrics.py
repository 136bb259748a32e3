"""The metrics page's figures on a simulated business, on both stores: the catalogue's definitions
(cohort conversion with Wilson intervals, stage velocity), the filters, the viewer's scope, and
the page over real HTTP (whole, and the fragment the HTMX filter form swaps in)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.clock import FrozenClock
from leadflow.dashboard import queries
from leadflow.dashboard.access import readable_leads
from leadflow.dashboard.users import User, authenticate, create_user
from leadflow.db.tables import leads, owners
from leadflow.metrics.service import compute, make_query
from leadflow.simulate import simulate
from leadflow.workspace import Workspace
from tests.conftest import T0, LiveServer, open_workspace

PASSWORD = "correct horse battery"
START, END = date(2025, 11, 1), date(2026, 3, 1)


@pytest.fixture
def business(tmp_path: Path, db_url: str) -> Iterator[Workspace]:
    ws = open_workspace(tmp_path / "sim", db_url, FrozenClock(T0))
    simulate(ws, months=4, seed=5, end=END)
    if ws.dialect == "postgresql":  # fresh tables: give the planner statistics, as autovacuum would
        with ws.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    with ws.transaction() as conn:
        create_user(conn, "admin@northwind.example", PASSWORD, "admin", T0)
        create_user(conn, "mira@northwind.example", PASSWORD, "manager", T0, owner="mira")
    yield ws
    ws.close()


def _user(ws: Workspace, email: str) -> User:
    with ws.reader() as conn:
        user = authenticate(conn, email, PASSWORD)
    assert user is not None
    return user


def test_cohort_conversion_and_stage_velocity_are_the_catalogues(business: Workspace) -> None:
    ws = business
    admin = _user(ws, "admin@northwind.example")
    with ws.reader() as conn:
        board = queries.metrics_board(ws, conn, admin, queries.MetricsFilter(START, END))
        cohort = compute(ws, conn, "lead_conversion_rate", make_query(START, END, grain="month"))["rows"]
        velocity = compute(ws, conn, "stage_velocity", make_query(START, END))["rows"]
        volume = compute(ws, conn, "lead_volume", make_query(START, END, grain="month"))["rows"]

    assert [r["month"] for r in board["cohort"]["rows"]] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert sum(r["leads"] for r in board["cohort"]["rows"]) > 100
    assert sum(r["converted"] for r in board["cohort"]["rows"]) > 0
    for mine, theirs in zip(board["cohort"]["rows"], cohort, strict=True):
        assert mine["month"] == theirs["period"]
        assert (mine["converted"], mine["leads"]) == (theirs["numerator"], theirs["denominator"])
        assert mine["ci_low"] == pytest.approx(theirs["ci_low"]) and mine["ci_high"] == pytest.approx(theirs["ci_high"])
        assert mine["ci_low"] <= mine["rate"] <= mine["ci_high"]
    assert [r["new"] for r in board["flow"]] == [r["value"] for r in volume]

    theirs_by_stage = {r["stage"]: r for r in velocity}
    assert sorted(v["stage"] for v in board["velocity"]) == sorted(theirs_by_stage)  # each stage once
    for v in board["velocity"]:
        t = theirs_by_stage[v["stage"]]
        assert (v["count"], v["pending"]) == (t["count"], t["pending"]), v["stage"]
        if t["median"] is None:
            assert v["median_hours"] is None
        else:
            assert v["median_hours"] == pytest.approx(t["median"], abs=1e-3)
            assert v["p90_hours"] == pytest.approx(t["p90"], abs=1e-3)
    assert any(v["count"] and v["pending"] for v in board["velocity"])


def test_filters_narrow_every_figure_and_a_manager_sees_only_the_team(business: Workspace) -> None:
    ws = business
    admin, mira = _user(ws, "admin@northwind.example"), _user(ws, "mira@northwind.example")
    with ws.reader() as conn:
        campaign = conn.execute(
            select(leads.c.campaign)
            .where(leads.c.campaign.is_not(None))
            .group_by(leads.c.campaign)
            .order_by(func.count().desc())
        ).scalar()
        assert campaign is not None

        def new_leads(user: User, **narrow: str) -> int:
            board = queries.metrics_board(ws, conn, user, queries.MetricsFilter(START, END, **narrow))
            assert sum(r["leads"] for r in board["cohort"]["rows"]) == sum(r["new"] for r in board["flow"])
            funnel = board["funnel"]
            assert sum(r["reached"][funnel["stages"][0]] for r in funnel["rows"]) == sum(
                r["new"] for r in board["flow"]
            )
            return sum(r["new"] for r in board["flow"])

        def counted(*where: object) -> int:
            return int(
                conn.execute(
                    select(func.count()).where(
                        leads.c.merged_into_id.is_(None),
                        leads.c.created_at >= T0.replace(year=2025, month=11, day=1, hour=0),
                        leads.c.created_at < T0.replace(month=3, day=1, hour=0),
                        *where,
                    )
                ).scalar_one()
            )

        everyone = new_leads(admin)
        assert everyone == counted()
        assert new_leads(admin, campaign=campaign) == counted(leads.c.campaign == campaign) < everyone
        enterprise = select(owners.c.id).where(owners.c.team_id == "enterprise")
        assert 0 < new_leads(admin, team="enterprise") == counted(leads.c.owner_id.in_(enterprise)) < everyone
        assert new_leads(admin, source="referral") == counted(leads.c.source == "referral")
        # mira manages the sales team: her figures are her team's, and another team's filter is empty
        assert new_leads(mira) == counted(readable_leads(mira)) < everyone
        assert new_leads(mira, team="enterprise") == 0
        assert queries.teams(ws, conn, mira) == [("sales", "Inside Sales")]


def _sign_in(live: LiveServer, email: str) -> httpx.Client:
    client = httpx.Client(base_url=live.url, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/login").text).group(1)  # type: ignore[union-attr]
    assert client.post("/app/login", data={"email": email, "password": PASSWORD, "csrf": token}).status_code == 303
    return client


@pytest.fixture
def business_live(business: Workspace) -> Iterator[LiveServer]:
    with LiveServer(business) as server:
        yield server


def test_the_page_and_its_htmx_fragment_follow_the_filters_in_the_url(
    business: Workspace, business_live: LiveServer
) -> None:
    client = _sign_in(business_live, "admin@northwind.example")
    page = client.get("/app/metrics", params={"months": 3})
    assert page.status_code == 200
    for label in ("Period", "Source", "Campaign", "Team", "Attribution (ROAS)"):
        assert f">{label}</label>" in page.text  # every filter has its label
    for chart in ("chart-cohort", "chart-velocity", "chart-flow", "chart-sla", "chart-funnel"):
        assert f'id="{chart}"' in page.text
    assert 'hx-get="/app/metrics"' in page.text and 'hx-push-url="true"' in page.text
    assert 'hx-get="/app/metrics/economics?months=3&amp;model=linear" hx-trigger="load"' in page.text

    def figures(html: str, name: str = "chart-data") -> dict:  # type: ignore[type-arg]
        found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', html, re.S)
        assert found is not None
        return json.loads(found.group(1))  # type: ignore[no-any-return]

    whole = figures(page.text)
    economics = client.get("/app/metrics/economics", params={"months": 3})
    assert economics.status_code == 200 and 'id="chart-econ"' in economics.text and "<html" not in economics.text
    campaigns = {r["group"]: r for r in figures(economics.text, "economics-data")["campaign"]}
    assert campaigns and all(r["spend"] >= 0 for r in campaigns.values())
    campaign = max(campaigns, key=lambda c: campaigns[c]["leads"] or 0)
    with business.reader() as conn:
        cpl = compute(business, conn, "cost_per_lead", make_query(date(2026, 1, 1), date(2026, 3, 3), by="campaign"))
    assert campaigns[campaign]["cpl"] == pytest.approx(
        float(next(r for r in cpl["rows"] if r["group"] == campaign)["value"])
    )

    fragment = client.get("/app/metrics", params={"months": 3, "campaign": campaign}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<form" not in fragment.text  # only what the form swaps
    narrowed = figures(fragment.text)
    assert f"campaign={campaign}" in fragment.text  # the economics fragment follows the filter
    only = client.get("/app/metrics/economics", params={"months": 3, "campaign": campaign})
    assert [r["group"] for r in figures(only.text, "economics-data")["campaign"]] == [campaign]
    assert f"campaign {campaign.replace('_', ' ')}" in fragment.text
    new = sum(r["new"] for r in narrowed["flow"])
    assert 0 < new < sum(r["new"] for r in whole["flow"])
    assert re.search(r'id="total-new">([\d,]+)<', fragment.text).group(1).replace(",", "") == str(new)  # type: ignore[union-attr]

    linked = client.get("/app/metrics", params={"months": 3, "campaign": campaign, "team": "sales"})
    assert f'<option value="{campaign}" selected>' in linked.text  # a filtered view can be linked
    assert '<option value="sales" selected>' in linked.text
    unknown = client.get("/app/metrics", params={"campaign": "no-such-campaign", "team": "nobody"})
    assert unknown.status_code == 200 and "no-such-campaign" not in unknown.text
    for path in ("/app/metrics", "/app/metrics/economics"):  # both routes share the filters' checks
        for params, field in (({"months": 0}, "months"), ({"months": 37}, "months"), ({"source": "x" * 65}, "source")):
            refused = client.get(path, params=params)
            assert refused.status_code == 422 and field in refused.text, (path, params, refused.text[:200])
    client.close()


def test_threshold_advice_on_the_models_page_is_the_model_services(
    business: Workspace, business_live: LiveServer
) -> None:
    from leadflow.model.thresholds import advise

    client = _sign_in(business_live, "admin@northwind.example")
    assert client.get("/app/models").status_code == 200  # builds the advice's inputs in the background
    for capacity in (5, 40):
        page = client.get("/app/models", params={"capacity": capacity})
        assert page.status_code == 200
        with business.reader() as conn:
            expected = advise(business, conn, capacity)
        shown = re.search(r'id="advised-threshold" class="score-big">(\d+)<', page.text)
        assert shown is not None and int(shown.group(1)) == expected["advised"]["threshold"]
        assert f"{expected['past_leads']} past leads with a known outcome" in page.text
        assert 'id="chart-advice"' in page.text
    assert client.get("/app/models", params={"capacity": 0}).status_code == 422
    # a trained version: the page says what was shipped and why, and the drift between slices
    from leadflow.model import service

    with business.transaction() as conn:
        report = service.train(business, conn, service.TrainOptions(outcome_window_days=30))
    page = client.get("/app/models")
    assert f'<b id="model-chosen">{report["chosen"]}</b>' in page.text
    assert "Conversion rate by slice" in page.text
    known = report["metrics"]["predictive"]["auc_interval"] is not None
    assert ("(95%)" in page.text) is known and ('id="no-auc"' in page.text) is not known
    client.close()
