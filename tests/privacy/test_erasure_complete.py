"""Erasing a merged person leaves none of their values anywhere, and keeps them from coming back
unasked: a dump of every table (all rows, all columns) and of the outbox after the erasure of a
rich person (two captures merged, a street address in a custom field, page views with ``?email=``
in the URL, a nurture email with a subject rendered from their name) holds none of them; their
email and phone are refused afterwards, or taken as a brand-new lead only with fresh consent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.clock import FrozenClock
from leadflow.config.loader import load_config_text
from leadflow.db.tables import (
    app_secrets,
    erasure_suppressions,
    lead_events,
    leads,
    metadata,
    notifications,
    opportunities,
)
from leadflow.errors import ConfigError
from leadflow.jobs.worker import TASKS, run_task
from leadflow.workspace import Workspace, starter_config_text
from tests.conftest import LiveServer
from tests.routing.helpers import workspace

EMAIL = "anika.lovelace@quixcorp.example"
OTHER_EMAIL = "anni.byron@mailbox.example"
PAGE = f"https://www.northwind.example/pricing?email={EMAIL}&utm_source=newsletter"
ANIKA = {
    "email": EMAIL,
    "first_name": "Anika",
    "last_name": "Lovelace",
    "phone": "+49 30 1234567",
    "company": "Quixcorp",
    "country": "DE",
    "visitor_id": "vis-anika-laptop",
    "landing_page": f"https://www.northwind.example/demo?email={EMAIL}",
    "consent": {"email": True},
    "custom": {"street_address": "Lindenstrasse 42, 10969 Berlin", "industry_code": "J62", "timeline": "later"},
}
ANNI = {
    "email": OTHER_EMAIL,
    "first_name": "Anni",
    "last_name": "Byron",
    "phone": "+44 20 7946 0321",
    "visitor_id": "vis-anika-phone",
    "consent": {"email": True},
    "custom": {"street_address": "Flat 3, 221 Baker Street, London"},
}
# Everything that names the person, in any form leadflow stores it.
PERSONAL_VALUES = (
    EMAIL,
    OTHER_EMAIL,
    "anika",
    "lovelace",
    "anni",
    "byron",
    "49301234567",
    "1234567",
    "442079460321",
    "lindenstrasse",
    "baker street",
    "vis-anika-laptop",
    "vis-anika-phone",
)


def _workspace(tmp_path: Path, db_url: str, clock: FrozenClock, **privacy: Any) -> Workspace:
    starter = yaml.safe_load(starter_config_text())
    nurture = {
        **starter["nurture"],
        "send_window": "00:00-24:00",
        "send_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "sequences": [
            {"id": "later", "when": {"field": "custom.timeline", "eq": "later"}, "steps": [{"send": "guide"}]}
        ],
    }
    return workspace(
        tmp_path,
        db_url,
        clock,
        teams=[{"id": "sales", "name": "Sales"}, {"id": "dach", "name": "DACH"}],
        owners=[
            {"id": "ana", "name": "Ana Souza", "email": "ana@northwind.example", "team": "sales"},
            {"id": "dmitri", "name": "Dmitri Volkov", "email": "dmitri@northwind.example", "team": "dach"},
        ],
        routing={
            "account_owner_first": True,
            "notify_owner": True,
            "rules": [{"id": "german", "team": "dach", "when": {"field": "country", "eq": "DE"}}],
            "fallback": {"team": "sales"},
        },
        nurture=nurture,
        fields={"custom.industry_code": {"personal": False}},
        privacy={"after_erasure": "refuse", **privacy},
    )


def _rich_person(live: LiveServer) -> tuple[int, int]:
    """Two captures of one person, merged; page views with their email in the URL; a nurture
    email whose subject was rendered from their name; the owners' notices in the outbox."""
    ws = live.ws
    for browser in (ANIKA["visitor_id"], ANNI["visitor_id"]):  # before they were known
        view = live.client.post("/api/v1/events", json={"type": "page_view", "visitor_id": browser, "url": PAGE})
        assert view.status_code == 201 and view.json()["anonymous"], view.text
    first = live.client.post("/api/v1/leads", json=ANIKA, headers={"Idempotency-Key": "capture-anika"})
    assert first.status_code == 201, first.text
    survivor = first.json()["lead"]["id"]
    run_task(ws, TASKS["nurture.enrol"])
    run_task(ws, TASKS["nurture.advance"])
    run_task(ws, TASKS["notify.send"])
    second = live.client.post("/api/v1/leads", json=ANNI, headers={"Idempotency-Key": "capture-anni"})
    assert second.status_code == 201, second.text
    merged = second.json()["lead"]["id"]
    view = live.client.post("/api/v1/events", json={"type": "page_view", "visitor_id": ANNI["visitor_id"], "url": PAGE})
    assert view.status_code == 201 and view.json()["lead_id"] == merged, view.text
    r = live.client.post(
        f"/api/v1/leads/{survivor}/merge", json={"other_lead_id": merged, "reason": "Anika Lovelace again"}
    )
    assert r.status_code == 200, r.text
    run_task(ws, TASKS["notify.send"])
    # a deal named after them, with their site address among its custom columns
    from decimal import Decimal

    from leadflow.opportunities.service import NewDeal, open_deals

    with ws.transaction() as conn:
        open_deals(
            ws,
            conn,
            [
                NewDeal(
                    lead_id=survivor,
                    name="Lovelace fit-out, Lindenstrasse 42",
                    amount=Decimal(900),
                    custom={"site": "Flat 3, 221 Baker Street, London", "industry_code": "J62"},
                )
            ],
        )
    with ws.reader() as conn:
        row = conn.execute(select(leads).where(leads.c.id == survivor)).one()
        subjects = [
            e.data.get("subject") for e in conn.execute(select(lead_events).where(lead_events.c.type == "email_sent"))
        ]
    # what the person is made of before the erasure: the test would prove nothing otherwise
    assert row.owner_id == "dmitri" and row.account_id is not None
    assert row.custom["street_address"] and row.custom["industry_code"] == "J62"
    assert subjects == ["Anika, a short guide to getting started"]
    dump = _dump(ws)
    assert all(v.lower() in dump for v in PERSONAL_VALUES), [v for v in PERSONAL_VALUES if v.lower() not in dump]
    return survivor, merged


