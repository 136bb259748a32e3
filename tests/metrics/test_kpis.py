"""Every KPI of shared/spec/kpis.md on one small, hand-built January 2026, on both stores.

The history is written straight into the tables (the facts a year of the pipeline would have left),
so each expected value below can be worked out by hand from the story told here:

    L1 google/g1  2 Jan 09:00  lead → mql 3 Jan → sql 5 Jan → opportunity 10 Jan → customer 25 Jan
                  contacted 10:00 (SLA due 11:00: met), meeting 4 Jan, signed up, subscribed 20 Jan,
                  touched again 8 Jan via referral and 12 Jan via google/g2, referred L4 on 19 Jan
    L2 google/g1  5 Jan 09:00  lead → mql 6 Jan → disqualified 8 Jan ("student"); contacted 15:00
                  (due 13:00: missed); signed up; unsubscribed
    L3 referral   10 Jan 09:00 lead → sql 12 Jan (skipping mql) → opportunity 14 Jan; never contacted
                  (due 11 Jan: missed); trial 10 Jan, subscribed 15 Jan
    L4 outbound   20 Jan 09:00 lead; contacted 21 Jan 09:00; referred by L1; signed up 22 Jan;
                  paid 500 on 28 Jan (one payment only)
    L5 google     20 Dec 2025  lead → mql 22 Dec → opportunity 28 Dec (open, 300, p=0.25)
    O1 (L1) 1000 created 10 Jan, won 25 Jan · O2 (L3) 500 created 14 Jan, lost 28 Jan
    O3 (no lead, source google) 2000 created 15 Jan, open, p=0.5
    spend January: google/g1 600 marketing, outbound 300 sales
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from leadflow.clock import FrozenClock
from leadflow.db.tables import (
    accounts,
    lead_events,
    leads,
    opportunities,
    revenue,
    spend,
    visitors,
    web_sessions,
)
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.service import compute
from leadflow.workspace import Workspace
from tests.conftest import open_workspace

CONFIG = """\
workspace: {name: KPI test, timezone: UTC, currency: EUR}
teams: [{id: sales, name: Sales}]
owners: [{id: ana, name: Ana, team: sales}]
routing: {fallback: {team: sales}}
sources:
  - {id: google, name: Google Ads, kind: inbound, medium: cpc}
  - {id: referral, name: Referrals, kind: referral, marketing: false}
  - {id: outbound, name: Outbound, kind: outbound}
