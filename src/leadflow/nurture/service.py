"""Nurture: enrol leads that are not ready into a sequence, run its steps when they are due,
end it when the lead replies, meets, becomes ready, unsubscribes or bounces.

Everything here runs in the worker (``nurture.run``), in short transactions that claim the due
enrolments with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the work and
each step runs once. Emails are queued as notifications in the same transaction as the step
that sends them, and delivered by ``notify.send``, at most once, after a last check
(:func:`stop_reason`) made under the lead's lock in the transaction that records the send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones
from sqlalchemy import Connection, exists, func, insert, or_, select, text, update

from leadflow import events as ev
from leadflow.config.conditions import Predicate, compile_condition, field_getter
from leadflow.config.nurture import DAYS, NurtureSection
from leadflow.config.nurture import Sequence as SequenceConfig
from leadflow.db.tables import lead_events, leads, notifications, nurture_enrolments, tasks
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem
from leadflow.notify import service as notifications_service
from leadflow.notify.mail import sender_address
from leadflow.nurture import links
from leadflow.nurture.render import render

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

e = nurture_enrolments
MAX_STEPS_PER_RUN = 25  # a branch loop without waits cannot spin forever
RECHECK = timedelta(hours=1)  # waiting for an event: look again this often


@dataclass(frozen=True)
class Compiled:
    section: NurtureSection
    sequences: tuple[tuple[SequenceConfig, Predicate], ...]
    by_id: Mapping[str, SequenceConfig]
    step_index: Mapping[str, Mapping[str, int]]
    branches: Mapping[tuple[str, int], Predicate]
    never: frozenset[str]  # stages in which no sequence would keep a lead


def compiled(ws: Workspace) -> Compiled:
    found: Compiled | None = ws.caches.get("nurture.compiled")
    if found is not None and ws.caches.get("nurture.version") == ws.version:
        return found
    section = ws.config.nurture
    ordered = sorted(section.sequences, key=lambda s: s.priority)
    stop_sets = [set(s.exit_stages) for s in ordered]
    result = Compiled(
        section=section,
        sequences=tuple((s, compile_condition(s.when)) for s in ordered),
        by_id={s.id: s for s in ordered},
        step_index={s.id: {st.id: i for i, st in enumerate(s.steps) if st.id} for s in ordered},
        branches={
            (s.id, i): compile_condition(st.branch.if_) for s in ordered for i, st in enumerate(s.steps) if st.branch
        },
        never=frozenset(set.intersection(*stop_sets)) if stop_sets else frozenset(),
    )
    ws.caches["nurture.compiled"], ws.caches["nurture.version"] = result, ws.version
    return result


def in_holdout(sequence: SequenceConfig, lead_id: int) -> bool:
    """Deterministic, so a re-run or another worker puts the lead in the same group."""
    if sequence.holdout <= 0:
        return False
    digest = hashlib.sha256(f"{sequence.id}:{lead_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < sequence.holdout


def may_email(lead: Mapping[str, Any]) -> str | None:
    """Why this lead must not get a marketing email, or None when it may."""
    if lead.get("erased_at") is not None or lead.get("merged_into_id") is not None:
        return "erased_or_merged"
    if not lead.get("email"):
        return "no_email"
    if lead.get("do_not_contact"):
        return "do_not_contact"
    if lead.get("consent_email") is not True:
        return "no_email_consent"
    return None


@lru_cache(maxsize=512)
def country_zone(country: str | None, default: str) -> ZoneInfo:
    """The lead's time zone from its country (the first of the country's zones), else the workspace's."""
    if country and country.upper() in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number_for_type(country.upper(), phonenumbers.PhoneNumberType.FIXED_LINE)
        zones = phone_timezones.time_zones_for_number(example) if example is not None else ()
        zone = next((z for z in zones if z in available_timezones()), None)
        if zone:
            return ZoneInfo(zone)
    return ZoneInfo(default)


