"""Reports read history (issue 17): the default period fits data that ended before today, a missing
group of a breakdown is "(none)", durations say their unit, metrics that count only declared
sources say what they left out, won deals without an amount do not break pipeline velocity, and
conversion_curve refuses a maturity it has no value at."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events, leads, opportunities
from leadflow.errors import InvalidInput
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.report import figure, flat_rows, to_html
from leadflow.metrics.service import catalogue, compute, default_period
from leadflow.workspace import Workspace
from tests.conftest import LiveServer, open_workspace
from tests.metrics.test_kpis import CONFIG as JAN_CONFIG
from tests.metrics.test_kpis import (
    JAN,
    at,
    jan,  # noqa: F401 - the hand-built January
    rows,
)

LEADFLOW = [sys.executable, "-m", "leadflow.cli"]
TODAY = datetime(2026, 12, 3, 9, tzinfo=UTC)


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False),
        "COLUMNS": "250",  # tables and their captions on one line each
    }
    return subprocess.run(
        [*LEADFLOW, "report", "-w", str(ws.path), *args], capture_output=True, text=True, env=env, timeout=120
    )


def result(ws: Workspace, metric: str, **kw: Any) -> dict[str, Any]:
    extra = kw.pop("extra", {})
    with ws.reader() as conn:
        return compute(ws, conn, metric, MetricQuery(**{**JAN, **kw}, extra=extra))


def add_opportunity(ws: Workspace, **kw: Any) -> None:
    status = kw.get("status", "open")
    row = {
        "lead_id": None,
        "name": "deal",
        "amount": None,
        "currency": "EUR",
        "pipeline_stage": "qualification" if status == "open" else f"closed_{status}",
        "status": status,
        **kw,
    }
    with ws.transaction() as conn:
        conn.execute(insert(opportunities).values(**row))


def add_lead(conn: Any, ws: Workspace, created: datetime, source: str | None) -> int:
    row = {
        "created_at": created,
        "updated_at": created,
        "stage": "lead",
        "stage_entered_at": created,
        "config_version": ws.version,
        "source": source,
        "last_activity_at": created,
    }
    return int(conn.execute(insert(leads).values(**row).returning(leads.c.id)).scalar_one())


def add_event(conn: Any, ws: Workspace, lead_id: int, type: str, when: datetime, stage: str | None = None) -> None:
    conn.execute(
        insert(lead_events).values(
            lead_id=lead_id,
            type=type,
            occurred_at=when,
            recorded_at=when,
            actor="test",
            stage=stage,
            data={"to": stage} if stage else {},
            config_version=ws.version,
        )
    )


# -- pipeline velocity with won deals that have no amount -----------------------------------------


def test_pipeline_velocity_averages_the_known_amounts_and_counts_the_others(jan: Workspace) -> None:  # noqa: F811
    # O1 won 1000 after 15 days; a second deal won after 15 days with no amount; O2 lost.
    add_opportunity(jan, amount=None, status="won", created_at=at(1, 5), closed_at=at(1, 20), source="google")
    [row] = rows(jan, "pipeline_velocity")
    assert (row["won"], row["won_without_amount"], row["average_deal"]) == (2, 1, "1000.00")
    assert Decimal(row["value"]) == Decimal("88.89")  # 2 open × 1000 × 2/3 ÷ 15 days
    assert row["note"] == "average deal over the won deals with an amount: 1 of 2"


def test_pipeline_velocity_without_any_amount_is_null_with_the_reason(jan: Workspace) -> None:  # noqa: F811
    add_opportunity(jan, status="won", created_at=at(2, 2), closed_at=at(2, 20), source="google")
    [row] = rows(jan, "pipeline_velocity", start=date(2026, 2, 1), end=date(2026, 3, 1))
    assert row["value"] is None and row["average_deal"] is None
    assert (row["won"], row["won_without_amount"]) == (1, 1)
    assert row["reason"] == "no deal won in this period has an amount (1 won)"


def test_pipeline_velocity_without_amounts_in_the_cli_and_the_api(jan: Workspace) -> None:  # noqa: F811
    add_opportunity(jan, status="won", created_at=at(2, 2), closed_at=at(2, 20), source="google")
    feb = ("--from", "2026-02-01", "--to", "2026-03-01")
    table = cli(jan, *feb, "--metric", "pipeline_velocity")
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "no deal won in this period has an amount (1 won)" in table.stdout
    data = cli(jan, *feb, "--metric", "pipeline_velocity", "--json")
    assert data.returncode == 0, data.stderr
    [row] = json.loads(data.stdout)[0]["rows"]
    assert (row["value"], row["won_without_amount"]) == (None, 1)
    with LiveServer(jan) as api:
        r = api.client.get("/api/v1/metrics/pipeline_velocity", params={"from": "2026-02-01", "to": "2026-03-01"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0]["won_without_amount"] == 1


# -- the default period fits the data --------------------------------------------------------------


@pytest.fixture
def history(tmp_path: Path, db_url: str) -> Iterator[Workspace]:
    """A funnel that ended long before today: two leads in 2017 (one without a source)."""
    ws = open_workspace(tmp_path / "h", db_url, FrozenClock(TODAY), JAN_CONFIG)
    with ws.transaction() as conn:
        first = add_lead(conn, ws, datetime(2017, 3, 10, 9, tzinfo=UTC), "google")
        second = add_lead(conn, ws, datetime(2017, 5, 2, 9, tzinfo=UTC), None)
        add_event(conn, ws, first, "lead_created", datetime(2017, 3, 10, 9, tzinfo=UTC))
        add_event(conn, ws, second, "lead_created", datetime(2017, 5, 2, 9, tzinfo=UTC))
        add_event(conn, ws, first, "stage_changed", datetime(2017, 3, 10, 9, tzinfo=UTC), "lead")
        add_event(conn, ws, second, "stage_changed", datetime(2017, 5, 2, 9, tzinfo=UTC), "lead")
        add_event(conn, ws, first, "stage_changed", datetime(2017, 6, 30, 18, tzinfo=UTC), "mql")
    yield ws
    ws.close()


def test_default_period_ends_after_the_data_and_begins_with_it(history: Workspace) -> None:
    with history.reader() as conn:
        assert default_period(history, conn) == (
            date(2017, 3, 1),
            date(2017, 7, 1),
            "the data runs from 2017-03-10 to 2017-06-30",
        )
        # A bound given is kept; the other still fits the data.
        assert default_period(history, conn, start=date(2017, 1, 1))[:2] == (date(2017, 1, 1), date(2017, 7, 1))
        assert default_period(history, conn, end=date(2017, 4, 1))[:2] == (date(2017, 3, 1), date(2017, 4, 1))
        # Asked to start after the data: the period runs to tomorrow, as for live data.
        assert default_period(history, conn, start=date(2020, 1, 1))[:2] == (date(2020, 1, 1), date(2026, 12, 4))


def test_default_period_of_live_or_no_data_is_the_last_twelve_months(ws: Workspace) -> None:
    with ws.reader() as conn:  # an empty workspace; the clock is 2 March 2026
        assert default_period(ws, conn) == (date(2025, 3, 1), date(2026, 3, 3), None)
    with ws.transaction() as conn:
        lead = add_lead(conn, ws, datetime(2024, 1, 5, tzinfo=UTC), "google")
        add_event(conn, ws, lead, "email_opened", datetime(2026, 3, 2, 8, tzinfo=UTC))
    with ws.reader() as conn:  # data until today: tomorrow, twelve months back
        assert default_period(ws, conn) == (date(2025, 3, 1), date(2026, 3, 3), None)


def test_report_without_dates_shows_the_months_of_the_data(history: Workspace) -> None:
    proc = cli(history, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["from"], data["to"]) == ("2017-03-01", "2017-07-01")
    assert [(m["month"], m["leads"]) for m in data["months"] if m["leads"]] == [("2017-03", 1), ("2017-05", 1)]
    assert all("2017-03" <= m["month"] <= "2017-06" for m in data["months"])
    assert "the data runs from 2017-03-10 to 2017-06-30" in proc.stderr


def test_report_html_without_dates_covers_the_data(history: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = cli(history, "--metric", "lead_volume", "--grain", "month", "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert "Lead volume (2017-03-01 → 2017-07-01" in page and '"x":["2017-03","2017-05"]' in page


def test_the_api_default_period_fits_the_data(jan: Workspace) -> None:  # noqa: F811
    with LiveServer(jan) as api:  # data from 20 Dec 2025 to 10 Feb 2026; the clock says 1 June 2026
        body = api.client.get("/api/v1/metrics/lead_volume").json()
    assert (body["from"], body["to"]) == ("2025-12-01", "2026-02-11")
    assert [r["value"] for r in body["rows"]] == [5]


# -- a missing group is "(none)" -------------------------------------------------------------------


def test_a_missing_group_is_none_in_tables_csv_and_charts(jan: Workspace) -> None:  # noqa: F811
    by_campaign = result(jan, "lead_volume", by="campaign")
    assert {r["group"] for r in by_campaign["rows"]} == {"g1", None}  # the API keeps null
    assert {r["group"]: r["value"] for r in flat_rows(by_campaign)} == {"g1": 2, "(none)": 2}
    assert {trace.name for trace in figure(by_campaign).data} == {"g1", "(none)"}
    whole = result(jan, "lead_volume")
    assert [r["group"] for r in flat_rows(whole)] == [None]
    assert [trace.name for trace in figure(whole).data] == ["overall"]
    page = to_html([by_campaign, whole])
    assert '"name":"all"' not in page and '"name":"(none)"' in page


def test_a_default_breakdown_labels_its_missing_group_too(jan: Workspace) -> None:  # noqa: F811
    # signup_source_quality_rate is broken down by source without by=.
    with jan.transaction() as conn:
        lead = add_lead(conn, jan, at(1, 29), None)
        add_event(conn, jan, lead, "signup", at(1, 29))
    signups = result(jan, "signup_source_quality_rate")
    assert signups["by"] is None and None in {r["group"] for r in signups["rows"]}
    assert {r["group"] for r in flat_rows(signups)} == {"google", "outbound", "(none)"}
    assert {trace.name for trace in figure(signups).data} == {"google", "outbound", "(none)"}


def test_the_csv_of_a_breakdown_says_none(jan: Workspace) -> None:  # noqa: F811
    with jan.transaction() as conn:
        lead = add_lead(conn, jan, at(1, 29), None)
        add_event(conn, jan, lead, "lead_created", at(1, 29))
    proc = cli(jan, "--from", "2026-01-01", "--to", "2026-02-01", "--metric", "lead_volume", "--by", "source", "--csv")
    assert proc.returncode == 0, proc.stderr
    got = {r["group"]: r["value"] for r in csv.DictReader(io.StringIO(proc.stdout))}
    assert got == {"google": "2", "referral": "1", "outbound": "1", "(none)": "1"}


def test_the_funnel_by_source_shows_leads_without_a_source_as_none(history: Workspace) -> None:
    proc = cli(history)
    assert proc.returncode == 0, proc.stderr
    funnel = proc.stdout.split("Funnel by source")[1]
    assert "(none)" in funnel and "None" not in funnel


# -- durations say their unit ----------------------------------------------------------------------


def test_durations_say_they_are_in_hours(jan: Workspace) -> None:  # noqa: F811
    for metric in ("deal_velocity", "time_to_first_contact", "stage_velocity", "response_time"):
        r = result(jan, metric)
        assert (r["unit"], r["duration_unit"]) == ("duration", "hours"), metric  # "unit" kept as it was
        assert {row["unit"] for row in r["rows"]} == {"hours"}, metric
        assert figure(r).layout.yaxis.title.text == "hours"
    described = {m["id"]: m for m in catalogue()}
    assert described["deal_velocity"]["duration_unit"] == "hours"
    assert "duration_unit" not in described["lead_volume"]


def test_the_cli_table_and_csv_say_hours(jan: Workspace) -> None:  # noqa: F811
    jan_dates = ("--from", "2026-01-01", "--to", "2026-02-01")
    table = cli(jan, *jan_dates, "--metric", "time_to_first_contact")
    assert table.returncode == 0, table.stderr
    assert "median (hours)" in table.stdout and "p90 (hours)" in table.stdout
    assert "durations in hours" in table.stdout
    data = cli(jan, *jan_dates, "--metric", "deal_velocity", "--csv")
    [row] = list(csv.DictReader(io.StringIO(data.stdout)))
    assert (row["median"], row["unit"]) == ("551.0", "hours")  # 2 Jan 10:00 → 25 Jan 09:00


# -- metrics that count only declared sources say so -----------------------------------------------


def test_win_rate_says_it_counts_declared_sources_and_what_it_left_out(jan: Workspace) -> None:  # noqa: F811
    add_opportunity(jan, amount=Decimal("50"), status="won", created_at=at(1, 3), closed_at=at(1, 9), source="webinar")
    add_opportunity(jan, amount=Decimal("70"), status="lost", created_at=at(1, 3), closed_at=at(1, 9))
    r = result(jan, "win_rate")
    [row] = r["rows"]
    assert (row["numerator"], row["denominator"]) == (1, 1)  # O1 only, as before
    assert "declared in leadflow.yaml" in r["note"] and "marketing" in r["note"]
    assert r["left_out"] == {
        "what": "closed opportunities",
        "undeclared_source": 1,
        "no_source": 1,
        "undeclared_sources": {"webinar": 1},
    }
    close = result(jan, "close_rate")  # counts every closed deal: nothing to say
    assert "note" not in close and "left_out" not in close
    assert close["rows"][0]["denominator"] == 4


def test_inbound_and_referral_metrics_count_undeclared_leads_left_out(jan: Workspace) -> None:  # noqa: F811
    with jan.transaction() as conn:
        for source in ("webinar", "webinar", "podcast", None):
            lead = add_lead(conn, jan, at(1, 29), source)
            add_event(conn, jan, lead, "lead_created", at(1, 29))
    inbound = result(jan, "inbound_lead_volume")
    assert inbound["rows"][0]["value"] == 2  # L1 and L2 from google, as before
    assert inbound["left_out"] == {
        "what": "leads",
        "undeclared_source": 3,
        "no_source": 1,
        "undeclared_sources": {"webinar": 2, "podcast": 1},
    }
    assert "kind inbound" in inbound["note"]
    referral = result(jan, "referral_conversion_rate")
    assert referral["left_out"]["undeclared_source"] == 3 and "referral event" in referral["note"]


def test_the_cli_shows_the_note_and_what_was_left_out(jan: Workspace) -> None:  # noqa: F811
    add_opportunity(jan, amount=Decimal("50"), status="won", created_at=at(1, 3), closed_at=at(1, 9), source="webinar")
    proc = cli(jan, "--from", "2026-01-01", "--to", "2026-02-01", "--metric", "win_rate")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "declared in leadflow.yaml" in text
    assert "left out — closed opportunities with a source not declared in leadflow.yaml: 1 (webinar: 1)" in text


# -- conversion_curve and its maturity -------------------------------------------------------------


def test_conversion_curve_value_is_read_at_the_maturity(jan: Workspace) -> None:  # noqa: F811
    [row] = rows(jan, "conversion_curve")
    assert (row["maturity_days"], row["value"]) == (90, row["curve"]["90"])
    [row] = rows(jan, "conversion_curve", extra={"maturity": 14})
    assert (row["maturity_days"], row["value"]) == (14, 0)


def test_conversion_curve_refuses_a_maturity_it_has_no_value_at(jan: Workspace) -> None:  # noqa: F811
    with pytest.raises(InvalidInput) as asked:
        rows(jan, "conversion_curve", extra={"maturity": 45})
    [problem] = asked.value.problems
    assert problem.field == "maturity" and "7, 14, 30, 60, 90, 180" in problem.message


def test_conversion_curve_names_the_workspace_setting_it_cannot_use(tmp_path: Path, db_url: str) -> None:
    ws = open_workspace(
        tmp_path / "m",
        db_url,
        FrozenClock(TODAY),
        JAN_CONFIG.replace("gross_margin", "maturity_days: 45, gross_margin"),
    )
    try:
        with pytest.raises(InvalidInput) as configured:
            rows(ws, "conversion_curve")
        [problem] = configured.value.problems
        assert problem.field == "metrics.maturity_days" and "maturity=" in problem.message
        assert rows(ws, "conversion_curve", extra={"maturity": 30}) == []  # no cohort, but no error
    finally:
        ws.close()


def test_the_api_refuses_an_unsupported_maturity_with_a_422(jan: Workspace) -> None:  # noqa: F811
    with LiveServer(jan) as api:
        params = {"from": "2026-01-01", "to": "2026-02-01"}
        bad = api.client.get("/api/v1/metrics/conversion_curve", params={**params, "maturity": 45})
        good = api.client.get("/api/v1/metrics/conversion_curve", params={**params, "maturity": 30})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    [error] = bad.json()["errors"]
    assert error["field"] == "maturity" and "7, 14, 30, 60, 90, 180" in error["message"]
    assert good.status_code == 200 and good.json()["rows"][0]["value"] == 0.25


def test_a_period_rate_above_one_has_no_interval_and_says_why() -> None:
    from leadflow.metrics.measures import rate_row

    row = rate_row("2017-03", None, 7, 4)
    assert (row["value"], row["ci_low"], row["ci_high"]) == (7 / 4, None, None)
    assert "not a proportion" in row["reason"]
    assert rate_row("2017-03", None, 2, 4)["ci_low"] is not None
