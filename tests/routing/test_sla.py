"""SLA deadlines, reminders and the escalation chain, fired by the worker exactly once; the first
outbound contact stops the clock; notifications reach a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.db.tables import notifications
from leadflow.jobs.worker import TASKS, run_task
from leadflow.pipeline import Activity, record_activity
from leadflow.workspace import Workspace
from tests.conftest import T0, Inbox
from tests.routing.helpers import capture, events_of, lead_row, team, workspace

CHAIN = {
    "business_hours": {"hours": {"mon-fri": "09:00-17:00"}},
    "policies": [
        {
            "id": "hot",
            "first_touch": "5m",
            "remind_before": "2m",
            "escalate": [
                {"after": "10m", "action": "notify_manager"},
                {"after": "30m", "action": "reassign"},
                {"after": "2h", "action": "return_to_pool"},
            ],
        }
    ],
}
ROUTE_ALL = {"rules": [], "fallback": {"team": "sales"}, "account_owner_first": False}


def chain_workspace(tmp_path: Path, db_url: str, clock: FrozenClock) -> Workspace:
    config = team("sales", ["ana", "ben", "chloe"], manager="mira")
    config["owners"].append({"id": "mira", "name": "Mira", "email": "mira@northwind.example", "active": False})
    return workspace(tmp_path, db_url, clock, **config, routing=ROUTE_ALL, sla=CHAIN)


def sent(ws: Workspace) -> list[tuple[str, str, int | None]]:
    with ws.reader() as conn:
        rows = conn.execute(select(notifications).order_by(notifications.c.id)).all()
    return [(r.recipient, r.reason, r.lead_id) for r in rows]


def escalate(ws: Workspace) -> int:
    return run_task(ws, TASKS["sla.escalate"])


def test_escalation_chain_fires_each_step_once_and_contact_stops_the_clock(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    ws = chain_workspace(tmp_path, db_url, clock)
    waiting, answered = capture(ws, [{"email": "a@gmail.com"}, {"email": "b@gmail.com"}])
    assert (waiting.owner_id, answered.owner_id) == ("ana", "ben")
    row = lead_row(ws, waiting.lead_id)
    assert (row["sla_policy"], row["sla_due_at"], row["sla_next_at"]) == (
        "hot",
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=3),
    )
    clock.advance(minutes=1)
    with ws.transaction() as conn:
        record_activity(
            ws, conn, Activity("call", answered.lead_id, clock.now(), actor="owner:ben", data={"direction": "outbound"})
        )
    stopped = events_of(ws, answered.lead_id, ev.SLA_STOPPED)[0]["data"]
    assert stopped["met"] is True and stopped["response_seconds"] == 60
    assert lead_row(ws, answered.lead_id)["sla_next_at"] is None
    assert sent(ws) == [
        ("ana@northwind.example", "lead_assigned", waiting.lead_id),
        ("ben@northwind.example", "lead_assigned", answered.lead_id),
    ]

    clock.set(T0 + timedelta(minutes=2, seconds=59))
    assert escalate(ws) == 0
    clock.set(T0 + timedelta(minutes=3))
    assert escalate(ws) == 1 and escalate(ws) == 0  # a second pass finds nothing more to do
    assert sent(ws)[-1] == ("ana@northwind.example", "sla_reminder", waiting.lead_id)

    clock.set(T0 + timedelta(minutes=15))
    escalate(ws)
    assert sent(ws)[-1] == ("mira@northwind.example", "sla_escalated", waiting.lead_id)  # managers need not take leads

    clock.set(T0 + timedelta(minutes=35))
    escalate(ws)
    moved = lead_row(ws, waiting.lead_id)
    assert moved["owner_id"] == "chloe"  # the next in turn after ben, never ana again
    assert sent(ws)[-1] == ("chloe@northwind.example", "lead_assigned", waiting.lead_id)

    clock.set(T0 + timedelta(hours=2, minutes=5))
    escalate(ws)
    pooled = lead_row(ws, waiting.lead_id)
    assert (pooled["owner_id"], pooled["destination"], pooled["sla_next_at"]) == (None, "queue:sales", None)
    clock.advance(days=3)
    assert escalate(ws) == 0

    steps = [
        (e["type"], e["data"]["action"]) for e in events_of(ws, waiting.lead_id, ev.SLA_REMINDED, ev.SLA_ESCALATED)
    ]
    assert steps == [
        (ev.SLA_REMINDED, "remind"),
        (ev.SLA_ESCALATED, "notify_manager"),
        (ev.SLA_ESCALATED, "reassign"),
        (ev.SLA_ESCALATED, "return_to_pool"),
    ]
    reassigned = events_of(ws, waiting.lead_id, ev.SLA_ESCALATED)[1]["data"]
    assert (reassigned["owner"], reassigned["to"], reassigned["trace"]["previous_owner"]) == ("ana", "chloe", "ana")
    assert events_of(ws, answered.lead_id, ev.SLA_REMINDED, ev.SLA_ESCALATED) == []
    ws.close()


def test_a_late_worker_catches_up_every_step_in_order(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    ws = chain_workspace(tmp_path, db_url, clock)
    lead = capture(ws, [{"email": "late@gmail.com"}])[0]
    clock.advance(hours=5)
    assert escalate(ws) == 4
    actions = [e["data"]["action"] for e in events_of(ws, lead.lead_id, ev.SLA_REMINDED, ev.SLA_ESCALATED)]
    assert actions == ["remind", "notify_manager", "reassign", "return_to_pool"]
    ws.close()


def test_business_hours_deadline_for_a_lead_captured_on_friday_evening(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 6, 17, tzinfo=UTC))  # Friday 18:00 in Berlin
    ws = workspace(tmp_path, db_url, clock)  # the starter file: cold = 1 business day
    lead = capture(ws, [{"email": "weekend@gmail.com"}])[0]
    row = lead_row(ws, lead.lead_id)
    assert row["sla_policy"] == "cold"
    assert row["sla_due_at"] == datetime(2026, 3, 10, 8, tzinfo=UTC)  # Tuesday 09:00 in Berlin
    ws.close()


def test_owner_and_manager_are_emailed_over_smtp(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, smtp: Inbox
) -> None:
    ws = chain_workspace(tmp_path, sqlite_url, clock)
    lead = capture(ws, [{"email": "buyer@gmail.com", "first_name": "Grace", "company": "Hopper Ltd"}])[0]
    clock.advance(minutes=15)
    escalate(ws)
    assert run_task(ws, TASKS["notify.send"]) == 3
    got = [(to, m["Subject"], m["From"]) for to, m in smtp.messages]
    assert got == [
        (["ana@northwind.example"], "New lead for you: Hopper Ltd", "leads@northwind.example"),
        (["ana@northwind.example"], "Reminder: respond to Hopper Ltd by 09:05 UTC", "leads@northwind.example"),
        (["mira@northwind.example"], "Overdue lead: Hopper Ltd (ana has not responded)", "leads@northwind.example"),
    ]
    body = smtp.messages[0][1].get_payload()
    assert "Grace" in body and "Respond by 2026-03-02 09:05 UTC" in body
    with ws.reader() as conn:
        statuses = conn.execute(select(notifications.c.status, notifications.c.lead_id)).all()
    assert {(s.status, s.lead_id) for s in statuses} == {("sent", lead.lead_id)}
    assert run_task(ws, TASKS["notify.send"]) == 0  # sent once
    ws.close()


def test_an_unreachable_smtp_server_means_a_retry_later_not_a_lost_email(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LEADFLOW_SMTP_PORT", "9")  # nothing listens there
    monkeypatch.setenv("LEADFLOW_SMTP_TLS", "none")
    ws = chain_workspace(tmp_path, sqlite_url, clock)
    capture(ws, [{"email": "x@gmail.com"}])
    assert run_task(ws, TASKS["notify.send"]) == 1
    with ws.reader() as conn:
        row = conn.execute(select(notifications)).one()
    assert row.status == "pending" and row.attempts == 1 and "ConnectionRefusedError" in row.last_error
    assert row.next_attempt_at > clock.now()
    ws.close()
