"""Nurture: sequences run their steps once, end when the lead is ready or says stop, email only
those who consented, and the links in the emails record what recipients do."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.config.loader import load_config_text
from leadflow.db.tables import notifications, nurture_enrolments, tasks
from leadflow.errors import ConfigError
from leadflow.jobs.worker import TASKS, run_task
from leadflow.pipeline import Activity, record_activities
from leadflow.workspace import Workspace
from tests.conftest import T0, Inbox, LiveServer
from tests.routing.helpers import capture, config_with, events_of, lead_row, workspace

ALWAYS = {"send_window": "00:00-24:00", "send_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
TEMPLATES = {
    "hello": {
        "subject": "Hello {{ first_name }}",
        "body": "Hi {{ first_name }},\n\nRead https://example.com/guide?x=1\n",
    },
    "again": {"subject": "Again, {{ first_name }}", "body": "Still there? https://example.com/book\n"},
}


def nurture(*sequences: dict[str, Any], **section: Any) -> dict[str, Any]:
    return {"nurture": {**ALWAYS, "templates": TEMPLATES, "sequences": list(sequences), **section}}


def seq(steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"id": "later", "when": {"field": "custom.timeline", "eq": "later"}, "steps": steps, **more}


TWO_EMAILS = seq([{"send": "hello"}, {"wait": "3d"}, {"send": "again"}])


def later(email: str, **more: Any) -> dict[str, Any]:
    return {"email": email, "first_name": "Ada", "consent": {"email": True}, "custom": {"timeline": "later"}, **more}


def run(ws: Workspace) -> None:
    for name in ("nurture.enrol", "nurture.advance", "notify.send"):
        run_task(ws, TASKS[name])


def sent(ws: Workspace) -> list[dict[str, Any]]:
    with ws.reader() as conn:
        rows = conn.execute(
            select(notifications).where(notifications.c.reason == "nurture").order_by(notifications.c.id)
        )
        return [dict(r._mapping) for r in rows]


def enrolment(ws: Workspace, lead_id: int) -> dict[str, Any]:
    with ws.reader() as conn:
        rows = conn.execute(
            select(nurture_enrolments).where(
                nurture_enrolments.c.lead_id == lead_id, nurture_enrolments.c.status != "skipped"
            )
        ).all()
    assert len(rows) == 1
    return dict(rows[0]._mapping)


def outbox(ws: Workspace) -> list[Message]:
    assert ws.path is not None
    messages = [
        message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted((ws.path / "outbox").glob("*.eml"))
    ]
    return [m for m in messages if m["List-Unsubscribe"]]  # nurture emails (owners are notified too)


def test_a_sequence_sends_its_emails_on_time_and_completes(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_EMAILS))
    lead = capture(ws, [later("ada@gmail.com"), {"email": "not-later@gmail.com", "consent": {"email": True}}])[0]
    run(ws)
    assert [n["subject"] for n in sent(ws)] == ["Hello Ada"]
    assert enrolment(ws, lead.lead_id)["step"] == 1 and enrolment(ws, lead.lead_id)["status"] == "active"
    clock.advance(days=2, hours=23)
    run(ws)
    assert len(sent(ws)) == 1  # the wait is not over
    clock.advance(hours=1)
    run(ws)
    assert [n["subject"] for n in sent(ws)] == ["Hello Ada", "Again, Ada"]
    assert all(n["status"] == "sent" for n in sent(ws))
    run(ws)
    done = enrolment(ws, lead.lead_id)
    assert done["status"] == "completed" and done["end_reason"] == "completed" and done["sent"] == 2
    # each delivery is an email_sent activity of the lead (not a rep's first contact)
    sent_events = events_of(ws, lead.lead_id, "email_sent")
    assert [e["data"]["step"] for e in sent_events] == [0, 2] and {e["actor"] for e in sent_events} == {"nurture"}
    assert lead_row(ws, lead.lead_id)["first_contact_at"] is None
    types = [e["type"] for e in events_of(ws, lead.lead_id, ev.NURTURE_ENROLLED, ev.NURTURE_ENDED)]
    assert types == [ev.NURTURE_ENROLLED, ev.NURTURE_ENDED]
    # without SMTP settings the emails are .eml files in the outbox, with unsubscribe headers
    messages = outbox(ws)
    assert [m["Subject"] for m in messages] == ["Hello Ada", "Again, Ada"]
    assert str(messages[0]["List-Unsubscribe"]).strip().startswith("<http://127.0.0.1:8000/u/")
    assert messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ws.close()


def test_a_reply_or_becoming_ready_ends_the_sequence(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_EMAILS))
    replied, ready = (r.lead_id for r in capture(ws, [later("r@gmail.com"), later("m@gmail.com")]))
    run(ws)
    clock.advance(hours=5)
    with ws.transaction() as conn:
        record_activities(ws, conn, [Activity("email_replied", replied, clock.now(), actor="recipient")])
    from leadflow.qualify.service import change_stage

    with ws.transaction() as conn:
        change_stage(ws, conn, ready, "mql", reason="asked for a demo", actor="test")
    clock.advance(days=4)
    run(ws)
    assert len(sent(ws)) == 2  # the first email each, nothing after
    assert enrolment(ws, replied)["end_reason"] == "event:email_replied"
    assert enrolment(ws, ready)["end_reason"] == "stage:mql"
    ws.close()


def test_holdout_leads_get_nothing_and_the_report_compares_the_groups(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    ws = workspace(tmp_path, sqlite_url, clock, **nurture(seq([{"send": "hello"}], holdout=0.5)))
    results = capture(ws, [later(f"h{i}@gmail.com") for i in range(40)])
    run(ws)
    with ws.reader() as conn:
        rows = conn.execute(select(nurture_enrolments.c.lead_id, nurture_enrolments.c.holdout)).all()
    held = {r.lead_id for r in rows if r.holdout}
    assert 8 <= len(held) <= 32 and len(rows) == 40
    assert {n["lead_id"] for n in sent(ws)} == {r.lead_id for r in results} - held
    # two enrolled leads and one held-out lead reach SQL later
    from leadflow.nurture.report import report
    from leadflow.qualify.service import change_stage

    enrolled = sorted({r.lead_id for r in results} - held)
    clock.advance(days=1)
    with ws.transaction() as conn:
        for lead_id in [*enrolled[:2], sorted(held)[0]]:
            change_stage(ws, conn, lead_id, "sql", reason="qualified", actor="test")
        out = report(ws, conn)["sequences"]["later"]
    conv = out["conversion"]
    assert conv["enrolled"] == {**conv["enrolled"], "leads": 40 - len(held), "converted": 2}
    assert conv["holdout"]["leads"] == len(held) and conv["holdout"]["converted"] == 1
    assert conv["difference"] == round(2 / (40 - len(held)) - 1 / len(held), 4)
    lo, hi = conv["difference_interval_95"]
    assert lo < conv["difference"] < hi and conv["significant"] is False
    assert out["steps"][0]["sent"] == 40 - len(held) and out["messages_sent"] == 40 - len(held)
    ws.close()


def test_send_window_in_the_leads_time_zone_and_frequency_cap(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 6, 20, tzinfo=UTC))  # Friday 21:00 in Berlin, 15:00 in New York
    steps = [{"send": "hello"}, {"send": "again"}]
    ws = workspace(
        tmp_path,
        sqlite_url,
        clock,
        **nurture(seq(steps), send_window="09:00-17:00", send_days=["mon", "tue", "wed", "thu", "fri"], max_per_week=1),
    )
    berlin, new_york = (
        r.lead_id for r in capture(ws, [later("b@gmail.com", country="DE"), later("n@gmail.com", country="US")])
    )
    run(ws)
    assert [n["lead_id"] for n in sent(ws)] == [new_york]  # still working hours there
    assert enrolment(ws, berlin)["next_at"] == datetime(2026, 3, 9, 8, tzinfo=UTC)  # Monday 09:00 in Berlin
    clock.set(datetime(2026, 3, 9, 8, 30, tzinfo=UTC))
    run(ws)
    assert sorted(n["lead_id"] for n in sent(ws)) == sorted([berlin, new_york])
    # one a week: the second email waits until a week after the first
    clock.set(datetime(2026, 3, 12, 15, tzinfo=UTC))
    run(ws)
    assert len(sent(ws)) == 2
    clock.set(datetime(2026, 3, 13, 20, 30, tzinfo=UTC))  # Friday 15:30 in New York, a week after
    run(ws)
    assert [n["lead_id"] for n in sent(ws)].count(new_york) == 2
    ws.close()


def test_branch_task_and_wait_until(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> None:
    steps = [
        {"send": "hello"},
        {"wait_until": {"event": "email_clicked", "timeout": "5d"}},
        {"branch": {"if": {"field": "engagement_score", "gte": 1}, "goto": "call"}},
        {"send": "again"},
        {"exit": "no_response"},
        {"id": "call", "task": "Call them"},
    ]
    ws = workspace(tmp_path, sqlite_url, clock, **nurture(seq(steps)))
    clicker, silent = (r.lead_id for r in capture(ws, [later("c@gmail.com"), later("s@gmail.com")]))
    run(ws)
    clock.advance(hours=2)
    with ws.transaction() as conn:
        record_activities(ws, conn, [Activity("email_clicked", clicker, clock.now(), actor="recipient")])
    run(ws)
    assert enrolment(ws, clicker)["status"] == "completed"
    with ws.reader() as conn:
        assert [(t.lead_id, t.title) for t in conn.execute(select(tasks))] == [(clicker, "Call them")]
    assert enrolment(ws, silent)["status"] == "active"
    clock.advance(days=5)
    run(ws)
    assert enrolment(ws, silent)["end_reason"] == "no_response"
    assert [n["subject"] for n in sent(ws) if n["lead_id"] == silent] == ["Hello Ada", "Again, Ada"]
    ws.close()


def test_tracking_links_over_http_record_opens_clicks_and_unsubscribe(
    ws_nurture: Workspace, clock: FrozenClock
) -> None:
    ws = ws_nurture
    lead = capture(ws, [later("t@gmail.com")])[0].lead_id
    run(ws)
    message = outbox(ws)[0]
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    base = "http://127.0.0.1:8000"
    click = re.search(rf"{base}(/t/c/\S+)", text).group(1)  # type: ignore[union-attr]
    pixel = re.search(rf'src="{base}(/t/o/[^"]+)"', html).group(1)  # type: ignore[union-attr]
    unsubscribe = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))[0].removeprefix(base)
    before = lead_row(ws, lead)["engagement_score"]
    with LiveServer(ws) as live:
        assert live.anonymous.get(pixel).headers["content-type"] == "image/gif"
        r = live.anonymous.get(click, follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "https://example.com/guide?x=1"
        assert lead_row(ws, lead)["engagement_score"] > before  # opens and clicks feed the score
        forged = click[:-3] + ("AAA" if not click.endswith("AAA") else "BBB")
        assert live.anonymous.get(forged, follow_redirects=False).status_code == 404
        assert "Unsubscribe?" in live.anonymous.get(unsubscribe).text  # a GET changes nothing
        assert lead_row(ws, lead)["consent_email"] is True
        assert "You are unsubscribed" in live.anonymous.post(unsubscribe).text
        report = live.client.get("/api/v1/nurture/report").json()["sequences"]["later"]
    assert lead_row(ws, lead)["consent_email"] is False
    kinds = [e["type"] for e in events_of(ws, lead, "email_opened", "email_clicked", "email_unsubscribed")]
    assert kinds == ["email_opened", "email_clicked", "email_unsubscribed"]
    assert report["steps"][0] | {} == {
        **report["steps"][0],
        "sent": 1,
        "opened_rate": 1.0,
        "clicked_rate": 1.0,
        "unsubscribed_rate": 1.0,
        "replied_rate": 0.0,
    }
    clock.advance(days=3)
    run(ws)
    assert len(sent(ws)) == 1 and enrolment(ws, lead)["end_reason"] == "event:email_unsubscribed"


@pytest.fixture
def ws_nurture(tmp_path: Path, db_url: str, clock: FrozenClock) -> Workspace:
    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_EMAILS))
    yield ws  # type: ignore[misc]
    ws.close()


def test_smtp_delivery_with_an_html_part(tmp_path: Path, sqlite_url: str, clock: FrozenClock, smtp: Inbox) -> None:
    ws = workspace(tmp_path, sqlite_url, clock, **nurture(TWO_EMAILS))
    capture(ws, [later("smtp@gmail.com")])
    run(ws)
    to_lead = [(rcpt, m) for rcpt, m in smtp.messages if rcpt == ["smtp@gmail.com"]]
    assert len(to_lead) == 1
    rcpt, message = to_lead[0]
    assert rcpt == ["smtp@gmail.com"] and message["Subject"] == "Hello Ada"
    assert {p.get_content_type() for p in message.walk()} >= {"text/plain", "text/html"}
    ws.close()


@pytest.mark.parametrize(
    ("broken", "where", "what"),
    [
        ({"steps": [{"send": "nope"}]}, "nurture.sequences[0].steps[0].send", "unknown template 'nope'"),
        (
            {"steps": [{"branch": {"if": {"field": "score", "gt": 1}, "goto": "x"}}]},
            "nurture.sequences[0].steps[0].branch.goto",
            "unknown step id 'x'",
        ),
        ({"steps": [{"send": "hello", "wait": "1d"}]}, "nurture.sequences[0].steps[0]", "exactly one of"),
        ({"goal_stage": "won"}, "nurture.sequences[0].goal_stage", "unknown stage 'won'"),
        ({"exit_on": ["email_read"]}, "nurture.sequences[0].exit_on[0]", "unknown activity type"),
    ],
)
def test_broken_sequences_are_refused_with_key_and_reason(broken: dict[str, Any], where: str, what: str) -> None:
    text = config_with(**nurture({**TWO_EMAILS, **broken}))
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert any(where in str(p) and what in str(p) for p in caught.value.problems), caught.value.problems


def test_a_template_that_does_not_parse_is_refused() -> None:
    text = config_with(**nurture(TWO_EMAILS, templates={**TEMPLATES, "hello": {"subject": "Hi {{ name", "body": "x"}}))
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert any("nurture.templates.hello" in str(p) and "does not parse" in str(p) for p in caught.value.problems)


lead_flags = st.fixed_dictionaries(
    {
        "consent": st.sampled_from([True, False, None]),
        "do_not_contact": st.booleans(),
        "after": st.sampled_from([None, "email_bounced", "email_unsubscribed", "erase"]),
        "email": st.booleans(),
    }
)
step_kinds = st.lists(
    st.sampled_from([{"send": "hello"}, {"send": "again"}, {"wait": "1d"}, {"wait": "3h"}]), min_size=1, max_size=6
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=st.lists(lead_flags, min_size=1, max_size=12), steps=step_kinds)
def test_property_no_email_ever_reaches_a_lead_who_may_not_get_one(
    tmp_path_factory: pytest.TempPathFactory, people: list[dict[str, Any]], steps: list[dict[str, Any]]
) -> None:
    """Over random leads (consent given, refused or unknown; do-not-contact; bouncing,
    unsubscribing or erased after enrolment) and random sequences, every email that was sent went
    to a lead who had email consent, was not do-not-contact, had not bounced or unsubscribed and
    was not erased at the time."""
    from leadflow.privacy.service import erase

    root = tmp_path_factory.mktemp("prop")
    clock = FrozenClock(T0)
    ws = workspace(root, f"sqlite:///{root / 'p.db'}", clock, **nurture(seq(steps)))
    payloads = []
    for i, p in enumerate(people):
        consent: dict[str, Any] = {"do_not_contact": p["do_not_contact"]}
        if p["consent"] is not None:
            consent["email"] = p["consent"]
        payload: dict[str, Any] = {"custom": {"timeline": "later"}, "consent": consent, "company": f"Co {i}"}
        payload["first_name"], payload["last_name"] = "P", f"N{i}"
        payload["email" if p["email"] else "phone"] = f"p{i}@gmail.com" if p["email"] else f"+4930123456{i:02d}"
        payloads.append(payload)
    ids = [r.lead_id for r in capture(ws, payloads)]
    run(ws)
    clock.advance(hours=1)
    stopped: dict[int, datetime] = {}
    for lead_id, p in zip(ids, people, strict=True):
        if p["after"] == "erase":
            with ws.transaction() as conn:
                erase(ws, conn, lead_id, actor="test", reason="request")
            stopped[lead_id] = clock.now()
        elif p["after"]:
            with ws.transaction() as conn:
                record_activities(ws, conn, [Activity(p["after"], lead_id, clock.now(), actor="recipient")])
            stopped[lead_id] = clock.now()
    for _ in range(6):
        clock.advance(days=1)
        run(ws)
    by_lead = dict(zip(ids, people, strict=True))
    for n in sent(ws):
        if n["status"] != "sent":
            continue
        p = by_lead[n["lead_id"]]
        assert p["consent"] is True and not p["do_not_contact"] and p["email"], (p, n["subject"])
        assert n["lead_id"] not in stopped or n["sent_at"] < stopped[n["lead_id"]], (p, n["sent_at"])
    ws.close()


NURTURE_WORKER = """
import os, sys, time
from datetime import datetime
from pathlib import Path
from leadflow.clock import FrozenClock
from leadflow.jobs.worker import TASKS, run_task
from leadflow.workspace import Workspace
root, url, at, go = sys.argv[1:5]
ws = Workspace.open(root, database_url=url, clock=FrozenClock(datetime.fromisoformat(at)))
Path(f"{go}.{os.getpid()}").touch()  # ready
while not Path(go).exists():
    time.sleep(0.002)
