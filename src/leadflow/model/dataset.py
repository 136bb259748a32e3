"""Leads with known outcomes, as features, from the lead rows and the event log.

A lead's features are its fields (source, country, industry, size, consent, custom fields...) and
its history *before the moment it is judged*: for a converted lead the moment it reached the
target stage, for the others the same age (see below). So nothing that happened because a
lead converted (the won deal, the onboarding calls) can teach the model. The same function
(:func:`lead_features`) builds the features of a lead being scored now, so training and scoring
cannot drift apart.

A lead that did not convert is judged at the age at which converted leads typically converted
(the median), so both classes are seen at comparable moments of their lives.

Outcomes: a lead is positive when it reached the target stage (or a later one in the funnel);
negative when it was closed (disqualified, lost) or had ``outcome_window`` to convert and did not;
otherwise its outcome is not known yet and it is left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from leadflow import events as ev
from leadflow.db.tables import lead_events, leads
from leadflow.model.frame import Frame
from leadflow.qualify.stages import CLOSED

LEAD_FIELDS = (
    "source",
    "medium",
    "campaign",
    "capture_context",
    "country",
    "state",
    "city",
    "language",
    "segment",
    "industry",
    "employees",
    "company_size",
    "seniority",
    "is_free_mail",
    "is_disposable_email",
    "consent_email",
    "consent_phone",
    "consent_sms",
    "do_not_contact",
    "is_competitor",
)
COUNTED_EVENTS = tuple(t for t in ev.ACTIVITY_TYPES if t != "note")
HISTORY_FEATURES = ("touches", "hours_to_first_contact", "days_since_last_activity", "active_days")
OUTCOME_EVENTS = frozenset(
    {ev.OPPORTUNITY_CREATED, ev.OPPORTUNITY_WON, ev.OPPORTUNITY_LOST, ev.REVENUE_RECORDED, "subscription_started"}
)


def lead_features(lead: Mapping[str, Any], history: Iterable[Mapping[str, Any]], as_of: datetime) -> dict[str, Any]:
    """The features of one lead as of a moment: its fields, then what its events before that
    moment say (counts per activity, touches, time to first contact, recency)."""
    out: dict[str, Any] = {name: lead.get(name) for name in LEAD_FIELDS}
    for key, value in (lead.get("custom") or {}).items():
        if isinstance(value, str | int | float | bool) or value is None:
            out[f"custom.{key}"] = value
    counts: dict[str, int] = defaultdict(int)
    first_contact: datetime | None = None
    last_active: datetime | None = None
    days: set[Any] = set()
    for event in history:
        at = event["occurred_at"]
        if at > as_of:
            continue
        kind = event["type"]
        if kind in OUTCOME_EVENTS:
            continue
        if kind == ev.LEAD_CAPTURED:
            counts["touches"] += 1
        elif kind in COUNTED_EVENTS:
            counts[kind] += 1
            if kind in ev.ENGAGEMENT_TYPES:
                last_active = at if last_active is None or at > last_active else last_active
                days.add(at.date())
        if first_contact is None and ev.is_outbound_contact(kind, event.get("data") or {}, event.get("actor") or ""):
            first_contact = at
    for kind in COUNTED_EVENTS:
        out[f"events.{kind}"] = counts.get(kind, 0)
    created = lead.get("created_at")
    out["touches"] = counts.get("touches", 0)
    out["hours_to_first_contact"] = (
        round((first_contact - created).total_seconds() / 3600, 3) if first_contact and created else None
    )
    out["days_since_last_activity"] = round((as_of - last_active).total_seconds() / 86400, 3) if last_active else None
    out["active_days"] = len(days)
    return out


@dataclass
class Dataset:
    frame: Frame
    y: list[int]
    times: list[datetime]
    lead_ids: list[int]
    outcome_at: dict[int, datetime]  # converted leads: when they reached the target
    first_set: dict[str, dict[int, datetime]] = field(default_factory=dict)  # field -> lead -> when set
    rule_scores: list[int] = field(default_factory=list)  # the rule score each lead had when judged
    unknown: int = 0  # leads whose outcome is not known yet

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        return (min(self.times), max(self.times)) if self.times else (None, None)


def reached(order: Sequence[str], stage: str | None, target: str) -> bool:
    index = {s: i for i, s in enumerate(order)}
    return stage is not None and stage in index and target in index and index[stage] >= index[target]


def build(
    conn: Connection,
    *,
    order: Sequence[str],
    target: str,
    as_of: datetime,
    outcome_window: timedelta = timedelta(days=90),
    since: datetime | None = None,
) -> Dataset:
    """Every live lead created before ``as_of`` (and after ``since``) whose outcome is known."""
    if target not in order:
        from leadflow.errors import InvalidInput, Problem

        raise InvalidInput(
            "unknown target", [Problem("target", f"{target!r} is not a funnel stage: {', '.join(order)}")]
        )
    query = select(leads).where(leads.c.merged_into_id.is_(None), leads.c.created_at <= as_of).order_by(leads.c.id)
    if since is not None:
        query = query.where(leads.c.created_at >= since)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    by_lead: dict[int, list[dict[str, Any]]] = defaultdict(list)
    ids = [r["id"] for r in rows]
    for chunk in range(0, len(ids), 5000):
        part = ids[chunk : chunk + 5000]
        for e in conn.execute(
            select(
                lead_events.c.lead_id,
                lead_events.c.type,
                lead_events.c.occurred_at,
                lead_events.c.actor,
                lead_events.c.stage,
                lead_events.c.data,
            )
            .where(lead_events.c.lead_id.in_(part), lead_events.c.occurred_at <= as_of)
            .order_by(lead_events.c.lead_id, lead_events.c.occurred_at, lead_events.c.id)
        ):
            by_lead[e.lead_id].append(dict(e._mapping))
    records, y, times, lead_ids, outcome_at, rule_scores = [], [], [], [], {}, []
    first_set: dict[str, dict[int, datetime]] = defaultdict(dict)
    unknown = 0
    judged: list[tuple[dict[str, Any], list[dict[str, Any]], int, datetime | None]] = []
    for lead in rows:
        history = by_lead.get(lead["id"], [])
        converted_at = next(
            (e["occurred_at"] for e in history if e["type"] == ev.STAGE_CHANGED and reached(order, e["stage"], target)),
            None,
        )
        if converted_at is not None:
            outcome_at[lead["id"]] = converted_at
            judged.append((lead, history, 1, converted_at))
        elif lead["stage"] in CLOSED or lead["created_at"] <= as_of - outcome_window:
            judged.append((lead, history, 0, None))
        else:
            unknown += 1
    # A lead that did not convert is judged at the age converters typically convert at (not at
    # the end of the window): otherwise recency and activity counts would tell the classes apart
    # by how long each was watched, not by what the leads did.
    delays = sorted((at - lead["created_at"]) for lead, _, label, at in judged if label and at is not None)
    typical = delays[len(delays) // 2] if delays else outcome_window
    for lead, history, label, converted_at in judged:
        judged_at = converted_at if converted_at is not None else min(as_of, lead["created_at"] + typical)
        records.append(lead_features(lead, history, judged_at))
        y.append(label)
        times.append(lead["created_at"])
        lead_ids.append(lead["id"])
        rule_scores.append(_rule_score_at(history, judged_at, lead["score"]))
        for e in history:
            if e["type"] == ev.LEAD_CREATED:
                for name in (e["data"] or {}).get("fields") or ():
                    first_set[name][lead["id"]] = e["occurred_at"]
            elif e["type"] == ev.LEAD_CAPTURED:
                for name in (e["data"] or {}).get("changed") or ():
                    first_set[name][lead["id"]] = e["occurred_at"]
    frame = Frame.from_records(records)
    return Dataset(
        frame=frame,
        y=y,
        times=times,
        lead_ids=lead_ids,
        outcome_at=outcome_at,
        first_set={k: v for k, v in first_set.items() if k in frame.columns},
        rule_scores=rule_scores,
        unknown=unknown,
    )


MIN_EACH = 5  # converted and unconverted leads each, at least, to learn and to measure anything


def require_outcomes(data: Dataset, target: str, *, min_rows: int = 40) -> None:
    """Refuse, before any training, a dataset too small to learn from, saying what it holds: how
    many leads reached the target stage, how many did not, and how many have no outcome yet.
    ``min_rows`` is the trainer's floor (``training.MIN_ROWS``)."""
    from leadflow.errors import InvalidInput, Problem

    rows, converted = len(data.y), int(sum(data.y))
    unconverted = rows - converted
    problems = []
    if rows < min_rows:
        problems.append(Problem("rows", f"{rows} leads with known outcomes; at least {min_rows} are needed"))
    if converted < MIN_EACH or unconverted < MIN_EACH:
        pending = f"; {data.unknown:,} more have no outcome yet" if data.unknown else ""
        problems.append(
            Problem(
                "target",
                f"{converted:,} leads reached {target!r} (the target stage) of {rows:,} with known outcomes "
                f"and {unconverted:,} did not; at least {MIN_EACH} converted and {MIN_EACH} unconverted are "
                f"needed{pending}",
            )
        )
    if problems:
        raise InvalidInput("cannot train a model on this data", problems)


