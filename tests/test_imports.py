"""CSV import: mapping, recognised CRM headers, rejected rows with their line, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from leadflow.db.tables import import_runs, lead_events, leads
from leadflow.errors import InvalidInput
from leadflow.imports.service import import_file
from leadflow.workspace import Workspace, starter_config_text
from tests.conftest import SHARED_DATA, count, open_workspace

XEDU = SHARED_DATA / "xeducation" / "leads.csv"
MAPPING = Path(__file__).resolve().parents[1] / "examples" / "xeducation" / "mapping.yaml"
XEDU_CONFIG = MAPPING.with_name("leadflow.yaml")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_xeducation_with_a_mapping_keeps_consent_source_origin_engagement(tmp_path: Path, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    ws = open_workspace(tmp_path / "x", db_url, clock, XEDU_CONFIG.read_text())
    summary = import_file(ws, XEDU, "leads", mapping_path=MAPPING, batch=2000)
    assert (summary.rows_read, summary.created, summary.merged, summary.rejected) == (9240, 9240, 0, 0)
    with ws.reader() as conn:
        first = conn.execute(select(leads).where(leads.c.visitor_id == "7927b2df-8bba-4d29-b9a2-b6e0beafe620")).one()
        no_email = conn.execute(select(func.count()).where(leads.c.consent_email.is_(False))).scalar_one()
        origin = leads.c.custom["origin"].as_string().label("origin")
        by_origin = dict(conn.execute(select(origin, func.count()).group_by(origin)).all())
    # row 2: API, Olark Chat, Do Not Email No, 0 visits, Unemployed, Better Career Prospects
    assert (first.source, first.consent_email, first.custom["origin"], first.custom["visits"]) == (
        "olark_chat",
        True,
        "API",
        0,
    )
    assert first.custom["occupation"] == "Unemployed" and "specialization" not in first.custom  # 'Select' is missing
    assert no_email == 734  # the file's "Do Not Email: Yes" count
    assert by_origin["Lead Add Form"] == 718 and by_origin["Landing Page Submission"] == 4886
    ws.close()


def test_recognised_crm_headers_rejections_and_error_file(tmp_path: Path, sqlite_ws: Workspace) -> None:
    csv_file = write(
        tmp_path / "hubspot.csv",
        "First Name,Last Name,Email,Company Name,Job Title,Number of Employees,Country/Region,Original Source,Create Date\n"
        "Ada,Lovelace,ada@engines.example,Analytical Engines,CTO,300,United Kingdom,Referral,2026-01-05T10:00:00Z\n"
        "Bob,Broken,not-an-email,Nowhere,,,Germany,Referral,2026-01-06T10:00:00Z\n"
        "Cy,Count,cy@count.example,Count Co,Analyst,lots,US,Google,2026-01-07T10:00:00Z\n"
        'Dee,"Quote, ""Multiline""\nName",dee@engines.example,Analytical Engines,VP Sales,300,UK,Referral,2026-01-08T10:00:00Z\n'
        "Ada,Lovelace,ADA@engines.example,Analytical Engines,CTO,300,UK,Referral,2026-02-01T10:00:00Z\n",
    )
    summary = import_file(sqlite_ws, csv_file, "leads")
    assert (summary.rows_read, summary.created, summary.merged, summary.rejected) == (5, 2, 1, 2)
    assert [(r["line"], r["field"]) for r in summary.rejections] == [(3, "email"), (4, "employees")]
    errors = Path(summary.error_file or "").read_text()
    assert errors.splitlines()[0].startswith("line,field,reason,First Name")
    assert "3,email,email: not a valid email address" in errors and "not-an-email" in errors
    with sqlite_ws.reader() as conn:
        ada = conn.execute(select(leads).where(leads.c.email_key == "ada@engines.example")).one()
        dee = conn.execute(select(leads).where(leads.c.email_key == "dee@engines.example")).one()
    assert (ada.source, ada.country, ada.created_at.isoformat()) == ("referral", "GB", "2026-01-05T10:00:00+00:00")
    assert dee.last_name == 'Quote, "Multiline" Name'  # a quoted newline kept the row whole
    # the rejected rows' personal data is not kept once the error file is written
    assert count(sqlite_ws, "import_rejections") == 0


def test_an_import_run_twice_adds_nothing(tmp_path: Path, sqlite_ws: Workspace) -> None:
    csv_file = write(tmp_path / "sf.csv", "Email,Company,Lead Source\na@x.example,A,Web\nb@x.example,B,Web\n")
    first = import_file(sqlite_ws, csv_file, "leads")
    events = count(sqlite_ws, "lead_events")
    again = import_file(sqlite_ws, csv_file, "leads")
    assert (first.created, again.already_imported, again.created) == (2, True, 2)
    assert count(sqlite_ws, "lead_events") == events


def test_mapping_errors_name_the_key(tmp_path: Path, sqlite_ws: Workspace) -> None:
    csv_file = write(tmp_path / "a.csv", "Mail,Firm\na@x.example,A\n")
    with pytest.raises(InvalidInput) as caught:
        import_file(sqlite_ws, csv_file, "leads")
    assert "give --mapping" in caught.value.problems[0].message
    bad = write(tmp_path / "m.yaml", "columns:\n  email: Mail\n  shoe_size: Firm\n  company: Company\n")
    with pytest.raises(InvalidInput) as caught:
        import_file(sqlite_ws, csv_file, "leads", mapping_path=bad)
    assert {p.field for p in caught.value.problems} == {"mapping.columns.shoe_size", "mapping.columns.company"}
    assert count(sqlite_ws, "import_runs") == 0


def test_events_import(tmp_path: Path, sqlite_ws: Workspace) -> None:
    leads_file = write(tmp_path / "l.csv", "Email,Company\nann@shop.example,Shop\n")
    import_file(sqlite_ws, leads_file, "leads")
    mapping = write(
        tmp_path / "ev.yaml",
        "columns:\n  type: Activity\n  email: Who\n  occurred_at: When\n  data.campaign: Campaign\n",
    )
    events_file = write(
        tmp_path / "e.csv",
        "Activity,Who,When,Campaign\n"
        "email_opened,ann@shop.example,2026-03-02T10:00:00Z,spring\n"
        "email_clicked,ann@shop.example,2026-03-02T10:05:00Z,spring\n"
        "email_opened,nobody@none.example,2026-03-02T10:00:00Z,spring\n"
        "teleported,ann@shop.example,2026-03-02T10:00:00Z,spring\n",
    )
    summary = import_file(sqlite_ws, events_file, "events", mapping_path=mapping)
    assert (summary.created, summary.rejected) == (2, 2)
    assert [(r["line"], r["field"]) for r in summary.rejections] == [(4, "email"), (5, "type")]
    with sqlite_ws.reader() as conn:
        opened = conn.execute(select(lead_events.c.data).where(lead_events.c.type == "email_opened")).scalar_one()
        score = conn.execute(select(leads.c.engagement_score)).scalar_one()
    assert opened == {"campaign": "spring"}
    assert score == 4  # open 1 + click 3


def test_killed_import_resumes_with_every_row_exactly_once(tmp_path: Path) -> None:
    """kill -9 in the middle of an import, then run it again."""
    rows = 3000
    csv_file = write(
        tmp_path / "big.csv",
        "Email,Company,Job Title\n"
        + "".join(f"p{i}@bulk{i % 97}.example,Bulk {i % 97},Analyst\n" for i in range(rows)),
    )
    root = tmp_path / "ws"
    root.mkdir()
    (root / "leadflow.yaml").write_text(starter_config_text())
    code = (
        "import sys, time; from pathlib import Path; from leadflow.workspace import Workspace; "
        "from leadflow.imports.service import import_file; ws = Workspace.open(sys.argv[1]); "
        "import_file(ws, Path(sys.argv[2]), 'leads', batch=100, progress=lambda line, size: time.sleep(0.05))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(root), str(csv_file)], env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    ws = Workspace.open(root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with ws.reader() as conn:
            done = conn.execute(select(import_runs.c.last_line)).scalar()
        if done and 600 < done < rows:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ws.reader() as conn:
        interrupted_at = conn.execute(select(import_runs.c.last_line, import_runs.c.status)).one()
    assert interrupted_at.status == "running" and 600 < interrupted_at.last_line < rows + 1
    summary = import_file(ws, csv_file, "leads", batch=500)
    assert summary.resumed_after_line == interrupted_at.last_line
    assert (summary.rows_read, summary.created, summary.rejected) == (rows, rows, 0)
    assert count(ws, "leads") == rows
    with ws.reader() as conn:
        created_events = conn.execute(select(func.count()).where(lead_events.c.type == "lead_created")).scalar_one()
    assert created_events == rows
    ws.close()
