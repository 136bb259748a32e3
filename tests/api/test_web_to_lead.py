"""Web-to-Lead over real HTTP: Salesforce field names, allowed return hosts, spam guards."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select

from leadflow.capture.spam import FORM_SECRET, secret, timing_token
from leadflow.db.tables import leads
from leadflow.leads.service import get_lead
from leadflow.workspace import Workspace
from tests.conftest import LiveServer, count

SALESFORCE_FORM = {
    "oid": "00D5g000004xyz",
    "retURL": "https://www.northwind.example/thanks",
    "first_name": "margaret",
    "last_name": "HAMILTON",
    "email": "margaret@apollo-software.example",
    "company": "Apollo Software",
    "title": "VP Engineering",
    "phone": "+1 415 555 0100",
    "city": "Boston",
    "country": "United States",
    "lead_source": "Web",
    "description": "We need flight software analytics.",
    "URL": "https://www.apollo-software.example",
    "utm_medium": "cpc",
    "utm_campaign": "Spring Launch",
    "00N5g00000ABC": "a Salesforce custom field",
    "emailOptIn": "1",
}


def post_form(live: LiveServer, form: dict, **kw: object) -> httpx.Response:
    return live.anonymous.post("/w2l", data=form, follow_redirects=False, **kw)  # type: ignore[arg-type]


def test_salesforce_form_unchanged_is_captured_and_redirected(live: LiveServer, ws: Workspace) -> None:
    r = post_form(live, SALESFORCE_FORM)
    assert r.status_code == 303
    assert r.headers["location"] == "https://www.northwind.example/thanks"
    with ws.reader() as conn:
        lead = get_lead(conn, conn.execute(select(leads.c.id)).scalar_one())
    assert (lead["first_name"], lead["last_name"], lead["email"]) == (
        "Margaret",
        "Hamilton",
        "margaret@apollo-software.example",
    )
    assert (lead["source"], lead["medium"], lead["campaign"]) == ("web", "cpc", "spring_launch")
    assert (lead["website"], lead["country"], lead["phone"]) == (
        "https://www.apollo-software.example",
        "US",
        "+14155550100",
    )
    assert lead["notes"] == "We need flight software analytics."
    assert lead["consent_email"] is True
    assert lead["owner_id"] is not None  # assigned in the same request


def test_thank_you_page_without_return_url(live: LiveServer, ws: Workspace) -> None:
    r = post_form(live, {"email": "a@b.example", "first_name": "A"})
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "Someone from Northwind will be in touch shortly" in r.text
    assert count(ws, "leads") == 1


def test_return_url_only_to_allowed_hosts(live: LiveServer, ws: Workspace) -> None:
    r = post_form(live, {**SALESFORCE_FORM, "retURL": "https://evil.example/phish"})
    assert r.status_code == 200  # thanked here, not sent to a host the workspace does not allow
    assert "location" not in r.headers and "Someone from Northwind will be in touch shortly" in r.text
    assert count(ws, "leads") == 1  # see tests/api/test_web_to_lead_keeps.py


def test_missing_required_fields_are_all_named(live: LiveServer, ws: Workspace) -> None:
    form = {"lf_context": "quote", "email": "q@buyer.example", "company": "Buyer"}
    r = post_form(live, form, headers={"accept": "application/json"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {
        "custom.requirement",
        "custom.quantity",
        "custom.budget_range",
        "custom.location",
        "custom.timeline",
    }
    html = post_form(live, form, headers={"accept": "text/html"})
    assert html.status_code == 422 and "Budget range" in html.text and "Please check the form" in html.text
    assert count(ws, "leads") == 0


def test_bots_are_thanked_and_forgotten(live: LiveServer, ws: Workspace) -> None:
    honeypot = post_form(live, {**SALESFORCE_FORM, "website_url": "http://spam.example"})
    assert honeypot.status_code == 303  # looks like success
    with ws.transaction() as conn:
        key = secret(conn, FORM_SECRET, ws.clock.now())
    now_ms = int(time.time() * 1000)
    too_fast = post_form(live, {**SALESFORCE_FORM, "_lf_ts": timing_token(key, now_ms - 300)})
    forged = post_form(live, {**SALESFORCE_FORM, "_lf_ts": f"{now_ms - 60_000}.deadbeef"})
    assert too_fast.status_code == forged.status_code == 303
    assert count(ws, "leads") == 0
    human = post_form(live, {**SALESFORCE_FORM, "_lf_ts": timing_token(key, now_ms - 8_000)})
    assert human.status_code == 303
    assert count(ws, "leads") == 1


def test_rate_limit_per_address(live: LiveServer) -> None:
    statuses = [post_form(live, {**SALESFORCE_FORM, "website_url": "bot"}).status_code for _ in range(12)]
    assert statuses[:10] == [303] * 10
    assert statuses[10] == 429
    assert int(post_form(live, SALESFORCE_FORM).headers["retry-after"]) >= 1


def test_size_and_type_limits(live: LiveServer, ws: Workspace) -> None:
    big = post_form(live, {**SALESFORCE_FORM, "description": "x" * 30_000})
    assert big.status_code == 413
    wrong = live.anonymous.post("/w2l", json=SALESFORCE_FORM)
    assert wrong.status_code == 415
    assert count(ws, "leads") == 0


def test_served_form_has_the_context_fields(live: LiveServer) -> None:
    page = live.anonymous.get("/forms/trial", params={"retURL": "https://www.northwind.example/welcome"})
    assert page.status_code == 200
    for name in (
        'name="email"',
        'name="company"',
        'name="title"',
        'name="custom_use_case"',
        'name="_lf_ts"',
        'name="website_url"',
    ):
        assert name in page.text
    assert 'value="https://www.northwind.example/welcome"' in page.text
    assert "evil.example" not in live.anonymous.get("/forms/trial", params={"retURL": "https://evil.example"}).text
    assert live.anonymous.get("/forms/nonsense").status_code == 404


def test_problems_named_as_the_form_names_them(live: LiveServer, ws: Workspace) -> None:
    form = {"email": "w@corp.example", "description": "x" * 5001, "mobile": "abc", "custom_Bad Key": "1"}
    r = post_form(live, form, headers={"accept": "application/json"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert "description" in fields and "custom_Bad Key" in fields
    assert not fields & {"notes", "phone", "custom.Bad Key.[key]"}
    html = post_form(live, form, headers={"accept": "text/html"})
    assert "Description" in html.text and "Notes" not in html.text
    assert count(ws, "leads") == 0


def test_head_counts_as_people_write_them(live: LiveServer, ws: Workspace) -> None:
    for i, (written, stored) in enumerate([("1,500", 1500), ("1.500", 1500), ("1 500", 1500), ("250", 250)]):
        r = post_form(
            live, {"email": f"h{i}@corp.example", "employees": written}, headers={"accept": "application/json"}
        )
        assert r.status_code == 200, r.text
        with ws.reader() as conn:
            assert (
                conn.execute(select(leads.c.employees).where(leads.c.email == f"h{i}@corp.example")).scalar_one()
                == stored
            )
    for written in ("10.5", "1,5", "51-200", "many", "\u00b2", "9" * 5000):
        r = post_form(live, {"email": "odd@corp.example", "employees": written}, headers={"accept": "application/json"})
        assert r.status_code == 422, written
        assert r.json()["errors"] == [
            {"field": "employees", "message": f"{written[:40]!r} is not a whole number of employees"}
        ]
    assert count(ws, "leads") == 4