def _rule_score_at(history: Sequence[Mapping[str, Any]], at: datetime, current: int) -> int:
    """The rule score the lead had just before ``at`` (its last ``lead_scored`` event then)."""
    score = None
    for e in history:
        if e["type"] == ev.LEAD_SCORED and e["occurred_at"] <= at:
            score = (e["data"] or {}).get("score")
    return int(score) if score is not None else int(current or 0)


def events_of(conn: Connection, lead_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The events of a few leads (for scoring them now), by lead."""
    ids = list(lead_ids)
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not ids:
        return out
    for e in conn.execute(
        select(
            lead_events.c.lead_id,
            lead_events.c.type,
            lead_events.c.occurred_at,
            lead_events.c.actor,
            lead_events.c.data,
        )
        .where(lead_events.c.lead_id.in_(ids))
        .order_by(lead_events.c.occurred_at, lead_events.c.id)
    ):
        out[e.lead_id].append(dict(e._mapping))
    return out


def rule_outcomes(
    conn: Connection,
    *,
    order: Sequence[str],
    target: str,
    as_of: datetime,
    outcome_window: timedelta = timedelta(days=90),
) -> tuple[list[int], list[int]]:
    """The rule scores and outcomes of :func:`build` (same leads, same judging moments, same
    order) without the features: read from the leads, their stage changes and their scores
    alone. Threshold advice on the rule score needs nothing else, and this is a few stage and
    score events per lead instead of every event with its data."""
    if target not in order:
        from leadflow.errors import InvalidInput, Problem

        raise InvalidInput(
            "unknown target", [Problem("target", f"{target!r} is not a funnel stage: {', '.join(order)}")]
        )
    later = list(order[list(order).index(target) :])
    rows = conn.execute(
        select(leads.c.id, leads.c.created_at, leads.c.stage, leads.c.score)
        .where(leads.c.merged_into_id.is_(None), leads.c.created_at <= as_of)
        .order_by(leads.c.id)
    ).all()
    converted: dict[int, datetime] = {}
    for lead_id, at, _ in sorted(
        tuple(r)
        for r in conn.execute(
            select(lead_events.c.lead_id, lead_events.c.occurred_at, lead_events.c.id).where(
                lead_events.c.type == ev.STAGE_CHANGED,
                lead_events.c.stage.in_(later),
                lead_events.c.occurred_at <= as_of,
            )
        )
    ):
        converted.setdefault(lead_id, at)
    judged: list[tuple[int, datetime, int, datetime | None, int]] = []
    for lead_id, created, stage, score in rows:
        at = converted.get(lead_id)
        if at is not None:
            judged.append((lead_id, created, 1, at, score))
        elif stage in CLOSED or created <= as_of - outcome_window:
            judged.append((lead_id, created, 0, None, score))
    delays = sorted(at - created for _, created, label, at, _ in judged if label and at is not None)
    typical = delays[len(delays) // 2] if delays else outcome_window
    scored: dict[int, list[tuple[datetime, int, Any]]] = defaultdict(list)
    for lead_id, at, event_id, value in conn.execute(
        select(
            lead_events.c.lead_id, lead_events.c.occurred_at, lead_events.c.id, lead_events.c.data["score"].as_float()
        ).where(lead_events.c.type == ev.LEAD_SCORED, lead_events.c.occurred_at <= as_of)
    ):
        scored[lead_id].append((at, event_id, value))
    scores, y = [], []
    for lead_id, created, label, at, current in judged:
        judged_at = at if at is not None else min(as_of, created + typical)
        last = None
        for when, _, value in sorted(scored.get(lead_id, ())):
            if when <= judged_at:
                last = value
        scores.append(int(last) if last is not None else int(current or 0))
        y.append(label)
    return scores, y
