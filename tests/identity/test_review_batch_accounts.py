"""The duplicate review API, the batch dedupe (database and CSV) and lead-to-account matching."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import func, select, update
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.db.tables import accounts, leads, match_pairs
from leadflow.identity.batch import dedupe_database
from leadflow.leads.service import get_lead
from leadflow.pipeline import process
from leadflow.workspace import Workspace
from tests.conftest import LiveServer

ADA = {
    "email": "ada.lovelace@analytical.example",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines Ltd",
    "country": "GB",
}


def capture(ws: Workspace, payload: dict) -> object:
    with ws.transaction() as conn:
        return process(ws, conn, payload)


def test_review_queue_lists_evidence_and_remembers_decisions(live: LiveServer, ws: Workspace) -> None:
    a = capture(ws, ADA)
    b = capture(ws, {**ADA, "email": "a@analytical.example"})
    c = capture(ws, {**ADA, "email": "l@analytical.example", "first_name": "Ada"})
    items = live.client.get("/api/v1/duplicates").json()["items"]
    assert [(i["lead_id"], i["other_lead_id"]) for i in items] == [(a.lead_id, b.lead_id), (a.lead_id, c.lead_id)]
    first = items[0]
    assert "name" in first["agreed"] and first["evidence"]["name"] == {
        "level": "exact",
        "weight": first["evidence"]["name"]["weight"],
    }
    assert first["lead"]["email"] == ADA["email"] and first["other_lead"]["id"] == b.lead_id

    r = live.client.post(
        f"/api/v1/duplicates/{first['id']}/decision", json={"decision": "keep_apart", "reason": "two Adas"}
    )
    assert r.status_code == 200 and r.json()["status"] == "kept_apart"
    r = live.client.post(f"/api/v1/duplicates/{first['id']}/decision", json={"decision": "merge", "reason": "oops"})
    assert r.status_code == 409
    r = live.client.post(f"/api/v1/duplicates/{items[1]['id']}/decision", json={"decision": "merge"})
    assert r.status_code == 422
    r = live.client.post(
        f"/api/v1/duplicates/{items[1]['id']}/decision", json={"decision": "merge", "reason": "same phone on a call"}
    )
    assert r.status_code == 200 and r.json()["survivor_id"] == a.lead_id
    with ws.reader() as conn:
        assert get_lead(conn, c.lead_id)["merged_into_id"] == a.lead_id

    # a batch run proposes nothing new: the kept-apart pair is remembered
    with ws.transaction() as conn:
        result = dedupe_database(ws, conn)
    assert result.review_pairs == [] and result.merge_pairs == []
    assert [i["status"] for i in live.client.get("/api/v1/duplicates?status=all").json()["items"]] == [
        "kept_apart",
        "merged",
    ]

    # unmerge over HTTP; a second unmerge is a clear 409
    r = live.client.post(f"/api/v1/leads/{c.lead_id}/unmerge")
    assert r.status_code == 200 and r.json()["survivor_id"] == a.lead_id
    r = live.client.post(f"/api/v1/leads/{c.lead_id}/unmerge")
    assert r.status_code == 409 and "nothing to unmerge" in r.json()["detail"]
    r = live.client.post(f"/api/v1/leads/{a.lead_id}/merge", json={"other_lead_id": c.lead_id, "reason": "yes, same"})
    assert r.status_code == 200 and r.json()["merged_id"] == c.lead_id


def test_batch_dedupe_merges_clusters_and_queues_the_likely(ws: Workspace) -> None:
    # leads captured while matching was off (e.g. imported before this release): three records of
    # Ada, two of Grace, and one likely pair
    text = ws.loaded.text.replace("  match:\n    enabled: true", "  match:\n    enabled: false")
    assert "enabled: false" in text
    off = Workspace.open(
        ws.path, database_url=str(ws.engine.url.render_as_string(hide_password=False)), config_text=text
    )
    ids = []
    for payload in (
        ADA,
        {**ADA, "email": "ada.lovelace@gmail.com", "phone": "+44 20 7946 0958"},
        {"first_name": "Lovelace", "last_name": "Ada", "phone": "+44 20 7946 0958", "country": "GB"},
        {"email": "grace@navy.example", "first_name": "Grace", "last_name": "Hopper", "company": "US Navy"},
        {"email": "grace@gmail.com", "first_name": "Grace", "last_name": "Hopper", "company": "U.S. Navy"},
        {
            "email": "k@analytical.example",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": "Analytical Engines",
        },
    ):
        with off.transaction() as conn:
            ids.append(process(off, conn, payload).lead_id)
    off.close()
    assert len(set(ids)) == 6
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["dedupe", "--workspace", str(ws.path), "--reindex", "--json"],
        env={"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)},
    )
    assert result.exit_code == 0, result.output
    with ws.reader() as conn:
        merged_into = dict(conn.execute(select(leads.c.id, leads.c.merged_into_id)).all())
        pairs = conn.execute(select(match_pairs.c.other_lead_id, match_pairs.c.status, match_pairs.c.found_by)).all()
    assert merged_into[ids[1]] == ids[0] and merged_into[ids[2]] == ids[0], (result.output, merged_into, pairs)
    assert merged_into[ids[4]] == ids[3]
    assert merged_into[ids[5]] is None and pairs and {tuple(p) for p in pairs} == {(ids[5], "open", "batch")}


def test_csv_dedupe_writes_a_cluster_id_per_row(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    rows = [
        {"E-Mail": "bob.miller@gmail.com", "First": "Bob", "Last": "Miller", "Org": "Acme Inc."},
        {"E-Mail": "b.o.b.miller+news@gmail.com", "First": "Robert", "Last": "Miller", "Org": "ACME"},
        {"E-Mail": "jane@other.example", "First": "Jane", "Last": "Doe", "Org": "Other"},
        {"E-Mail": "", "First": "Miller", "Last": "Robert", "Org": "Acme GmbH"},
    ]
    with source.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        [
            "dedupe",
            str(source),
            "--fields",
            "email=E-Mail,first_name=First,last_name=Last,company=Org",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open() as f:
        clusters = [r["cluster_id"] for r in csv.DictReader(f)]
    assert clusters[0] == clusters[1] == clusters[3] == "1" and clusters[2] == "3"
    bad = CliRunner().invoke(app, ["dedupe", str(source), "--fields", "email=Mail", "--output", str(out)])
    assert bad.exit_code == 1


def test_a_free_mail_lead_joins_its_company_account_by_name_and_its_owner(ws: Workspace) -> None:
    a = capture(ws, {"email": "cto@analytical.example", "company": "Analytical Engines Ltd", "last_name": "Babbage"})
    with ws.transaction() as conn:
        account_id = get_lead(conn, a.lead_id)["account_id"]
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(owner_id="emma"))
    b = capture(ws, {"email": "charles.b@gmail.com", "company": "ANALYTICAL ENGINES", "last_name": "Babbage-Jr"})
    typo = capture(ws, {"email": "someone@yahoo.com", "company": "Analytical Engins GmbH", "last_name": "Other"})
    other = capture(ws, {"email": "x@gmail.com", "company": "Difference Engines"})
    with ws.reader() as conn:
        assert get_lead(conn, b.lead_id)["account_id"] == account_id
        assert get_lead(conn, typo.lead_id)["account_id"] == account_id
        assert get_lead(conn, other.lead_id)["account_id"] is None  # no account from a name alone
        assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 1
    assert b.owner_id == "emma"  # the account's owner, for routing


def test_estimate_prints_m_and_u_for_the_workspace_file(tmp_path: Path) -> None:
    import json

    source = tmp_path / "people.csv"
    with source.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "first_name", "last_name", "phone"])
        for i in range(60):
            writer.writerow([f"p{i}.person{i}@corp{i}.example", f"First{i}", f"Last{i % 7}", f"+4930{1000000 + i}"])
            if i % 3 == 0:  # the same person again, with another mailbox
                writer.writerow([f"p{i}.person{i}@gmail.com", f"First{i}", f"Last{i % 7}", f"+4930{1000000 + i}"])
    result = CliRunner().invoke(app, ["dedupe", str(source), "--output", str(tmp_path / "o.csv"), "--estimate"])
    assert result.exit_code == 0, result.output
    comparisons = {c["field"]: c for c in json.loads(result.output)["comparisons"]}
    assert set(comparisons) == {"email", "phone", "name", "company"}
    # pairs sharing a phone are the same person: their emails agree on the local part, not the mailbox
    assert comparisons["email"]["m"]["local"] > 0.9
    assert comparisons["name"]["u"]["exact"] < 0.01
