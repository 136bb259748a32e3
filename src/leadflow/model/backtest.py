"""Backtest a proposed configuration against history before it goes live.

The leads of this workspace and their activity are replayed, in the order they happened and at
the moments they happened (a frozen clock), through the same pipeline, once under the current
configuration and once under the proposed one, each into its own scratch database. Both runs are
then judged against what really happened: how many leads became MQLs, how many of the leads that
really converted were among them, and how the load fell on the owners.

Manual stage moves are not replayed (they are what a configuration cannot decide); outcomes come
from the real history.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.capture.normalize import FACT_FIELDS
from leadflow.capture.service import prepare
from leadflow.clock import FrozenClock
from leadflow.config.loader import CONFIG_FILE, load_config_text
from leadflow.db.engine import sqlite_url
from leadflow.db.tables import lead_events, leads
from leadflow.errors import InvalidInput, LeadflowError, Problem
from leadflow.model.dataset import reached
from leadflow.workspace import DATABASE_FILE, Workspace

PAYLOAD_FIELDS = ("email", *(f for f in FACT_FIELDS if f != "visitor_id"))  # what a capture carries
REPLAYED = frozenset(t for t in ev.ACTIVITY_TYPES)
BATCH = 200


def payload_of(lead: Mapping[str, Any]) -> dict[str, Any]:
    """A lead row as the submission that would recreate it (facts, consent, custom fields)."""
    out: dict[str, Any] = {k: lead[k] for k in PAYLOAD_FIELDS if lead.get(k) not in (None, "")}
    out["visitor_id"] = f"backtest-{lead['id']}"
    consent = {
        channel: lead[column]
        for channel, column in (("email", "consent_email"), ("phone", "consent_phone"), ("sms", "consent_sms"))
        if lead.get(column) is not None
    }
    if lead.get("do_not_contact"):
        consent["do_not_contact"] = True
    if consent:
        out["consent"] = consent
    if lead.get("custom"):
        out["custom"] = lead["custom"]
    out["occurred_at"] = lead["created_at"]
    return out


def history(conn: Connection, *, since: datetime | None = None) -> dict[str, Any]:
    """What the replay needs from the real workspace: leads, their activity, their outcomes."""
    query = select(leads).where(leads.c.merged_into_id.is_(None)).order_by(leads.c.created_at, leads.c.id)
    if since is not None:
        query = query.where(leads.c.created_at >= since)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    ids = [r["id"] for r in rows]
    activity: list[dict[str, Any]] = []
    stages: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        for e in conn.execute(
            select(
                lead_events.c.lead_id,
                lead_events.c.type,
                lead_events.c.occurred_at,
                lead_events.c.actor,
                lead_events.c.data,
                lead_events.c.stage,
            ).where(lead_events.c.lead_id.in_(part))
        ):
            if e.type in REPLAYED:
                activity.append(dict(e._mapping))
            elif e.type == ev.STAGE_CHANGED and e.stage:
                stages[e.lead_id].append(e.stage)
    activity.sort(key=lambda e: e["occurred_at"])
    return {"leads": rows, "activity": activity, "stages": stages}


def replay(config_text: str, past: Mapping[str, Any]) -> dict[str, Any]:
    """Replay ``past`` under one configuration in a scratch workspace; per original lead: whether
    it became an MQL under that configuration, and who owns it."""
    rows: Sequence[dict[str, Any]] = past["leads"]
    start = rows[0]["created_at"] if rows else datetime.now(UTC)
    root = Path(tempfile.mkdtemp(prefix="leadflow-backtest-"))
    try:
        (root / CONFIG_FILE).write_text(config_text, encoding="utf-8")
        clock = FrozenClock(start)
        # always a scratch SQLite file: never the workspace's own database
        ws = Workspace.open(root, database_url=sqlite_url(root / DATABASE_FILE), clock=clock)
        ws.quiet = True
        try:
            return _replay_into(ws, clock, rows, past["activity"])
        finally:
            ws.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _replay_into(
    ws: Workspace, clock: FrozenClock, rows: Sequence[dict[str, Any]], activity: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    from leadflow.pipeline import Activity, process_many, record_activities

    region = ws.config.workspace.default_region
    stream: list[tuple[datetime, int, Any]] = [(r["created_at"], 0, r) for r in rows]
    stream += [(a["occurred_at"], 1, a) for a in activity]
    stream.sort(key=lambda item: (item[0], item[1]))
    new_id: dict[int, int] = {}
    rejected = 0
    i = 0
    while i < len(stream):
        kind = stream[i][1]
        j = i
        while j < len(stream) and stream[j][1] == kind and j - i < BATCH:
            j += 1
        chunk = stream[i:j]
        clock.set(max(clock.now(), chunk[-1][0]))
        with ws.transaction() as conn:
            if kind == 0:
                captures, originals = [], []
                for _, _, lead in chunk:
                    try:
                        captures.append(prepare(payload_of(lead), default_region=region, now=clock.now()))
                        originals.append(lead["id"])
                    except LeadflowError:
                        rejected += 1
                for original, result in zip(originals, process_many(ws, conn, captures, actor="backtest"), strict=True):
                    new_id[original] = result.lead_id
            else:
                acts = [
                    Activity(
                        type=a["type"],
                        lead_id=new_id[a["lead_id"]],
                        occurred_at=a["occurred_at"],
                        actor=a["actor"],
                        data=dict(a["data"] or {}),
                    )
                    for _, _, a in chunk
                    if a["lead_id"] in new_id
                ]
                record_activities(ws, conn, acts)
        i = j
    order = ws.config.stages.order
    mql_stage = ws.config.handoff.stage
    back = {v: k for k, v in new_id.items()}
    with ws.reader() as conn:
        stage_rows = conn.execute(
            select(lead_events.c.lead_id, lead_events.c.stage).where(lead_events.c.type == ev.STAGE_CHANGED)
        ).all()
        owners = conn.execute(select(leads.c.id, leads.c.owner_id)).all()
    mql = {back[r.lead_id] for r in stage_rows if r.lead_id in back and reached(order, r.stage, mql_stage)}
    return {
        "mql": mql,
        "owner": {back[r.id]: r.owner_id for r in owners if r.id in back},
        "rejected": rejected,
        "threshold": ws.rules.scoring.mql_threshold,
        "version": ws.version,
    }


def judge(run: Mapping[str, Any], past: Mapping[str, Any], order: Sequence[str], target: str) -> dict[str, Any]:
    converted = {lead for lead, stages in past["stages"].items() if any(reached(order, s, target) for s in stages)}
    mql = run["mql"]
    load = Counter(owner for lead, owner in run["owner"].items() if lead in mql and owner)
    weeks = _weeks(past["leads"])
    captured = len(mql & converted)
    return {
        "config_version": run["version"],
        "mql_threshold": run["threshold"],
        "leads": len(run["owner"]),
        "mql": len(mql),
        "mql_per_week": round(len(mql) / weeks, 2),
        "converted": len(converted),
        "conversions_captured": captured,
        "capture_rate": round(captured / len(converted), 4) if converted else None,
        "mql_conversion_rate": round(captured / len(mql), 4) if mql else None,
        "mql_per_owner": dict(sorted(load.items())),
        "mql_per_owner_per_week": {k: round(v / weeks, 2) for k, v in sorted(load.items())},
        "unassigned_mql": sum(1 for lead in mql if not run["owner"].get(lead)),
        "rejected": run["rejected"],
    }


def _weeks(rows: Sequence[Mapping[str, Any]]) -> float:
    if not rows:
        return 1.0
    span = (rows[-1]["created_at"] - rows[0]["created_at"]).total_seconds() / (7 * 86400)
    return max(1.0, span)


def backtest(
    ws: Workspace, proposed_text: str, *, since: datetime | None = None, target: str | None = None
) -> dict[str, Any]:
    """The current and the proposed configuration replayed over this workspace's history."""
    try:
        proposed = load_config_text(proposed_text)
    except yaml.YAMLError as exc:  # what the loader does not turn into a ConfigError (e.g. control characters)
        raise InvalidInput("the proposed configuration is not valid YAML", [Problem("config", str(exc)[:300])]) from exc
    except LeadflowError as exc:
        problems = [Problem(f"config.{p.field}", p.message, p.line) for p in exc.problems] or [
            Problem("config", exc.message)
        ]
        raise InvalidInput(f"the proposed configuration is not valid: {exc.message}", problems) from exc
    with ws.reader() as conn:
        past = history(conn, since=since)
    if not past["leads"]:
        raise InvalidInput("no history to replay", [])
    order = ws.config.stages.order
    target = target or ws.config.stages.target
    if target not in order:
        raise InvalidInput(
            "unknown target", [Problem("target", f"{target!r} is not a funnel stage: {', '.join(order)}")]
        )
    current = judge(replay(ws.loaded.text, past), past, order, target)
    candidate = judge(replay(proposed_text, past), past, order, target)
    return {
        "target": target,
        "leads": len(past["leads"]),
        "activities": len(past["activity"]),
        "from": past["leads"][0]["created_at"].isoformat(),
        "to": past["leads"][-1]["created_at"].isoformat(),
        "current": current,
        "proposed": {**candidate, "config_version": proposed.version},
        "change": {
            k: candidate[k] - current[k]
            for k in ("mql", "conversions_captured", "unassigned_mql")
            if isinstance(candidate[k], int)
        },
    }
