"""Does nurture work? Per sequence and step: sent, and the share of recipients who opened,
clicked, replied or unsubscribed after that email; and the conversion of enrolled leads against
the holdout group, with a 95% confidence interval on the difference."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from leadflow.db.tables import lead_events, nurture_enrolments

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

RESPONSES = ("email_opened", "email_clicked", "email_replied", "email_unsubscribed")
Z = 1.959963984540054


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = successes / n
    centre = p + Z * Z / (2 * n)
    margin = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (max(0.0, (centre - margin) / (1 + Z * Z / n)), min(1.0, (centre + margin) / (1 + Z * Z / n)))


def difference_interval(a: int, n: int, b: int, m: int) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p1 - p2 (method 10): sound for small groups and rates
    near 0 or 1, where the normal approximation is not."""
    w1, w2 = wilson(a, n), wilson(b, m)
    if w1 is None or w2 is None:
        return None
    p1, p2 = a / n, b / m
    d = p1 - p2
    lower = d - math.sqrt((p1 - w1[0]) ** 2 + (w2[1] - p2) ** 2)
    upper = d + math.sqrt((w1[1] - p1) ** 2 + (p2 - w2[0]) ** 2)
    return (lower, upper)


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def report(ws: Workspace, conn: Connection, *, since: datetime | None = None) -> dict[str, Any]:
    e = nurture_enrolments
    query = select(e).where(e.c.status != "skipped")
    if since is not None:
        query = query.where(e.c.enrolled_at >= since)
    enrolments = [dict(r._mapping) for r in conn.execute(query)]
    lead_ids = sorted({en["lead_id"] for en in enrolments})
    by_lead: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for chunk in range(0, len(lead_ids), 5000):
        ids = lead_ids[chunk : chunk + 5000]
        for r in conn.execute(
            select(
                lead_events.c.lead_id,
                lead_events.c.type,
                lead_events.c.occurred_at,
                lead_events.c.stage,
                lead_events.c.data,
                lead_events.c.actor,
            )
            .where(
                lead_events.c.lead_id.in_(ids),
                lead_events.c.type.in_(("email_sent", *RESPONSES, "stage_changed")),
            )
            .order_by(lead_events.c.occurred_at, lead_events.c.id)
        ):
            by_lead[r.lead_id].append(dict(r._mapping))
    order = ws.config.stages.order
    sequences = {s.id: s for s in ws.config.nurture.sequences}
    out: dict[str, Any] = {}
    for seq_id in sorted({en["sequence_id"] for en in enrolments}):
        seq = sequences.get(seq_id)
        mine = [en for en in enrolments if en["sequence_id"] == seq_id]
        steps: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        ids = {en["id"]: en for en in mine}
        for en in mine:
            sent_steps: list[tuple[datetime, int]] = []
            for event in by_lead[en["lead_id"]]:
                data = event["data"] or {}
                if event["type"] == "email_sent" and event["actor"] == "nurture" and data.get("enrolment") in ids:
                    if data.get("enrolment") == en["id"]:
                        sent_steps.append((event["occurred_at"], int(data.get("step", -1))))
                        steps[int(data.get("step", -1))]["sent"].add(en["lead_id"])
                elif (
                    event["type"] in RESPONSES
                    and sent_steps
                    and event["occurred_at"] >= en["enrolled_at"]
                    and data.get("enrolment")
                    in (None, en["id"])  # a tracked response to another enrolment's email is not ours
                ):
                    # a tracked open or click names its step; a reply or unsubscribe counts for the last email
                    step = data.get("step") if data.get("enrolment") == en["id"] else sent_steps[-1][1]
                    if step is not None:
                        steps[int(step)][event["type"]].add(en["lead_id"])
        goal = seq.goal_stage if seq else "sql"
        goal_at = order.index(goal) if goal in order else None

        def converted(en: dict[str, Any], goal: str = goal, goal_at: int | None = goal_at) -> bool:
            for event in by_lead[en["lead_id"]]:
                if event["type"] == "stage_changed" and event["occurred_at"] >= en["enrolled_at"]:
                    stage = event["stage"]
                    if stage == goal or (goal_at is not None and stage in order and order.index(stage) >= goal_at):
                        return True
            return False

        groups = {}
        for name, members in (
            ("enrolled", [en for en in mine if not en["holdout"]]),
            ("holdout", [en for en in mine if en["holdout"]]),
        ):
            n = len(members)
            k = sum(1 for en in members if converted(en))
            interval = wilson(k, n)
            groups[name] = {
                "leads": n,
                "converted": k,
                "rate": _rate(k, n),
                "interval_95": [round(x, 4) for x in interval] if interval else None,
            }
        diff = difference_interval(
            groups["enrolled"]["converted"],
            groups["enrolled"]["leads"],
            groups["holdout"]["converted"],
            groups["holdout"]["leads"],
        )
        per_step = []
        for step in sorted(steps):
            got = steps[step]
            n = len(got["sent"])
            per_step.append(
                {
                    "step": step,
                    "template": seq.steps[step].send if seq and 0 <= step < len(seq.steps) else None,
                    "sent": n,
                    **{f"{t.removeprefix('email_')}_rate": _rate(len(got[t] & got["sent"]), n) for t in RESPONSES},
                }
            )
        ended: dict[str, int] = defaultdict(int)
        for en in mine:
            ended[en["end_reason"] or en["status"]] += 1
        out[seq_id] = {
            "goal_stage": goal,
            "enrolled": len(mine),
            "messages_sent": sum(en["sent"] for en in mine),
            "steps": per_step,
            "conversion": {
                **groups,
                "difference": round(groups["enrolled"]["rate"] - groups["holdout"]["rate"], 4)
                if groups["enrolled"]["rate"] is not None and groups["holdout"]["rate"] is not None
                else None,
                "difference_interval_95": [round(x, 4) for x in diff] if diff else None,
                "significant": bool(diff and (diff[0] > 0 or diff[1] < 0)),
            },
            "outcomes": dict(ended),
        }
    return {"sequences": out, "messages_sent": sum(s["messages_sent"] for s in out.values())}
