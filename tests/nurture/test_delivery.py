"""Delivery keeps the README's promise: each nurture step and each notice is handed to the mail
server at most once (a worker that dies mid-send leaves it ``in_doubt``, never sent again),
nothing goes to a lead after its erasure or unsubscribe returns, every message has a Message-ID
derived from what it is, and ``List-Unsubscribe`` is plain URIs with RFC 8058 one-click."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from leadflow.clock import FrozenClock
from leadflow.db.tables import notifications
from leadflow.errors import ConfigError
from leadflow.jobs.worker import TASKS, run_task
from leadflow.notify.mail import Mailer
from leadflow.pipeline import Activity, record_activities
from leadflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.nurture.conftest import Received, Sink
from tests.nurture.test_nurture import later, nurture, seq
from tests.routing.helpers import capture, config_with, events_of, lead_row, workspace

TWO_NOW = seq([{"send": "hello"}, {"send": "again"}])
NURTURE_ID = re.compile(r"^<nurture\.l(\d+)\.e(\d+)\.s(\d+)\.([0-9a-f]{10})@northwind\.example>$")
NOTICE_ID = re.compile(r"^<notice\.(\d+)\.([0-9a-f]{10})@northwind\.example>$")


class Killed(BaseException):
    """Stands for kill -9: no handler of the code under test runs."""


def queue(ws: Workspace) -> None:
    for name in ("nurture.enrol", "nurture.advance"):
        run_task(ws, TASKS[name])


def send(ws: Workspace) -> int:
    return run_task(ws, TASKS["notify.send"])


def rows(ws: Workspace) -> dict[int, dict[str, Any]]:
    with ws.reader() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(notifications).order_by(notifications.c.id))}


def notification_of(got: Received) -> int:
    return int(got.message["X-Leadflow-Notification"])


def test_a_worker_dying_mid_send_never_repeats_a_step_or_a_notice(
    tmp_path: Path, db_url: str, clock: FrozenClock, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_NOW, max_per_week=5))
    capture(ws, [later(f"c{i}@gmail.com") for i in range(3)])
    queue(ws)
    original = Mailer.send

    def dies_once_the_server_has_it(self: Mailer, message: Any, name: str) -> None:
        original(self, message, name)
        if message["List-Unsubscribe"]:  # the first nurture email: the server took it, the worker dies
            raise Killed

    monkeypatch.setattr(Mailer, "send", dies_once_the_server_has_it)
    with pytest.raises(Killed):
        send(ws)
    monkeypatch.setattr(Mailer, "send", original)
    crashed = notification_of(sink.received[-1])
    send(ws)  # the dead worker's claim still holds: nothing yet
    clock.advance(minutes=5, seconds=1)  # its lease has ended
    send(ws)
    clock.advance(days=1)
    queue(ws)
    send(ws)

    received = Counter(notification_of(r) for r in sink.received)
    assert set(received.values()) == {1}, received  # not one message twice
    table = rows(ws)
    steps = Counter((table[n]["lead_id"], table[n]["step"]) for n in received if table[n]["reason"] == "nurture")
    assert set(steps.values()) == {1} and len(steps) == 6  # three leads, two steps each, once
    assert set(received) == set(table)  # nothing lost but the one in doubt, which did arrive here
    assert table[crashed]["status"] == "in_doubt" and "not sent again" in table[crashed]["last_error"]
    assert {r["status"] for n, r in table.items() if n != crashed} == {"sent"}
    # the crashed lead's second step went out after the crash; its first was not repeated
    lead = table[crashed]["lead_id"]
    order = [table[notification_of(r)]["step"] for r in sink.received if table[notification_of(r)]["lead_id"] == lead]
    assert order == [0, 1] or order[-2:] == [0, 1]
    # in doubt: no email_sent for it (nobody knows it arrived); the others have theirs
    sent_events = [e["data"]["notification"] for e in events_of(ws, lead, "email_sent")]
    assert crashed not in sent_events and len(sent_events) == 1

    # every message has a Message-ID naming what it is: a lead's step, or the notice
    ids = [r.message["Message-ID"] for r in sink.received]
    assert len(set(ids)) == len(ids)
    for got in sink.received:
        row = table[notification_of(got)]
        if row["reason"] == "nurture":
            match = NURTURE_ID.match(got.message["Message-ID"])
            assert match is not None, got.message["Message-ID"]
            assert tuple(map(int, match.groups()[:3])) == (row["lead_id"], row["enrolment_id"], row["step"])
        else:
            match = NOTICE_ID.match(got.message["Message-ID"])
            assert match is not None and int(match.group(1)) == row["id"], got.message["Message-ID"]
    ws.close()


def test_the_message_id_is_the_same_for_every_copy_of_a_step() -> None:
    from leadflow.notify.service import message_id

    step = {"id": 7, "reason": "nurture", "lead_id": 3, "enrolment_id": 4, "step": 2}
    again = {**step, "id": 8}  # a second row for the same step would be recognisable
    assert message_id(step, tag="t", domain="d.example") == message_id(again, tag="t", domain="d.example")
    assert message_id(step, tag="t", domain="d.example") == "<nurture.l3.e4.s2.t@d.example>"
    assert message_id({**step, "step": 3}, tag="t", domain="d.example") != message_id(step, tag="t", domain="d.example")
    notice = {"id": 9, "reason": "lead_assigned", "lead_id": 3, "enrolment_id": None, "step": None}
    assert message_id(notice, tag="t", domain="d.example") == "<notice.9.t@d.example>"


def test_a_lead_erased_or_unsubscribed_after_the_claim_gets_nothing(
    tmp_path: Path, db_url: str, clock: FrozenClock, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadflow.privacy.service import erase

    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_NOW, max_per_week=5))
    erased, unsubscribed, kept = (r.lead_id for r in capture(ws, [later(f"e{i}@gmail.com") for i in range(3)]))
    queue(ws)
    original = Mailer.__enter__

    def meanwhile(self: Mailer) -> Mailer:  # the batch is claimed; the person acts before it goes out
        if not sink.held.is_set():
            sink.held.set()
            with ws.transaction() as conn:
                erase(ws, conn, erased, actor="test", reason="request")
            with ws.transaction() as conn:
                record_activities(
                    ws, conn, [Activity("email_unsubscribed", unsubscribed, clock.now(), actor="recipient")]
                )
        return original(self)

    monkeypatch.setattr(Mailer, "__enter__", meanwhile)
    send(ws)
    table = rows(ws)
    got = [table[notification_of(r)]["lead_id"] for r in sink.received]
    assert erased not in got  # not the emails to them, nor the owner's notice about them
    assert not [r for r in sink.received if r.rcpt[0] in ("e0@gmail.com", "e1@gmail.com")]
    assert sorted(r.rcpt[0] for r in sink.received if r.rcpt[0].endswith("@gmail.com")) == ["e2@gmail.com"] * 2
    assert {r["status"] for r in table.values() if r["lead_id"] == erased} == {"cancelled"}
    assert {r["status"] for r in table.values() if r["lead_id"] == unsubscribed and r["reason"] == "nurture"} == {
        "cancelled"
    }
    assert [e["type"] for e in events_of(ws, erased, "email_sent", "lead_erased")] == ["lead_erased"]
    assert events_of(ws, unsubscribed, "email_sent") == [] and len(events_of(ws, kept, "email_sent")) == 2
    ws.close()


def test_an_erasure_waits_for_a_send_in_progress_and_nothing_follows_it(
    tmp_path: Path, db_url: str, clock: FrozenClock, sink: Sink
) -> None:
    from leadflow.privacy.service import erase

    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_NOW, max_per_week=5))
    lead = capture(ws, [later("w@gmail.com")])[0].lead_id
    queue(ws)
    sink.hold = lambda got: got.rcpt == ["w@gmail.com"]  # the server holds the first email to the lead
    worker = threading.Thread(target=send, args=(ws,))
    worker.start()
    assert sink.held.wait(10)
    returned: list[float] = []

    def erase_now() -> None:
        with ws.transaction() as conn:
            erase(ws, conn, lead, actor="test", reason="request")
        returned.append(time.monotonic())

    eraser = threading.Thread(target=erase_now)
    eraser.start()
    eraser.join(0.8)
    assert eraser.is_alive()  # it waits for the send in progress to be recorded
    sink.release.set()
    worker.join(20)
    eraser.join(20)
    assert returned and not worker.is_alive()
    to_lead = [r for r in sink.received if r.rcpt == ["w@gmail.com"]]
    assert to_lead and all(r.at < returned[0] for r in to_lead)  # nothing after the erasure returned
    types = [e["type"] for e in events_of(ws, lead, "email_sent", "lead_erased")]
    assert types[-1] == "lead_erased" and types.count("email_sent") == len(to_lead)
    send(ws)
    assert [r for r in sink.received if r.rcpt == ["w@gmail.com"]] == to_lead
    ws.close()


def test_a_refusal_is_retried_and_a_broken_connection_after_handing_over_is_not(
    tmp_path: Path, db_url: str, clock: FrozenClock, sink: Sink
) -> None:
    ws = workspace(tmp_path, db_url, clock, **nurture(seq([{"send": "hello"}])))
    refused, dropped = (r.lead_id for r in capture(ws, [later("r@gmail.com"), later("d@gmail.com")]))
    queue(ws)
    answers = {"r@gmail.com": "451 4.3.0 try again later", "d@gmail.com": "drop"}
    sink.answer = lambda got: answers.pop(got.rcpt[0], None)
    send(ws)
    by_lead = {r["lead_id"]: r for r in rows(ws).values() if r["reason"] == "nurture"}
    assert by_lead[refused]["status"] == "pending" and "451" in by_lead[refused]["last_error"]
    assert by_lead[dropped]["status"] == "in_doubt"  # the server may have it
    clock.advance(hours=1)
    send(ws)
    by_lead = {r["lead_id"]: r for r in rows(ws).values() if r["reason"] == "nurture"}
    assert by_lead[refused]["status"] == "sent" and by_lead[dropped]["status"] == "in_doubt"
    assert Counter(r.rcpt[0] for r in sink.received if r.rcpt[0].endswith("@gmail.com")) == {
        "r@gmail.com": 2,  # refused with 451, then accepted
        "d@gmail.com": 1,  # handed over once, never again
    }
    ws.close()


def header_line(raw: bytes, name: bytes) -> bytes:
    """The header as it is on the wire, folded lines included."""
    found = re.search(rb"^" + name + rb": (.*?)\r\n(?![ \t])", raw, re.MULTILINE | re.DOTALL)
    assert found is not None, raw[:800]
    return found.group(1)


def test_list_unsubscribe_is_sent_as_plain_uris_with_one_click(
    tmp_path: Path, db_url: str, clock: FrozenClock, sink: Sink
) -> None:
    ws = workspace(
        tmp_path, db_url, clock, **nurture(TWO_NOW, max_per_week=5, base_url="https://leads.northwind.example")
    )
    leads = [r.lead_id for r in capture(ws, [later(f"u{i}@gmail.com") for i in range(3)])]
    queue(ws)
    send(ws)
    emails = [r for r in sink.received if r.rcpt[0].endswith("@gmail.com")]
    assert len(emails) == 6
    shape = re.compile(
        rb"^<https://leads\.northwind\.example/u/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)>, "
        rb"<mailto:leads@northwind\.example\?subject=unsubscribe%20([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)>$"
    )
    for got in emails:
        line = header_line(got.raw, b"List-Unsubscribe")
        assert b"=?" not in line and b"\r\n" not in line, line  # one plain line, not RFC 2047
        match = shape.match(line)
        assert match is not None and match.group(1) == match.group(2), line
        assert header_line(got.raw, b"List-Unsubscribe-Post") == b"List-Unsubscribe=One-Click"
        parsed = got.message
        assert parsed["List-Unsubscribe"] == line.decode()
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the URL, and that is all it takes
    url = re.findall(r"<([^>]+)>", emails[0].message["List-Unsubscribe"])[0]
    token_lead = next(lead for lead in leads if lead_row(ws, lead)["email"] == emails[0].rcpt[0])
    with LiveServer(ws) as live:
        path = url.removeprefix("https://leads.northwind.example")
        answer = live.anonymous.post(
            path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert answer.status_code == 200
    assert lead_row(ws, token_lead)["consent_email"] is False
    ws.close()


def test_the_unsubscribe_mailbox_can_be_set_and_must_be_an_address(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, sink: Sink
) -> None:
    section = nurture(TWO_NOW, unsubscribe_email="unsubscribe@northwind.example")
    ws = workspace(tmp_path, sqlite_url, clock, **section)
    capture(ws, [later("m@gmail.com")])
    queue(ws)
    send(ws)
    lines = [header_line(r.raw, b"List-Unsubscribe") for r in sink.received if r.rcpt == ["m@gmail.com"]]
    assert len(lines) == 2 and all(
        b", <mailto:unsubscribe@northwind.example?subject=unsubscribe%20" in x for x in lines
    )
    ws.close()
    with pytest.raises(ConfigError) as caught:
        from leadflow.config.loader import load_config_text

        load_config_text(config_with(**nurture(TWO_NOW, unsubscribe_email="not an address")))
    assert any("nurture.unsubscribe_email" in str(p) for p in caught.value.problems), caught.value.problems


def test_a_second_worker_takes_over_a_claim_only_after_its_lease(
    tmp_path: Path, db_url: str, clock: FrozenClock, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_NOTIFY_LEASE_SECONDS", "30")
    ws = workspace(tmp_path, db_url, clock, **nurture(TWO_NOW, max_per_week=5))
    capture(ws, [later("l@gmail.com")])
    queue(ws)
    original = Mailer.__enter__

    def dies_before_sending(self: Mailer) -> Mailer:
        raise Killed

    monkeypatch.setattr(Mailer, "__enter__", dies_before_sending)
    with pytest.raises(Killed):
        send(ws)
    monkeypatch.setattr(Mailer, "__enter__", original)
    assert send(ws) == 0  # claimed by the dead worker
    clock.advance(timedelta(seconds=31))
    assert send(ws) > 0  # never handed over: safe to send, once
    assert {r["status"] for r in rows(ws).values()} == {"sent"}
    assert len([r for r in sink.received if r.rcpt == ["l@gmail.com"]]) == 2
    ws.close()
