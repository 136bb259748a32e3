"""Sign-in, sessions, CSRF and the readable-leads clause, over real HTTP on both backends."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.clock import FrozenClock
from leadflow.dashboard.access import readable_leads
from leadflow.dashboard.users import create_user
from leadflow.db.tables import lead_events, leads, review_items
from leadflow.pipeline import process
from leadflow.workspace import Workspace
from tests.conftest import LiveServer

PASSWORD = "correct horse battery"


def _users(ws: Workspace) -> None:
    with ws.transaction() as conn:
        now = ws.clock.now()
        create_user(conn, "ana@northwind.example", PASSWORD, "rep", now, owner="ana")
        create_user(conn, "ben@northwind.example", PASSWORD, "rep", now, owner="ben")
        create_user(conn, "mira@northwind.example", PASSWORD, "manager", now, owner="mira")
        create_user(conn, "emma@northwind.example", PASSWORD, "rep", now, owner="emma")


def _lead(ws: Workspace, email: str, **extra: object) -> int:
    with ws.transaction() as conn:
        return process(ws, conn, {"email": email, "company": "Acme", **extra}).lead_id


def _sign_in(live: LiveServer, email: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=live.url, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/login").text).group(1)  # type: ignore[union-attr]
    response = client.post("/app/login", data={"email": email, "password": password, "csrf": token})
    return client, response


def _csrf(client: httpx.Client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)  # type: ignore[union-attr]


def test_wrong_password_is_refused_without_a_session(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    client, response = _sign_in(live, "ana@northwind.example", "not the password")
    assert response.status_code == 401
    assert "do not match" in response.text
    assert "lf_session" not in response.headers.get("set-cookie", "")
    assert client.get("/app/inbox").status_code == 303  # still signed out: sent to the sign-in page
    _, unknown = _sign_in(live, "nobody@northwind.example")
    assert unknown.status_code == 401


def test_signing_out_ends_the_session_everywhere(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    client, _ = _sign_in(live, "ana@northwind.example")
    other, _ = _sign_in(live, "ana@northwind.example")  # another browser
    stolen = client.cookies["lf_session"]
    assert client.get("/app/inbox").status_code == 200
    out = client.post("/app/logout", data={"csrf": _csrf(client, "/app/inbox")})
    assert out.status_code == 303
    replayed = httpx.Client(base_url=live.url, cookies={"lf_session": stolen})
    assert replayed.get("/app/inbox").status_code == 303  # the saved cookie is dead
    assert other.get("/app/inbox").status_code == 303
    again, response = _sign_in(live, "ana@northwind.example")
    assert response.status_code == 303 and again.get("/app/inbox").status_code == 200


def test_repeated_failures_lock_the_account_for_a_while(ws: Workspace, live: LiveServer, clock: FrozenClock) -> None:
    _users(ws)
    statuses = [_sign_in(live, "ben@northwind.example", f"guess {i}")[1].status_code for i in range(5)]
    assert statuses == [401] * 5
    _, locked = _sign_in(live, "ben@northwind.example")  # the right password, but locked
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) == 30
    assert "lf_session" not in locked.headers.get("set-cookie", "")
    assert _sign_in(live, "ana@northwind.example")[1].status_code == 303  # other accounts are not locked
    clock.advance(seconds=31)
    assert _sign_in(live, "ben@northwind.example", "guess 6")[1].status_code == 401
    _, longer = _sign_in(live, "ben@northwind.example")
    assert longer.status_code == 429 and int(longer.headers["retry-after"]) == 60  # twice as long
    clock.advance(seconds=61)
    assert _sign_in(live, "ben@northwind.example")[1].status_code == 303  # and the count starts again
    assert _sign_in(live, "ben@northwind.example", "typo")[1].status_code == 401
    # an email with no account locks alike: a lock does not tell that an account exists
    stranger = f"nobody.{uuid.uuid4().hex[:8]}@northwind.example"
    strangers = [_sign_in(live, stranger, f"guess {i}")[1].status_code for i in range(6)]
    assert strangers == [401] * 5 + [429]


def test_session_cookie_is_httponly_and_samesite(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    client, response = _sign_in(live, "ana@northwind.example")
    assert response.status_code == 303 and response.headers["location"] == "/app/inbox"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("lf_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert client.get("/app/inbox").status_code == 200
    forged = httpx.Client(base_url=live.url, cookies={"lf_session": client.cookies["lf_session"][:-4] + "beef"})
    assert forged.get("/app/inbox").status_code == 303  # a tampered signature is no session


def test_a_post_without_the_csrf_token_changes_nothing(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    lead_id = _lead(ws, "grace@navy-labs.example", title="Director of Engineering", employees=800)
    client, _ = _sign_in(live, "ana@northwind.example")
    with ws.reader() as conn:
        before = conn.execute(select(func.count()).select_from(lead_events)).scalar_one()
    refused = client.post(f"/app/leads/{lead_id}/log", data={"kind": "call"})
    assert refused.status_code == 403
    wrong = client.post(f"/app/leads/{lead_id}/log", data={"kind": "call", "csrf": "0" * 64})
    assert wrong.status_code == 403
    with ws.reader() as conn:
        assert conn.execute(select(func.count()).select_from(lead_events)).scalar_one() == before
        assert conn.execute(select(leads.c.first_contact_at).where(leads.c.id == lead_id)).scalar_one() is None
    # the same post with the token goes through and stops the SLA clock
    ok = client.post(f"/app/leads/{lead_id}/log", data={"kind": "call", "csrf": _csrf(client, "/app/inbox")})
    assert ok.status_code == 303
    with ws.reader() as conn:
        assert conn.execute(select(leads.c.first_contact_at).where(leads.c.id == lead_id)).scalar_one() is not None


def test_a_rep_reads_only_their_leads_and_a_manager_their_team(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    lead_id = _lead(ws, "grace@navy-labs.example", title="Director of Engineering", employees=800)
    with ws.reader() as conn:
        owner = conn.execute(select(leads.c.owner_id).where(leads.c.id == lead_id)).scalar_one()
    assert owner == "ana"
    ana, _ = _sign_in(live, "ana@northwind.example")
    ben, _ = _sign_in(live, "ben@northwind.example")
    mira, _ = _sign_in(live, "mira@northwind.example")
    emma, _ = _sign_in(live, "emma@northwind.example")
    assert ana.get(f"/app/leads/{lead_id}").status_code == 200
    refused = ben.get(f"/app/leads/{lead_id}")
    assert refused.status_code == 403 and "someone else" in refused.text
    assert f'data-lead="{lead_id}"' not in ben.get("/app/inbox").text
    assert f'data-lead="{lead_id}"' in ana.get("/app/inbox").text
    assert mira.get(f"/app/leads/{lead_id}").status_code == 200  # ana is on mira's team
    assert emma.get(f"/app/leads/{lead_id}").status_code == 403  # another team
    post = ben.post(f"/app/leads/{lead_id}/log", data={"kind": "call", "csrf": _csrf(ben, "/app/inbox")})
    assert post.status_code == 403
    assert ben.get("/app/metrics").status_code == 403  # not a rep's page
    assert mira.get("/app/metrics").status_code == 200


def test_the_readable_clause_is_one_where_for_every_role(ws: Workspace) -> None:
    _users(ws)
    ids = [_lead(ws, f"person{i}@company{i}.example", title="Director", employees=800) for i in range(4)]
    from leadflow.dashboard.users import authenticate

    with ws.reader() as conn:
        owners = dict(conn.execute(select(leads.c.id, leads.c.owner_id)).all())
        for email in ("ana@northwind.example", "mira@northwind.example", "emma@northwind.example"):
            user = authenticate(conn, email, PASSWORD)
            assert user is not None
            seen = set(conn.execute(select(leads.c.id).where(readable_leads(user))).scalars())
            if user.role == "rep":
                assert seen == {i for i in ids if owners[i] == user.owner_id}
            else:
                assert seen == {i for i in ids if owners[i] in ("ana", "ben", "chloe", "dmitri", "mira")}


def test_metrics_count_only_the_managers_team_and_update_with_new_leads(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    _lead(ws, "grace@navy-labs.example", title="Director of Engineering", employees=800)  # sales team
    _lead(ws, "big@enterprise-corp.example", title="Director", employees=9000)  # enterprise team
    mira, _ = _sign_in(live, "mira@northwind.example")

    def total_new() -> int:
        page = mira.get("/app/metrics")
        assert page.status_code == 200
        return int(re.search(r'id="total-new">(\d+)<', page.text).group(1))  # type: ignore[union-attr]

    assert total_new() == 1  # the enterprise lead is not on mira's team
    _lead(ws, "ada@engines.example", title="VP Engineering", employees=300)
    assert total_new() == 2  # figures are cached only until the next event


def test_user_create_from_the_command_line(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from leadflow.cli import app
    from leadflow.dashboard.users import authenticate

    monkeypatch.setenv("LEADFLOW_DATABASE_URL", ws.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    args = [
        "user",
        "create",
        "Chloe@Northwind.example",
        "--role",
        "rep",
        "--owner",
        "chloe",
        "--workspace",
        str(ws.path),
    ]
    result = runner.invoke(app, [*args, "--password", "long enough pw"])
    assert result.exit_code == 0, result.output
    assert "chloe@northwind.example created: rep, owner chloe, team sales" in " ".join(result.output.split())
    refused = runner.invoke(
        app,
        [
            "user",
            "create",
            "x@northwind.example",
            "--role",
            "rep",
            "--workspace",
            str(ws.path),
            "--password",
            "long enough pw",
        ],
    )
    assert refused.exit_code == 1 and "--owner" in str(refused.exception)  # main() prints it and exits 1
    with ws.reader() as conn:
        user = authenticate(conn, "chloe@northwind.example", "long enough pw")
        assert user is not None and (user.role, user.owner_id, user.team_id) == ("rep", "chloe", "sales")
        assert authenticate(conn, "chloe@northwind.example", "wrong password") is None


def test_review_queue_shows_the_team_items_and_a_decision_needs_a_reason(ws: Workspace, live: LiveServer) -> None:
    _users(ws)
    with ws.transaction() as conn:
        create_user(conn, "farid@northwind.example", PASSWORD, "manager", ws.clock.now(), owner="farid")
    lead_id = _lead(
        ws,
        "grace@navy-labs.example",
        title="Director of Engineering",
        employees=800,
        capture_context="demo",
        first_name="Grace",
        last_name="Hopper",
    )
    with ws.reader() as conn:
        item_id = conn.execute(select(review_items.c.id).where(review_items.c.lead_id == lead_id)).scalar_one()
    mira, _ = _sign_in(live, "mira@northwind.example")
    farid, _ = _sign_in(live, "farid@northwind.example")
    assert f"/app/leads/{lead_id}" in mira.get("/app/review").text
    assert f"/app/leads/{lead_id}" not in farid.get("/app/review").text  # another team's lead
    token = _csrf(farid, "/app/review")
    assert (
        farid.post(f"/app/review/{item_id}", data={"decision": "accept", "reason": "x", "csrf": token}).status_code
        == 403
    )
    token = _csrf(mira, "/app/review")
    no_reason = mira.post(f"/app/review/{item_id}", data={"decision": "accept", "reason": "", "csrf": token})
    assert no_reason.status_code == 303 and "error=" in no_reason.headers["location"]
    done = mira.post(f"/app/review/{item_id}", data={"decision": "accept", "reason": "a real buyer", "csrf": token})
    assert done.status_code == 303 and "done=" in done.headers["location"]
    with ws.reader() as conn:
        assert (
            conn.execute(select(review_items.c.status).where(review_items.c.id == item_id)).scalar_one() == "accepted"
        )
        assert conn.execute(select(leads.c.stage).where(leads.c.id == lead_id)).scalar_one() == "mql"


def test_a_manager_merges_a_duplicate_pair_and_unmerges_it_from_the_lead_page(ws: Workspace, live: LiveServer) -> None:
    from leadflow.db.tables import match_pairs

    _users(ws)
    ada = {"email": "ada.lovelace@analytical.example", "first_name": "Ada", "last_name": "Lovelace", "country": "GB"}
    first = _lead(ws, **{**ada, "company": "Analytical Engines Ltd"})
    second = _lead(ws, **{**ada, "email": "a@analytical.example", "company": "Analytical Engines Ltd"})
    with ws.reader() as conn:
        pair_id = conn.execute(select(match_pairs.c.id).where(match_pairs.c.status == "open")).scalar_one()
    admin_email = "root@northwind.example"
    with ws.transaction() as conn:
        create_user(conn, admin_email, PASSWORD, "admin", ws.clock.now())
    admin, _ = _sign_in(live, admin_email)
    page = admin.get("/app/review").text
    assert "Possible duplicates" in page and f"/app/duplicates/{pair_id}" in page and "name: exact" in page
    token = _csrf(admin, "/app/review")
    done = admin.post(f"/app/duplicates/{pair_id}", data={"decision": "merge", "reason": "same person", "csrf": token})
    assert done.status_code == 303 and "merged" in done.headers["location"]
    with ws.reader() as conn:
        assert conn.execute(select(leads.c.merged_into_id).where(leads.c.id == second)).scalar_one() == first
    lead_page = admin.get(f"/app/leads/{first}").text
    assert f"Lead {second} merged into lead {first}" in lead_page and f"/app/leads/{second}/unmerge" in lead_page
    ana, _ = _sign_in(live, "ana@northwind.example")  # a rep may not unmerge
    assert ana.post(f"/app/leads/{second}/unmerge", data={"csrf": _csrf(ana, "/app/inbox")}).status_code == 403
    undone = admin.post(f"/app/leads/{second}/unmerge", data={"csrf": token, "next": f"/app/leads/{first}"})
    assert undone.status_code == 303 and "done=" in undone.headers["location"]
    with ws.reader() as conn:
        assert conn.execute(select(leads.c.merged_into_id).where(leads.c.id == second)).scalar_one() is None


def test_a_rep_enrols_a_lead_in_nurture_by_hand(ws: Workspace, live: LiveServer) -> None:
    from leadflow.db.tables import nurture_enrolments

    _users(ws)
    lead_id = _lead(ws, "grace@navy-labs.example", consent={"email": True})
    no_consent = _lead(ws, "nope@navy-labs.example")
    ana, _ = _sign_in(live, "ana@northwind.example")
    page = ana.get(f"/app/leads/{lead_id}").text
    assert f'action="/app/leads/{lead_id}/nurture"' in page and 'value="later_timing"' in page
    token = _csrf(ana, "/app/inbox")
    done = ana.post(f"/app/leads/{lead_id}/nurture", data={"sequence": "later_timing", "csrf": token})
    assert done.status_code == 303 and "enrolled" in done.headers["location"]
    refused = ana.post(f"/app/leads/{no_consent}/nurture", data={"sequence": "later_timing", "csrf": token})
    assert "consent" in httpx.URL(refused.headers["location"]).params["error"]
    unknown = ana.post(f"/app/leads/{lead_id}/nurture", data={"sequence": "nope", "csrf": token})
    assert "unknown sequence" in httpx.URL(unknown.headers["location"]).params["error"]
    with ws.reader() as conn:
        rows = conn.execute(
            select(nurture_enrolments.c.lead_id, nurture_enrolments.c.sequence_id, nurture_enrolments.c.status)
        ).all()
    assert [(r.lead_id, r.sequence_id, r.status) for r in rows] == [(lead_id, "later_timing", "active")]
