"""A visitor fills in the demo form in a real browser; the lead lands with its owner."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser
from sqlalchemy import select

from leadflow.db.tables import leads
from leadflow.leads.service import get_lead
from leadflow.workspace import Workspace
from tests.conftest import LiveServer


def test_visitor_submits_the_demo_form(browser: Browser, live: LiveServer, ws: Workspace, artifacts: Path) -> None:
    page = browser.new_page()
    page.goto(f"{live.url}/forms/demo?utm_source=google&utm_campaign=spring")
    assert page.get_by_role("heading").first.inner_text() == "Book a demo"
    page.get_by_label("Email", exact=True).fill("grace.hopper@navy-labs.example")
    page.get_by_label("First name", exact=True).fill("Grace")
    page.get_by_label("Last name", exact=True).fill("Hopper")
    page.get_by_label("Company", exact=True).fill("Navy Labs")
    page.get_by_label("Title (optional)", exact=True).fill("Director of Engineering")
    page.get_by_label("Employees (optional)", exact=True).fill("800")
    page.get_by_label("Send me occasional product news").check()
    page.screenshot(path=str(artifacts / "w2l-form.png"), full_page=True)
    page.wait_for_timeout(2200)  # people take a moment; faster than the minimum time is a bot
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state()
    assert "Someone from Northwind will be in touch shortly" in page.content()
    page.screenshot(path=str(artifacts / "w2l-thanks.png"), full_page=True)
    with ws.reader() as conn:
        lead = get_lead(conn, conn.execute(select(leads.c.id)).scalar_one())
    assert (lead["first_name"], lead["company"], lead["capture_context"]) == ("Grace", "Navy Labs", "demo")
    assert (lead["source"], lead["medium"], lead["campaign"]) == (
        "google_ads",
        "cpc",
        "spring",
    )  # a source rule on utm_source
    assert lead["consent_email"] is True
    assert lead["owner_id"] == "ana" and lead["score"] == 55  # director 20, 201-1000 people 15, a demo 20
    page.close()


def test_missing_fields_are_shown_to_the_visitor(browser: Browser, live: LiveServer, artifacts: Path) -> None:
    page = browser.new_page()
    page.goto(f"{live.url}/forms/quote")
    page.evaluate(
        "document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))"
    )  # skip the browser's own check
    page.get_by_label("Email", exact=True).fill("buyer@bulk.example")
    page.get_by_label("Company", exact=True).fill("Bulk Buyers")
    page.wait_for_timeout(2200)
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state()
    alert = page.get_by_role("alert").inner_text()
    for field in ("Requirement", "Quantity", "Budget range", "Location", "Timeline"):
        assert field in alert
    page.screenshot(path=str(artifacts / "w2l-missing-fields.png"), full_page=True)
    page.close()