def next_send_time(now: datetime, zone: ZoneInfo, window: str, days: Sequence[str]) -> datetime:
    """``now`` if it falls in the send window on a send day (in ``zone``), else the next start."""
    start, end = (time.fromisoformat(part if part != "24:00" else "23:59") for part in window.split("-"))
    local = now.astimezone(zone)
    allowed = {DAYS.index(d) for d in days}
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        opens = datetime.combine(day, start, zone)
        closes = datetime.combine(day, end, zone)
        if offset == 0 and opens <= local < closes:
            return now
        if local < opens:
            return opens.astimezone(UTC)
    return now + timedelta(days=1)  # no send day at all cannot happen (validated); be safe


# -- enrolment ------------------------------------------------------------------------------


_ENROL_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('leadflow.nurture_enrol'))")


def enrol(ws: Workspace, conn: Connection, *, batch: int = 500) -> int:
    """Enrol leads whose stage changed (or whose last check is older than the cooldown) into the
    first sequence, by priority, whose condition holds. Returns how many were enrolled."""
    c = compiled(ws)
    if not c.sequences:
        return 0
    if conn.dialect.name == "postgresql":
        # One enrolling worker at a time (a batch takes milliseconds): its query then reads
        # after the previous one committed. Without it, a worker whose snapshot predates another's
        # commit could lock the same leads once freed and enrol them again (PostgreSQL reported a
        # deadlock on the active-enrolment index under four workers).
        conn.execute(_ENROL_LOCK)
    now = ws.clock.now()
    cooldown = c.section.cooldown
    checked = exists(
        select(e.c.id).where(
            e.c.lead_id == leads.c.id,
            or_(e.c.status == "active", e.c.enrolled_at >= leads.c.stage_entered_at, e.c.ended_at > now - cooldown),
        )
    )
    query = (
        select(leads)
        .where(
            leads.c.erased_at.is_(None),
            leads.c.merged_into_id.is_(None),
            leads.c.historical.is_(False),  # imported history: nobody is emailed for it
            ~checked,
        )
        .order_by(leads.c.id)
        .limit(batch)
    )
    if c.never:
        query = query.where(leads.c.stage.not_in(sorted(c.never)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=leads)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return 0
    enrolments, skipped, events = [], [], []
    for lead in rows:
        chosen = next(
            (s for s, holds in c.sequences if lead["stage"] not in s.exit_stages and holds(lead)),
            None,
        )
        base = {
            "lead_id": lead["id"],
            "step": 0,
            "step_started_at": now,
            "enrolled_at": now,
            "config_version": ws.version,
            "sent": 0,
        }
        if chosen is None:  # checked: not for nurture now
            skipped.append(
                {**base, "sequence_id": "-", "status": "skipped", "holdout": False, "next_at": None, "ended_at": now}
            )
            continue
        holdout = in_holdout(chosen, lead["id"])
        enrolments.append(
            {**base, "sequence_id": chosen.id, "status": "active", "holdout": holdout, "next_at": now, "ended_at": None}
        )
        events.append(
            ev.event_row(
                type=ev.NURTURE_ENROLLED,
                lead_id=lead["id"],
                occurred_at=now,
                recorded_at=now,
                actor="nurture",
                config_version=ws.version,
                data={"sequence": chosen.id, "holdout": holdout, "stage": lead["stage"]},
            )
        )
    for batch_rows in (enrolments, skipped):
        if batch_rows:
            conn.execute(insert(e).values(end_reason=None), batch_rows)
    ev.append(conn, events)
    return len(enrolments)


def enrol_lead(ws: Workspace, conn: Connection, lead_id: int, sequence_id: str, *, actor: str) -> dict[str, Any]:
    """Enrol one lead by hand (a rep's decision): its active sequence, if any, ends first."""
    c = compiled(ws)
    sequence = c.by_id.get(sequence_id)
    if sequence is None:
        raise InvalidInput(
            "unknown sequence",
            [Problem("sequence", f"no sequence {sequence_id!r}; known: {', '.join(c.by_id) or 'none'}")],
        )
    lead = conn.execute(select(leads).where(leads.c.id == lead_id)).first()
    if lead is None:
        raise NotFound(f"no lead with id {lead_id}")
    refused = may_email(lead._mapping)
    if refused:
        raise Conflict(f"lead {lead_id} cannot be nurtured by email: {refused.replace('_', ' ')}")
    now = ws.clock.now()
    conn.execute(
        update(e)
        .where(e.c.lead_id == lead_id, e.c.status == "active")
        .values(status="exited", next_at=None, ended_at=now, end_reason=f"moved by {actor}")
    )
    holdout = in_holdout(sequence, lead_id)
    conn.execute(
        insert(e).values(
            lead_id=lead_id,
            sequence_id=sequence.id,
            status="active",
            holdout=holdout,
            step=0,
            step_started_at=now,
            next_at=now,
            enrolled_at=now,
            sent=0,
            config_version=ws.version,
        )
    )
    ev.append(
        conn,
        [_event(ws, ev.NURTURE_ENROLLED, lead_id, now, {"sequence": sequence.id, "holdout": holdout, "by": actor})],
    )
    return {"lead_id": lead_id, "sequence": sequence.id, "holdout": holdout}


# -- running the steps ----------------------------------------------------------------------


def _exit_reason(conn: Connection, sequence: SequenceConfig, lead: Mapping[str, Any], since: datetime) -> str | None:
    if lead["erased_at"] is not None or lead["merged_into_id"] is not None:
        return "lead_gone"
    if lead["stage"] in sequence.exit_stages:
        return f"stage:{lead['stage']}"
    found = conn.execute(
        select(lead_events.c.type)
        .where(
            lead_events.c.lead_id == lead["id"],
            lead_events.c.occurred_at >= since,
            lead_events.c.type.in_(sequence.exit_on),
        )
        .limit(1)
    ).scalar_one_or_none()
    if found:
        return f"event:{found}"
    if lead.get("consent_email") is False or lead.get("do_not_contact"):
        return "consent_withdrawn"
    return None


def _date_of(lead: Mapping[str, Any], name: str, zone: str) -> datetime | None:
    """The moment in a lead field (a datetime, a date at 09:00 in the workspace zone, or ISO text)."""
    value = field_getter(name)(lead)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))
    if isinstance(value, date):
        return datetime.combine(value, time(9), ZoneInfo(zone)).astimezone(UTC)
    return None


