"""Metrics on a small hand-built history; every expected value is worked out by hand here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from leadflow.clock import FrozenClock
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.service import catalogue, compute, overview
from leadflow.opportunities.service import close_opportunity, create_opportunity
from leadflow.pipeline import Activity, process, record_activity
from leadflow.qualify.service import change_stage
from leadflow.workspace import Workspace
from tests.conftest import open_workspace

CONFIG = """\
workspace: {name: Metrics test, timezone: Europe/Berlin, currency: EUR}
teams: [{id: sales, name: Sales}]
owners: [{id: ana, name: Ana, team: sales}]
routing: {fallback: {team: sales}}
metrics: {inactive_after_days: 90}
"""


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path, db_url: str) -> Workspace:
    clock = FrozenClock(at(2026, 6, 1))
    ws = open_workspace(tmp_path / "m", db_url, clock, CONFIG)

    def lead(email: str, when: datetime, source: str | None) -> int:
        with ws.transaction() as conn:
            payload = {"email": email, "occurred_at": when.isoformat(), **({"source": source} if source else {})}
            return process(ws, conn, payload).lead_id

    l1 = lead("l1@x.example", at(2026, 1, 10, 9), "google_ads")
    l2 = lead("l2@x.example", at(2026, 1, 12, 9), "google_ads")
    lead("l3@x.example", at(2026, 1, 15, 9), "referral")
    l4 = lead("l4@x.example", at(2026, 2, 1, 9), "referral")
    lead("l5@x.example", at(2026, 2, 28, 22, 30), None)  # 23:30 in Berlin: still February
    lead("l6@x.example", at(2026, 2, 28, 23, 30), None)  # 00:30 on 1 March in Berlin
    with ws.transaction() as conn:
        change_stage(ws, conn, l1, "sql", occurred_at=at(2026, 1, 20, 9))
        record_activity(ws, conn, Activity(type="call", lead_id=l1, occurred_at=at(2026, 1, 25, 9), actor="owner:ana"))
        change_stage(ws, conn, l2, "disqualified", reason="student", occurred_at=at(2026, 2, 5, 9))
        change_stage(ws, conn, l4, "mql", occurred_at=at(2026, 2, 2, 9))
        opp = create_opportunity(
            ws, conn, lead_id=l4, name="L4 deal", amount=Decimal("1200.50"), created_at=at(2026, 2, 10, 9)
        )
        close_opportunity(ws, conn, opp, won=True, closed_at=at(2026, 3, 1, 9))
    return ws


def rows(ws: Workspace, metric: str, **kw: object) -> list[dict]:
    with ws.reader() as conn:
        return compute(ws, conn, metric, MetricQuery(**kw))["rows"]  # type: ignore[arg-type]


def test_lead_volume_by_month_in_the_workspace_time_zone(history: Workspace) -> None:
    got = {
        r["period"]: r["value"]
        for r in rows(history, "lead_volume", start=date(2026, 1, 1), end=date(2026, 4, 1), grain="month")
    }
    assert got == {"2026-01": 3, "2026-02": 2, "2026-03": 1}


def test_lead_volume_by_source(history: Workspace) -> None:
    got = {
        r["group"]: r["value"]
        for r in rows(history, "lead_volume", start=date(2026, 1, 1), end=date(2026, 4, 1), by="source")
    }
    assert got == {"google_ads": 2, "referral": 2, None: 2}


def test_net_lead_flow(history: Workspace) -> None:
    got = {
        r["period"]: (r["new"], r["closed"], r["inactive"], r["value"])
        for r in rows(history, "net_lead_flow", start=date(2026, 1, 1), end=date(2026, 6, 1), grain="month")
    }
    # L2 disqualified in February; L1 (last activity 25 Jan) and L3 (15 Jan) go quiet in April;
    # L5 and L6 (28 Feb) in May; L4 is a customer and L2 is closed, so neither goes "inactive".
    assert got == {
        "2026-01": (3, 0, 0, 3),
        "2026-02": (2, 1, 0, 1),
        "2026-03": (1, 0, 0, 1),
        "2026-04": (0, 0, 2, -2),
        "2026-05": (0, 0, 2, -2),
    }


def test_stage_reached_counts_skipped_stages(history: Workspace) -> None:
    [r] = rows(history, "stage_reached", start=date(2026, 1, 1), end=date(2026, 4, 1))
    assert r["cohort"] == 6
    # L1 jumped lead → sql; L4 went lead → mql → opportunity → customer
    assert r["reached"] == {"lead": 6, "prospect": 2, "mql": 2, "sql": 2, "opportunity": 1, "customer": 1}
    assert r["furthest"] == {"lead": 4, "prospect": 0, "mql": 0, "sql": 1, "opportunity": 0, "customer": 1}
    assert r["share"]["lead"] == pytest.approx(4 / 6)


def test_stage_reached_by_source(history: Workspace) -> None:
    got = {
        r["group"]: r["reached"]["sql"]
        for r in rows(history, "stage_reached", start=date(2026, 1, 1), end=date(2026, 4, 1), by="source")
    }
    assert got == {"google_ads": 1, "referral": 1, None: 0}


def test_overview_is_what_the_demo_prints(history: Workspace) -> None:
    with history.reader() as conn:
        data = overview(history, conn, date(2026, 1, 1), date(2026, 6, 1))
    assert [(m["month"], m["leads"], m["net_lead_flow"]) for m in data["months"]] == [
        ("2026-01", 3, 3),
        ("2026-02", 2, 1),
        ("2026-03", 1, 1),
        ("2026-04", 0, -2),
        ("2026-05", 0, -2),
    ]
    referral = next(f for f in data["funnel_by_source"] if f["source"] == "referral")
    assert (referral["leads"], referral["reached"]["customer"]) == (2, 1)


def test_catalogue_lists_definitions() -> None:
    ids = {m["id"]: m for m in catalogue()}
    assert {"lead_volume", "net_lead_flow", "stage_reached"} <= set(ids)
    assert ids["net_lead_flow"]["definition"] == "change in the count of qualified, useful leads"


def test_won_deal_recorded_revenue_and_customer(history: Workspace) -> None:
    from sqlalchemy import select

    from leadflow.db.tables import leads, revenue

    with history.reader() as conn:
        amounts = conn.execute(select(revenue.c.amount)).scalars().all()
        stages = dict(conn.execute(select(leads.c.email, leads.c.stage)).all())
    assert amounts == [Decimal("1200.50")]
    assert stages["l4@x.example"] == "customer"
