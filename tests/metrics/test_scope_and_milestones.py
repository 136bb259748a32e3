"""Access control inside metric queries, and the milestone table kept by a watermark, on both stores.

A hand-built January 2026 with two reps of one team (and a third rep in another team):

    A1 ana   2 Jan 09:00  lead → mql 3 Jan → customer 20 Jan; contacted 10:00 (1 h, SLA due 11:00: met)
    A2 ana   5 Jan 09:00  lead; contacted 13:00 (4 h, due 11:00: missed)
    B1 ben   3 Jan 09:00  lead → mql 4 Jan → sql 6 Jan; contacted 09:30 (0.5 h, due 10:00: met)
    B2 ben   6 Jan 09:00  lead → disqualified 8 Jan; never contacted (due 7 Jan: passed, missed)
    B3 ben   7 Jan 09:00  lead; merged into B1 (not counted for anyone)
    C1 cleo  8 Jan 09:00  lead → mql 9 Jan; contacted 8 Jan 11:00 (2 h, due 12:00: met) — team "east"
    O1 (A1) 1000 created 12 Jan, won 20 Jan, revenue 1000 on 20 Jan
    O2 (B1)  400 created 10 Jan, open

Reps see their own leads only; the manager of "sales" sees ana's and ben's; a marketer, an admin
and an API key see everything. Every figure below is worked out by hand from that story.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from leadflow.clock import FrozenClock
from leadflow.dashboard.access import readable_leads
from leadflow.dashboard.users import User, create_user
from leadflow.db.tables import lead_events, lead_milestones, leads, metric_watermarks, opportunities, revenue
from leadflow.metrics import milestones
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.service import compute, dashboard
from leadflow.workspace import Workspace
from tests.conftest import LiveServer, open_workspace

CONFIG = """\
workspace: {name: Scope test, timezone: UTC, currency: EUR}
teams: [{id: sales, name: Sales}, {id: east, name: East}]
owners:
  - {id: ana, name: Ana, team: sales}
  - {id: ben, name: Ben, team: sales}
  - {id: mira, name: Mira, team: sales}
  - {id: cleo, name: Cleo, team: east}
routing: {fallback: {team: sales}}
sources:
  - {id: google, name: Google Ads, kind: inbound, medium: cpc}