def _happened(conn: Connection, lead_id: int, type_: str, since: datetime) -> bool:
    return (
        conn.execute(
            select(lead_events.c.id)
            .where(lead_events.c.lead_id == lead_id, lead_events.c.occurred_at >= since, lead_events.c.type == type_)
            .limit(1)
        ).first()
        is not None
    )


def _sent_last_week(conn: Connection, lead_id: int, now: datetime) -> int:
    return conn.execute(
        select(func.count()).where(
            notifications.c.lead_id == lead_id,
            notifications.c.reason == "nurture",
            notifications.c.created_at > now - timedelta(days=7),
            notifications.c.status != "cancelled",
        )
    ).scalar_one()


def advance(ws: Workspace, conn: Connection, *, batch: int = 100) -> int:
    """Run the due steps of up to ``batch`` enrolments; returns how many enrolments moved."""
    c = compiled(ws)
    now = ws.clock.now()
    query = (
        select(e, leads)
        .join(leads, leads.c.id == e.c.lead_id)
        .where(e.c.status == "active", e.c.next_at.is_not(None), e.c.next_at <= now)
        .order_by(e.c.next_at, e.c.id)
        .limit(batch)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=e)
    due = conn.execute(query).all()
    if not due:
        return 0
    key = links.signing_key(ws, conn, create=True)
    owner_names = {o.id: o.name for o in ws.config.owners}
    default_zone = ws.config.workspace.timezone
    events: list[dict[str, Any]] = []
    for row in due:
        m = row._mapping
        enrolment = {col.key: m[col] for col in e.c}
        lead = {col.key: m[col] for col in leads.c}
        sequence = c.by_id.get(enrolment["sequence_id"])
        state = {"step": enrolment["step"], "step_started_at": enrolment["step_started_at"], "sent": enrolment["sent"]}
        ended: str | None = None
        next_at: datetime | None = None
        if sequence is None:
            ended = "sequence_removed"
        for _ in range(MAX_STEPS_PER_RUN):
            if ended:
                break
            ended = _exit_reason(conn, sequence, lead, enrolment["enrolled_at"])
            if ended:
                break
            i = state["step"]
            if i >= len(sequence.steps):
                ended = "completed"
                break
            step = sequence.steps[i]
            started = state["step_started_at"]
            action = step.action
            go_to = i + 1
            if action == "wait":
                if now < started + step.wait:
                    next_at = started + step.wait
                    break
                started = started + step.wait
            elif action == "wait_until":
                spec = step.wait_until
                if spec.event is not None and spec.timeout is not None:
                    if not _happened(conn, lead["id"], spec.event, started) and now < started + spec.timeout:
                        next_at = min(started + spec.timeout, now + RECHECK)
                        break
                else:
                    until = spec.date if spec.date is not None else _date_of(lead, spec.field or "", default_zone)
                    if until is not None and now < until:
                        next_at = min(until, now + timedelta(days=1))  # the field may change meanwhile
                        break
                started = now
            elif action == "branch":
                holds = c.branches[(sequence.id, i)](lead)
                target = step.branch.goto if holds else step.branch.else_
                go_to = c.step_index[sequence.id][target] if target else i + 1
                started = now
            elif action == "send":
                if not enrolment["holdout"]:
                    refused = may_email(lead) or (
                        "bounced_or_unsubscribed"
                        if _happened(conn, lead["id"], "email_bounced", datetime.min.replace(tzinfo=UTC))
                        or _happened(conn, lead["id"], "email_unsubscribed", datetime.min.replace(tzinfo=UTC))
                        else None
                    )
                    if refused:
                        ended = refused
                        break
                    if _sent_last_week(conn, lead["id"], now) >= c.section.max_per_week:
                        next_at = now + timedelta(days=1)
                        break
                    when = next_send_time(
                        now,
                        country_zone(lead.get("country"), default_zone),
                        c.section.send_window,
                        c.section.send_days,
                    )
                    if when > now:
                        next_at = when
                        break
                    _queue(ws, conn, key, sequence, enrolment["id"], i, lead, owner_names, now)
                    state["sent"] += 1
                started = now
            elif action == "task":
                conn.execute(
                    insert(tasks).values(
                        lead_id=lead["id"],
                        owner_id=lead["owner_id"],
                        title=step.task,
                        origin=f"nurture:{sequence.id}",
                        created_at=now,
                    )
                )
                events.append(
                    _event(ws, ev.TASK_CREATED, lead["id"], now, {"title": step.task, "sequence": sequence.id})
                )
                started = now
            elif action == "stage":
                from leadflow.qualify.service import change_stage

                moved = change_stage(
                    ws, conn, lead["id"], step.stage, reason=f"nurture sequence {sequence.id}", actor="nurture"
                )
                lead["stage"] = moved.get("to", step.stage)
                started = now
            elif action == "exit":
                ended = step.exit
                break
            state["step"], state["step_started_at"] = go_to, started
        else:
            next_at = now  # more to do: the next run goes on
        values: dict[str, Any] = {
            "step": state["step"],
            "step_started_at": state["step_started_at"],
            "sent": state["sent"],
        }
        if ended:
            values.update(
                status="completed" if ended == "completed" else "exited", next_at=None, ended_at=now, end_reason=ended
            )
            events.append(
                _event(
                    ws,
                    ev.NURTURE_ENDED,
                    lead["id"],
                    now,
                    {"sequence": enrolment["sequence_id"], "reason": ended, "sent": state["sent"]},
                )
            )
        else:
            values["next_at"] = next_at or now
        conn.execute(update(e).where(e.c.id == enrolment["id"]).values(**values))
    ev.append(conn, events)
    return len(due)


