"""Bringing a team's history in (issue 17), as a user does it: the `leadflow` command with the
example mapping files only, on real funnels (Maven CRM, X Education) and the hand-written HubSpot
export of examples/hubspot_history. The metrics are then compared, to the count, with pandas
computing each metric's own definition over the same CSV files; and nothing is sent or scheduled
for historical rows.

SQLite only: one Maven import takes about half a minute, so each funnel is imported once per
module and shared by the tests that read it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import SHARED_DATA

LEADFLOW = [sys.executable, "-m", "leadflow.cli"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAVEN = SHARED_DATA / "maven_crm"
XEDU = SHARED_DATA / "xeducation" / "leads.csv"
HUBSPOT = EXAMPLES / "hubspot_history"
SPAN = ("--from", "2016-10-01", "--to", "2018-01-01")


@dataclass
class Ws:
    """A workspace directory on its own SQLite database, driven through the CLI."""

    root: Path
    env: dict[str, str] | None = None

    @property
    def db(self) -> Path:
        return self.root / "leadflow.db"

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **(self.env or {}), "LEADFLOW_DATABASE_URL": f"sqlite:///{self.db}", "COLUMNS": "250"}
        env.pop("LEADFLOW_WORKSPACE", None)
        done = subprocess.run(
            [*LEADFLOW, *args, "-w", str(self.root)], capture_output=True, text=True, env=env, timeout=600
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def load(self, file: Path, kind: str, mapping: Path | None = None, *extra: str) -> dict[str, Any]:
        args = ["import", str(file), "--kind", kind, *(["--mapping", str(mapping)] if mapping else []), *extra]
        summary: dict[str, Any] = json.loads(self.run(*args, "--json").stdout)
        return summary

    def report(self, *metrics: str, **options: str) -> dict[str, list[dict[str, Any]]]:
        args = ["report", "--json", *[a for m in metrics for a in ("-m", m)]]
        for key, value in options.items():
            args += [f"--{key}", value]
        return {m["id"]: m["rows"] for m in json.loads(self.run(*args).stdout)}

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(query).fetchall()

    def scalar(self, query: str) -> Any:
        return self.sql(query)[0][0]


def workspace(root: Path, template: Path, config: str, env: dict[str, str] | None = None) -> Ws:
    root.mkdir(parents=True)
    (root / "leadflow.yaml").write_text(config, encoding="utf-8")
    shutil.copy(template, root / "leadflow.db")
    ws = Ws(root, env)
    assert "valid" in ws.run("config", "check").stdout
    return ws


def landed_whole(summary: dict[str, Any], rows: int) -> None:
    """Every row landed, as history, and the shared data directory got no errors file."""
    assert (summary["rows_read"], summary["landed"], summary["rejected"]) == (rows, rows, 0), summary["rejections"][:3]
    assert summary["history"] == rows and summary["live"] is False
    assert summary["error_file"] is None


def nearest_rank(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * pct / 100) - 1]


def by_group(rows: list[dict[str, Any]], *keys: str) -> dict[Any, tuple[Any, ...]]:
    return {r["group"]: tuple(r[k] for k in keys) for r in rows}


# -- Maven CRM: leads and deals keyed by opportunity_id, no emails ----------------------------------


@pytest.fixture(scope="module")
def maven(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[Ws, pd.DataFrame]]:
    """examples/maven_crm as its README says: owners, then leads, then deals."""
    root = tmp_path_factory.mktemp("maven") / "maven"
    ws = workspace(root, sqlite_template, (EXAMPLES / "maven_crm" / "leadflow.yaml").read_text())
    ws.run("owners", "import", str(MAVEN / "sales_teams.csv"))
    d = pd.read_csv(MAVEN / "sales_pipeline.csv")
    leads = ws.load(MAVEN / "sales_pipeline.csv", "leads", EXAMPLES / "maven_crm" / "leads.yaml")
    landed_whole(leads, len(d))
    assert leads["created"] == len(d) and leads["stages"] == len(d)  # one stage each, at its own time
    assert (leads["unknown_owners"], leads["undeclared_sources"]) == ({}, {})
    deals = ws.load(MAVEN / "sales_pipeline.csv", "opportunities", EXAMPLES / "maven_crm" / "deals.yaml")
    landed_whole(deals, len(d))
    no_engage = int(d["engage_date"].isna().sum())
    assert deals["counts"] == {"deals opened at their lead's creation (no created_at)": no_engage}
    for when in ("engage_date", "close_date"):
        d[when] = pd.to_datetime(d[when], format="%m/%d/%Y", utc=True)
    names = {o["name"]: o["id"] for o in json.loads(ws.run("owners", "list", "--json").stdout)}
    d["owner"] = d["sales_agent"].map(names)
    assert d["owner"].notna().all()
    yield ws, d


def test_maven_leads_link_to_their_deals_by_the_source_id(maven: tuple[Ws, pd.DataFrame]) -> None:
    ws, d = maven
    # one lead per opportunity_id, and each deal on the lead with its id (no email to link by)
    linked = ws.scalar(
        "SELECT count(*) FROM opportunities o JOIN leads l ON l.id = o.lead_id WHERE l.external_id = o.external_id"
    )
    assert linked == ws.scalar("SELECT count(DISTINCT external_id) FROM leads") == d["opportunity_id"].nunique()
    stages = dict(ws.sql("SELECT stage, count(*) FROM leads GROUP BY stage"))
    # Prospecting leads were prospects until their (open) deal was imported: a deal makes its
    # lead an opportunity, as the API does
    expected = d["deal_stage"].map(
        {"Won": "customer", "Lost": "lost", "Engaging": "opportunity", "Prospecting": "opportunity"}
    )
    assert stages == expected.value_counts().to_dict()
    owners = dict(ws.sql("SELECT external_id, owner_id FROM leads"))
    assert owners == dict(zip(d["opportunity_id"], d["owner"], strict=True))
    revenue = ws.scalar("SELECT count(*) FROM revenue")
    assert revenue == int((d["deal_stage"] == "Won").sum())  # every won deal has a close_value


def test_maven_lead_volume_per_month(maven: tuple[Ws, pd.DataFrame]) -> None:
    ws, d = maven
    rows = ws.report("lead_volume", grain="month", **{"from": SPAN[1], "to": SPAN[3]})["lead_volume"]
    got = {r["period"]: r["value"] for r in rows if r["value"]}
    expected = d["engage_date"].dropna().dt.strftime("%Y-%m").value_counts().to_dict()
    assert got == expected and sum(got.values()) == 8300


def cohort(d: pd.DataFrame, maturity_days: int) -> pd.DataFrame:
    """lead_conversion_rate's population: leads created (engaged) in the period; converted when
    they became a customer (the won deal's close) within maturity_days of their creation."""
    start, end = pd.Timestamp(SPAN[1], tz="UTC"), pd.Timestamp(SPAN[3], tz="UTC")
    pop = d[(d["engage_date"] >= start) & (d["engage_date"] < end)].copy()
    won = pop["deal_stage"] == "Won"
    pop["converted"] = won & (pop["close_date"] - pop["engage_date"] <= pd.Timedelta(days=maturity_days))
    return pop


def test_maven_lead_to_customer_overall_and_by_agent(maven: tuple[Ws, pd.DataFrame]) -> None:
    ws, d = maven
    pop = cohort(d, maturity_days=800)  # examples/maven_crm/leadflow.yaml
    assert pop["converted"].sum() == (pop["deal_stage"] == "Won").sum()  # every deal matures

    [overall] = ws.report("lead_conversion_rate", **{"from": SPAN[1], "to": SPAN[3]})["lead_conversion_rate"]
    assert (overall["numerator"], overall["denominator"]) == (4238, 8300) == (pop["converted"].sum(), len(pop))

    rows = ws.report("lead_conversion_rate", by="owner", **{"from": SPAN[1], "to": SPAN[3]})["lead_conversion_rate"]
    got = by_group(rows, "numerator", "denominator")
    agents = pop.groupby("owner")["converted"].agg(["sum", "count"])
    assert got == {owner: (int(r["sum"]), int(r["count"])) for owner, r in agents.iterrows()}
    assert len(got) == 30


def test_maven_wins_per_month_from_the_deals_and_from_the_leads(maven: tuple[Ws, pd.DataFrame]) -> None:
    ws, d = maven
    closed = d[d["deal_stage"].isin(["Won", "Lost"])]
    month = closed["close_date"].dt.strftime("%Y-%m")
    wins = month[closed["deal_stage"] == "Won"].value_counts().to_dict()
    closes = month.value_counts().to_dict()

    span = {"from": SPAN[1], "to": SPAN[3], "grain": "month"}
    deals = ws.report("close_rate", **span)["close_rate"]
    assert {r["period"]: r["numerator"] for r in deals if r["denominator"]} == wins
    assert {r["period"]: r["denominator"] for r in deals if r["denominator"]} == closes
    # the leads' stage history says the same: 4,238 became customers in the span, at their wins.
    # (Per month on this basis the report crashes: a month with more conversions than new leads
    # is a rate above 1, which the Wilson interval refuses; see the note of issue 17.)
    [leads] = ws.report("lead_conversion_rate", basis="period", **{"from": SPAN[1], "to": SPAN[3]})[
        "lead_conversion_rate"
    ]
    assert leads["numerator"] == sum(wins.values()) == 4238
    became = ws.sql(
        "SELECT strftime('%Y-%m', occurred_at), count(*) FROM lead_events WHERE type = 'stage_changed' "
        "AND stage = 'customer' GROUP BY 1"
    )
    assert dict(became) == wins


def test_maven_time_to_close(maven: tuple[Ws, pd.DataFrame]) -> None:
    ws, d = maven
    won = d[d["deal_stage"] == "Won"]
    # deal_velocity: first contact (none in this history) else the deal's creation → won
    hours = ((won["close_date"] - won["engage_date"]).dt.total_seconds() / 3600).tolist()
    [velocity] = ws.report("deal_velocity", **{"from": SPAN[1], "to": SPAN[3]})["deal_velocity"]
    assert velocity["unit"] == "hours" and velocity["count"] == len(hours) == 4238
    assert velocity["median"] == pytest.approx(nearest_rank(hours, 50))
    assert velocity["p90"] == pytest.approx(nearest_rank(hours, 90))
    assert velocity["mean"] == pytest.approx(sum(hours) / len(hours), abs=1e-3)
    # open at the period's end: the Engaging deals (Prospecting ones have no engage date, so they
    # opened at their lead's creation, the import time, after the period)
    assert velocity["pending"] == int((d["deal_stage"] == "Engaging").sum())

    rows = ws.report("deal_velocity", by="owner", **{"from": SPAN[1], "to": SPAN[3]})["deal_velocity"]
    got = by_group(rows, "count", "median")
    won = won.assign(hours=hours)
    expected = {o: (len(g), nearest_rank(g["hours"].tolist(), 50)) for o, g in won.groupby("owner")}
    assert got == expected  # whole days in hours: exact


# -- X Education: an outcome column, sources, no dates --------------------------------------------


def slug(value: Any) -> str | None:
    """How the import writes a source: lower case, runs of other characters as one underscore."""
    if not isinstance(value, str) or not value.strip():
        return None
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")


@pytest.fixture(scope="module")
def xedu(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[Ws, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("xedu") / "xedu"
    ws = workspace(root, sqlite_template, (EXAMPLES / "xeducation" / "leadflow.yaml").read_text())
    summary = ws.load(XEDU, "leads", EXAMPLES / "xeducation" / "history.yaml")
    frame = pd.read_csv(XEDU, dtype=str, keep_default_na=False)
    landed_whole(summary, len(frame))
    assert summary["stages"] == int((frame["Converted"] == "1").sum())
    yield ws, frame


def today_span() -> dict[str, str]:
    """The file has no dates: every lead was created at the import, today (in any zone)."""
    today = datetime.now(UTC).date()
    return {"from": str(today - timedelta(days=2)), "to": str(today + timedelta(days=3))}


def test_xeducation_lead_to_customer_overall_and_by_source(xedu: tuple[Ws, pd.DataFrame]) -> None:
    ws, x = xedu
    converted = x["Converted"] == "1"
    [overall] = ws.report("lead_conversion_rate", **today_span())["lead_conversion_rate"]
    assert (overall["numerator"], overall["denominator"]) == (int(converted.sum()), len(x)) == (3561, 9240)

    rows = ws.report("lead_conversion_rate", by="source", **today_span())["lead_conversion_rate"]
    got = by_group(rows, "numerator", "denominator")
    source = x["Lead Source"].map(slug)
    expected = converted.groupby(source, dropna=False).agg(["sum", "count"])
    assert got == {(None if pd.isna(s) else s): (int(r["sum"]), int(r["count"])) for s, r in expected.iterrows()}
    assert got["reference"] == (490, 534) and got["olark_chat"] == (448, 1755)


def test_xeducation_a_later_export_updates_the_same_leads(xedu: tuple[Ws, pd.DataFrame]) -> None:
    ws, x = xedu
    # A later export of the first 500 leads, where 20 more of them have converted: matched by
    # Prospect ID, so they are updated (and become customers), not added.
    later = x.head(500).copy()
    newly = later.index[later["Converted"] == "0"][:20]
    later.loc[newly, "Converted"] = "1"
    path = ws.root / "leads_later.csv"
    later.to_csv(path, index=False)
    summary = ws.load(path, "leads", EXAMPLES / "xeducation" / "history.yaml")
    assert (summary["created"], summary["merged"], summary["rejected"], summary["stages"]) == (0, 500, 0, 20)
    assert ws.scalar("SELECT count(*) FROM leads") == len(x)
    assert ws.scalar("SELECT count(*) FROM leads WHERE stage = 'customer'") == 3561 + 20


# -- the HubSpot example, and nothing sent or scheduled for history -------------------------------

WORK_TODAY = """
sla:
  policies:
    - {id: standard, first_touch: 1h, remind_before: 30m, escalate: [{after: 1h, action: notify_manager}, {after: 2h, action: reassign}]}
nurture:
  templates:
    hello: {subject: "Hello {{ first_name or 'there' }}", body: "Hi {{ first_name or 'there' }}"}
  sequences:
    - {id: everyone, when: {field: stage, in: [lead, prospect, mql, sql, opportunity, lost]}, steps: [{send: hello}]}
webhooks:
  - {id: crm, url: 'http://127.0.0.1:9/hook', secret_env: HOOK_SECRET, events: [lead.created, lead.assigned, lead.stage_changed]}
"""


def sent_or_scheduled(ws: Ws) -> dict[str, int]:
    return {
        "notifications": ws.scalar("SELECT count(*) FROM notifications"),
        "nurture": ws.scalar("SELECT count(*) FROM nurture_enrolments"),  # ever enrolled
        "webhooks": ws.scalar("SELECT count(*) FROM webhook_deliveries"),
        "sla_events": ws.scalar("SELECT count(*) FROM lead_events WHERE type IN ('sla_reminded', 'sla_escalated')"),
        "sla_clocks": ws.scalar(
            "SELECT count(*) FROM leads WHERE sla_due_at IS NOT NULL OR sla_next_at IS NOT NULL OR sla_policy IS NOT NULL"
        ),
    }


@pytest.fixture(scope="module")
def hubspot(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Ws:
    """examples/hubspot_history in a workspace that would notify, nurture, clock and call a webhook."""
    root = tmp_path_factory.mktemp("hubspot") / "fernhill"
    config = (HUBSPOT / "leadflow.yaml").read_text() + WORK_TODAY
    ws = workspace(root, sqlite_template, config, {"HOOK_SECRET": "history-test-secret"})
    ws.run("worker", "--once")  # the webhook is in place before anything is imported
    return ws


def test_hubspot_export_lands_whole_in_order(hubspot: Ws) -> None:
    ws = hubspot
    contacts = pd.read_csv(HUBSPOT / "contacts.csv", dtype=str)
    deals = pd.read_csv(HUBSPOT / "deals.csv", dtype=str)
    activity = pd.read_csv(HUBSPOT / "activity.csv", dtype=str)
    spend = pd.read_csv(HUBSPOT / "spend.csv", dtype=str)

    leads = ws.load(HUBSPOT / "contacts.csv", "leads")  # HubSpot's headers need no mapping
    landed_whole(leads, len(contacts))
    became = contacts.filter(like="Became a").drop(columns="Became a Lead Date")
    assert leads["stages"] == int(became.notna().sum().sum())
    assert (leads["unknown_owners"], leads["undeclared_sources"]) == ({}, {})
    landed_whole(ws.load(HUBSPOT / "deals.csv", "opportunities", HUBSPOT / "deals.yaml"), len(deals))
    landed_whole(ws.load(HUBSPOT / "activity.csv", "events", HUBSPOT / "activity.yaml"), len(activity))
    landed_whole(ws.load(HUBSPOT / "spend.csv", "spend", HUBSPOT / "spend.yaml"), len(spend))
    again = ws.load(HUBSPOT / "deals.csv", "opportunities", HUBSPOT / "deals.yaml")
    assert again["already_imported"] and ws.scalar("SELECT count(*) FROM opportunities") == len(deals)

    # Create Date 2024-05-02 17:54 in New York (EDT) is 21:54 UTC; the stage and owner as they were
    first = contacts.iloc[0]
    row = ws.sql(f"SELECT created_at, stage, owner_id, source FROM leads WHERE external_id = '{first['Record ID']}'")
    assert row == [("2024-05-02 21:54:00.000000", "customer", "jordan", "organic_search")]
    stage_of = {"Customer": "customer", "Opportunity": "opportunity", "Sales Qualified Lead": "sql"}
    stage_of |= {"Marketing Qualified Lead": "mql", "Lead": "lead", "Subscriber": "lead"}
    expected = contacts["Lifecycle Stage"].map(stage_of)
    lost = deals.loc[deals["Deal Stage"] == "Closed Lost", "Associated Contact IDs"]
    expected[contacts["Record ID"].isin(lost)] = "lost"  # a lost deal takes its lead out of the funnel
    assert dict(ws.sql("SELECT external_id, stage FROM leads")) == dict(
        zip(contacts["Record ID"], expected, strict=True)
    )
    # every deal and activity is on the contact whose Record ID it names
    on_lead = "SELECT count(*) FROM {t} x JOIN leads l ON l.id = x.lead_id"
    assert ws.scalar(on_lead.format(t="opportunities")) == len(deals)
    assert ws.scalar(on_lead.format(t="lead_events") + " WHERE x.external_id IS NOT NULL") == len(activity)
    won = deals[deals["Deal Stage"] == "Closed Won"]
    assert ws.sql("SELECT count(*), sum(amount) FROM revenue") == [(len(won), won["Amount"].astype(int).sum())]
    assert ws.scalar("SELECT sum(amount) FROM spend") == pytest.approx(spend["Cost (USD)"].astype(float).sum())

    # the report reads it: lead → customer by source, as the contacts file says
    rows = ws.report("lead_conversion_rate", by="source", **{"from": "2024-01-01", "to": "2024-08-01"})
    got = by_group(rows["lead_conversion_rate"], "numerator", "denominator")
    customer = (contacts["Lifecycle Stage"] == "Customer").groupby(contacts["Original Source"].map(slug))
    assert got == {s: (int(n.sum()), len(n)) for s, n in customer}

    # nothing was sent or scheduled for any of it, even after the worker has run
    ws.run("worker", "--once")
    assert sent_or_scheduled(ws) == dict.fromkeys(
        ("notifications", "nurture", "webhooks", "sla_events", "sla_clocks"), 0
    )


def test_hubspot_live_rows_are_worked_today(hubspot: Ws) -> None:
    """The same workspace takes --live rows as captured now: the checks above are not vacuous."""
    ws = hubspot
    new = ws.root / "new_contacts.csv"
    new.write_text(
        "Record ID,First Name,Last Name,Email,Company Name,Lifecycle Stage,Contact owner,Original Source\n"
        "61000000001,Ada,Lovelace,ada@engines.example,Analytical Engines,Lead,Priya Nair,Referrals\n"
        "61000000002,Alan,Turing,alan@bletchley.example,Bletchley Labs,Lead,,Paid Search\n",
        encoding="utf-8",
    )
    before = sent_or_scheduled(ws)
    summary = ws.load(new, "leads", None, "--live")
    assert (summary["created"], summary["history"], summary["live"]) == (2, 0, True)
    ws.run("worker", "--once")
    after = sent_or_scheduled(ws)
    assert before == dict.fromkeys(before, 0)
    # Alan, routed now, and Ada, given to the owner the file names: each owner notified, each SLA
    # clock running; both enrolled in nurture (and out again at once: no email consent); the
    # webhook has deliveries to make
    assert (after["notifications"], after["sla_clocks"], after["nurture"]) == (2, 2, 2)
    assert after["webhooks"] > 0
    owners = ws.sql("SELECT external_id, owner_id, sla_policy FROM leads WHERE NOT historical ORDER BY external_id")
    notified = ws.sql("SELECT recipient, reason FROM notifications ORDER BY recipient")
    assert owners == [("61000000001", "priya", "standard"), ("61000000002", "jordan", "standard")]
    assert notified == [
        ("jordan.reyes@fernhill.example", "lead_assigned"),
        ("priya.nair@fernhill.example", "lead_assigned"),
    ]


def test_an_import_where_no_row_lands_exits_1(hubspot: Ws) -> None:
    bad = hubspot.root / "bad_deals.csv"
    bad.write_text("Record ID,Deal Stage,Associated Contact IDs\nX1,Closed Won,404\n", encoding="utf-8")
    mapping = hubspot.root / "bad.yaml"
    mapping.write_text(
        "columns: {external_id: Record ID, status: Deal Stage, lead_external_id: Associated Contact IDs}\n"
        "values: {status: {Closed Won: won}}\n",
        encoding="utf-8",
    )
    done = hubspot.run("import", str(bad), "--kind", "opportunities", "--mapping", str(mapping), ok=False)
    assert done.returncode == 1 and "1 rejected" in done.stdout and "0 created" in done.stdout


def test_examples_are_valid_workspace_files(tmp_path: Path) -> None:
    for name in ("maven_crm", "hubspot_history", "xeducation"):
        root = tmp_path / name
        root.mkdir()
        shutil.copy(EXAMPLES / name / "leadflow.yaml", root)
        ws = Ws(root)
        assert ws.run("config", "check").stdout.startswith("valid"), name
