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

from leadflow.db.tables import import_runs, lead_events, leads, opportunities
from leadflow.errors import Conflict, InvalidInput
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


def test_records_that_cannot_be_rows_are_rejected_by_line_and_the_rest_lands(
    tmp_path: Path, sqlite_ws: Workspace
) -> None:
    big = "x" * 10_500_000  # over the CSV field limit
    data = (
        (
            b"Email,First Name,Company\n"  # 1
            b"ada@ex.example,Ada,Acme\n"  # 2
            b'open@ex.example,Open,"Acme\n'  # 3: a quote never closed (it would swallow the file)
            b"bob@ex.example,Bob,Beta\n"  # 4
            b"extra@ex.example,Ex,Co,EXTRA\n"  # 5: a value too many
            b"few@ex.example\n"  # 6: too few
            b"nul@ex.example,N\x00l,Co\n"  # 7: a NUL
        )
        + "bjorn@ex.example,Bj\u00f6rn,Co\n".encode("latin-1")
        + (  # 8: not UTF-8
            f"big@ex.example,Big,{big}\n"  # 9: a field over the limit
            "trail@ex.example,Trail,Co,,\n"  # 10: empty values after the last column are fine
            "carl@ex.example,Carl,Gamma\n"  # 11
        ).encode()
    )
    csv_file = tmp_path / "messy.csv"
    csv_file.write_bytes(data)
    summary = import_file(sqlite_ws, csv_file, "leads")
    assert (summary.rows_read, summary.created, summary.rejected) == (10, 4, 6)
    by_line = {r["line"]: r["reason"] for r in summary.rejections}
    assert sorted(by_line) == [3, 5, 6, 7, 8, 9]
    assert "quote" in by_line[3] and "a field over 10 MB" in by_line[9]
    assert "4 values, but the header has 3 columns" in by_line[5] and "1 values" in by_line[6]
    assert "NUL" in by_line[7] and "--encoding" in by_line[8]
    with sqlite_ws.reader() as conn:
        emails = set(conn.execute(select(leads.c.email)).scalars())
    assert emails == {"ada@ex.example", "bob@ex.example", "trail@ex.example", "carl@ex.example"}
    short = write(
        tmp_path / "short.csv",
        'Email,First Name,Company\nann@ex.example,Ann,"Acme\nbea@ex.example,Bea,Beta\ncy@ex.example,Cy,Gamma\n',
    )
    reread = import_file(sqlite_ws, short, "leads")  # the quote runs to the end of the file
    assert (reread.created, [r["line"] for r in reread.rejections]) == (2, [2])
    assert "check its quotes" in reread.rejections[0]["reason"]


def test_encodings_and_headers(tmp_path: Path, sqlite_ws: Workspace) -> None:
    text = "Email,First Name,Company\nbjorn@ex.example,Bj\u00f6rn,K\u00f6ln GmbH\n"
    cp1252 = tmp_path / "excel.csv"
    cp1252.write_bytes(text.encode("cp1252"))
    refused = import_file(sqlite_ws, cp1252, "leads")
    assert refused.rejected == 1 and "--encoding" in refused.rejections[0]["reason"]
    assert import_file(sqlite_ws, cp1252, "leads", encoding="cp1252").created == 1  # another run: another encoding
    assert import_file(sqlite_ws, cp1252, "leads", encoding="windows-1252").already_imported  # the same encoding
    # the first run landed nothing, so it is not remembered: run again, it is tried again
    again = import_file(sqlite_ws, cp1252, "leads", encoding="UTF8")
    assert not again.already_imported and (again.rejected, again.landed) == (1, 0)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "Email,First Name\nzoe@ex.example,Zo\u00eb\n".encode())
    assert import_file(sqlite_ws, bom, "leads", encoding="cp1252").created == 1  # the BOM says UTF-8
    utf16 = tmp_path / "unicode.csv"
    utf16.write_bytes(
        "Email,First Name,Company\nasa@ex.example,\u00c5sa,Malm\u00f6 AB\n".encode("utf-16")
    )  # with a BOM
    assert import_file(sqlite_ws, utf16, "leads").created == 1
    assert import_file(sqlite_ws, utf16, "leads", encoding="UTF8").already_imported  # utf-8 however spelled
    with sqlite_ws.reader() as conn:
        assert set(conn.execute(select(leads.c.first_name)).scalars()) == {"Bj\u00f6rn", "\u00c5sa", "Zo\u00eb"}
    twice = write(tmp_path / "twice.csv", "email,first_name,email\nada@ex.example,Ada,other@ex.example\n")
    with pytest.raises(InvalidInput) as caught:
        import_file(sqlite_ws, twice, "leads")
    assert "the column 'email' appears twice (columns 1 and 3)" in caught.value.problems[0].message
    with pytest.raises(InvalidInput) as caught:
        import_file(sqlite_ws, cp1252, "leads", encoding="klingon")
    assert caught.value.problems[0].field == "encoding"


