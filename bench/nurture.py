"""The nurture benchmark.

1. Delivery: the worker's ``notify.send`` against a local SMTP server (aiosmtpd): messages/s.
2. A simulated 90 days of the starter business's nurture, in simulated time, through the real
   code: new leads every working day (sampled from the simulator), the worker enrolling them and
   running the starter sequences, and recipients who open, click, reply or unsubscribe with
   fixed probabilities (recorded as the tracking links would record them). A lead that replies
   or clicks twice may become sales-ready (SQL); every nurtured lead also has a small daily chance
   of becoming ready on its own, which is all the holdout group has. The report is
   leadflow's own nurture report: messages sent, per-step rates, enrolled vs holdout conversion.

    python -m bench nurture [--days 90] [--per-day 40] [--messages 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from bench.common import write
from leadflow.capture.service import prepare
from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events, leads, notifications
from leadflow.jobs.worker import TASKS, run_task
from leadflow.nurture.report import report
from leadflow.pipeline import Activity, process_many, record_activities
from leadflow.qualify.service import change_stage
from leadflow.simulate import sample_leads
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text

START = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # a Monday


class _Count:
    def __init__(self) -> None:
        self.n = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.n += 1
        return "250 OK"


def delivery(root: Path, messages: int) -> dict[str, Any]:
    inbox = _Count()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    env = {"LEADFLOW_SMTP_HOST": "127.0.0.1", "LEADFLOW_SMTP_PORT": str(port), "LEADFLOW_SMTP_TLS": "none"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        root.mkdir(parents=True)
        (root / CONFIG_FILE).write_text(starter_config_text())
        ws = Workspace.open(root)
        now = ws.clock.now()
        body = "Hi there,\n\nA short guide: https://www.northwind.example/guide\n" * 3
        with ws.transaction() as conn:
            conn.execute(
                insert(notifications),
                [
                    {
                        "kind": "email",
                        "recipient": f"reader{i}@example.com",
                        "subject": "A short guide to getting started",
                        "body": body,
                        "html": f"<p>{body}</p>",
                        "headers": {"List-Unsubscribe": "<http://127.0.0.1:8000/u/x>"},
                        "reason": "bench",
                        "status": "pending",
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for i in range(messages)
                ],
            )
        began = time.perf_counter()
        run_task(ws, TASKS["notify.send"])
        seconds = time.perf_counter() - began
        ws.close()
    finally:
        controller.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {
        "messages": messages,
        "received": inbox.n,
        "seconds": round(seconds, 2),
        "per_s": round(inbox.n / seconds, 1),
    }


def simulated(root: Path, days: int, per_day: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = FrozenClock(START)
    root.mkdir(parents=True)
    (root / CONFIG_FILE).write_text(starter_config_text())
    ws = Workspace.open(root, clock=clock)
    ws.quiet = True  # no notices to owners about made-up leads; nurture emails go to the outbox
    pool = sample_leads(ws, days * per_day, seed=seed)
    region = ws.config.workspace.default_region
    responded: set[int] = set()
    clicks: dict[int, int] = {}
    seen_sent = 0
    began = time.perf_counter()
    for day in range(days):
        clock.set(START + timedelta(days=day))
        if clock.now().weekday() < 5:
            batch = pool[day * per_day : (day + 1) * per_day]
            for p in batch:
                p.setdefault("consent", {})["email"] = rng.random() < 0.8
                if rng.random() < 0.3:
                    p.setdefault("custom", {})["timeline"] = "later"
            with ws.transaction() as conn:
                process_many(ws, conn, [prepare(p, default_region=region, now=clock.now()) for p in batch])
        for hour in (2, 6, 9):  # the worker runs through the (simulated) day
            clock.set(START + timedelta(days=day, hours=hour))
            for name in ("nurture.enrol", "nurture.advance", "notify.send"):
                run_task(ws, TASKS[name])
        # recipients react to today's emails; some become ready
        with ws.reader() as conn:
            new = conn.execute(
                select(lead_events.c.id, lead_events.c.lead_id, lead_events.c.data)
                .where(
                    lead_events.c.type == "email_sent", lead_events.c.actor == "nurture", lead_events.c.id > seen_sent
                )
                .order_by(lead_events.c.id)
            ).all()
        if new:
            seen_sent = new[-1].id
        acts: list[Activity] = []
        ready: list[int] = []
        later = clock.now() + timedelta(hours=1)
        for e in new:
            data = {"enrolment": e.data.get("enrolment"), "step": e.data.get("step"), "channel": "nurture"}
            if rng.random() < 0.35:
                acts.append(Activity("email_opened", e.lead_id, later, actor="recipient", data=data))
                if rng.random() < 0.22:
                    acts.append(Activity("email_clicked", e.lead_id, later, actor="recipient", data=data))
                    clicks[e.lead_id] = clicks.get(e.lead_id, 0) + 1
                    if clicks[e.lead_id] >= 2 and rng.random() < 0.3:
                        ready.append(e.lead_id)
                if rng.random() < 0.04:
                    acts.append(Activity("email_replied", e.lead_id, later, actor="recipient", data=data))
                    responded.add(e.lead_id)
                    if rng.random() < 0.5:
                        ready.append(e.lead_id)
                elif rng.random() < 0.012:
                    acts.append(Activity("email_unsubscribed", e.lead_id, later, actor="recipient", data=data))
        clock.set(later)
        with ws.transaction() as conn:
            record_activities(ws, conn, acts)
            nurtured = (
                conn.execute(select(leads.c.id).where(leads.c.stage.in_(("lead", "prospect", "nurture"))))
                .scalars()
                .all()
            )
            ready += [lead_id for lead_id in nurtured if rng.random() < 0.0015]  # ready on its own
            for lead_id in sorted(set(ready)):
                stage = conn.execute(select(leads.c.stage).where(leads.c.id == lead_id)).scalar_one()
                if stage in ("lead", "prospect", "nurture"):
                    change_stage(ws, conn, lead_id, "sql", reason="sales-ready (simulated)", actor="owner:sim")
    seconds = time.perf_counter() - began
    with ws.reader() as conn:
        out = report(ws, conn)
        created = conn.execute(select(leads.c.id)).scalars().all()
    ws.close()
    return {"days": days, "leads": len(created), "seconds": round(seconds, 1), **out}


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench nurture")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=40)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    args, _ = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        smtp = delivery(Path(tmp) / "smtp", args.messages)
        print(
            f"delivery: {smtp['received']} messages to a local SMTP server in {smtp['seconds']} s = {smtp['per_s']}/s"
        )
        sim = simulated(Path(tmp) / "sim", args.days, args.per_day, args.seed)
    print(
        f"simulated {sim['days']} days, {sim['leads']} leads, {sim['messages_sent']} nurture emails ({sim['seconds']} s)"
    )
    for seq_id, s in sim["sequences"].items():
        conv = s["conversion"]
        print(
            f"  {seq_id}: {s['enrolled']} enrolled, {s['messages_sent']} sent; reached {s['goal_stage']}: "
            f"enrolled {conv['enrolled']['rate']} ({conv['enrolled']['leads']}), holdout {conv['holdout']['rate']} "
            f"({conv['holdout']['leads']}); difference {conv['difference']} CI {conv['difference_interval_95']}"
        )
        for st in s["steps"]:
            print(
                f"      step {st['step']} {st['template']}: sent {st['sent']}, opened {st['opened_rate']}, "
                f"clicked {st['clicked_rate']}, replied {st['replied_rate']}, unsubscribed {st['unsubscribed_rate']}"
            )
    path = write("nurture", {"delivery": smtp, "simulated": sim})
    print(f"→ {path}")
