"""A team's history: leads linked by the ids of the system they came from, with their stages at
their own times; deals and activity keyed by those ids; nothing sent, scheduled or routed for
history; files as people have them (delimiters, date formats, YAML yes/no, blank vs unknown)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from leadflow.db.tables import lead_events, leads, notifications, nurture_enrolments, opportunities, revenue
from leadflow.imports.service import import_file
from leadflow.jobs.worker import run_once
from leadflow.workspace import Workspace, starter_config_text
from tests.conftest import LiveServer, count, open_workspace

CONTACTS = (
    "Record ID,First Name,Last Name,Company Name,Lifecycle Stage,Create Date,"
    "Became a Marketing Qualified Lead Date,Became a Customer Date,Contact owner,Original Source\n"
    "101,Ada,Lovelace,Analytical Engines,Customer,2024-01-10 09:00,2024-02-01 10:00,2024-03-15 16:30,ana@northwind.example,Referral\n"
    "102,Grace,Hopper,Cobol Inc,Marketing Qualified Lead,2024-01-12 11:00,2024-01-20 08:00,,Old Rep,Google Ads\n"
    "103,Alan,Turing,Bletchley Ltd,Lead,2024-02-03 14:00,,,,Webinar\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def by_external(ws: Workspace, external_id: str) -> dict:
    from leadflow.identity.service import find_by_external_ids

    with ws.reader() as conn:
        return find_by_external_ids(conn, [external_id])[external_id]


def stage_history(ws: Workspace, lead_id: int) -> list[tuple[str, datetime]]:
    with ws.reader() as conn:
        rows = conn.execute(
            select(lead_events.c.stage, lead_events.c.occurred_at)
            .where(lead_events.c.lead_id == lead_id, lead_events.c.type == "stage_changed")
            .order_by(lead_events.c.occurred_at, lead_events.c.id)
        ).all()
    return [(r.stage, r.occurred_at) for r in rows]


def test_history_is_linked_by_external_ids_with_stages_at_their_times(tmp_path: Path, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    ws = open_workspace(tmp_path / "ws", db_url, clock)
    config_tz = ws.config.workspace.timezone  # dates without an offset are in the workspace's zone
    summary = import_file(ws, write(tmp_path / "contacts.csv", CONTACTS), "leads")  # HubSpot headers, no mapping
    assert (summary.created, summary.rejected, summary.history) == (3, 0, 3), summary.rejections
    assert summary.unknown_owners == {"Old Rep": 1}
    ada = by_external(ws, "101")
    assert (ada["stage"], ada["owner_id"], ada["team_id"], ada["historical"]) == ("customer", "ana", "sales", True)
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(config_tz)
    assert [s for s, _ in stage_history(ws, ada["id"])] == ["lead", "mql", "customer"]
    assert stage_history(ws, ada["id"])[-1][1] == datetime(2024, 3, 15, 16, 30, tzinfo=zone).astimezone(UTC)
    assert ada["created_at"] == datetime(2024, 1, 10, 9, tzinfo=zone).astimezone(UTC)
    grace = by_external(ws, "102")
    assert (grace["stage"], grace["owner_id"]) == ("mql", "Old Rep")  # an owner who left, kept as written
    # history: nobody routed, no SLA clock, no handoff of the MQL, no review item
    assert by_external(ws, "103")["owner_id"] is None
    with ws.reader() as conn:
        assert conn.execute(select(func.count()).where(leads.c.sla_due_at.is_not(None))).scalar_one() == 0
        actors = set(conn.execute(select(lead_events.c.actor).distinct()).scalars())
    assert actors == {"history"}
    assert count(ws, "review_items") == 0

    # deals keyed by the CRM's contact id: one without a creation date opens at its lead's creation,
    # a won one makes its lead a customer at the close time and records revenue
    deals = write(
        tmp_path / "deals.csv",
        "deal_id;contact_id;amount;status;created;closed;why;region\n"
        "D1;103;1200.50;won;;2024-05-02 10:00;;emea\n"
        "D2;102;900;lost;2024-02-01 09:00;2024-02-20 09:00;went with a competitor;amer\n"
        "D3;999;100;open;;;;emea\n",
    )
    mapping = write(
        tmp_path / "deals.yaml",
        "columns: {external_id: deal_id, lead_external_id: contact_id, amount: amount, status: status,\n"
        "          created_at: created, closed_at: closed, lost_reason: why, custom.region: region}\n"
        "date_format: '%Y-%m-%d %H:%M'\n",
    )
    deal_summary = import_file(ws, deals, "opportunities", mapping_path=mapping)
    assert deal_summary.delimiter == ";"
    assert (deal_summary.created, deal_summary.rejected) == (2, 1)
    assert deal_summary.rejections[0]["field"] == "lead_external_id" and deal_summary.rejections[0]["line"] == 4
    assert deal_summary.counts == {"deals opened at their lead's creation (no created_at)": 1}
    alan = by_external(ws, "103")
    assert alan["stage"] == "customer"
    assert stage_history(ws, alan["id"])[-1] == ("customer", datetime(2024, 5, 2, 10, tzinfo=zone).astimezone(UTC))
    with ws.reader() as conn:
        d1 = conn.execute(select(opportunities).where(opportunities.c.external_id == "D1")).one()
        d2 = conn.execute(select(opportunities).where(opportunities.c.external_id == "D2")).one()
        paid = conn.execute(select(revenue.c.amount, revenue.c.lead_id)).all()
    assert (d1.created_at, d1.custom) == (alan["created_at"], {"region": "emea"})
    assert (d2.status, d2.lost_reason, by_external(ws, "102")["stage"]) == ("lost", "went with a competitor", "lost")
    assert paid == [(Decimal("1200.50"), alan["id"])]

    # the same contact exported again, changed: the lead is updated, not duplicated
    again = import_file(
        ws,
        write(
            tmp_path / "contacts2.csv", "Record ID,Company Name,Create Date\n103,Bletchley Park Ltd,2024-02-03 14:00\n"
        ),
        "leads",
    )
    assert (again.created, again.merged) == (0, 1)
    assert by_external(ws, "103")["company"] == "Bletchley Park Ltd"
    assert count(ws, "leads") == 3

    # the deal exported again once closed: the open deal is closed, not added
    reexport = write(
        tmp_path / "deals2.csv",
        "deal_id;contact_id;amount;status;created;closed;why;region\nD2;102;900;lost;2024-02-01 09:00;2024-02-20 09:00;went with a competitor;amer\n",
    )
    assert import_file(ws, reexport, "opportunities", mapping_path=mapping).merged == 1
    assert count(ws, "opportunities") == 2
    # one deal twice in a file (an export of its history): opened, then closed, in line order
    twice = write(
        tmp_path / "deals3.csv",
        "deal_id;contact_id;amount;status;created;closed;why;region\n"
        "D4;101;50;open;2024-03-01 09:00;;;emea\n"
        "D4;101;75;won;2024-03-01 09:00;2024-03-10 09:00;;emea\n"
        "D5;101;20;open;2024-03-01 09:00;2024-06-30 00:00;;emea\n",  # an open deal's expected close date
    )
    both = import_file(ws, twice, "opportunities", mapping_path=mapping)
    assert (both.created, both.merged, both.rejected) == (2, 1, 0)
    with ws.reader() as conn:
        d4 = conn.execute(select(opportunities).where(opportunities.c.external_id == "D4")).one()
        d5 = conn.execute(select(opportunities).where(opportunities.c.external_id == "D5")).one()
    assert (d4.status, d4.amount) == ("won", Decimal("75.00"))
    assert (d5.status, d5.closed_at, d5.custom) == ("open", None, {"region": "emea", "expected_close": "2024-06-30"})

    # activity keyed by the contact's id, recorded once however often it is exported
    activity = (
        "type,external_id,lead_external_id,occurred_at,direction\ncall,C-1,101,2024-01-11T10:00:00+00:00,outbound\n"
    )
    first = import_file(ws, write(tmp_path / "calls.csv", activity), "events")
    second = import_file(ws, write(tmp_path / "calls_again.csv", activity + "\n"), "events")
    assert (first.created, second.created, second.merged) == (1, 0, 1)
    with ws.reader() as conn:
        calls = conn.execute(select(lead_events.c.lead_id).where(lead_events.c.external_id == "C-1")).scalars().all()
    assert calls == [ada["id"]]
    ws.close()


def test_history_sends_nothing_and_live_is_routed(tmp_path: Path, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    config = starter_config_text() + (
        "webhooks:\n  - {id: crm, url: 'http://127.0.0.1:9/hook', secret_env: HOOK_SECRET, events: [lead.created, lead.assigned, lead.stage_changed]}\n"
    )
    ws = open_workspace(tmp_path / "ws", db_url, clock, config)
    run_once(ws, ["webhooks.enqueue"])  # the webhook starts from here
    rows = "".join(
        f"{i},Person{i},Last,p{i}@company{i}.example,Company {i},Lead,{clock.now().date()} 08:00\n" for i in range(40)
    )
    header = "Record ID,First Name,Last Name,Email,Company Name,Lifecycle Stage,Create Date\n"
    history = import_file(ws, write(tmp_path / "old.csv", header + rows), "leads")
    assert history.history == 40
    done = run_once(ws)
    assert done.get("webhooks.enqueue", 0) >= 0
    assert count(ws, "notifications") == 0
    assert count(ws, "webhook_deliveries") == 0
    with ws.reader() as conn:
        assert conn.execute(select(func.count()).where(nurture_enrolments.c.status == "active")).scalar_one() == 0
        assert conn.execute(select(func.count()).where(leads.c.owner_id.is_not(None))).scalar_one() == 0
        sla = conn.execute(select(func.count()).where(lead_events.c.type.in_(["sla_reminded", "sla_escalated"])))
        assert sla.scalar_one() == 0

    live_rows = "".join(f"L{i},Live{i},Last,l{i}@company{i}.example,Company {i},Lead,\n" for i in range(5))
    live = import_file(ws, write(tmp_path / "new.csv", header + live_rows), "leads", live=True)
    assert (live.created, live.history) == (5, 0)
    run_once(ws, ["webhooks.enqueue"])
    with ws.reader() as conn:
        routed = conn.execute(select(leads.c.owner_id, leads.c.sla_due_at).where(leads.c.historical.is_(False))).all()
        queued = conn.execute(select(func.count()).select_from(notifications)).scalar_one()
    assert len(routed) == 5 and all(owner and due for owner, due in routed)
    assert queued == 5 and count(ws, "webhook_deliveries") > 0
    # live, with the owner the file names: theirs, with an SLA clock and a notice to them
    named = import_file(
        ws,
        write(
            tmp_path / "named.csv",
            header.strip() + ",Contact owner\nN1,Nia,Last,nia@n1.example,N1 Co,Lead,,chloe@northwind.example\n",
        ),
        "leads",
        live=True,
    )
    assert named.created == 1
    nia = by_external(ws, "N1")
    assert (nia["owner_id"], nia["sla_due_at"] is not None, nia["historical"]) == ("chloe", True, False)
    with ws.reader() as conn:
        notices = (
            conn.execute(select(notifications.c.recipient).where(notifications.c.lead_id == nia["id"])).scalars().all()
        )
    assert notices == ["chloe@northwind.example"]
    ws.close()


def test_files_as_people_have_them(tmp_path: Path, sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    people = write(
        tmp_path / "people.csv",
        "id;name;age;subscribed;job;signed up\np1;Ana Lima;34;Yes;unknown;03.02.2024\np2;Bo Chen;;No;;04.02.2024\n",
    )
    wrong = write(tmp_path / "wrong.yaml", "columns: {external_id: id, custom.age: Age}\n")
    try:
        import_file(ws, people, "leads", mapping_path=wrong)
        raise AssertionError("a missing column must refuse the file")
    except Exception as exc:  # InvalidInput
        text = "; ".join(p.message for p in exc.problems)  # type: ignore[attr-defined]
        assert "no column 'Age'" in text and "splitting by semicolon" in text and "'age'" in text
    mapping = write(
        tmp_path / "people.yaml",
        "columns: {external_id: id, name: name, custom.age: age, consent.email: subscribed, custom.job: job,\n"
        "          occurred_at: signed up}\n"
        "values: {consent.email: {Yes: true, No: false}}\n"  # YAML 1.1 would read these keys as booleans
        "numbers: [custom.age]\n"
        "date_formats: {occurred_at: '%d.%m.%Y'}\n"
        "timezone: America/New_York\n",
    )
    summary = import_file(ws, people, "leads", mapping_path=mapping)
    assert (summary.created, summary.rejected, summary.delimiter) == (2, 0, ";"), summary.rejections
    ana, bo = by_external(ws, "p1"), by_external(ws, "p2")
    assert (ana["consent_email"], bo["consent_email"]) == (True, False)
    assert ana["custom"] == {"age": 34, "job": "unknown"}  # 'unknown' is a value
    assert bo["custom"] is None or "job" not in bo["custom"]  # an empty cell is missing
    assert ana["created_at"] == datetime(2024, 2, 3, 5, tzinfo=UTC)  # midnight in New York

    # through the command: a file whose every row is refused exits 1 and says why by line
    bad = write(tmp_path / "bad.csv", "Email,First Name\nnot-an-email,X\nalso-bad,Y\n")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from leadflow.cli import main; main()",
            "import",
            str(bad),
            "-w",
            str(tmp_path / "ws"),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert (out["landed"], out["rejected"], [r["line"] for r in out["rejections"]]) == (0, 2, [2, 3])


def test_a_stage_rule_to_customer_does_not_break_capture(tmp_path: Path, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    config = starter_config_text().replace(
        "  stage_rules:\n", "  stage_rules:\n    - {to: customer, when: {field: custom.paid, eq: true}}\n", 1
    )
    assert "to: customer, when" in config
    ws = open_workspace(tmp_path / "ws", db_url, clock, config)
    from leadflow.pipeline import process

    with ws.transaction() as conn:
        result = process(ws, conn, {"email": "paid@customer.example", "custom": {"paid": True}})
    assert (result.stage, result.owner_id) == ("customer", None)
    ws.close()


def test_api_finds_a_lead_by_its_external_id(live: LiveServer) -> None:
    made = live.client.post("/api/v1/leads", json={"external_id": "SF-00Q1", "last_name": "Nakamura"})
    assert made.status_code == 201, made.text
    again = live.client.post("/api/v1/leads", json={"external_id": "SF-00Q1", "company": "Nakamura KK"})
    assert (again.status_code, again.json()["lead"]["id"]) == (200, made.json()["lead"]["id"])
    found = live.client.get("/api/v1/leads", params={"external_id": "SF-00Q1"}).json()
    assert [(lead["id"], lead["external_id"], lead["company"]["name"]) for lead in found["leads"]] == [
        (made.json()["lead"]["id"], "SF-00Q1", "Nakamura KK")
    ]
    assert live.client.get("/api/v1/leads", params={"external_id": "nope"}).json()["leads"] == []
    assert live.client.get("/api/v1/leads", params={"limit": 0}).status_code == 422


def test_unknown_is_a_category_the_model_sees_and_blank_is_missing() -> None:
    from leadflow.model.frame import clean

    assert [clean(v) for v in ("unknown", "Unknown", " ", "Select", None)] == ["unknown", "Unknown", None, None, None]


def test_an_erased_person_is_no_longer_found_by_an_external_id(tmp_path: Path, sqlite_ws: Workspace) -> None:
    from leadflow.identity.service import find_by_external_ids
    from leadflow.privacy.service import erase, export

    ws = sqlite_ws
    import_file(ws, write(tmp_path / "c.csv", CONTACTS), "leads")
    ada = by_external(ws, "101")
    with ws.transaction() as conn:
        assert export(ws, conn, ada["id"])["external_ids"] == ["101"]
        erase(ws, conn, ada["id"], actor="dpo", reason="asked")
    with ws.reader() as conn:
        assert find_by_external_ids(conn, ["101"]) == {}
        assert conn.execute(select(leads.c.external_id).where(leads.c.id == ada["id"])).scalar_one() is None


def test_spend_and_revenue_keep_custom_columns_and_link_by_external_id(tmp_path: Path, sqlite_ws: Workspace) -> None:
    from leadflow.db.tables import spend

    ws = sqlite_ws
    import_file(ws, write(tmp_path / "c.csv", CONTACTS), "leads")
    spent = import_file(
        ws,
        write(
            tmp_path / "spend.csv",
            "source|period_start|period_end|amount|custom.channel_owner\n"
            "google_ads|2024-01-01|2024-02-01|1500.00|marketing ops\n",
        ),
        "spend",
    )
    paid = import_file(
        ws,
        write(
            tmp_path / "revenue.csv",
            "external_id\tlead_external_id\tamount\trecognized_at\tkind\tcustom.invoice\n"
            "INV-1\t101\t250.00\t2024-04-01T00:00:00+00:00\trecurring\tA-77\n"
            "INV-2\t404\t10.00\t2024-04-01T00:00:00+00:00\trecurring\tA-78\n",
        ),
        "revenue",
    )
    assert (spent.created, spent.delimiter, paid.created, paid.rejected, paid.delimiter) == (1, "|", 1, 1, "\t")
    assert paid.rejections[0]["field"] == "lead_external_id"
    with ws.reader() as conn:
        assert conn.execute(select(spend.c.custom).where(spend.c.origin == "import")).scalar_one() == {
            "channel_owner": "marketing ops"
        }
        row = conn.execute(select(revenue.c.lead_id, revenue.c.custom)).one()
        events = conn.execute(select(func.count()).where(lead_events.c.type == "revenue_recorded")).scalar_one()
    assert (row.lead_id, row.custom, events) == (by_external(ws, "101")["id"], {"invoice": "A-77"}, 1)


def test_errors_that_cannot_be_written_beside_the_file_go_to_the_workspace(
    tmp_path: Path, sqlite_ws: Workspace
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    data = write(shared / "people.csv", "Email,First Name\nnot-an-email,X\nok@fine.example,Y\n")
    (shared / "people.csv.errors.csv").mkdir()  # unwritable as a file, for root too (a read-only folder for others)
    summary = import_file(sqlite_ws, data, "leads")
    assert (summary.created, summary.rejected) == (1, 1)
    assert summary.error_file == str(tmp_path / "ws" / "imports" / "people.csv.errors.csv")
    assert "not-an-email" in Path(summary.error_file).read_text()


def test_a_deal_won_before_its_lead_was_created_is_kept_with_a_warning(tmp_path: Path, sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    import_file(ws, write(tmp_path / "c.csv", CONTACTS), "leads")  # lead 103 created 2024-02-03
    summary = import_file(
        ws,
        write(
            tmp_path / "early.csv",
            "external_id,lead_external_id,status,closed_at,amount\nE1,103,won,2024-01-20T10:00:00+00:00,500\n",
        ),
        "opportunities",
    )
    assert (summary.created, summary.rejected) == (1, 0)
    assert [(w["line"], w["field"]) for w in summary.warnings] == [(2, "created_at")]
    assert "before its lead was created" in summary.warnings[0]["message"]
    with ws.reader() as conn:
        e1 = conn.execute(select(opportunities).where(opportunities.c.external_id == "E1")).one()
    # opened when it closed (it cannot have opened later), counted as written
    assert e1.created_at == e1.closed_at == datetime(2024, 1, 20, 10, tzinfo=UTC)
    assert by_external(ws, "103")["stage"] == "customer"


def test_records_the_source_keeps_apart_are_not_merged_unseen(tmp_path: Path, sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    people = write(
        tmp_path / "crm.csv",
        "Record ID,First Name,Last Name,Company Name,Phone Number\n"
        "A1,Margaret,Hamilton,Apollo Guidance,+1 617 555 0101\n"
        "A2,Margaret,Hamilton,Apollo Guidance,+1 617 555 0101\n",  # the same person by every field
    )
    plain = write(
        tmp_path / "plain.csv",
        "First Name,Last Name,Company Name,Phone Number\nMargaret,Hamilton,Apollo Guidance,+1 617 555 0101\n",
    )
    summary = import_file(ws, people, "leads")
    assert (summary.created, summary.merged) == (2, 0)  # two records in the CRM: two leads, a pair to review
    with ws.reader() as conn:
        from leadflow.db.tables import match_pairs

        assert conn.execute(select(func.count()).select_from(match_pairs)).scalar_one() == 1
    assert import_file(ws, plain, "leads").merged == 1  # without an id of its own, the same person is recognised


def test_history_activity_keeps_leads_history_and_sends_nothing(tmp_path: Path, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    config = starter_config_text() + (
        "webhooks:\n  - {id: crm, url: 'http://127.0.0.1:9/hook', secret_env: HOOK_SECRET, events: [lead.stage_changed]}\n"
    )
    ws = open_workspace(tmp_path / "ws", db_url, clock, config)
    run_once(ws, ["webhooks.enqueue"])
    import_file(
        ws,
        write(
            tmp_path / "c.csv", "Record ID,Email,First Name,Job Title,Company Name\nA,cto@acme.example,Ann,CTO,Acme\n"
        ),
        "leads",
    )
    stage_before = by_external(ws, "A")["stage"]
    rows = ["external_id,type,lead_external_id,occurred_at,url,direction"]
    rows += [f"pv{i},page_view,A,2024-01-0{i}T10:00:00+00:00,https://acme.example/pricing," for i in range(1, 4)]
    rows += [f"m{i},meeting_held,A,2024-01-0{i}T11:00:00+00:00,,outbound" for i in range(3, 0, -1)]  # newest first
    rows += [f"r{i},email_replied,A,2024-01-0{i}T12:00:00+00:00,," for i in range(1, 4)]
    first = import_file(ws, write(tmp_path / "a.csv", "\n".join(rows) + "\n"), "events")
    again = import_file(ws, write(tmp_path / "b.csv", "\n".join(rows) + "\n\n"), "events")
    assert (first.created, again.created, again.merged) == (9, 0, 9)  # page views too are recorded once
    run_once(ws)
    ann = by_external(ws, "A")
    assert (ann["historical"], ann["stage"]) == (True, stage_before)  # no rule moved a stage the CRM gave
    assert ann["first_contact_at"] == datetime(2024, 1, 1, 11, tzinfo=UTC)  # the earliest, not the first listed
    assert count(ws, "webhook_deliveries") == 0 and count(ws, "nurture_enrolments") == 0
    from leadflow.webhooks.service import EVENT_TYPES

    with ws.reader() as conn:  # (the worker's score decay of today is the system's, and no news)
        actors = conn.execute(select(lead_events.c.actor).where(lead_events.c.type.in_(EVENT_TYPES)).distinct())
        assert set(actors.scalars()) == {"history"}
    ws.close()


def test_history_never_takes_a_live_lead_from_its_owner(tmp_path: Path, sqlite_ws: Workspace) -> None:
    from leadflow.pipeline import process

    ws = sqlite_ws
    with ws.transaction() as conn:
        live = process(ws, conn, {"email": "ann@acme.example", "company": "Acme", "first_name": "Ann"})
    assert live.owner_id is not None
    other = "farid" if live.owner_id != "farid" else "ana"
    old = write(
        tmp_path / "old.csv",
        f"Record ID,Email,First Name,Contact owner,Create Date\nA1,ann@acme.example,Ann,{other},2022-01-01 10:00\n",
    )
    assert import_file(ws, old, "leads").merged == 1
    with ws.reader() as conn:
        row = conn.execute(select(leads).where(leads.c.id == live.lead_id)).one()
    assert (row.owner_id, row.sla_due_at) == (live.owner_id, live.sla_due_at)


def test_an_external_id_and_an_email_naming_two_people_give_one_outcome_however_batched(
    tmp_path: Path, sqlite_ws: Workspace
) -> None:
    ws = sqlite_ws
    import_file(
        ws, write(tmp_path / "ab.csv", "Record ID,Email,First Name\nA,a@x.example,Ann\nB,b@x.example,Bob\n"), "leads"
    )
    import_file(
        ws, write(tmp_path / "c.csv", "Record ID,Email,First Name\nA,b@x.example,Ann2\n,b@x.example,Bobby\n"), "leads"
    )
    assert (by_external(ws, "A")["first_name"], by_external(ws, "B")["first_name"]) == ("Ann2", "Bobby")
    assert by_external(ws, "A")["email"] == "a@x.example"  # b@ is Bob's: Ann keeps her own


def test_deals_move_stages_in_time_order_whatever_the_file_order(tmp_path: Path, sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    import_file(ws, write(tmp_path / "c.csv", "Record ID,Last Name,Create Date\nA,Hopper,2021-06-01 09:00\n"), "leads")
    deals = write(
        tmp_path / "d.csv",
        "external_id,lead_external_id,status,amount,created_at,closed_at\n"
        "D2,A,won,100,2023-01-10T00:00:00+00:00,2023-05-10T00:00:00+00:00\n"
        "D1,A,won,200,2022-01-10T00:00:00+00:00,2022-03-10T00:00:00+00:00\n",
    )
    assert import_file(ws, deals, "opportunities").created == 2
    moves = [(s, at.date().isoformat()) for s, at in stage_history(ws, by_external(ws, "A")["id"])]
    assert moves[-2:] == [("opportunity", "2022-01-10"), ("customer", "2022-03-10")]


def test_a_date_given_as_a_constant_is_read_as_a_date(tmp_path: Path, sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    mapping = write(
        tmp_path / "m.yaml",
        "columns: {external_id: id, last_name: name, stage: stage, occurred_at: created}\n"
        "constants: {stage_at: '2021-07-01T00:00:00+00:00'}\n",
    )
    summary = import_file(
        ws,
        write(tmp_path / "c.csv", "id,name,stage,created\nA,Lamarr,customer,2021-06-01\n"),
        "leads",
        mapping_path=mapping,
    )
    assert (summary.created, summary.rejected) == (1, 0)
    assert stage_history(ws, by_external(ws, "A")["id"])[-1] == ("customer", datetime(2021, 7, 1, tzinfo=UTC))


def test_two_writers_of_one_activity_id_take_turns(tmp_path: Path, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    """Two processes recording the same activity id at once (two imports, an import beside the
    API): the second finds the first's and says so (409), never a unique-index crash."""
    import threading

    from leadflow.capture.activity import record_event
    from leadflow.capture.schemas import EventIn
    from leadflow.errors import Conflict

    ws = open_workspace(tmp_path / "ws", db_url, clock)
    import_file(ws, write(tmp_path / "c.csv", CONTACTS), "leads")
    call = EventIn(type="call", external_id="C-9", lead_external_id="101", direction="outbound")
    first_in, release, outcome = threading.Event(), threading.Event(), {}

    def first() -> None:
        with ws.engine.begin() as conn:  # its own connection, as another process would have
            record_event(ws, conn, call, actor="api")
            first_in.set()
            release.wait(10)

    def second() -> None:
        first_in.wait(10)
        try:
            with ws.engine.begin() as conn:
                record_event(ws, conn, call, actor="api")
            outcome["second"] = "recorded"
        except Conflict as exc:
            outcome["second"] = exc.problems[0].field

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_in.wait(10)
    threading.Event().wait(0.5)  # the second is now waiting for the first
    release.set()
    for t in threads:
        t.join(20)
    assert outcome == {"second": "external_id"}
    with ws.reader() as conn:
        assert conn.execute(select(func.count()).where(lead_events.c.external_id == "C-9")).scalar_one() == 1
    ws.close()


