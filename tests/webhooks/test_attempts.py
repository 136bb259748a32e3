"""Every attempt to deliver a webhook is logged, and every attempt carries the same event id, so
a receiver can drop repeats: against a real HTTP receiver that fails twice, and (process level)
a worker killed with SIGKILL while its request is in flight."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select, update

from leadflow.clock import FrozenClock, SystemClock
from leadflow.db.tables import webhook_attempts, webhook_deliveries
from leadflow.jobs.worker import run_once
from leadflow.pipeline import process
from leadflow.webhooks.service import LEASE, begin_attempt, claim
from leadflow.workspace import Workspace, starter_config_text

SECRET = "whsec_test_0123456789"
TASKS = ["webhooks.enqueue", "webhooks.send"]
REPO = Path(__file__).resolve().parents[2]
LEADFLOW = Path(sys.executable).with_name("leadflow")


class ScriptedReceiver:
    """A real HTTP receiver answering its requests from a script, in order: an HTTP status, or
    ``"stall"`` to hold the request open until released."""

    def __init__(self, script: list[int | str], *, delay_s: float = 0.0) -> None:
        self.script = list(script)
        self.delay_s = delay_s
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.stalled = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                answer = receiver.script.pop(0) if receiver.script else 200
                if answer == "stall":
                    receiver.stalled.set()
                    receiver.release.wait(60)
                    answer = 200
                time.sleep(receiver.delay_s)
                with contextlib.suppress(OSError):  # the sender may be gone (killed mid-request)
                    self.send_response(int(answer))
                    self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet: the test reads what the receiver saw, not its log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def config_text(url: str) -> str:
    return (
        starter_config_text()
        + f"\nwebhooks:\n  - {{id: crm, url: '{url}', secret_env: CRM_WEBHOOK_SECRET, events: [lead.created]}}\n"
    )


def attempts(ws: Workspace) -> list[dict]:
    with ws.reader() as conn:
        return [dict(r._mapping) for r in conn.execute(select(webhook_attempts).order_by(webhook_attempts.c.id))]


def delivery(ws: Workspace) -> dict:
    with ws.reader() as conn:
        return dict(conn.execute(select(webhook_deliveries)).one()._mapping)


@pytest.fixture
def failing_twice() -> Iterator[ScriptedReceiver]:
    receiver = ScriptedReceiver([500, 500, 200], delay_s=0.05)
    yield receiver
    receiver.close()


def test_every_attempt_is_logged_with_its_status_and_duration_under_one_event_id(
    tmp_path: Path,
    db_url: str,
    clock: FrozenClock,
    failing_twice: ScriptedReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)
    root = tmp_path / "w"
    root.mkdir()
    (root / "leadflow.yaml").write_text(config_text(failing_twice.url), encoding="utf-8")
    ws = Workspace.open(root, database_url=db_url, clock=clock)
    run_once(ws, TASKS)  # a new webhook starts from now
    with ws.transaction() as conn:
        process(ws, conn, {"email": "ada@engines.example", "consent": {"email": True}})
    run_once(ws, TASKS)
    for _ in range(2):  # past each backoff: 30 s, then 60 s (with up to 10% jitter)
        clock.advance(minutes=5)
        run_once(ws, TASKS)
    log = attempts(ws)
    assert len(failing_twice.requests) == 3
    assert len(log) == len(failing_twice.requests)
    assert [(a["attempt"], a["status"], a["outcome"]) for a in log] == [
        (1, 500, "failed"),
        (2, 500, "failed"),
        (3, 200, "delivered"),
    ]
    assert [a["error"] for a in log] == ["HTTP 500", "HTTP 500", None]
    assert all(a["duration_ms"] is not None and 50 <= a["duration_ms"] < 10_000 for a in log)
    assert [a["started_at"] for a in log] == sorted(a["started_at"] for a in log)
    ids = {headers["leadflow-event-id"] for headers, _ in failing_twice.requests}
    assert ids == {json.loads(failing_twice.requests[0][1])["id"]} and ids == {f"evt_{log[0]['event_id']}"}
    done = delivery(ws)
    assert (done["status"], done["attempts"], done["last_status"]) == ("delivered", 3, 200)
    ws.close()


def test_a_claim_that_outlived_its_lease_sends_nothing_and_counts_no_attempt(
    tmp_path: Path,
    db_url: str,
    clock: FrozenClock,
    failing_twice: ScriptedReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)
    failing_twice.script = [200]
    root = tmp_path / "w"
    root.mkdir()
    (root / "leadflow.yaml").write_text(config_text(failing_twice.url), encoding="utf-8")
    ws = Workspace.open(root, database_url=db_url, clock=clock)
    run_once(ws, TASKS)
    with ws.transaction() as conn:
        process(ws, conn, {"email": "ada@engines.example"})
    run_once(ws, ["webhooks.enqueue"])
    with ws.transaction() as conn:  # a worker claims the delivery, then stalls before sending it
        (stale,) = claim(ws, conn)
    clock.advance(LEASE + timedelta(seconds=1))
    run_once(ws, ["webhooks.send"])  # another worker takes it over and delivers it
    with ws.transaction() as conn:
        assert begin_attempt(ws, conn, stale) is None  # the first worker finds it is no longer its own
    assert len(failing_twice.requests) == 1
    assert [(a["attempt"], a["outcome"]) for a in attempts(ws)] == [(1, "delivered")]
    assert (delivery(ws)["status"], delivery(ws)["attempts"]) == ("delivered", 1)
    ws.close()


@pytest.fixture
def stalling_first() -> Iterator[ScriptedReceiver]:
    receiver = ScriptedReceiver(["stall"])
    yield receiver
    receiver.close()


def start_worker(root: Path, db_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": db_url, "CRM_WEBHOOK_SECRET": SECRET}
    return subprocess.Popen(
        [str(LEADFLOW), "worker", "--once", "-w", str(root)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_worker_killed_mid_request_leaves_its_attempt_logged_and_the_next_sends_the_same_event_id(
    tmp_path: Path, db_url: str, stalling_first: ScriptedReceiver
) -> None:
    root = tmp_path / "w"
    root.mkdir()
    (root / "leadflow.yaml").write_text(config_text(stalling_first.url), encoding="utf-8")
    ws = Workspace.open(root, database_url=db_url, clock=SystemClock())
    run_once(ws, ["webhooks.enqueue"])  # a new webhook starts from now
    with ws.transaction() as conn:
        process(ws, conn, {"email": "ada@engines.example", "consent": {"email": True}})

    first = start_worker(root, db_url)
    try:
        assert stalling_first.stalled.wait(60), first.stderr.read() if first.poll() is not None else "no request"
        # the attempt was committed before the request went out
        assert [(a["attempt"], a["outcome"], a["status"]) for a in attempts(ws)] == [(1, "sending", None)]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL

    # the killed worker's lease runs out (LEASE of real time, not waited for here)
    leased_until = delivery(ws)["next_attempt_at"]
    with ws.transaction() as conn:
        conn.execute(update(webhook_deliveries).values(next_attempt_at=leased_until - LEASE))
    second = start_worker(root, db_url)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err

    requests = stalling_first.requests
    assert len(requests) >= 1
    event_ids = {headers["leadflow-event-id"] for headers, _ in requests}
    assert len(event_ids) == 1 and event_ids == {json.loads(requests[0][1])["id"]}
    log = attempts(ws)
    assert len(log) == len(requests) == 2
    assert [(a["attempt"], a["outcome"], a["status"]) for a in log] == [(1, "error", None), (2, "delivered", 200)]
    assert log[0]["error"].startswith("interrupted") and log[1]["error"] is None
    assert {f"evt_{a['event_id']}" for a in log} == event_ids
    done = delivery(ws)
    assert (done["status"], done["attempts"], done["last_status"], done["last_error"]) == ("delivered", 2, 200, None)
    assert done["delivered_at"] - log[1]["started_at"] < timedelta(minutes=1)
    ws.close()
