"""Several processes against one database: captures in four processes keep round robin exact and
caps unbroken; four worker processes fire every escalation exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events, leads, owner_counters
from leadflow.jobs.worker import TASKS, run_task
from tests.conftest import T0
from tests.routing.helpers import capture, team, workspace

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
CAPTURER = """
import os, sys, time
from datetime import datetime
from pathlib import Path
from leadflow.clock import FrozenClock
from leadflow.pipeline import process
from leadflow.workspace import Workspace
root, url, at, go, me = sys.argv[1:6]
ws = Workspace.open(root, database_url=url, clock=FrozenClock(datetime.fromisoformat(at)))
Path(f"{go}.{os.getpid()}").touch()  # ready
while not Path(go).exists():
    time.sleep(0.002)
for i in range(400):
    payload = {"email": f"p{me}-{i}@gmail.com", "custom": {"capped": i % 8 < 3}}
    with ws.transaction() as conn:
        process(ws, conn, payload)
ws.close()
"""
WORKER = """
import os, sys, time
from datetime import datetime
from pathlib import Path
from leadflow.clock import FrozenClock
from leadflow.routing.service import tick
from leadflow.workspace import Workspace
root, url, at, go = sys.argv[1:5]
ws = Workspace.open(root, database_url=url, clock=FrozenClock(datetime.fromisoformat(at)))
Path(f"{go}.{os.getpid()}").touch()  # ready
while not Path(go).exists():
    time.sleep(0.002)
fired = 0
while True:
    with ws.transaction() as conn:
        done = tick(ws, conn, batch=5)
    if done == 0:
        break
    fired += done
print(fired)
ws.close()
"""


def run_processes(code: str, root: Path, db_url: str, at: str, extra: list[list[str]]) -> list[str]:
    go = root / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root), db_url, at, str(go), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in extra
    ]
    deadline = time.monotonic() + 120
    while len(list(root.glob("go.*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)  # every process has opened the workspace: start them together
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


def test_four_capturing_processes_keep_round_robin_exact_and_caps_unbroken(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    config = team("open", ["ana", "ben", "chloe", "dmitri"])
    config["teams"].append({"id": "capped", "name": "Capped"})
    config["owners"] += [
        {"id": x, "name": x.title(), "team": "capped", "capacity": {"per_day": 100}}
        for x in ("emma", "farid", "gina", "hugo")
    ]
    routing = {
        "account_owner_first": False,
        "rules": [{"id": "capped", "team": "capped", "when": {"field": "custom.capped", "eq": True}}],
        "fallback": {"team": "open"},
    }
    ws = workspace(tmp_path, db_url, clock, **config, routing=routing)
    run_processes(CAPTURER, ws.path, db_url, T0.isoformat(), [[str(n)] for n in range(PROCESSES)])
    with ws.reader() as conn:
        query = select(leads.c.team_id, leads.c.owner_id, func.count()).group_by(leads.c.team_id, leads.c.owner_id)
        by_owner = {(t, o): n for t, o, n in conn.execute(query)}
        counters = dict(
            conn.execute(
                select(owner_counters.c.owner_id, owner_counters.c.assigned).where(owner_counters.c.period == "d")
            ).all()
        )
    # 4 x 250 uncapped leads over four owners: exactly 250 each
    assert {o: n for (t, o), n in by_owner.items() if t == "open"} == dict.fromkeys(
        ["ana", "ben", "chloe", "dmitri"], 250
    )
    # 4 x 150 capped leads, four owners with a cap of 100 a day: 100 each, the rest wait
    assert {o: n for (t, o), n in by_owner.items() if t == "capped"} == {
        **dict.fromkeys(["emma", "farid", "gina", "hugo"], 100),
        None: 200,
    }
    assert counters == dict.fromkeys(["emma", "farid", "gina", "hugo"], 100)
    ws.close()


def test_four_worker_processes_fire_each_escalation_exactly_once(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    sla = {
        "policies": [
            {
                "id": "hot",
                "first_touch": "5m",
                "escalate": [
                    {"after": "1m", "action": "notify_manager"},
                    {"after": "2m", "action": "reassign"},
                    {"after": "3m", "action": "return_to_pool"},
                ],
            }
        ]
    }
    config = team("sales", ["ana", "ben", "chloe", "dmitri"], manager="mira")
    config["owners"].append({"id": "mira", "name": "Mira", "email": "mira@northwind.example", "active": False})
    routing = {"rules": [], "fallback": {"team": "sales"}, "account_owner_first": False}
    ws = workspace(tmp_path, db_url, clock, **config, routing=routing, sla=sla)
    count = 300
    capture(ws, [{"email": f"w{i}@gmail.com"} for i in range(count)])
    later = (T0 + timedelta(hours=1)).isoformat()
    fired = [int(x) for x in run_processes(WORKER, ws.path, db_url, later, [[] for _ in range(PROCESSES)])]
    assert sum(fired) == count * 3, fired
    if not db_url.startswith("sqlite"):  # SQLite serialises writers: one process may take it all
        assert sum(1 for f in fired if f > 0) >= 2, fired  # the work really was shared
    with ws.reader() as conn:
        rows = conn.execute(
            select(lead_events.c.lead_id, lead_events.c.data).where(lead_events.c.type == ev.SLA_ESCALATED)
        ).all()
    steps = Counter((r.lead_id, r.data["step"]) for r in rows)
    assert len(steps) == count * 3 and set(steps.values()) == {1}
    assert Counter(r.data["action"] for r in rows) == {
        "notify_manager": count,
        "reassign": count,
        "return_to_pool": count,
    }
    clock.set(T0 + timedelta(hours=2))
    assert run_task(ws, TASKS["sla.escalate"]) == 0  # nothing left behind
    ws.close()