def test_bad_settings_refuse_the_file_and_bad_rows_are_rejected_by_line(tmp_path: Path, sqlite_ws: Workspace) -> None:
    from leadflow.errors import InvalidInput

    ws = sqlite_ws
    data = write(
        tmp_path / "c.csv",
        "id,name,stage,won\nA,Ada,customer,2024-02-01\nB,Bob,Banana,2024-02-01\nC,Cy,lead,someday\nD,Di,Lifecycle?,\n",
    )

    def refused(mapping_text: str | None, **kw: object) -> list[tuple[str, str]]:
        mapping = write(tmp_path / "m.yaml", mapping_text) if mapping_text else None
        try:
            import_file(ws, data, "leads", mapping_path=mapping, **kw)  # type: ignore[arg-type]
        except InvalidInput as exc:
            return [(p.field, p.message) for p in exc.problems]
        raise AssertionError("the file must be refused")

    base = "columns: {external_id: id, last_name: name, stage: stage, reached.customer: won}\n"
    assert refused(base, delimiter="ab")[0][0] == "delimiter"
    assert refused(base + "timezone: Mars/Olympus\n") == [
        ("mapping.timezone", "'Mars/Olympus' is not a time zone (e.g. Europe/Berlin)")
    ]
    assert refused(base + "date_formats: {closed: '%Y'}\n")[0][0] == "mapping.date_formats.closed"
    assert refused(base.replace("reached.customer", "reached.quote"))[0][0] == "mapping.columns.reached.quote"
    assert count(ws, "import_runs") == 0 and count(ws, "leads") == 0  # nothing written by a refused file

    summary = import_file(ws, data, "leads", mapping_path=write(tmp_path / "ok.yaml", base))
    assert (summary.created, summary.rejected) == (1, 3)
    assert [(r["line"], r["field"]) for r in summary.rejections] == [
        (3, "stage"),
        (4, "reached.customer"),
        (5, "stage"),
    ]
    assert "'Banana' is not a stage" in summary.rejections[0]["reason"]
    assert count(ws, "leads") == 1 and by_external(ws, "A")["stage"] == "customer"