def test_a_second_import_of_a_file_takes_over_and_the_first_stops(tmp_path: Path, sqlite_ws: Workspace) -> None:
    rows = 1000
    csv_file = write(
        tmp_path / "twice.csv", "Email,Company\n" + "".join(f"p{i}@co{i}.example,Co {i}\n" for i in range(rows))
    )
    second: list[object] = []

    def meanwhile(line: int, lines: int) -> None:  # after the first import's first batch
        if not second:
            second.append(import_file(sqlite_ws, csv_file, "leads", batch=300))

    with pytest.raises(Conflict) as caught:
        import_file(sqlite_ws, csv_file, "leads", batch=200, progress=meanwhile)
    assert "took over" in caught.value.message
    [other] = second
    assert other.resumed_after_line == 201 and other.rows_read == rows  # type: ignore[attr-defined]
    assert count(sqlite_ws, "leads") == rows
    with sqlite_ws.reader() as conn:
        created = conn.execute(select(func.count()).where(lead_events.c.type == "lead_created")).scalar_one()
        run = conn.execute(select(import_runs.c.rows_read, import_runs.c.status)).one()
    assert created == rows and tuple(run) == (rows, "done")


def test_every_kind_reads_its_own_columns(tmp_path: Path, sqlite_ws: Workspace) -> None:
    import_file(sqlite_ws, write(tmp_path / "l.csv", "Email,Company\nann@shop.example,Shop\n"), "leads")
    events = write(
        tmp_path / "e.csv",
        "type,email,occurred_at,url\npage_view,ann@shop.example,2026-03-02T10:00:00Z,https://shop.example/pricing\n",
    )
    assert import_file(sqlite_ws, events, "events").created == 1  # field-named headers, no mapping
    deals = write(
        tmp_path / "o.csv",
        "external_id,name,amount,created_at\n"
        "d1,Big deal,100,2024-01-01\n"
        "d2,Far deal,100,9999-12-31T23:00:00-05:00\n"
        "d3,Old deal,100,0001-01-01T00:00:00+01:00\n",
    )
    summary = import_file(sqlite_ws, deals, "opportunities")
    assert (summary.created, summary.rejected) == (1, 2)
    assert {r["field"] for r in summary.rejections} == {"created_at"}
    with sqlite_ws.reader() as conn:
        assert conn.execute(select(opportunities.c.name)).scalar_one() == "Big deal"


def test_numbers_mappings_and_the_error_file(tmp_path: Path, sqlite_ws: Workspace) -> None:
    mapping = write(
        tmp_path / "m.yaml", "columns:\n  email: Email\n  custom.visits: Visits\nnumbers: [custom.visits]\n"
    )
    csv_file = write(
        tmp_path / "n.csv",
        'Email,Visits\na@n.example,"1,500"\nb@n.example,nan\nc@n.example,inf\nd@n.example,"1,5"\n@SUM(A1),2\n',
    )
    summary = import_file(sqlite_ws, csv_file, "leads", mapping_path=mapping)
    assert (summary.created, summary.rejected) == (1, 4)
    assert [r["field"] for r in summary.rejections] == ["custom.visits"] * 3 + ["email"]
    with sqlite_ws.reader() as conn:
        assert conn.execute(select(leads.c.custom)).scalar_one() == {"visits": 1500}
    errors = Path(summary.error_file or "").read_text()
    assert "'@SUM(A1)" in errors  # a spreadsheet shows it, does not run it
    for text, problem in (
        ("{}\n", "mapping.columns"),
        ("columns: {email: Email}\nconstants: {notes: !!binary /w==}\n", "mapping.constants.notes"),
    ):
        with pytest.raises(InvalidInput) as caught:
            import_file(sqlite_ws, csv_file, "leads", mapping_path=write(tmp_path / "bad.yaml", text))
        assert caught.value.problems[0].field.startswith(problem), caught.value.problems
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(b"\xff\xfe" + "columns: {email: Email}".encode("utf-16-le"))
    with pytest.raises(InvalidInput) as caught:
        import_file(sqlite_ws, csv_file, "leads", mapping_path=utf16)
    assert caught.value.problems[0].field == "mapping"