def _event(ws: Workspace, type_: str, lead_id: int, now: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return ev.event_row(
        type=type_,
        lead_id=lead_id,
        occurred_at=now,
        recorded_at=now,
        actor="nurture",
        config_version=ws.version,
        data=data,
    )


def _queue(
    ws: Workspace,
    conn: Connection,
    key: bytes,
    sequence: SequenceConfig,
    enrolment_id: int,
    step: int,
    lead: Mapping[str, Any],
    owner_names: Mapping[str, str],
    now: datetime,
) -> None:
    base = ws.config.nurture.base_url.rstrip("/")
    about = {"l": lead["id"], "e": enrolment_id, "s": step}
    template = ws.config.nurture.templates[sequence.steps[step].send or ""]
    unsubscribe = links.sign(key, about)
    mailbox = quote(ws.config.nurture.unsubscribe_email or sender_address(), safe="@")
    message = render(
        template,
        lead,
        owner_name=owner_names.get(lead.get("owner_id") or ""),
        track=lambda url: f"{base}/t/c/{links.sign(key, {**about, 'u': url})}",
        unsubscribe_url=f"{base}/u/{unsubscribe}",
        unsubscribe_mailto=f"mailto:{mailbox}?subject=unsubscribe%20{unsubscribe}",
        pixel_url=f"{base}/t/o/{links.sign(key, about)}.gif",
    )
    row = notifications_service.email(
        to=lead["email"], subject=message.subject, body=message.text, lead_id=lead["id"], reason="nurture", now=now
    )
    assert row is not None
    conn.execute(
        insert(notifications).values(
            **row, html=message.html, headers=message.headers, enrolment_id=enrolment_id, step=step
        )
    )


def enrolments_of(conn: Connection, lead_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(e).where(e.c.lead_id == lead_id, e.c.status != "skipped").order_by(e.c.enrolled_at, e.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def stop_reason(conn: Connection, notification: Mapping[str, Any], lead: Mapping[str, Any] | None) -> str | None:
    """Why a queued nurture email must not go out now, or None: the last check, made under the
    lead's lock in the transaction that records the send (``notify.send``)."""
    if lead is None:
        return "the lead is gone"
    refused = may_email(lead)
    if refused:
        return f"the lead may not be emailed any more ({refused})"
    stopped = conn.execute(
        select(lead_events.c.type)
        .where(lead_events.c.lead_id == lead["id"], lead_events.c.type.in_(("email_bounced", "email_unsubscribed")))
        .limit(1)
    ).scalar_one_or_none()
    if stopped:
        return f"the lead may not be emailed any more ({stopped})"
    if notification["enrolment_id"] is None:
        return None
    ended = conn.execute(select(e.c.ended_at, e.c.end_reason).where(e.c.id == notification["enrolment_id"])).first()
    if ended is not None and ended.ended_at is not None and ended.ended_at > notification["created_at"]:
        return f"the sequence ended before it was sent ({ended.end_reason})"
    repeat = conn.execute(
        select(notifications.c.id)
        .where(
            notifications.c.enrolment_id == notification["enrolment_id"],
            notifications.c.step == notification["step"],
            notifications.c.id != notification["id"],
            notifications.c.status.in_(("delivering", "sent", "in_doubt")),
        )
        .limit(1)
    ).scalar_one_or_none()
    if repeat is not None:
        return f"this step was already sent (notification {repeat})"
    return None