def _dump(ws: Workspace) -> str:
    """Every row of every table, every column, as text; and every file in the outbox."""
    parts = []
    with ws.reader() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(f"{table.name}: " + " | ".join(repr(v) for v in row))
    assert ws.path is not None
    parts.extend(f.read_text(errors="replace") for f in sorted((ws.path / "outbox").glob("*")))
    return "\n".join(parts).lower()


def _leftovers(dump: str) -> str:
    """Each personal value still found, with the table and the text around it (empty: none)."""
    found = {}
    for value in PERSONAL_VALUES:
        at = dump.find(value.lower())
        if at >= 0:
            line = dump.rfind("\n", 0, at) + 1
            found[value] = dump[line : dump.find(":", line)] + ": ..." + dump[max(line, at - 150) : at + 100]
    return "\n".join(f"{value!r} in {where}" for value, where in found.items())


def test_erasing_a_rich_merged_person_leaves_none_of_their_values_in_any_table(
    tmp_path: Path, db_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything leadflow and the server log on the way: no personal value
    ws = _workspace(tmp_path, db_url, clock)
    with LiveServer(ws) as live:
        survivor, merged = _rich_person(live)
        erased = live.client.post(f"/api/v1/leads/{merged}/erase", json={"reason": "her request of 2026-03-02"})
        assert erased.status_code == 200, erased.text
        assert not (left := _leftovers(_dump(ws))), left
        assert erased.json()["custom_fields"] == ["street_address", "timeline"]
        assert erased.json()["suppressed"] == 4  # two emails, two phones
        with ws.reader() as conn:
            row = conn.execute(select(leads).where(leads.c.id == survivor)).one()
            sent = conn.execute(select(lead_events.c.data).where(lead_events.c.type == "email_sent")).scalars().all()
            merge = conn.execute(select(lead_events.c.data).where(lead_events.c.type == "lead_merged")).scalar_one()
        # the facts stay: the company, the custom field declared not personal, the email was sent
        assert row.company == "Quixcorp" and row.custom == {"industry_code": "J62"} and row.owner_id == "dmitri"
        assert row.landing_page == "https://www.northwind.example/demo"
        assert len(sent) == 1 and sent[0]["step"] == 0 and sent[0]["subject"] is None
        assert merge["merged_id"] == merged and "custom" in merge["changed"]
        with ws.reader() as conn:
            deal = conn.execute(select(opportunities)).one()
        assert deal.amount == 900 and deal.custom == {"industry_code": "J62"}  # the business's figures stay
    ws.close()
    logged = caplog.text.lower()
    assert caplog.records and not [v for v in PERSONAL_VALUES if v.lower() in logged]


def test_an_erased_persons_email_and_phone_are_refused_by_every_entry_point(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    ws = _workspace(tmp_path, db_url, clock)
    with LiveServer(ws) as live:
        survivor, _ = _rich_person(live)
        erased = CliRunner().invoke(
            app,
            ["privacy", "erase", str(survivor), "--reason", "asked by phone", "--workspace", str(ws.path)],
            env={"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)},
        )
        assert erased.exit_code == 0, erased.output
        assert not (left := _leftovers(_dump(ws))), left
        with ws.reader() as conn:
            digests = conn.execute(select(erasure_suppressions.c.kind, erasure_suppressions.c.digest)).all()
            salt = conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == "erasure_salt")).scalar()
        # the list holds digests only: the values are nowhere (the dump above), the kinds are known
        assert sorted(kind for kind, _ in digests) == ["email", "email", "phone", "phone"]
        assert salt and all(len(d) == 64 for _, d in digests)

        # the API: one capture, by email (any case) or by phone (any format)
        again = live.client.post("/api/v1/leads", json={"email": EMAIL.upper(), "first_name": "Anika"})
        assert again.status_code == 409, again.text
        assert again.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in again.json()["errors"]] == ["email"]
        assert "erased" in again.json()["errors"][0]["message"]
        by_phone = live.client.post("/api/v1/leads", json={"phone": "030 1234567", "company": "Quixcorp"})
        assert by_phone.status_code == 409 and [e["field"] for e in by_phone.json()["errors"]] == ["phone"]
        # a batch: the erased person's row is rejected, the others land
        batch = live.client.post(
            "/api/v1/leads/batch", json={"leads": [{"email": "someone@else.example"}, {"email": OTHER_EMAIL}]}
        )
        assert batch.status_code == 200, batch.text
        assert [(r["index"], r["status"]) for r in batch.json()["results"]] == [(0, "created"), (1, "rejected")]
        assert batch.json()["results"][1]["errors"][0]["field"] == "email"
        # a public web form
        form = live.anonymous.post(
            "/w2l", data={"email": EMAIL, "last_name": "Lovelace"}, headers={"Accept": "application/json"}
        )
        assert form.status_code == 409 and form.json()["errors"][0]["field"] == "email", form.text
        assert "erase" not in form.text.lower()  # a stranger learns nothing of the erasure

    # an import: the row is rejected with its line, the others land
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text(
        f"Email,First Name,Company\nnew.person@corp.example,New,Corp\n{EMAIL},Anika,Quixcorp\nother@corp.example,O,Corp\n"
    )
    imported = CliRunner().invoke(
        app,
        ["import", str(csv_file), "--kind", "leads", "--workspace", str(ws.path), "--json"],
        env={"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)},
    )
    assert imported.exit_code == 0, imported.output
    summary = yaml.safe_load(imported.output)
    assert (summary["created"], summary["rejected"]) == (2, 1)
    assert [(r["line"], r["field"]) for r in summary["rejections"]] == [(3, "email")]
    with ws.reader() as conn:
        live_leads = conn.execute(select(leads.c.email_key).where(leads.c.erased_at.is_(None))).scalars().all()
    assert EMAIL not in live_leads and OTHER_EMAIL not in live_leads
    ws.close()


def test_with_fresh_consent_a_returning_person_is_a_new_lead_without_their_old_account_or_owner(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    ws = _workspace(tmp_path, db_url, clock, after_erasure="fresh_consent")
    with LiveServer(ws) as live:
        survivor, merged = _rich_person(live)
        assert live.client.post(f"/api/v1/leads/{survivor}/erase", json={"reason": "asked"}).status_code == 200
        run_task(ws, TASKS["notify.send"])
        with ws.reader() as conn:
            notices_before = conn.execute(select(notifications.c.id)).scalars().all()

        unasked = live.client.post("/api/v1/leads", json={"email": EMAIL, "company": "Quixcorp"})
        assert unasked.status_code == 409 and unasked.json()["errors"][0]["field"] == "email"
        assert "consent" in unasked.json()["errors"][0]["message"]

        back = live.client.post(
            "/api/v1/leads",
            json={"email": EMAIL, "first_name": "Anika", "company": "Quixcorp", "consent": {"email": True}},
        )
        assert back.status_code == 201 and back.json()["created"] is True, back.text
        new_id = back.json()["lead"]["id"]
        assert new_id not in (survivor, merged)
        with ws.reader() as conn:
            new = conn.execute(select(leads).where(leads.c.id == new_id)).one()
            created = conn.execute(
                select(lead_events.c.data).where(lead_events.c.lead_id == new_id, lead_events.c.type == "lead_created")
            ).scalar_one()
            notices = conn.execute(
                select(notifications.c.recipient, notifications.c.subject, notifications.c.body).where(
                    notifications.c.id.not_in(notices_before)
                )
            ).all()
        # not the old account (Quixcorp, owned by dmitri) nor its owner: the rules' owner, told of a new lead
        assert new.account_id is None and new.owner_id == "ana" and new.merged_into_id is None
        assert created["after_erasure"] == "fresh_consent" and created["identity"] == {"matched": False}
        assert notices and all(n.recipient == "ana@northwind.example" for n in notices)
        assert not any("dmitri" in f"{n.subject} {n.body}".lower() for n in notices)
        # back on the list of the living: the next capture (no consent asked) updates the new lead
        again = live.client.post("/api/v1/leads", json={"email": EMAIL, "title": "CTO"})
        assert again.status_code == 200 and again.json()["lead"]["id"] == new_id, again.text
    ws.close()


def test_custom_fields_are_declared_by_name_and_checked() -> None:
    data = yaml.safe_load(starter_config_text())
    data["fields"] = {"custom.industry_code": {"personal": False}}
    config = load_config_text(yaml.safe_dump(data)).config
    assert config.fields["custom.industry_code"].personal is False and config.privacy.after_erasure == "refuse"
    for fields, where, what in (
        ({"custom.Industry": {"personal": False}}, "fields.custom.Industry", "not a custom field name"),
        ({"email": {"personal": False}}, "fields.email", "only custom.<name> fields"),
        ({"custom.x": {"personal": "perhaps"}}, "fields.custom.x.personal", "boolean"),
        ({"custom.x": {"persnal": False}}, "fields.custom.x.persnal", "did you mean 'personal'"),
    ):
        data["fields"] = fields
        with pytest.raises(ConfigError) as refused:
            load_config_text(yaml.safe_dump(data))
        assert refused.value.problems[0].field == where and what in refused.value.problems[0].message, str(
            refused.value
        )
    data["fields"] = {}
    data["privacy"] = {"after_erasure": "forget"}
    with pytest.raises(ConfigError) as refused:
        load_config_text(yaml.safe_dump(data))
    assert refused.value.problems[0].field == "privacy.after_erasure"


def test_what_is_left_of_a_record_is_a_pure_function_of_it() -> None:
    from leadflow.privacy.scrub import Scrubber, strip_query

    scrub = Scrubber.of(
        [
            {
                "email": EMAIL,
                "first_name": "Lead",
                "last_name": "Lovelace",
                "custom": {"street": "Baker Street 221", "timeline": "later"},
            }
        ],
        [{"phone": "+442079460321"}],
        browsers=["vis-1234"],
        keep_custom=frozenset({"industry_code"}),
    )
    assert strip_query(PAGE) == "https://www.northwind.example/pricing"
    assert strip_query("/pricing#top") == "/pricing" and strip_query("https://x.example/a") == "https://x.example/a"
    event = {
        "subject": "Lead, a short guide",
        "url": PAGE,
        "custom": {"street": "Baker Street 221", "industry_code": "J62"},
        "custom.street": "Baker Street 221",
        "after": {"visitor_id": "vis-1234", "landing_page": PAGE, "company": "Quixcorp"},
        "email": True,  # a consent flag: kept
        "note": "called Lovelace on 442079460321, sent to " + EMAIL,
        "from": "lead",  # a stage named like the person: kept
        "sequence": "later",  # a sequence named like a one-word custom choice: kept
        "where": "at Baker Street 221",
    }
    assert scrub.data(event) == {
        "subject": None,
        "url": "https://www.northwind.example/pricing",
        "custom": {"industry_code": "J62"},
        "custom.street": None,
        "after": {"visitor_id": None, "landing_page": "https://www.northwind.example/pricing", "company": "Quixcorp"},
        "email": True,
        "note": "called [erased] on [erased], sent to [erased]",
        "from": "lead",
        "sequence": "later",
        "where": "at [erased]",
    }
    snapshot = scrub.lead(
        {"id": 7, "email": EMAIL, "visitor_id": "vis-1234", "custom": {"street": "x"}, "referrer": PAGE}
    )
    assert snapshot == {
        "id": 7,
        "email": None,
        "visitor_id": None,
        "custom": None,
        "referrer": "https://www.northwind.example/pricing",
    }
