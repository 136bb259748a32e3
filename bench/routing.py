"""The routing benchmark: fairness and caps over 10,000 simulated leads, and SLA attainment and
time to first contact over a simulated month of the starter business.

    python -m bench routing [--leads 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from bench.common import write
from leadflow import events as ev
from leadflow.capture.service import prepare
from leadflow.db.tables import lead_events, leads
from leadflow.pipeline import process_many
from leadflow.simulate import sample_leads, simulate
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text

SEVEN = ["ana", "ben", "chloe", "dmitri", "eve", "femi", "gus"]


def _open(root: Path, **sections: Any) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(starter_config_text())
    data.update(sections)
    (root / CONFIG_FILE).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return Workspace.open(root)


def _one_team(capacity: dict[str, int] | None) -> dict[str, Any]:
    owner: dict[str, Any] = {"capacity": capacity} if capacity else {}
    return {
        "teams": [{"id": "sales", "name": "Sales", "strategy": "round_robin"}],
        "owners": [
            {"id": m, "name": m.title(), "email": f"{m}@northwind.example", "team": "sales", **owner} for m in SEVEN
        ],
        "routing": {"rules": [], "fallback": {"team": "sales"}, "account_owner_first": False},
    }


def spread(root: Path, count: int, seed: int, capacity: dict[str, int] | None) -> dict[str, Any]:
    ws = _open(root, **_one_team(capacity))
    payloads = sample_leads(ws, count, seed=seed)
    region, now = ws.config.workspace.default_region, ws.clock.now()
    began = time.perf_counter()
    for start in range(0, len(payloads), 500):
        captures = [
            prepare(p, default_region=region, now=now, rules=ws.rules.capture) for p in payloads[start : start + 500]
        ]
        with ws.transaction() as conn:
            process_many(ws, conn, captures)
    seconds = time.perf_counter() - began
    with ws.reader() as conn:
        per_owner = dict(conn.execute(select(leads.c.owner_id, func.count()).group_by(leads.c.owner_id)).all())
    ws.close()
    waiting = per_owner.pop(None, 0)
    out = {
        "leads": sum(per_owner.values()) + waiting,
        "assigned_per_owner": per_owner,
        "waiting_for_capacity": waiting,
        "deviation": max(per_owner.values()) - min(per_owner.values()),
        "seconds": round(seconds, 2),
    }
    if capacity:
        out["cap_per_day"] = capacity["per_day"]
        out["cap_exceeded_by"] = max(0, max(per_owner.values()) - capacity["per_day"])
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def simulated_month(root: Path, seed: int) -> dict[str, Any]:
    """SLA attainment (met / leads whose clock ran) and time to first contact, by SLA policy."""
    ws = _open(root)
    end = date.today() - timedelta(days=1)
    began = time.perf_counter()
    simulate(ws, months=1, seed=seed, end=end)
    seconds = time.perf_counter() - began
    with ws.reader() as conn:
        rows = conn.execute(
            select(leads.c.sla_policy, leads.c.created_at, leads.c.first_contact_at, leads.c.sla_due_at).where(
                leads.c.sla_due_at.is_not(None)
            )
        ).all()
        escalations = Counter(
            r.data["action"]
            for r in conn.execute(select(lead_events.c.data).where(lead_events.c.type == ev.SLA_ESCALATED))
        )
        reminders = conn.execute(select(func.count()).where(lead_events.c.type == ev.SLA_REMINDED)).scalar_one()
        now = ws.clock.now()
    ws.close()
    by_policy: dict[str, dict[str, Any]] = {}
    for policy in [*sorted({r.sla_policy for r in rows}), "all"]:
        group = [r for r in rows if policy in ("all", r.sla_policy)]
        met = sum(1 for r in group if r.first_contact_at is not None and r.first_contact_at <= r.sla_due_at)
        missed = sum(
            1
            for r in group
            if (r.first_contact_at is not None and r.first_contact_at > r.sla_due_at)
            or (r.first_contact_at is None and r.sla_due_at < now)
        )
        hours = [(r.first_contact_at - r.created_at).total_seconds() / 3600 for r in group if r.first_contact_at]
        by_policy[policy] = {
            "leads": len(group),
            "met": met,
            "missed": missed,
            "pending": len(group) - met - missed,
            "attainment": round(met / (met + missed), 4) if met + missed else None,
            "first_contact_hours_p50": round(statistics.median(hours), 2) if hours else None,
            "first_contact_hours_p90": round(_pct(hours, 0.9), 2) if hours else None,
            "contacted": len(hours),
        }
    return {
        "simulated_seconds": round(seconds, 1),
        "by_policy": by_policy,
        "reminders": reminders,
        "escalations": dict(escalations),
    }


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench routing")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args, _ = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rr = spread(Path(tmp) / "rr", args.leads, args.seed, None)
        print(f"round robin, {rr['leads']} leads over 7 owners: {rr['assigned_per_owner']} deviation {rr['deviation']}")
        capped = spread(Path(tmp) / "cap", args.leads, args.seed, {"per_day": args.leads // 10})
        print(
            f"capped at {capped['cap_per_day']}/day: {capped['assigned_per_owner']}, "
            f"{capped['waiting_for_capacity']} waiting, exceeded by {capped['cap_exceeded_by']}"
        )
        month = simulated_month(Path(tmp) / "month", args.seed)
    for policy, f in month["by_policy"].items():
        print(
            f"SLA {policy:>5}: {f['leads']} leads, attainment {f['attainment']}, met {f['met']}, missed {f['missed']}, "
            f"pending {f['pending']}; first contact p50 {f['first_contact_hours_p50']} h, p90 {f['first_contact_hours_p90']} h"
        )
    print(f"reminders {month['reminders']}, escalations {month['escalations']}")
    path = write("routing", {"round_robin": rr, "capacity": capped, "simulated_month": month})
    print(f"→ {path}")