done = 0
while True:
    did = sum(run_task(ws, TASKS[name]) for name in ("nurture.enrol", "nurture.advance", "notify.send"))
    if did == 0:
        break
    done += did
print(done)
ws.close()
"""


def test_four_workers_send_every_email_exactly_once_over_smtp(
    tmp_path: Path, db_url: str, clock: FrozenClock, smtp: Inbox
) -> None:
    from tests.routing.test_concurrency import run_processes

    two_now = seq([{"send": "hello"}, {"send": "again"}])
    ws = workspace(tmp_path, db_url, clock, **nurture(two_now, max_per_week=5))
    count = 120
    ids = [r.lead_id for r in capture(ws, [later(f"x{i}@gmail.com") for i in range(count)])]
    assert ws.path is not None
    worked = [
        int(x) for x in run_processes(NURTURE_WORKER, ws.path, db_url, clock.now().isoformat(), [[] for _ in range(4)])
    ]
    assert sum(worked) > 0
    received = [rcpt[0] for rcpt, _ in smtp.messages if rcpt[0].endswith("@gmail.com")]  # not the owners' notices
    assert len(received) == count * 2 and set(Counter(received).values()) == {2}
    assert sorted({n["lead_id"] for n in sent(ws)}) == sorted(ids)
    assert {n["status"] for n in sent(ws)} == {"sent"}
    ws.close()


def test_wait_until_a_date_in_a_lead_field_or_a_fixed_date(tmp_path: Path, sqlite_url: str, clock: FrozenClock) -> None:
    steps = [
        {"wait_until": {"field": "custom.follow_up_on"}},
        {"send": "hello"},
        {"wait_until": {"date": "2026-04-01T08:00:00Z"}},
        {"send": "again"},
    ]
    ws = workspace(tmp_path, sqlite_url, clock, **nurture(seq(steps)))
    dated, undated = (
        r.lead_id
        for r in capture(
            ws,
            [
                later("d@gmail.com", custom={"timeline": "later", "follow_up_on": "2026-03-10"}),
                later("u@gmail.com"),
            ],
        )
    )
    run(ws)
    assert [n["lead_id"] for n in sent(ws)] == [undated]  # no date in the field: go on at once
    clock.set(datetime(2026, 3, 10, 7, 59, tzinfo=UTC))  # 08:59 in Berlin, the workspace's zone
    run(ws)
    assert [n["lead_id"] for n in sent(ws)] == [undated]
    clock.set(datetime(2026, 3, 10, 8, 1, tzinfo=UTC))
    run(ws)
    assert sorted(n["lead_id"] for n in sent(ws)) == sorted([dated, undated])
    clock.set(datetime(2026, 4, 1, 8, 0, tzinfo=UTC))
    run(ws)
    assert len(sent(ws)) == 4
    ws.close()


def test_wait_until_needs_one_kind_and_an_event_needs_a_timeout() -> None:
    for bad, what in (
        ({"event": "email_opened"}, "needs a timeout"),
        ({"event": "email_opened", "timeout": "1d", "date": "2026-01-01T00:00:00Z"}, "exactly one of"),
        ({"date": "2026-01-01T00:00:00"}, "time zone"),
    ):
        text = config_with(**nurture(seq([{"wait_until": bad}, {"send": "hello"}])))
        with pytest.raises(ConfigError) as caught:
            load_config_text(text)
        assert any(what in str(p) for p in caught.value.problems), caught.value.problems
    text = config_with(**nurture(seq([{"wait_until": {"field": "follow_up"}}, {"send": "hello"}])))
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert any("wait_until.field" in str(p) and "unknown field" in str(p) for p in caught.value.problems)
