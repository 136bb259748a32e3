"""A small history with known outcomes, written through the real pipeline: leads whose industry,
plan and size drive conversion, converted leads moved to customer, and (planted) a field the
sales team fills in only after a lead converted."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from leadflow.clock import FrozenClock
from leadflow.model.frame import Frame
from leadflow.pipeline import process
from leadflow.qualify.service import change_stage
from leadflow.workspace import Workspace

INDUSTRIES = ("software", "retail", "manufacturing", "education")


def make_history(ws: Workspace, clock: FrozenClock, n: int = 240, seed: int = 1, leak: bool = True) -> dict[str, Any]:
    """``n`` leads created between 200 and 40 days before the clock's time; returns outcomes."""
    rng = random.Random(seed)
    end = clock.now()
    start = end - timedelta(days=200)
    converted: dict[int, bool] = {}
    for i in range(n):
        at = start + timedelta(days=160 * i / n)
        industry = rng.choice(INDUSTRIES)
        plan = rng.choice(("pro", "free"))
        employees = rng.choice((5, 40, 300, 2000))
        odds = -2.2 + 1.8 * (industry == "software") + 1.6 * (plan == "pro") + 0.6 * (employees >= 300)
        won = rng.random() < 1 / (1 + 2.718281828 ** (-odds))
        clock.set(at)
        with ws.transaction() as conn:
            result = process(
                ws,
                conn,
                {
                    "email": f"person{i}@company{i}.example",
                    "company": f"Company {i}",
                    "industry": industry,
                    "employees": employees,
                    "custom": {"plan": plan},
                    "occurred_at": at,
                },
            )
        converted[result.lead_id] = won
        if won:
            clock.set(at + timedelta(days=10))
            with ws.transaction() as conn:
                change_stage(ws, conn, result.lead_id, "customer", reason="won", occurred_at=at + timedelta(days=10))
            if leak:
                clock.set(at + timedelta(days=11))
                with ws.transaction() as conn:
                    process(
                        ws,
                        conn,
                        {
                            "email": f"person{i}@company{i}.example",
                            "segment": "key account",
                            "occurred_at": clock.now(),
                        },
                    )
    clock.set(end)
    return {"converted": converted}


def synthetic_frame(n: int = 1200, seed: int = 3) -> tuple[Frame, list[int], list[int]]:
    """Honest fields, plus two planted leaks: a status written after the outcome (a category
    that all but names it) and a number that is the outcome plus a little noise."""
    rng = random.Random(seed)
    records, y = [], []
    for _ in range(n):
        channel = rng.choice(("ads", "seo", "referral", "event"))
        visits = rng.randint(0, 12)
        odds = -1.5 + 0.9 * (channel == "referral") + 0.15 * visits
        won = int(rng.random() < 1 / (1 + 2.718281828 ** (-odds)))
        status = (
            rng.choice(("closed won", "enrolled")) if won else rng.choice(("not interested", "wrong number", "ringing"))
        )
        if rng.random() < 0.03:
            status = rng.choice(("closed won", "not interested"))
        records.append(
            {
                "channel": channel,
                "visits": visits,
                "country": rng.choice(("DE", "FR", "US", None)),
                "sales_status": status if rng.random() < 0.7 else None,
                "deal_days": (won * 30 + rng.random() * 3) if rng.random() < 0.9 else None,
            }
        )
        y.append(won)
    return Frame.from_records(records), y, list(range(n))
