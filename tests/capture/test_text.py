"""Control characters are stripped at capture, whatever the entry point, and never printed raw."""

from __future__ import annotations

import json

from sqlalchemy import update
from typer.testing import CliRunner

from leadflow.capture.schemas import EventIn, LeadIn
from leadflow.capture.text import clean_text, shown
from leadflow.cli import app
from leadflow.db.tables import leads
from leadflow.pipeline import process
from leadflow.workspace import Workspace


def test_escape_sequences_go_whole() -> None:
    assert clean_text("\x1b[31mRed\x1b[0m") == "Red"
    assert clean_text("a\x1b]0;title\x07b") == "ab"
    assert clean_text("a\x9b2Jb\x1bcc") == "abc"  # C1 CSI, and a two-character escape
    assert clean_text("a\x00b\x7fc\x85d") == "abcd"


def test_line_breaks_only_where_a_field_spans_lines() -> None:
    assert clean_text("one\r\ntwo\tthree", multiline=True) == "one\ntwo\tthree"
    assert clean_text("one\ntwo\tthree") == "one two three"
    assert clean_text("Zoë Ürs 李") == "Zoë Ürs 李"


def test_every_text_field_of_a_lead_is_cleaned() -> None:
    lead = LeadIn.model_validate(
        {
            "email": "a@b.example\x1b[0m",
            "first_name": "A\x1b[31m",
            "title": "CEO\x00",
            "utm_source": "x\x1b[1my",
            "notes": "n\x1b[2J1\n2",
            "custom": {"plan": "p\x07ro", "seats": 3},
            "consent": {"email": True, "wording": "I agree\x1b[8m"},
        }
    )
    assert (lead.email, lead.first_name, lead.title, lead.utm_source) == ("a@b.example", "A", "CEO", "xy")
    assert lead.notes == "n1\n2"
    assert lead.custom == {"plan": "pro", "seats": 3}
    assert lead.consent is not None and lead.consent.wording == "I agree"
    event = EventIn.model_validate({"type": "note", "email": "a@b.example", "text": "hi\x1b[31m\nthere"})
    assert event.text == "hi\nthere"


def test_shown_makes_control_characters_visible() -> None:
    assert shown("\x1b[31mx") == "\\x1b[31mx"
    assert shown("plain") == "plain"


def test_the_api_path_stores_clean_text(ws: Workspace) -> None:
    with ws.transaction() as conn:
        lead_id = process(ws, conn, {"email": "c@d.example", "last_name": "Doe\x1b[31m", "company": "X\x00Y"}).lead_id
    from leadflow.leads.service import get_lead

    with ws.reader() as conn:
        row = get_lead(conn, lead_id)
    assert (row["last_name"], row["company"]) == ("Doe", "XY")


def test_leads_show_never_prints_raw_control_characters(ws: Workspace) -> None:
    with ws.transaction() as conn:
        lead_id = process(ws, conn, {"email": "old@d.example", "first_name": "Old", "company": "Co"}).lead_id
        # stored before capture stripped them (or written by another path)
        conn.execute(
            update(leads)
            .where(leads.c.id == lead_id)
            .values(first_name="\x1b[31mOld[bold]", company="Co\x1b]0;pwned\x07")
        )
    result = CliRunner().invoke(
        app,
        ["leads", "show", str(lead_id), "--workspace", str(ws.path)],
        env={"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[31mOld[bold]" in result.output  # shown escaped; not taken as rich markup either
    as_json = CliRunner().invoke(
        app,
        ["leads", "show", str(lead_id), "--workspace", str(ws.path), "--json"],
        env={"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)},
    )
    assert "\x1b" not in as_json.output
    json.loads(as_json.output)
