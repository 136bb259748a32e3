"""Web-to-Lead never loses what a visitor sent (issue 22, items 4-7): a retURL it may not follow,
UTM tags outside the form, refusals an operator can count, control characters."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from leadflow.capture.spam import FORM_SECRET, secret, timing_token
from leadflow.cli import app
from leadflow.db.tables import lead_events, leads
from leadflow.leads.service import get_lead
from leadflow.workspace import Workspace
from tests.api.test_web_to_lead import SALESFORCE_FORM, post_form
from tests.conftest import LiveServer, count


def only_lead(ws: Workspace) -> dict:
    with ws.reader() as conn:
        return get_lead(conn, conn.execute(select(leads.c.id)).scalar_one())


def created_event(ws: Workspace) -> dict:
    with ws.reader() as conn:
        return dict(conn.execute(select(lead_events.c.data).where(lead_events.c.type == "lead_created")).scalar_one())


def test_a_return_url_not_allowed_keeps_the_lead_and_says_why(
    live: LiveServer, ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="leadflow"):
        r = post_form(live, {**SALESFORCE_FORM, "retURL": "https://evil.example/phish"})
    assert r.status_code == 200 and "location" not in r.headers
    assert "Someone from Northwind will be in touch shortly" in r.text
    assert only_lead(ws)["email"] == "margaret@apollo-software.example"
    assert created_event(ws)["return_refused"] == "host evil.example not in allowed_return_hosts"
    logged = [rec.getMessage() for rec in caplog.records if "retURL" in rec.getMessage()]
    assert logged and "evil.example" in logged[0]
    assert not any("margaret" in m.lower() or "hamilton" in m.lower() for m in logged)


def test_a_return_url_that_is_no_url_keeps_the_lead(live: LiveServer, ws: Workspace) -> None:
    r = post_form(live, {**SALESFORCE_FORM, "retURL": "javascript:alert(1)"}, headers={"accept": "application/json"})
    assert r.status_code == 200
    assert count(ws, "leads") == 1
    assert created_event(ws)["return_refused"] == "retURL is not an http(s) URL"


def test_an_allowed_return_url_leaves_no_remark(live: LiveServer, ws: Workspace) -> None:
    assert post_form(live, SALESFORCE_FORM).status_code == 303
    assert "return_refused" not in created_event(ws)


def test_the_hosted_form_drops_a_return_url_it_may_not_follow(live: LiveServer) -> None:
    page = live.anonymous.get("/forms/trial", params={"retURL": "https://evil.example/x"})
    assert page.status_code == 200 and "evil.example" not in page.text


PLAIN = {"email": "utm@buyer.example", "first_name": "Uma"}


def test_utm_tags_in_the_action_url(live: LiveServer, ws: Workspace) -> None:
    r = live.anonymous.post(
        "/w2l?utm_source=partner_site&utm_medium=referral&utm_campaign=Spring%20Fair",
        data=PLAIN,
        headers={"referer": "https://blog.example/post?utm_source=blog&utm_campaign=ignored"},
    )
    assert r.status_code == 200
    lead = only_lead(ws)
    assert (lead["source"], lead["medium"], lead["campaign"]) == ("partner_site", "referral", "spring_fair")
    assert created_event(ws)["utm"] == {
        "utm_source": "partner_site",
        "utm_medium": "referral",
        "utm_campaign": "Spring Fair",
    }


def test_form_fields_win_over_the_action_url(live: LiveServer, ws: Workspace) -> None:
    r = live.anonymous.post(
        "/w2l?utm_source=partner_site&utm_medium=referral",
        data={**PLAIN, "utm_source": "webinar", "utm_campaign": "q3"},
    )
    assert r.status_code == 200
    lead = only_lead(ws)
    assert (lead["source"], lead["medium"], lead["campaign"]) == ("webinar", "referral", "q3")


def test_utm_tags_in_the_referrer_when_form_and_action_have_none(live: LiveServer, ws: Workspace) -> None:
    r = live.anonymous.post(
        "/w2l",
        data=PLAIN,
        headers={"referer": "https://www.northwind.example/pricing?utm_source=partner_site&utm_campaign=Launch"},
    )
    assert r.status_code == 200
    lead = only_lead(ws)
    assert (lead["source"], lead["campaign"]) == ("partner_site", "launch")


def test_the_referrer_is_not_mixed_with_the_action_url(live: LiveServer, ws: Workspace) -> None:
    r = live.anonymous.post(
        "/w2l?utm_source=partner_site",
        data=PLAIN,
        headers={"referer": "https://www.northwind.example/?utm_campaign=other_touch"},
    )
    assert r.status_code == 200
    assert only_lead(ws)["campaign"] in (None, "")


def refusals_of(ws: Workspace) -> list[dict]:
    with ws.reader() as conn:
        rows = conn.execute(
            select(lead_events.c.lead_id, lead_events.c.data, lead_events.c.personal)
            .where(lead_events.c.type == "form_refused")
            .order_by(lead_events.c.id)
        ).all()
    assert all(r.lead_id is None and r.personal is None for r in rows)
    return [dict(r.data) for r in rows]


def test_refusals_are_kept_without_the_bots_data(live: LiveServer, ws: Workspace) -> None:
    with ws.transaction() as conn:
        key = secret(conn, FORM_SECRET, ws.clock.now())
    now_ms = int(time.time() * 1000)
    bot = {**SALESFORCE_FORM, "lf_context": "demo"}
    assert post_form(live, {**bot, "website_url": "http://spam.example"}).status_code == 303
    assert post_form(live, {**bot, "_lf_ts": timing_token(key, now_ms - 300)}).status_code == 303
    assert post_form(live, {**bot, "_lf_ts": f"{now_ms}.deadbeef", "lf_context": "no-such-form"}).status_code == 303
    assert count(ws, "leads") == 0
    kept = refusals_of(ws)
    assert [(r["reason"], r.get("context")) for r in kept] == [
        ("honeypot", "demo"),
        ("too_fast", "demo"),
        ("bad_token", None),
    ]
    assert {r["network"] for r in kept} == {"127.0.0.0/24"}
    stored = repr(kept)
    assert "margaret" not in stored.lower() and "555" not in stored and "spam.example" not in stored

    report = live.client.get("/api/v1/forms/refusals").json()
    assert sorted((d["reason"], d["count"]) for d in report["days"]) == [
        ("bad_token", 1),
        ("honeypot", 1),
        ("too_fast", 1),
    ]
    assert [r["reason"] for r in report["recent"]] == ["bad_token", "too_fast", "honeypot"]
    assert live.anonymous.get("/api/v1/forms/refusals").status_code == 401

    cli = CliRunner().invoke(
        app,
        ["forms", "refusals", "--workspace", str(ws.path), "--since", f"{ws.clock.now():%Y-%m-%d}", "--json"],
        env={"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)},
    )
    assert cli.exit_code == 0, cli.output
    assert '"reason": "honeypot"' in cli.output and "margaret" not in cli.output.lower()


def test_rate_limited_people_get_a_page_and_the_flood_is_counted(live: LiveServer, ws: Workspace) -> None:
    statuses = [post_form(live, {**PLAIN, "website_url": "bot"}).status_code for _ in range(10)]
    assert statuses == [200] * 10  # honeypot: thanked
    person = post_form(live, PLAIN, headers={"accept": "text/html,application/xhtml+xml"})
    assert person.status_code == 429
    assert "text/html" in person.headers["content-type"] and "try again" in person.text
    assert int(person.headers["retry-after"]) >= 1
    machine = post_form(live, PLAIN, headers={"accept": "application/json"})
    assert machine.status_code == 429 and machine.headers["content-type"].startswith("application/problem+json")
    kept = refusals_of(ws)
    assert [r["reason"] for r in kept].count("honeypot") == 10
    limited = [r for r in kept if r["reason"] == "rate_limited"]
    assert len(limited) == 1 and limited[0]["count"] == 1  # a flood: one row a minute per address


def test_control_characters_are_stripped_from_a_form(live: LiveServer, ws: Workspace) -> None:
    form = {
        "email": "esc@buyer.example",
        "first_name": "\x1b[31mEve\x1b[0m",
        "last_name": "Smith\x07\x01",
        "company": "Acme\x1b]0;pwned\x07 Corp\x9b2J",
        "description": "line one\r\nline two\tend\x1b[2J\x7f",
        "custom_plan": "pro\x1b[1m",
    }
    r = post_form(live, form, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    lead = only_lead(ws)
    assert (lead["first_name"], lead["last_name"], lead["company"]) == ("Eve", "Smith", "Acme Corp")
    assert lead["notes"] == "line one\nline two\tend"
    assert lead["custom"]["plan"] == "pro"
