"""Real ``leadflow worker`` processes and a real SMTP server: kill -9 of the worker while the
server holds its message, other workers take over once its lease ends, leads are erased and
unsubscribe while they send. Each (lead, step) and each notice arrives at most once, the one
in flight when the worker died is never sent again, nothing reaches a lead after its erasure
returned, and no ``email_sent`` follows ``lead_erased``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from leadflow.clock import FrozenClock, SystemClock
from leadflow.db.tables import lead_events, notifications
from leadflow.pipeline import Activity, record_activities
from leadflow.workspace import Workspace
from tests.nurture.conftest import Sink
from tests.nurture.test_nurture import later, nurture, seq
from tests.routing.helpers import capture, workspace

LEADFLOW = str(Path(sys.executable).parent / "leadflow")
LEASE_S = 2
TERMINAL = {"sent", "cancelled", "in_doubt", "failed"}


def start_worker(ws: Workspace, db_url: str) -> subprocess.Popen[bytes]:
    assert ws.path is not None
    env = {**os.environ, "LEADFLOW_DATABASE_URL": db_url, "LEADFLOW_NOTIFY_LEASE_SECONDS": str(LEASE_S)}
    return subprocess.Popen(
        [LEADFLOW, "worker", "-w", str(ws.path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def statuses(ws: Workspace) -> dict[int, dict[str, Any]]:
    with ws.reader() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(notifications))}


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_9_mid_send_then_other_workers_never_repeat_and_never_follow_an_erasure(
    tmp_path: Path, db_url: str, sink: Sink
) -> None:
    from leadflow.privacy.service import erase

    clock = FrozenClock(SystemClock().now())  # the workers run on the wall clock
    ws = workspace(tmp_path, db_url, clock, **nurture(seq([{"send": "hello"}, {"send": "again"}]), max_per_week=5))
    count = 30
    people = {
        r.lead_id: f"k{i}@gmail.com"
        for i, r in enumerate(capture(ws, [later(f"k{i}@gmail.com") for i in range(count)]))
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        # 1. one worker; the server holds the first nurture email it is given, and the worker dies
        sink.hold = lambda got: got.rcpt[0].endswith("@gmail.com")
        sink.delay = 0.02
        first = start_worker(ws, db_url)
        workers.append(first)
        assert sink.held.wait(60), "the worker never got to the first nurture email"
        in_flight = sink.received[-1]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        sink.release.set()
        # 2. two more workers; the dead one's claim runs out after LEASE_S
        workers += [start_worker(ws, db_url), start_worker(ws, db_url)]
        # 3. while they send, two leads are erased and one unsubscribes (the last in line)
        last = sorted(people)[-3:]
        wait_for(lambda: len(sink.received) >= count + 10, 60, "the other workers to be sending")
        returned: dict[int, float] = {}
        for lead_id in last[:2]:
            clock.set(SystemClock().now())
            with ws.transaction() as conn:
                erase(ws, conn, lead_id, actor="test", reason="request")
            returned[lead_id] = time.monotonic()
        clock.set(SystemClock().now())
        with ws.transaction() as conn:
            record_activities(ws, conn, [Activity("email_unsubscribed", last[2], clock.now(), actor="recipient")])
        returned[last[2]] = time.monotonic()
        # 4. everything settles: sent, cancelled, or in doubt (the one the dead worker had handed over)
        wait_for(
            lambda: set(r["status"] for r in statuses(ws).values()) <= TERMINAL, 90, "every notification to settle"
        )
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
                w.wait(10)
    for w in workers[1:]:
        assert w.returncode == -signal.SIGKILL, (w.stderr.read() if w.stderr else b"").decode()[-2000:]

    table = statuses(ws)
    received = Counter(int(r.message["X-Leadflow-Notification"]) for r in sink.received)
    assert set(received.values()) == {1}, {n: c for n, c in received.items() if c > 1}  # no message twice
    steps = Counter((table[n]["lead_id"], table[n]["step"]) for n in received if table[n]["reason"] == "nurture")
    assert set(steps.values()) == {1}  # each (lead, step) at most once
    ids = Counter(r.message["Message-ID"] for r in sink.received)
    assert set(ids.values()) == {1} and None not in ids
    # the message in flight at the kill: in doubt, never sent again; its lead's next step went out
    crashed = int(in_flight.message["X-Leadflow-Notification"])
    assert table[crashed]["status"] == "in_doubt" and received[crashed] == 1
    crashed_lead = table[crashed]["lead_id"]
    if crashed_lead not in last:
        assert [
            table[n]["step"]
            for n in received
            if table[n]["lead_id"] == crashed_lead and table[n]["reason"] == "nurture"
        ].count(1) == 1
    # nothing reached an erased or unsubscribed lead after the erasure (or unsubscribe) returned
    for lead_id in last:
        late = [r for r in sink.received if r.rcpt == [people[lead_id]] and r.at > returned[lead_id]]
        assert late == [], (lead_id, [r.message["Subject"] for r in late])
    with ws.reader() as conn:
        for lead_id in last[:2]:
            types = list(
                conn.execute(
                    select(lead_events.c.type)
                    .where(lead_events.c.lead_id == lead_id, lead_events.c.type.in_(("email_sent", "lead_erased")))
                    .order_by(lead_events.c.id)
                ).scalars()
            )
            assert types[-1] == "lead_erased", types
    # everyone else got both steps, once
    others = set(people) - set(last) - {crashed_lead}
    got = Counter(r.rcpt[0] for r in sink.received if r.rcpt[0].endswith("@gmail.com"))
    assert all(got[people[lead_id]] == 2 for lead_id in others), got
    assert {table[n]["status"] for n in table if n != crashed and table[n]["lead_id"] in others} == {"sent"}
    ws.close()
