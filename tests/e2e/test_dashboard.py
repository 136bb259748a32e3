"""The dashboard in a real browser: a visitor's lead reaches the rep's inbox; the rep calls it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from leadflow.dashboard.access import readable_leads
from leadflow.dashboard.users import authenticate, create_user
from leadflow.db.tables import leads
from leadflow.workspace import Workspace
from tests.conftest import LiveServer

PASSWORD = "correct horse battery"


def _users(ws: Workspace) -> None:
    with ws.transaction() as conn:
        now = ws.clock.now()
        create_user(conn, "ana@northwind.example", PASSWORD, "rep", now, owner="ana")
        create_user(conn, "ben@northwind.example", PASSWORD, "rep", now, owner="ben")
        create_user(conn, "mira@northwind.example", PASSWORD, "manager", now, owner="mira")


def _visitor_submits(browser: Browser, live: LiveServer) -> None:
    page = browser.new_page()
    page.goto(f"{live.url}/forms/demo?utm_source=google&utm_campaign=spring")
    page.get_by_label("Email", exact=True).fill("grace.hopper@navy-labs.example")
    page.get_by_label("First name", exact=True).fill("Grace")
    page.get_by_label("Last name", exact=True).fill("Hopper")
    page.get_by_label("Company", exact=True).fill("Navy Labs")
    page.get_by_label("Title (optional)", exact=True).fill("Director of Engineering")
    page.get_by_label("Employees (optional)", exact=True).fill("800")
    page.wait_for_timeout(2200)
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state()
    assert "will be in touch" in page.content()
    page.close()


def _sign_in(browser: Browser, live: LiveServer, email: str, *, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{live.url}/app/inbox")  # signed out: sent to the sign-in page
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


def test_rep_sees_the_new_lead_first_and_a_call_stops_the_clock(
    browser: Browser, live: LiveServer, ws: Workspace, artifacts: Path
) -> None:
    _users(ws)
    _visitor_submits(browser, live)
    with ws.reader() as conn:
        lead_id, owner = conn.execute(select(leads.c.id, leads.c.owner_id)).one()
    assert owner == "ana"

    page = _sign_in(browser, live, "ana@northwind.example")
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    first = page.locator("tbody tr").first
    expect(first).to_contain_text("Grace Hopper")
    countdown = first.locator(".countdown")
    expect(countdown).to_contain_text("left")  # the live countdown, ticking in the browser
    shown = countdown.inner_text()
    page.wait_for_timeout(1500)
    assert countdown.inner_text() != shown
    page.screenshot(path=str(artifacts / "dashboard-inbox.png"), full_page=True)

    first.get_by_role("button", name=f"Log a call with lead {lead_id}").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text("SLA met")
    expect(page.locator(f'tr[data-lead="{lead_id}"] .countdown')).to_contain_text("SLA met")
    with ws.reader() as conn:
        assert conn.execute(select(leads.c.first_contact_at).where(leads.c.id == lead_id)).scalar_one() is not None
    page.screenshot(path=str(artifacts / "dashboard-inbox-after-call.png"), full_page=True)

    page.get_by_role("link", name="Grace Hopper").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Why this owner")).to_be_visible()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("call")
    page.screenshot(path=str(artifacts / "dashboard-lead.png"), full_page=True)
    page.close()

    phone = _sign_in(browser, live, "ana@northwind.example", width=390)
    phone.screenshot(path=str(artifacts / "dashboard-inbox-phone.png"), full_page=True)
    phone.close()


def test_another_rep_gets_403_and_the_manager_sees_metrics_and_teams(
    browser: Browser, live: LiveServer, ws: Workspace, artifacts: Path
) -> None:
    _users(ws)
    _visitor_submits(browser, live)
    with ws.reader() as conn:
        lead_id = conn.execute(select(leads.c.id)).scalar_one()

    ben = _sign_in(browser, live, "ben@northwind.example")
    response = ben.goto(f"{live.url}/app/leads/{lead_id}")
    assert response is not None and response.status == 403
    expect(ben.get_by_role("heading", name="Not yours to see")).to_be_visible()
    ben.screenshot(path=str(artifacts / "dashboard-403.png"), full_page=True)
    ben.close()

    mira = _sign_in(browser, live, "mira@northwind.example")
    mira.get_by_role("link", name="Metrics").click()
    mira.wait_for_load_state()
    expect(mira.get_by_role("heading", name="Metrics")).to_be_visible()
    expect(mira.locator("#total-new")).to_have_text("1")
    expect(mira.locator("#chart-flow .main-svg").first).to_be_visible()  # Plotly drew it, from our own server
    mira.screenshot(path=str(artifacts / "dashboard-metrics.png"), full_page=True)
    mira.get_by_role("link", name="Teams").click()
    mira.wait_for_load_state()
    expect(mira.get_by_role("heading", name="Teams and routing")).to_be_visible()
    expect(mira.locator("tbody")).to_contain_text("Ana Souza")
    mira.screenshot(path=str(artifacts / "dashboard-teams.png"), full_page=True)
    for name, path in (("review", "/app/review"), ("models", "/app/models")):
        mira.goto(f"{live.url}{path}")
        mira.screenshot(path=str(artifacts / f"dashboard-{name}.png"), full_page=True)
    mira.goto(f"{live.url}/app/inbox")
    expect(mira.locator(f'tr[data-lead="{lead_id}"]')).to_be_visible()  # ana's lead: on mira's team
    mira.close()


def test_the_manager_reads_cohorts_and_velocity_and_narrows_the_metrics_to_a_campaign(
    browser: Browser, live: LiveServer, ws: Workspace, artifacts: Path
) -> None:
    from datetime import date

    from sqlalchemy import func

    from leadflow.simulate import simulate

    simulate(ws, months=4, seed=5, end=date(2026, 3, 1))
    _users(ws)
    with ws.reader() as conn:
        campaign = conn.execute(
            select(leads.c.campaign)
            .where(leads.c.campaign.is_not(None), leads.c.owner_id.in_(("ana", "ben", "chloe", "dmitri", "mira")))
            .group_by(leads.c.campaign)
            .order_by(func.count().desc())
        ).scalar()
    assert campaign is not None

    mira = _sign_in(browser, live, "mira@northwind.example")
    mira.goto(f"{live.url}/app/metrics?months=6")
    for chart in ("cohort", "velocity", "flow", "sla", "funnel", "econ"):
        expect(mira.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    expect(mira.get_by_role("heading", name="Conversion by cohort")).to_be_visible()
    expect(mira.get_by_role("heading", name="Stage velocity")).to_be_visible()
    expect(mira.locator("#chart-cohort .errorbar").first).to_be_attached()  # the Wilson intervals
    mira.screenshot(path=str(artifacts / "dashboard-metrics-cohorts.png"), full_page=True)
    before = mira.locator("#total-new").inner_text()

    mira.get_by_label("Campaign", exact=True).select_option(campaign)  # HTMX: the figures below the form are swapped in
    expect(mira.locator("#metrics-scope")).to_contain_text(f"campaign {campaign.replace('_', ' ')}")
    after = mira.locator("#total-new").inner_text()
    assert 0 < int(after.replace(",", "")) < int(before.replace(",", ""))
    with ws.reader() as conn:
        manager = authenticate(conn, "mira@northwind.example", PASSWORD)
        assert manager is not None
        expected = conn.execute(
            select(func.count()).where(
                readable_leads(manager),
                leads.c.campaign == campaign,
                leads.c.merged_into_id.is_(None),
                leads.c.created_at >= datetime(2025, 10, 1, tzinfo=UTC),
            )
        ).scalar_one()
    assert int(after.replace(",", "")) == expected
    assert f"campaign={campaign}" in mira.url  # the filtered view has a link of its own
    expect(mira.locator("#chart-cohort .main-svg").first).to_be_visible()  # charts drawn again
    expect(mira.locator("table[aria-label='Unit economics by campaign'] tbody tr")).to_have_count(1)
    mira.screenshot(path=str(artifacts / "dashboard-metrics-campaign.png"), full_page=True)

    mira.get_by_label("Team", exact=True).select_option("sales")
    expect(mira.locator("#metrics-scope")).to_contain_text("team Inside Sales")
    assert "team=sales" in mira.url
    owned = mira.locator("#total-new").inner_text()  # the team's owners' leads (not the unassigned queue)
    assert int(owned.replace(",", "")) <= int(after.replace(",", ""))
    linked = mira.url

    mira.get_by_role("link", name="Models").click()
    mira.get_by_label("Sales capacity (MQLs per week)").fill("20")
    mira.get_by_role("button", name="Advise").click()
    expect(mira.locator("#advised-threshold")).to_have_text(re.compile(r"^\d+$"))
    expect(mira.locator("#chart-advice .main-svg").first).to_be_visible()
    mira.screenshot(path=str(artifacts / "dashboard-models-advice.png"), full_page=True)
    mira.close()

    phone = _sign_in(browser, live, "mira@northwind.example", width=390)
    phone.goto(linked)
    expect(phone.get_by_label("Campaign", exact=True)).to_have_value(campaign)
    expect(phone.locator("#total-new")).to_have_text(owned)
    expect(phone.locator("#chart-velocity .main-svg").first).to_be_visible()
    phone.screenshot(path=str(artifacts / "dashboard-metrics-phone.png"), full_page=True)
    phone.close()
