"""Outgoing webhooks to a real HTTP receiver: signed, retried with backoff, logged."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow.clock import FrozenClock
from leadflow.db.tables import webhook_deliveries
from leadflow.jobs.worker import run_once
from leadflow.pipeline import process
from leadflow.qualify.service import change_stage
from leadflow.webhooks.service import HEADER, verify
from leadflow.workspace import Workspace, starter_config_text
from tests.conftest import open_workspace

SECRET = "whsec_test_0123456789"
TASKS = ["webhooks.enqueue", "webhooks.send"]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if receiver.failing else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def hooked(
    tmp_path: Path, db_url: str, clock: FrozenClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)
    config = (
        starter_config_text() + f"\nwebhooks:\n  - {{id: crm, url: '{receiver.url}', secret_env: CRM_WEBHOOK_SECRET}}\n"
    )
    ws = open_workspace(tmp_path / "w", db_url, clock, config)
    run_once(ws, TASKS)  # a new webhook starts from now
    yield ws
    ws.close()


def test_events_are_delivered_signed(hooked: Workspace, receiver: Receiver, clock: FrozenClock) -> None:
    with hooked.transaction() as conn:
        lead = process(
            hooked,
            conn,
            {"email": "ada@engines.example", "first_name": "Ada", "company": "Engines", "consent": {"email": True}},
        )
    run_once(hooked, TASKS)
    assert [e["type"] for e in receiver.events()] == [
        "lead.created",
        "lead.updated",
        "lead.stage_changed",
        "lead.assigned",
    ]
    headers, body = receiver.requests[0]
    assert verify(SECRET, body, headers[HEADER.lower()], now=int(clock.now().timestamp()))
    assert not verify("wrong secret", body, headers[HEADER.lower()], now=int(clock.now().timestamp()))
    assert not verify(SECRET, body + b" ", headers[HEADER.lower()], now=int(clock.now().timestamp()))  # tampered
    assert not verify(SECRET, body, headers[HEADER.lower()], now=int(clock.now().timestamp()) + 3600)  # replayed late
    created = receiver.events()[0]
    assert created["data"]["lead"]["id"] == lead.lead_id and created["data"]["lead"]["email"] == "ada@engines.example"
    assert created["id"].startswith("evt_") and headers["leadflow-event"] == "lead.created"
    assigned = receiver.events()[3]["data"]
    assert (assigned["lead"]["owner"], assigned["change"]["strategy"]) == ("ana", "round_robin")
    # nothing is sent twice
    run_once(hooked, TASKS)
    assert len(receiver.requests) == 4
    with hooked.transaction() as conn:
        change_stage(hooked, conn, lead.lead_id, "sql", reason="call went well", actor="owner:ana")
    run_once(hooked, TASKS)
    assert (
        receiver.events()[-1]["type"] == "lead.stage_changed" and receiver.events()[-1]["data"]["change"]["to"] == "sql"
    )


def test_failures_are_retried_with_backoff_and_logged(
    hooked: Workspace, receiver: Receiver, clock: FrozenClock
) -> None:
    receiver.failing = True
    with hooked.transaction() as conn:
        process(hooked, conn, {"email": "b@x.example"})
    run_once(hooked, TASKS)
    with hooked.reader() as conn:
        first = conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)).first()
    assert (first.status, first.attempts, first.last_status, first.last_error) == ("pending", 1, 500, "HTTP 500")
    assert timedelta(seconds=30) <= first.next_attempt_at - clock.now() <= timedelta(seconds=33)
    sent = len(receiver.requests)
    run_once(hooked, TASKS)  # not due yet: nothing is sent
    assert len(receiver.requests) == sent
    clock.advance(seconds=40)
    run_once(hooked, TASKS)  # second attempt fails too; the next wait doubles
    with hooked.reader() as conn:
        again = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == first.id)).one()
    assert again.attempts == 2 and timedelta(seconds=60) <= again.next_attempt_at - clock.now() <= timedelta(seconds=66)
    receiver.failing = False
    clock.advance(minutes=2)
    run_once(hooked, TASKS)
    with hooked.reader() as conn:
        done = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == first.id)).one()
        statuses = {r.status for r in conn.execute(select(webhook_deliveries.c.status))}
    assert (done.status, done.attempts, done.last_status, done.last_error) == ("delivered", 3, 204, None)
    assert statuses == {"delivered"}
    assert (
        len({json.loads(body)["id"] for _, body in receiver.requests}) == 3
    )  # created, stage_changed, assigned; each retried


def test_missing_secret_is_logged_not_sent(
    hooked: Workspace, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_WEBHOOK_SECRET")
    with hooked.transaction() as conn:
        process(hooked, conn, {"email": "c@x.example"})
    run_once(hooked, TASKS)
    assert receiver.requests == []
    with hooked.reader() as conn:
        errors = set(conn.execute(select(webhook_deliveries.c.last_error)).scalars())
    assert errors == {"secret not set: environment variable CRM_WEBHOOK_SECRET is empty"}


def test_sla_escalations_and_handoffs_reach_other_systems(
    hooked: Workspace, receiver: Receiver, clock: FrozenClock
) -> None:
    from leadflow.handoff.service import accept

    with hooked.transaction() as conn:
        lead = process(
            hooked,
            conn,
            {
                "email": "cto@engines.example",
                "first_name": "Ada",
                "last_name": "L",
                "company": "Engines",
                "title": "CTO",
                "employees": 400,
                "country": "DE",
                "capture_context": "demo",
            },
        )
    assert lead.stage == "mql" and lead.owner_id is not None
    clock.advance(hours=2)  # past the deadline and the first escalation step
    run_once(hooked, ["sla.escalate", *TASKS])
    with hooked.transaction() as conn:
        accept(hooked, conn, lead.lead_id, actor="owner:ana")
    run_once(hooked, TASKS)
    got = [(e["type"], e["data"]["change"]) for e in receiver.events()]
    types = [t for t, _ in got]
    assert types.index("lead.assigned") < types.index("lead.handoff")
    escalated = [c for t, c in got if t == "lead.sla_escalated"]
    assert escalated and escalated[0]["action"] == "notify_manager" and escalated[0]["owner"] == lead.owner_id
    assert [c.get("to_stage") for t, c in got if t == "lead.handoff"] == [None, "sql"]  # sent, then accepted