metrics: {gross_margin: 0.8, market_size_per_year: 365242.5, attribution_half_life_days: 7}
"""
JAN = {"start": date(2026, 1, 1), "end": date(2026, 2, 1)}
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 9, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def jan(tmp_path: Path, db_url: str) -> Workspace:
    ws = open_workspace(tmp_path / "k", db_url, FrozenClock(NOW), CONFIG)
    with ws.transaction() as conn:
        a1, a2 = (
            conn.execute(
                insert(accounts).values(name=n, created_at=at(1, 1), updated_at=at(1, 1)).returning(accounts.c.id)
            ).scalar_one()
            for n in ("Acme", "Globex")
        )

        def lead(created: datetime, source: str, **kw: Any) -> int:
            row = {
                "created_at": created,
                "updated_at": created,
                "stage": "lead",
                "stage_entered_at": created,
                "config_version": ws.version,
                "source": source,
                "last_activity_at": created,
                **kw,
            }
            return int(conn.execute(insert(leads).values(**row).returning(leads.c.id)).scalar_one())

        l1 = lead(
            at(1, 2),
            "google",
            campaign="g1",
            score=80,
            grade="A",
            segment="smb",
            account_id=a1,
            first_contact_at=at(1, 2, 10),
            sla_due_at=at(1, 2, 11),
            visitor_id="v1",
        )
        l2 = lead(
            at(1, 5),
            "google",
            campaign="g1",
            score=40,
            grade="C",
            segment="smb",
            account_id=a1,
            first_contact_at=at(1, 5, 15),
            sla_due_at=at(1, 5, 13),
        )
        l3 = lead(at(1, 10), "referral", score=20, grade="D", segment="ent", sla_due_at=at(1, 11))
        l4 = lead(at(1, 20), "outbound", score=60, grade="B", segment="ent", account_id=a2, first_contact_at=at(1, 21))
        l5 = lead(at(12, 20, year=2025), "google", score=10)

        events: list[dict[str, Any]] = []

        def ev(lead_id: int | None, type: str, when: datetime, stage: str | None = None, **data: Any) -> None:
            events.append(
                {
                    "lead_id": lead_id,
                    "type": type,
                    "occurred_at": when,
                    "recorded_at": when,
                    "actor": "test",
                    "stage": stage,
                    "data": data,
                    "config_version": ws.version,
                    "visitor_id": data.pop("visitor_id", None),
                }
            )

        ev(l1, "lead_created", at(1, 2), source="google", campaign="g1", visitor_id="v1")
        ev(l1, "lead_captured", at(1, 8), source="referral")
        ev(l1, "lead_captured", at(1, 12), source="google", campaign="g2")
        ev(l2, "lead_created", at(1, 5), source="google", campaign="g1")
        ev(l3, "lead_created", at(1, 10), source="referral")
        ev(l4, "lead_created", at(1, 20), source="outbound")
        ev(l5, "lead_created", at(12, 20, year=2025), source="google")
        for lead_id, stage, when in [
            (l1, "lead", at(1, 2)),
            (l1, "mql", at(1, 3)),
            (l1, "sql", at(1, 5)),
            (l1, "opportunity", at(1, 10)),
            (l1, "customer", at(1, 25)),
            (l2, "lead", at(1, 5)),
            (l2, "mql", at(1, 6)),
            (l2, "disqualified", at(1, 8)),
            (l3, "lead", at(1, 10)),
            (l3, "sql", at(1, 12)),
            (l3, "opportunity", at(1, 14)),
            (l4, "lead", at(1, 20)),
            (l5, "lead", at(12, 20, year=2025)),
            (l5, "mql", at(12, 22, year=2025)),
            (l5, "opportunity", at(12, 28, year=2025)),
        ]:
            extra = {"reason": "student"} if stage == "disqualified" else {}
            ev(lead_id, "stage_changed", when, stage=stage, to=stage, **extra)
        ev(l1, "handoff_sent", at(1, 3))
        ev(l1, "handoff_accepted", at(1, 4))
        ev(l2, "handoff_sent", at(1, 6))
        ev(l1, "meeting_held", at(1, 4))
        ev(l1, "signup", at(1, 2))
        ev(l1, "subscription_started", at(1, 20))
        ev(l2, "signup", at(1, 5))
        ev(l4, "signup", at(1, 22))
        ev(l5, "signup", at(12, 21, year=2025))
        ev(l3, "trial_started", at(1, 10))
        ev(l3, "subscription_started", at(1, 15))
        ev(l1, "referral", at(1, 19), referred_lead_id=l4)
        ev(l4, "pql_reached", at(1, 22))
        ev(l4, "pql_reached", at(1, 25))
        ev(l5, "pql_reached", at(12, 30, year=2025))
        ev(l5, "pql_reached", at(1, 3))
        ev(l1, "pqa_reached", at(1, 15))
        ev(l2, "pqa_reached", at(1, 16))
        ev(l4, "pqa_reached", at(1, 23))
        for lead_id, msg in ((l1, "m1"), (l2, "m2"), (l4, "m4")):
            ev(lead_id, "email_delivered", at(1, 3) if lead_id != l4 else at(1, 21), message_id=msg)
        ev(l1, "email_opened", at(1, 3, 10), message_id="m1")
        ev(l1, "email_opened", at(1, 3, 11), message_id="m1")
        ev(l1, "email_clicked", at(1, 3, 11), message_id="m1")
        ev(l1, "email_replied", at(1, 3, 12), message_id="m1")
        ev(l2, "email_unsubscribed", at(1, 6), message_id="m2")
        ev(l4, "email_replied", at(2, 10), message_id="m4")
        ev(l5, "newsletter_subscribed", at(12, 21, year=2025))
        ev(l1, "newsletter_subscribed", at(1, 2))
        ev(l3, "newsletter_subscribed", at(1, 11))
        ev(l1, "social_like", at(1, 5), content="post1", channel="linkedin")
        ev(l1, "social_like", at(1, 5, 10), content="post1", channel="linkedin")
        ev(l1, "social_share", at(1, 6), content="post1", channel="linkedin")
        ev(l2, "social_comment", at(1, 7), content="post2", channel="twitter")
        for visitor, lead_id, when, page in [
            ("v1", l1, at(1, 2, 8).replace(minute=50), "/pricing"),
            ("v1", l1, at(1, 2, 8).replace(minute=55), "/pricing"),
            ("v1", l1, at(1, 2, 9), "/demo"),
            ("v2", None, at(1, 3), "/home"),
            ("v3", None, at(1, 4), "/pricing"),
            ("v3", None, at(1, 4).replace(minute=5), "/pricing"),
            ("v1", l1, at(1, 10), "/blog"),
            ("v9", None, at(12, 31, year=2025), "/home"),
        ]:
            ev(lead_id, "page_view", when, page=page, url="https://x.example" + page, visitor_id=visitor)
        conn.execute(insert(lead_events), events)

        conn.execute(
            insert(visitors),
            [
                {"id": "v1", "lead_id": l1, "first_seen_at": at(1, 2, 8).replace(minute=50), "last_seen_at": at(1, 10)},
                {"id": "v2", "lead_id": None, "first_seen_at": at(1, 3), "last_seen_at": at(1, 3)},
                {"id": "v3", "lead_id": None, "first_seen_at": at(1, 4), "last_seen_at": at(1, 4).replace(minute=5)},
                {
                    "id": "v9",
                    "lead_id": None,
                    "first_seen_at": at(12, 31, year=2025),
                    "last_seen_at": at(12, 31, year=2025),
                },
            ],
        )
        conn.execute(
            insert(web_sessions),
            [
                {
                    "visitor_id": "v1",
                    "lead_id": l1,
                    "started_at": at(1, 2, 8).replace(minute=50),
                    "last_seen_at": at(1, 2),
                    "landing_page": "/pricing",
                    "source": "google",
                    "medium": "cpc",
                    "page_views": 3,
                },
                {
                    "visitor_id": "v2",
                    "lead_id": None,
                    "started_at": at(1, 3),
                    "last_seen_at": at(1, 3),
                    "landing_page": "/home",
                    "source": "google",
                    "medium": "cpc",
                    "page_views": 1,
                },
                {
                    "visitor_id": "v3",
                    "lead_id": None,
                    "started_at": at(1, 4),
                    "last_seen_at": at(1, 4).replace(minute=5),
                    "landing_page": "/pricing",
                    "source": None,
                    "medium": None,
                    "page_views": 2,
                },
                {
                    "visitor_id": "v1",
                    "lead_id": l1,
                    "started_at": at(1, 10),
                    "last_seen_at": at(1, 10),
                    "landing_page": "/blog",
                    "source": "google",
                    "medium": "cpc",
                    "page_views": 1,
                },
            ],
        )

        def opp(lead_id: int | None, amount: str, created: datetime, status: str, **kw: Any) -> int:
            row = {
                "lead_id": lead_id,
                "name": "deal",
                "amount": Decimal(amount),
                "currency": "EUR",
                "pipeline_stage": "qualification" if status == "open" else f"closed_{status}",
                "status": status,
                "created_at": created,
                **kw,
            }
            return int(conn.execute(insert(opportunities).values(**row).returning(opportunities.c.id)).scalar_one())

        o1 = opp(l1, "1000", at(1, 10), "won", closed_at=at(1, 25))
        opp(l3, "500", at(1, 14), "lost", closed_at=at(1, 28), lost_reason="price")
        opp(None, "2000", at(1, 15), "open", probability=0.5, source="google")
        opp(l5, "300", at(12, 28, year=2025), "open", probability=0.25)
        conn.execute(
            insert(revenue),
            uniform(
                [
                    {
                        "lead_id": l1,
                        "opportunity_id": o1,
                        "amount": Decimal("1000"),
                        "currency": "EUR",
                        "recognized_at": at(1, 25),
                        "kind": "new",
                    },
                    {
                        "lead_id": l1,
                        "amount": Decimal("200"),
                        "currency": "EUR",
                        "recognized_at": at(2, 10),
                        "kind": "recurring",
                    },
                    {
                        "lead_id": l4,
                        "amount": Decimal("500"),
                        "currency": "EUR",
                        "recognized_at": at(1, 28),
                        "kind": "new",
                    },
                    {
                        "account_id": a2,
                        "amount": Decimal("600"),
                        "currency": "EUR",
                        "recognized_at": at(12, 15, year=2025),
                        "kind": "recurring",
                    },
                ]
            ),
        )
        conn.execute(
            insert(spend),
            [
                {
                    "source_id": "google",
                    "campaign_id": "g1",
                    "period_start": date(2026, 1, 1),
                    "period_end": date(2026, 2, 1),
                    "amount": Decimal("600"),
                    "currency": "EUR",
                    "kind": "marketing",
                    "origin": "import",
                },
                {
                    "source_id": "outbound",
                    "campaign_id": None,
                    "period_start": date(2026, 1, 1),
                    "period_end": date(2026, 2, 1),
                    "amount": Decimal("300"),
                    "currency": "EUR",
                    "kind": "sales",
                    "origin": "import",
                },
            ],
        )
    return ws


def uniform(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = {k for item in items for k in item}
    return [{k: item.get(k) for k in keys} for item in items]


def rows(ws: Workspace, metric: str, **kw: Any) -> list[dict[str, Any]]:
    extra = kw.pop("extra", {})
    with ws.reader() as conn:
        return compute(ws, conn, metric, MetricQuery(**{**JAN, **kw}, extra=extra))["rows"]


def one(ws: Workspace, metric: str, **kw: Any) -> dict[str, Any]:
    [row] = rows(ws, metric, **kw)
    return row


def by(ws: Workspace, metric: str, dim: str, field: str = "value", **kw: Any) -> dict[Any, Any]:
    return {r["group"]: r[field] for r in rows(ws, metric, by=dim, **kw)}


def rate(row: dict[str, Any]) -> tuple[int, int]:
    return row["numerator"], row["denominator"]


# -- volume -----------------------------------------------------------------------------------


def test_lead_volume(jan: Workspace) -> None:
    assert one(jan, "lead_volume")["value"] == 4  # L1–L4; L5 is December's


def test_inbound_lead_volume(jan: Workspace) -> None:
    assert one(jan, "inbound_lead_volume")["value"] == 2  # L1, L2 (google is inbound)


def test_net_lead_flow(jan: Workspace) -> None:
    r = one(jan, "net_lead_flow")
    assert (r["new"], r["closed"], r["inactive"], r["value"]) == (4, 1, 0, 3)  # L2 disqualified


def test_monthly_signups(jan: Workspace) -> None:
    got = rows(jan, "monthly_signups", start=date(2025, 12, 1))
    assert {r["period"]: r["value"] for r in got} == {"2025-12": 1, "2026-01": 3}


def test_lead_quality_score(jan: Workspace) -> None:
    r = one(jan, "lead_quality_score")
    assert r["value"] == pytest.approx((80 + 40 + 20 + 60) / 4)
    assert r["distribution"] == {"0-24": 1, "25-49": 1, "50-74": 1, "75+": 1}


def test_mqls_count_first_entries_including_skips(jan: Workspace) -> None:
    assert one(jan, "mqls")["value"] == 3  # L1, L2, and L3 jumping to sql; L5 was an MQL in December


def test_sqls(jan: Workspace) -> None:
    assert one(jan, "sqls")["value"] == 2  # L1, L3


def test_sqos(jan: Workspace) -> None:
    assert one(jan, "sqos")["value"] == 2  # O1 and O2 came from SQLs; O3 has no lead


def test_pqls_count_first_time_only(jan: Workspace) -> None:
    assert one(jan, "pqls")["value"] == 1  # L4; L5's January pql_reached is not its first


def test_pqas_count_accounts(jan: Workspace) -> None:
    assert one(jan, "pqas")["value"] == 2  # Acme (L1 then L2: once) and Globex (L4)


# -- conversion -------------------------------------------------------------------------------


def test_qualification_rate(jan: Workspace) -> None:
    r = one(jan, "qualification_rate")
    assert rate(r) == (3, 4) and r["value"] == 0.75
    assert r["ci_low"] == pytest.approx(0.3006, abs=1e-4) and r["ci_high"] == pytest.approx(0.9544, abs=1e-4)


def test_disqualification_rate_with_reasons(jan: Workspace) -> None:
    r = one(jan, "disqualification_rate")
    assert rate(r) == (1, 4) and r["reasons"] == {"student": 1}


def test_mql_criteria_rate(jan: Workspace) -> None:
    assert rate(one(jan, "mql_criteria_rate")) == (1, 2)  # L1 accepted, L2 not


def test_lead_to_sql_rate(jan: Workspace) -> None:
    assert rate(one(jan, "lead_to_sql_rate")) == (2, 4)


def test_lead_to_opportunity_rate(jan: Workspace) -> None:
    assert rate(one(jan, "lead_to_opportunity_rate")) == (2, 4)


def test_sql_to_opportunity_rate(jan: Workspace) -> None:
    assert rate(one(jan, "sql_to_opportunity_rate")) == (2, 2)


def test_lead_conversion_rate(jan: Workspace) -> None:
    assert rate(one(jan, "lead_conversion_rate")) == (1, 4)


def test_empty_denominator_is_null_with_a_reason(jan: Workspace) -> None:
    r = one(jan, "lead_conversion_rate", start=date(2026, 3, 1), end=date(2026, 4, 1))
    assert r["value"] is None and r["denominator"] == 0 and r["reason"]


def test_period_basis(jan: Workspace) -> None:
    r = one(jan, "lead_to_sql_rate", basis="period")
    assert rate(r) == (2, 4)  # SQL entries in January (L1, L3) / leads created in January


def test_opportunity_to_customer_rate(jan: Workspace) -> None:
    assert rate(one(jan, "opportunity_to_customer_rate")) == (1, 3)  # O1 of O1–O3


def test_close_rate(jan: Workspace) -> None:
    assert rate(one(jan, "close_rate")) == (1, 2)  # O1 won, O2 lost


def test_win_rate_counts_only_marketing_sourced(jan: Workspace) -> None:
    assert rate(one(jan, "win_rate")) == (1, 1)  # O2's lead came from referrals (not marketing)


def test_forecasted_win_rate(jan: Workspace) -> None:
    r = one(jan, "forecasted_win_rate")
    assert r["value"] == pytest.approx(0.375) and r["expected_wins"] == pytest.approx(0.75) and r["open"] == 2


# -- funnel and velocity ----------------------------------------------------------------------


def test_stage_reached(jan: Workspace) -> None:
    r = one(jan, "stage_reached")
    assert r["reached"] == {"lead": 4, "prospect": 3, "mql": 3, "sql": 2, "opportunity": 2, "customer": 1}
    assert r["furthest"] == {"lead": 1, "prospect": 0, "mql": 1, "sql": 0, "opportunity": 1, "customer": 1}
    assert r["opportunities"] == {"won": 1, "lost": 1, "qualification": 1}
    assert [(c["from"], c["numerator"], c["denominator"]) for c in r["conversion"]][-1] == ("opportunity", 1, 2)


def test_stage_velocity(jan: Workspace) -> None:
    got = {r["stage"]: r for r in rows(jan, "stage_velocity")}
    lead = got["lead"]  # L1 24 h, L2 24 h, L3 48 h; L4 still a lead
    assert (lead["median"], lead["mean"], lead["p90"], lead["count"], lead["pending"]) == (24, 32, 48, 3, 1)
    assert (got["mql"]["median"], got["mql"]["count"]) == (48, 2)


def test_deal_velocity(jan: Workspace) -> None:
    r = one(jan, "deal_velocity")
    assert r["median"] == 23 * 24 - 1 and r["count"] == 1 and r["pending"] == 2  # 2 Jan 10:00 → 25 Jan 09:00


def test_opportunity_creation_velocity(jan: Workspace) -> None:
    r = one(jan, "opportunity_creation_velocity")
    assert (r["median"], r["mean"], r["p90"], r["count"], r["pending"]) == (48, 108, 168, 2, 1)


def test_pipeline_velocity(jan: Workspace) -> None:
    r = one(jan, "pipeline_velocity")
    assert Decimal(r["value"]) == Decimal("66.67")  # 2 open × 1000 × 1/2 ÷ 15 days


def test_pipeline_value(jan: Workspace) -> None:
    r = one(jan, "pipeline_value")
    assert (r["value"], r["weighted"], r["open"]) == ("2300.00", "1075.00", 2)


def test_pipeline_growth(jan: Workspace) -> None:
    r = one(jan, "pipeline_growth")
    assert r["value"] == pytest.approx((2300 - 300) / 300) and r["count_growth"] == 1.0


def test_pipeline_contribution_by_model(jan: Workspace) -> None:
    first = by(jan, "pipeline_contribution", "source")
    assert first == {"google": "3000.00", "referral": "500.00"}
    linear = by(jan, "pipeline_contribution", "source", extra={"model": "linear"})
    assert linear == {"google": "2500.00", "referral": "1000.00"}  # O1 split google/referral


# -- responsiveness ---------------------------------------------------------------------------


def test_time_to_first_contact(jan: Workspace) -> None:
    r = one(jan, "time_to_first_contact")
    assert (r["median"], r["p90"], r["count"], r["pending"]) == (6, 24, 3, 1)
    assert r["mean"] == pytest.approx(31 / 3, abs=1e-3)


def test_response_time_with_sla_attainment(jan: Workspace) -> None:
    r = one(jan, "response_time")
    assert (r["sla_attainment"]["numerator"], r["sla_attainment"]["denominator"]) == (1, 3)


def test_time_to_first_meeting(jan: Workspace) -> None:
    r = one(jan, "time_to_first_meeting")
    assert (r["median"], r["count"], r["pending"]) == (48, 1, 3)


def test_first_contact_engagement_rate(jan: Workspace) -> None:
    # L1 opened the next day, L4 signed up the next day; L2 only unsubscribed (L4's reply, 20 days on, is late)
    assert rate(one(jan, "first_contact_engagement_rate")) == (2, 3)


# -- money ------------------------------------------------------------------------------------


def test_cost_per_lead(jan: Workspace) -> None:
    assert one(jan, "cost_per_lead")["value"] == "225.00"  # 900 / 4
    assert by(jan, "cost_per_lead", "source") == {"google": "300.00", "outbound": "300.00", "referral": "0.00"}


def test_cac(jan: Workspace) -> None:
    assert one(jan, "cac")["value"] == "900.00"  # one new customer (L1)


def test_ltv(jan: Workspace) -> None:
    r = one(jan, "ltv")
    # 1500 over 2 customer-months = 750 a month; L4 paid once and stopped: churn 1/2; margin 0.8
    assert (r["arpc_month"], r["monthly_churn"], r["value"], r["observed_ltv"]) == (750, 0.5, "1200.00", "750.00")


def test_ltv_to_cac(jan: Workspace) -> None:
    assert one(jan, "ltv_to_cac")["value"] == pytest.approx(1200 / 900)


def test_payback_period(jan: Workspace) -> None:
    assert one(jan, "payback_period")["value"] == pytest.approx(900 / (750 * 0.8))


def test_roas(jan: Workspace) -> None:
    assert one(jan, "roas")["value"] == pytest.approx(1500 / 600)
    got = by(jan, "roas", "source")
    assert got["google"] == pytest.approx(1000 / 600) and got["outbound"] is None  # no ad spend


def test_revenue_by_source_under_every_model(jan: Workspace) -> None:
    got = {r["group"]: r for r in rows(jan, "revenue_by_source", by="source")}
    assert got["google"]["value"] == "1000.00" and got["outbound"]["value"] == "500.00"
    # L1's touches before the win: google (2 Jan), referral (8 Jan), google (12 Jan)
    assert got["google"]["by_model"]["linear"] == "666.67" and got["referral"]["by_model"]["linear"] == "333.33"
    assert got["google"]["by_model"]["u_shaped"] == "800.00" and got["referral"]["by_model"]["u_shaped"] == "200.00"
    assert got["google"]["by_model"]["w_shaped"] == "666.67"
    assert got["google"]["by_model"]["last_touch"] == "1000.00"
    w = [2 ** (-23 / 7), 2 ** (-17 / 7), 2 ** (-13 / 7)]  # ages 23, 17, 13 days; half-life 7
    assert float(got["referral"]["by_model"]["time_decay"]) == pytest.approx(1000 * w[1] / sum(w), abs=0.01)


def test_revenue_growth(jan: Workspace) -> None:
    r = one(jan, "revenue_growth", start=date(2026, 1, 1), end=date(2026, 2, 1))
    assert r["value"] == pytest.approx((1500 - 600) / 600)


def test_market_share(jan: Workspace) -> None:
    assert one(jan, "market_share")["value"] == pytest.approx(1500 / 31000)  # 31 days of 365,242.5 a year


def test_customer_segmentation(jan: Workspace) -> None:
    got = {r["group"]: r for r in rows(jan, "customer_segmentation")}
    assert (got["smb"]["leads"], got["smb"]["customers"], got["smb"]["revenue"]) == (2, 1, "1000.00")
    assert (got["ent"]["leads"], got["ent"]["customers"], got["ent"]["revenue"]) == (2, 0, "500.00")


# -- web --------------------------------------------------------------------------------------


def test_traffic_source_distribution(jan: Workspace) -> None:
    got = {r["group"]: r["value"] for r in rows(jan, "traffic_source_distribution")}
    assert got == {"google / cpc": 0.75, "(direct) / (none)": 0.25}


def test_website_traffic(jan: Workspace) -> None:
    assert one(jan, "website_traffic")["value"] == 4


def test_page_views(jan: Workspace) -> None:
    assert one(jan, "page_views")["value"] == 7


def test_unique_page_views(jan: Workspace) -> None:
    assert one(jan, "unique_page_views")["value"] == 5


def test_unique_visitors(jan: Workspace) -> None:
    assert one(jan, "unique_visitors")["value"] == 3


def test_new_visitors(jan: Workspace) -> None:
    assert one(jan, "new_visitors")["value"] == 3  # v9 was first seen in December


def test_landing_page_conversion_rate(jan: Workspace) -> None:
    got = {r["group"]: (r["numerator"], r["denominator"]) for r in rows(jan, "landing_page_conversion_rate")}
    assert got == {"/pricing": (1, 2), "/home": (0, 1), "/blog": (0, 1)}


def test_conversion_rate(jan: Workspace) -> None:
    assert rate(one(jan, "conversion_rate")) == (1, 3)


# -- product, referral ------------------------------------------------------------------------


def test_signup_to_subscriber_rate(jan: Workspace) -> None:
    assert rate(one(jan, "signup_to_subscriber_rate")) == (1, 3)


def test_trial_to_paid_rate(jan: Workspace) -> None:
    assert rate(one(jan, "trial_to_paid_rate")) == (1, 1)


def test_signup_source_quality_rate(jan: Workspace) -> None:
    got = {r["group"]: rate(r) for r in rows(jan, "signup_source_quality_rate")}
    assert got == {"google": (1, 2), "outbound": (1, 1)}  # grades A, C; B


def test_referral_conversion_rate(jan: Workspace) -> None:
    assert rate(one(jan, "referral_conversion_rate")) == (0, 2)  # L3 (referral source), L4 (referred)


def test_referral_mql_rate(jan: Workspace) -> None:
    assert rate(one(jan, "referral_mql_rate")) == (1, 2)


def test_virality_coefficient(jan: Workspace) -> None:
    r = one(jan, "virality_coefficient")
    assert (r["referred"], r["users"], r["value"]) == (1, 1, 1.0)


def test_viral_cycle_time(jan: Workspace) -> None:
    r = one(jan, "viral_cycle_time")
    assert (r["median"], r["count"]) == (20 * 24, 1)


# -- email and social -------------------------------------------------------------------------


def test_open_rate(jan: Workspace) -> None:
    assert rate(one(jan, "open_rate")) == (1, 3)  # m1 opened twice counts once


def test_click_through_rate(jan: Workspace) -> None:
    assert rate(one(jan, "click_through_rate")) == (1, 3)


def test_response_rate(jan: Workspace) -> None:
    assert rate(one(jan, "response_rate")) == (1, 3)  # L4's reply came in February


def test_unsubscribe_rate(jan: Workspace) -> None:
    assert rate(one(jan, "unsubscribe_rate")) == (1, 3)


def test_newsletter_subscription_growth(jan: Workspace) -> None:
    r = one(jan, "newsletter_subscription_growth")
    assert (r["subscribed"], r["unsubscribed"], r["subscribers_at_start"], r["value"]) == (2, 1, 1, 1.0)


def test_likes_shares_comments(jan: Workspace) -> None:
    r = one(jan, "likes_shares_comments")
    assert (r["likes"], r["shares"], r["comments"], r["value"]) == (2, 1, 1, 4)


def test_conversion_curve(jan: Workspace) -> None:
    r = one(jan, "conversion_curve")
    assert r["curve"]["14"] == 0 and r["curve"]["30"] == 0.25  # L1 became a customer after 23 days


def test_breakdown_by_owner_and_campaign(jan: Workspace) -> None:
    assert by(jan, "lead_volume", "campaign") == {"g1": 2, None: 2}
    assert by(jan, "close_rate", "source", "numerator") == {"google": 1, "referral": 0}