"""
NOW = datetime(2026, 6, 1, tzinfo=UTC)
JAN = MetricQuery(start=date(2026, 1, 1), end=date(2026, 2, 1))
PASSWORD = "correct horse battery"


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def user(role: str, owner: str | None = None, team: str | None = None) -> User:
    return User(id=0, email=f"{role}@x.example", name=None, role=role, owner_id=owner, team_id=team, password_hash="")


ANA, BEN, CLEO = user("rep", "ana", "sales"), user("rep", "ben", "sales"), user("rep", "cleo", "east")
MANAGER, MARKETER = user("manager", "mira", "sales"), user("marketer")


def add_event(conn: Any, lead_id: int, type: str, when: datetime, stage: str | None = None) -> None:
    conn.execute(
        insert(lead_events).values(
            lead_id=lead_id,
            type=type,
            occurred_at=when,
            recorded_at=when,
            actor="test",
            stage=stage,
            data={},
            config_version="test",
        )
    )


@pytest.fixture
def team(tmp_path: Path, db_url: str) -> Workspace:
    ws = open_workspace(tmp_path / "s", db_url, FrozenClock(NOW), CONFIG)
    with ws.transaction() as conn:

        def lead(created: datetime, owner: str, team: str, **kw: Any) -> int:
            row = {
                "created_at": created,
                "updated_at": created,
                "stage": "lead",
                "stage_entered_at": created,
                "config_version": ws.version,
                "source": "google",
                "owner_id": owner,
                "team_id": team,
                "last_activity_at": created,
                **kw,
            }
            return int(conn.execute(insert(leads).values(**row).returning(leads.c.id)).scalar_one())

        a1 = lead(at(2), "ana", "sales", first_contact_at=at(2, 10), sla_due_at=at(2, 11))
        a2 = lead(at(5), "ana", "sales", first_contact_at=at(5, 13), sla_due_at=at(5, 11))
        b1 = lead(at(3), "ben", "sales", first_contact_at=at(3, 9, 30), sla_due_at=at(3, 10))
        b2 = lead(at(6), "ben", "sales", sla_due_at=at(7))
        b3 = lead(at(7), "ben", "sales", merged_into_id=b1)
        c1 = lead(at(8), "cleo", "east", first_contact_at=at(8, 11), sla_due_at=at(8, 12))
        for lead_id, created in ((a1, at(2)), (a2, at(5)), (b1, at(3)), (b2, at(6)), (b3, at(7)), (c1, at(8))):
            add_event(conn, lead_id, "lead_created", created)
            add_event(conn, lead_id, "stage_changed", created, "lead")
        for lead_id, when, stage in (
            (a1, at(3), "mql"),
            (a1, at(20), "customer"),
            (b1, at(4), "mql"),
            (b1, at(6), "sql"),
            (b2, at(8), "disqualified"),
            (c1, at(9), "mql"),
        ):
            add_event(conn, lead_id, "stage_changed", when, stage)
        o1 = conn.execute(
            insert(opportunities)
            .values(
                lead_id=a1,
                name="A1 deal",
                amount=Decimal(1000),
                currency="EUR",
                pipeline_stage="closed_won",
                status="won",
                created_at=at(12),
                closed_at=at(20),
            )
            .returning(opportunities.c.id)
        ).scalar_one()
        conn.execute(
            insert(opportunities).values(
                lead_id=b1,
                name="B1 deal",
                amount=Decimal(400),
                currency="EUR",
                pipeline_stage="proposal",
                status="open",
                created_at=at(10),
            )
        )
        conn.execute(
            insert(revenue).values(
                lead_id=a1, opportunity_id=o1, amount=Decimal(1000), currency="EUR", recognized_at=at(20), kind="new"
            )
        )
    return ws


def figure(ws: Workspace, metric: str, viewer: User | None, query: MetricQuery = JAN) -> dict[str, Any]:
    readable = None if viewer is None else readable_leads(viewer)
    with ws.reader() as conn:
        [row] = compute(ws, conn, metric, query, readable=readable)["rows"]
    return row


def test_a_rep_counts_only_their_own_leads(team: Workspace) -> None:
    volume = {who: figure(team, "lead_volume", u)["value"] for who, u in (("ana", ANA), ("ben", BEN), ("cleo", CLEO))}
    assert volume == {"ana": 2, "ben": 2, "cleo": 1}  # B3 is merged into B1: counted for nobody
    assert figure(team, "lead_volume", MANAGER)["value"] == 4  # ana's and ben's
    assert figure(team, "lead_volume", MARKETER)["value"] == 5
    assert figure(team, "lead_volume", None)["value"] == 5


def test_a_rep_funnel_conversion_and_response_time_are_over_their_leads(team: Workspace) -> None:
    funnel = figure(team, "stage_reached", ANA)
    assert funnel["cohort"] == 2
    assert funnel["reached"] == {"lead": 2, "prospect": 1, "mql": 1, "sql": 1, "opportunity": 1, "customer": 1}
    assert funnel["furthest"]["customer"] == 1 and funnel["furthest"]["lead"] == 1
    ben = figure(team, "stage_reached", BEN)
    assert ben["cohort"] == 2  # B2's furthest funnel stage is lead (disqualified is off the funnel)
    assert ben["reached"] == {"lead": 2, "prospect": 1, "mql": 1, "sql": 1, "opportunity": 0, "customer": 0}

    conversion = figure(team, "lead_conversion_rate", ANA)
    assert (conversion["numerator"], conversion["denominator"]) == (1, 2)
    conversion = figure(team, "lead_conversion_rate", BEN)
    assert (conversion["numerator"], conversion["denominator"]) == (0, 2)

    ana = figure(team, "response_time", ANA)  # 1 h and 4 h: nearest-rank median is the 1st of 2
    assert (ana["count"], ana["median"], ana["mean"], ana["p90"]) == (2, 1.0, 2.5, 4.0)
    assert (ana["sla_attainment"]["numerator"], ana["sla_attainment"]["denominator"]) == (1, 2)
    ben_rt = figure(team, "response_time", BEN)  # B1 0.5 h; B2 not contacted yet
    assert (ben_rt["count"], ben_rt["pending"], ben_rt["median"]) == (1, 1, 0.5)
    assert (ben_rt["sla_attainment"]["numerator"], ben_rt["sla_attainment"]["denominator"]) == (1, 2)
    everyone = figure(team, "response_time", None)  # 0.5, 1, 2, 4 h
    assert (everyone["count"], everyone["median"], everyone["p90"]) == (4, 1.0, 4.0)


def test_a_rep_sees_no_other_reps_deals_or_revenue(team: Workspace) -> None:
    assert figure(team, "pipeline_value", ANA)["value"] == "0.00"
    assert figure(team, "pipeline_value", BEN)["value"] == "400.00"
    assert figure(team, "revenue_by_source", ANA)["value"] == "1000.00"
    with team.reader() as conn:
        rows = compute(team, conn, "revenue_by_source", JAN, readable=readable_leads(BEN))["rows"]
    assert rows == [] or all(r["value"] in (None, "0.00") for r in rows)


def test_the_dashboard_set_for_a_rep(team: Workspace) -> None:
    with team.reader() as conn:
        board = dashboard(team, conn, date(2026, 1, 1), date(2026, 2, 1), readable=readable_leads(BEN))
    [flow] = [r for r in board["net_lead_flow"]["rows"] if r["period"] == "2026-01"]
    assert (flow["new"], flow["closed"]) == (2, 1)  # B1, B2 new; B2 disqualified
    assert board["funnel"]["rows"][0]["cohort"] == 2
    assert board["deal_velocity"]["rows"][0]["count"] == 0  # ana's deal is not ben's


def _milestones(ws: Workspace) -> dict[int, int]:
    with ws.reader() as conn:
        return dict(conn.execute(select(lead_milestones.c.lead_id, lead_milestones.c.furthest)).all())


def _ids(ws: Workspace) -> dict[str, int]:
    with ws.reader() as conn:
        rows = conn.execute(select(leads.c.id, leads.c.owner_id, leads.c.created_at).order_by(leads.c.id)).all()
    names = ["A1", "A2", "B1", "B2", "B3", "C1"]
    return {name: int(r.id) for name, r in zip(names, rows, strict=True)}


def test_milestones_fold_incrementally_and_match_a_rebuild(team: Workspace) -> None:
    ids = _ids(team)
    before = figure(team, "stage_reached", None)  # read from the stage history: never folded yet
    assert milestones.refresh(team) > 0
    # ranks: lead 0, prospect 1, mql 2, sql 3, opportunity 4, customer 5
    expected = {ids["A1"]: 5, ids["A2"]: 0, ids["B1"]: 3, ids["B2"]: 0, ids["B3"]: 0, ids["C1"]: 2}
    assert _milestones(team) == expected
    assert figure(team, "stage_reached", None) == before  # the same figures from the table
    assert before["reached"]["mql"] == 3 and before["cohort"] == 5

    # A new stage event counts at once (read past the watermark), before and after it is folded.
    with team.transaction() as conn:
        add_event(conn, ids["B1"], "stage_changed", at(25), "opportunity")
        add_event(conn, ids["A2"], "stage_changed", at(26), "lost")
    after = figure(team, "stage_reached", None)
    assert after["reached"]["opportunity"] == 2 and after["furthest"]["sql"] == 0
    milestones.refresh(team)
    assert _milestones(team) == {**expected, ids["B1"]: 4}
    assert figure(team, "stage_reached", None) == after
    with team.reader() as conn:
        mark = conn.execute(select(metric_watermarks.c.event_id)).scalar_one()
        last = conn.execute(select(func.max(lead_events.c.id))).scalar_one()
    assert mark == last

    with team.transaction() as conn:
        milestones.rebuild(team, conn)
    assert _milestones(team) == {**expected, ids["B1"]: 4}


def test_merges_and_a_new_stage_order_keep_the_funnel_right(team: Workspace, tmp_path: Path, db_url: str) -> None:
    ids = _ids(team)
    milestones.refresh(team)
    with team.transaction() as conn:  # C1 merged into A1 after the fold: no longer counted
        conn.execute(leads.update().where(leads.c.id == ids["C1"]).values(merged_into_id=ids["A1"]))
    assert figure(team, "stage_reached", None)["cohort"] == 4

    # A workspace whose funnel has no "prospect": the table was folded under another order, so
    # figures come from the stage history until the next fold rebuilds it.
    other = open_workspace(
        tmp_path / "other",
        db_url,
        FrozenClock(NOW),
        CONFIG + "stages: {order: [lead, mql, sql, opportunity, customer]}\n",
    )
    try:
        with other.reader() as conn:
            assert milestones.watermark(conn, other) is None
        unfolded = figure(other, "stage_reached", None)
        assert unfolded["reached"] == {"lead": 4, "mql": 2, "sql": 2, "opportunity": 1, "customer": 1}
        milestones.refresh(other)
        assert _milestones(other)[ids["A1"]] == 4 and _milestones(other)[ids["B1"]] == 2
        assert figure(other, "stage_reached", None) == unfolded
    finally:
        other.close()


def _sign_in(live: LiveServer, email: str) -> httpx.Client:
    client = httpx.Client(base_url=live.url, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/login").text).group(1)  # type: ignore[union-attr]
    response = client.post("/app/login", data={"email": email, "password": PASSWORD, "csrf": token})
    assert response.status_code == 303
    return client


def test_the_api_gives_a_signed_in_rep_their_figures_and_a_key_everything(team: Workspace) -> None:
    with team.transaction() as conn:
        create_user(conn, "ana@team.example", PASSWORD, "rep", NOW, owner="ana")
        create_user(conn, "mira@team.example", PASSWORD, "manager", NOW, owner="mira")
    params = {"from": "2026-01-01", "to": "2026-02-01"}
    with LiveServer(team) as live:
        everything = live.client.get("/api/v1/metrics/lead_conversion_rate", params=params).json()["rows"][0]
        assert (everything["numerator"], everything["denominator"]) == (1, 5)
        ana = _sign_in(live, "ana@team.example")
        mine = ana.get("/api/v1/metrics/lead_conversion_rate", params=params).json()["rows"][0]
        assert (mine["numerator"], mine["denominator"]) == (1, 2)
        volume = ana.get("/api/v1/metrics/lead_volume", params={**params, "by": "owner"}).json()["rows"]
        assert [(r["group"], r["value"]) for r in volume] == [("ana", 2)]
        mira = _sign_in(live, "mira@team.example")
        team_rows = mira.get("/api/v1/metrics/lead_volume", params={**params, "by": "owner"}).json()["rows"]
        assert sorted((r["group"], r["value"]) for r in team_rows) == [("ana", 2), ("ben", 2)]
        assert live.anonymous.get("/api/v1/metrics/lead_volume", params=params).status_code == 401
        ana.close()
        mira.close()


def test_the_worker_task_folds_until_up_to_date(team: Workspace) -> None:
    from leadflow.jobs.worker import TASKS, run_task

    with team.reader() as conn:
        last = conn.execute(select(func.max(lead_events.c.id))).scalar_one()
    assert run_task(team, TASKS["metrics.fold_milestones"]) == last  # the whole log, once
    assert len(_milestones(team)) == 6
    assert run_task(team, TASKS["metrics.fold_milestones"]) == 0
    with team.transaction() as conn:
        add_event(conn, _ids(team)["A2"], "stage_changed", at(27), "mql")
    assert run_task(team, TASKS["metrics.fold_milestones"]) == 1
    assert _milestones(team)[_ids(team)["A2"]] == 2


def test_spend_is_spread_over_the_days_of_its_period(team: Workspace) -> None:
    from leadflow.db.tables import spend

    with team.transaction() as conn:  # a flight of 31 days, 15 January to 14 February: 10 a day
        conn.execute(
            insert(spend).values(
                source_id="google",
                period_start=date(2026, 1, 15),
                period_end=date(2026, 2, 15),
                amount=Decimal("310.00"),
                currency="EUR",
                kind="marketing",
                origin="api",
            )
        )
    months = MetricQuery(start=date(2026, 1, 1), end=date(2026, 3, 1), grain="month")
    with team.reader() as conn:
        rows = {r["period"]: r for r in compute(team, conn, "cost_per_lead", months)["rows"]}
    assert rows["2026-01"]["spend"] == "170.00" and rows["2026-01"]["leads"] == 5
    assert rows["2026-01"]["value"] == "34.00"  # 170 / 5 google leads in January
    assert rows["2026-02"]["spend"] == "140.00" and rows["2026-02"]["value"] is None
    whole = MetricQuery(start=date(2026, 1, 1), end=date(2026, 3, 1))
    with team.reader() as conn:
        [row] = compute(team, conn, "cost_per_lead", whole)["rows"]
    assert row["spend"] == "310.00" and row["value"] == "62.00"
