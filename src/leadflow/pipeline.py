"""The one lead pipeline: capture → identity → enrich → qualify → score → route.

Every entry point (API, web form, CSV import, simulator, replay) calls :func:`process` or
:func:`process_many`; a bulk import is the same steps over batches, not a second implementation.
The decisions are pure functions (see the domain packages); this module gathers their inputs with
few queries, applies them, and writes the lead and all its step events in the caller's
transaction: one insert or update for the leads, one ``executemany`` for the events.

Activity on a known lead (:func:`record_activities`) goes through the same score and stage steps,
so a score is recomputed whenever an event arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from leadflow import events as ev
from leadflow.capture.normalize import Capture
from leadflow.capture.schemas import LeadIn
from leadflow.capture.service import prepare
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import leads
from leadflow.enrich.service import derive
from leadflow.handoff.service import hand_off
from leadflow.identity import capture as identity
from leadflow.identity.accounts import link_accounts
from leadflow.identity.service import (
    anonymous_history,
    find_by_email_keys,
    find_by_external_ids,
    link_visitors,
    remember_external_ids,
)
from leadflow.leads.service import LEAD_COLUMNS, PROJECTION_COLUMNS, load_for_update, require_live, save_projections
from leadflow.model import scoring as predictive
from leadflow.privacy import suppression
from leadflow.qualify import product
from leadflow.qualify.criteria import ReviewFlag
from leadflow.qualify.review import open_items
from leadflow.routing import service as routing
from leadflow.scoring.service import apply_score, score_event_data
from leadflow.workspace import Ruleset, Workspace

_INSERT_LEAD = Prepared(insert(leads).returning(leads.c.id), column_keys=LEAD_COLUMNS)
_INSERT_LEADS = insert(leads).returning(leads.c.id, sort_by_parameter_order=True)
_INSERT_LEADS_WITH_IDS = Prepared(insert(leads), column_keys=("id", *LEAD_COLUMNS))
_LAST_LEAD_ID = select(func.coalesce(func.max(leads.c.id), 0))
_UPDATE_LEAD = Prepared(update(leads).where(leads.c.id == bindparam("_id")), column_keys=LEAD_COLUMNS)
ATTRIBUTION_FIELDS = ("source", "medium", "campaign", "landing_page", "referrer", "capture_context")
PERSONAL_CAPTURE_FIELDS = ("email", "email_key", "first_name", "last_name", "phone", "notes")
CONSENT_COLUMNS = {"email": "consent_email", "phone": "consent_phone", "sms": "consent_sms"}


@dataclass
class LeadResult:
    """What the pipeline did with one submission."""

    lead_id: int
    created: bool
    stage: str
    score: int
    grade: str | None
    owner_id: str | None
    team_id: str | None
    sla_policy: str | None
    sla_due_at: datetime | None
    events: list[str] = field(default_factory=list)
    lead: dict[str, Any] = field(default_factory=dict, repr=False)  # the lead row as written


@dataclass
class _Plan:
    capture: Capture
    before: dict[str, Any] | None
    lead: dict[str, Any]
    events: list[dict[str, Any]]
    assignment: routing.Assignment | None = None
    handoff: bool = False  # entered the handoff stage
    link_visitor: str | None = None
    review: ReviewFlag | None = None
    match: identity.Candidate | None = None


# -- capture path ------------------------------------------------------------------------------


def process(
    ws: Workspace,
    conn: Connection,
    payload: LeadIn | Mapping[str, Any],
    *,
    actor: str = "api",
    event_data: Mapping[str, Any] | None = None,
) -> LeadResult:
    """Take one submission through the whole pipeline; raises ``InvalidInput`` for bad input.
    ``event_data`` goes on its capture event (facts about how it arrived, no personal data)."""
    capture = prepare(
        payload, default_region=ws.config.workspace.default_region, now=ws.clock.now(), rules=ws.rules.capture
    )
    if event_data:
        capture.event_data = dict(event_data)
    return process_many(ws, conn, [capture], actor=actor)[0]


def process_many(
    ws: Workspace, conn: Connection, captures: Sequence[Capture], *, actor: str = "api"
) -> list[LeadResult]:
    """Take clean captures through the pipeline in one transaction, in order.

    Submissions for the same person within the batch see each other: the second one finds the
    lead the first one created, by its email or, like any stored lead, by the identity model.
    The batch is matched against the database in one query up front; a submission sharing an
    email or a blocking key with one planned earlier in the batch first has those written and
    filed, and is matched again, so the outcome does not depend on how rows were batched.

    Captures not screened yet are checked against the erasure suppression list (one query): one
    carrying an erased person's email or phone raises ``Conflict`` naming the field, or, taken
    with fresh consent, becomes a brand-new lead matched to no one and linked to no account.
    """
    unscreened = [c for c in captures if not c.screened]
    if unscreened:
        refused = suppression.screen(ws, conn, unscreened)
        if refused:
            raise refused[min(refused)]
    rules = ws.rules
    now = ws.clock.now()
    keys = {c.email_key for c in captures if c.email_key}
    external = {x for c in captures if (x := c.fields.get("external_id"))}
    _lock_identity_keys(conn, keys | {f"external:{x}" for x in external})
    known = find_by_email_keys(conn, keys)
    by_external = find_by_external_ids(conn, external)
    history = anonymous_history(conn, {c.fields["visitor_id"] for c in captures if c.fields.get("visitor_id")})
    probable = identity.probable_matches(conn, rules, captures, known)
    results: list[LeadResult] = []
    plans: list[_Plan] = []
    touched: dict[int, dict[str, Any]] = {}  # leads this batch already changed, by id
    created_keys: set[str] = set()
    created_external: set[str] = set()
    filed = identity.BatchKeys(rules)  # blocking keys of the leads this batch created or changed

    def flush() -> None:
        nonlocal plans
        results.extend(_write(ws, conn, plans))
        identity.after_capture(ws, conn, [(p.before, p.lead, p.match) for p in plans])
        remember_external_ids(conn, {(x, p.lead["id"]) for p in plans if (x := p.capture.fields.get("external_id"))})
        plans = []
        created_keys.clear()
        created_external.clear()

    last = len(captures) - 1
    for i, capture in enumerate(captures):
        key = capture.email_key
        xid = capture.fields.get("external_id")
        if (key and key in created_keys) or (xid and xid in created_external):
            flush()
            known.update(find_by_email_keys(conn, [key] if key else []))
            by_external.update(find_by_external_ids(conn, [xid] if xid else []))
        # the id of the system it came from names the person first; then the email
        existing = by_external.get(xid) if xid else None
        if existing is not None and existing["erased_at"] is not None:
            existing = None
        by_email = known.get(key) if key else None
        if existing is None:
            existing = by_email
        # found by the email of a lead merged into it (the survivor keeps its own address, which
        # would otherwise identify no one), or by its external id while the email names another
        merged_email = existing is not None and (
            existing["email_key"] != key
            if existing is by_email
            else by_email is not None and by_email["id"] != existing["id"]
        )
        match = None
        if existing is None and not capture.after_erasure:  # a person back after erasure is new
            if i and filed.shares(capture):  # may be someone this batch created or changed
                flush()
                again = identity.probable_matches(conn, rules, [capture], known)
                probable[i] = again.get(0)
            match = probable.get(i)
        if match is not None and match.decision == "merge":
            existing = match.lead
        if existing is not None:
            existing = touched.get(existing["id"], existing)
        plan = _plan(
            rules,
            capture,
            existing,
            actor=actor,
            now=now,
            history=history.pop(capture.fields.get("visitor_id"), None),
            match=match,
            keep_email=merged_email,
        )
        plans.append(plan)
        if i < last:
            filed.add(plan.before, plan.lead)
        if existing is None:
            if key:
                created_keys.add(key)
            if xid:
                created_external.add(xid)
        else:
            touched[existing["id"]] = plan.lead
            if key and not merged_email:
                known[key] = plan.lead  # a later submission in this batch builds on this one
            if xid:
                by_external[xid] = plan.lead
    flush()
    return results


_LOCK_ONE = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_LOCK_MANY = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k"
)


def _lock_identity_keys(conn: Connection, keys: set[str]) -> None:
    """On PostgreSQL, serialise concurrent captures of the same person (SQLite already is):
    transaction-scoped advisory locks on the email keys, taken in a fixed order."""
    if not keys or conn.dialect.name != "postgresql":
        return
    if len(keys) == 1:
        conn.execute(_LOCK_ONE, {"key": next(iter(keys))})
    else:
        conn.execute(_LOCK_MANY, {"keys": sorted(keys)})


def _new_lead(capture: Capture, version: str) -> dict[str, Any]:
    lead: dict[str, Any] = dict.fromkeys(LEAD_COLUMNS)
    lead.update(
        id=None,
        created_at=capture.occurred_at,
        updated_at=capture.occurred_at,
        do_not_contact=False,
        score=0,
        fit_score=0,
        engagement_score=0,
        is_competitor=False,
        pql=False,
        pqa=False,
        stage_entered_at=capture.occurred_at,
        config_version=version,
        sla_step=0,
        historical=capture.history,
    )
    return lead


def _plan(
    rules: Ruleset,
    capture: Capture,
    existing: dict[str, Any] | None,
    *,
    actor: str,
    now: datetime,
    history: list[dict[str, Any]] | None = None,
    match: identity.Candidate | None = None,
    keep_email: bool = False,
) -> _Plan:
    version = rules.version
    at = capture.occurred_at
    if capture.history:
        actor = ev.HISTORY
    lead = dict(existing) if existing is not None else _new_lead(capture, version)
    before = dict(existing) if existing is not None else None
    out: list[dict[str, Any]] = []

    def event(
        type_: str,
        data: Mapping[str, Any],
        *,
        personal: Mapping[str, Any] | None = None,
        stage: str | None = None,
        visitor_id: str | None = None,
    ) -> None:
        out.append(
            ev.event_row(
                type=type_,
                lead_id=lead["id"],
                occurred_at=at,
                recorded_at=now,
                actor=actor,
                config_version=version,
                data=data,
                personal=personal,
                stage=stage,
                visitor_id=visitor_id,
            )
        )

    # capture + identity: apply the submission (most recent non-empty value wins; the first
    # touch keeps its attribution, later touches are recorded on their own event).
    changed: list[str] = []
    for name, value in capture.personal.items():
        if keep_email and name in ("email", "email_key"):
            continue
        if lead.get(name) != value:
            lead[name] = value
            changed.append(name)
    for name, value in capture.fields.items():
        if existing is not None and name in ATTRIBUTION_FIELDS and lead.get(name):
            continue
        if name in ("visitor_id", "external_id") and lead.get(name):
            continue
        if lead.get(name) != value:
            lead[name] = value
            changed.append(name)
    if capture.custom:
        merged = {**(lead.get("custom") or {}), **capture.custom}
        if merged != lead.get("custom"):
            lead["custom"] = merged
            changed.append("custom")
    consent_changed = _apply_consent(lead, capture.consent)
    touch = {name: capture.fields[name] for name in ATTRIBUTION_FIELDS if name in capture.fields}
    if capture.utm:
        touch["utm"] = capture.utm
    personal = {k: v for k, v in capture.personal.items() if k != "email_key"}
    if existing is None:
        event(
            ev.LEAD_CREATED,
            {
                **touch,
                "fields": sorted(capture.fields),
                "identity": identity.trace(match, matched=False),
                **({"after_erasure": "fresh_consent"} if capture.after_erasure else {}),
                **capture.event_data,
            },
            personal=personal,
            visitor_id=capture.fields.get("visitor_id"),
        )
    else:
        event(
            ev.LEAD_CAPTURED,
            {
                **touch,
                "changed": sorted(c for c in changed if c not in PERSONAL_CAPTURE_FIELDS),
                "identity": identity.trace(match, matched=True, lead_id=existing["id"]),
                **capture.event_data,
            },
            personal={k: v for k, v in personal.items() if k in changed} or None,
        )
    if consent_changed:
        event(ev.CONSENT_CHANGED, {**(capture.consent or {}), "via": "capture"})

    # enrich
    derived, trace = derive(lead)
    derived_changed = {k: v for k, v in derived.items() if lead.get(k) != v}
    lead.update(derived)
    if existing is None or derived_changed:
        event(ev.LEAD_ENRICHED, {"derived": derived_changed if existing is not None else derived, "trace": trace})

    lead["is_competitor"] = rules.criteria.is_competitor(lead)

    # score: fit from scratch; engagement carried forward (and decayed). The visitor's
    # anonymous history counts once they are known; a returning submission is a form_submit.
    model = rules.scoring
    state = model.engagement_of(lead)
    replay = [(past, past["occurred_at"]) for past in history or ()]
    if existing is not None:
        replay.append(({"type": "form_submit", **touch}, at))
    for past, when in replay:
        state, _ = model.add_event(state, past, lead, when)
    state = model.decayed(state, at)
    score = model.score(lead, state)
    previous = before["score"] if before is not None else None
    apply_score(lead, score, state)
    if existing is None or score.score != previous or score.grade != before.get("grade"):
        event(ev.LEAD_SCORED, score_event_data(score, model, previous))

    # qualify (criteria): after the score, so criteria can weigh it and the engagement behind it
    criteria = rules.criteria.evaluate(lead)
    if existing is None or criteria != lead.get("criteria"):
        event(ev.LEAD_QUALIFIED, {"criteria": criteria})
    lead["criteria"] = criteria

    # qualify (stage): a new lead enters the funnel at the furthest stage its rules allow (one
    # event; entering a later stage counts as having passed the earlier ones). Imported stages
    # are facts from the system the lead came from: the rules do not move it then.
    current = lead["stage"] if existing is not None else rules.stages.first
    decision = None if capture.stage_given else rules.stages.automatic(current, lead)
    if decision is not None:
        event(
            ev.STAGE_CHANGED,
            {"from": lead["stage"], "to": decision.to, "rule": decision.rule, "why": decision.why},
            stage=decision.to,
        )
        lead.update(stage=decision.to, stage_entered_at=at, stage_reason=decision.why)
    elif existing is None:
        event(ev.STAGE_CHANGED, {"from": None, "to": current, "why": "new lead"}, stage=current)
        lead["stage"] = current

    lead["updated_at"] = max(at, lead["updated_at"]) if existing is not None else at
    lead["last_activity_at"] = max(filter(None, (lead.get("last_activity_at"), at)))
    plan = _Plan(capture=capture, before=before, lead=lead, events=out, review=rules.review.check(lead), match=match)
    if history:
        plan.link_visitor = capture.fields["visitor_id"]
        lead["last_activity_at"] = max(lead["last_activity_at"], history[-1]["occurred_at"])

    # route: a returning lead goes back to its owner; a new one, or one without an owner that is
    # in play again, follows the routing rules. History is not routed: it keeps the owner it had.
    if not capture.history:
        lead["historical"] = False
    if capture.owner_id and capture.owner_id != lead.get("owner_id") and not capture.history:
        plan.assignment = routing.plan_for_owner(rules, lead, at, actor, capture.owner_id)
    elif capture.owner_id and lead.get("owner_id") is None:  # history never takes a lead from its owner
        lead.update(owner_id=capture.owner_id, team_id=capture.team_id, assigned_at=at)
        event(
            ev.LEAD_ASSIGNED,
            {"owner": capture.owner_id, "team": capture.team_id, "strategy": "imported", "why": "owner in the import"},
        )
    elif lead.get("owner_id") is None and lead["stage"] not in routing.CLOSED and not capture.history:
        plan.assignment = routing.plan(rules, lead, at, actor)
    plan.handoff = decision is not None and decision.to == rules.config.handoff.stage and not capture.history
    if capture.history:
        plan.review = None
    return plan


def _apply_consent(lead: dict[str, Any], consent: Mapping[str, Any] | None) -> bool:
    if not consent:
        return False
    changed = False
    for channel, column in CONSENT_COLUMNS.items():
        if channel in consent and lead.get(column) != consent[channel]:
            lead[column] = consent[channel]
            changed = True
    if consent.get("do_not_contact") and not lead.get("do_not_contact"):
        lead["do_not_contact"] = True
        changed = True
    return changed


def _write(ws: Workspace, conn: Connection, plans: list[_Plan]) -> list[LeadResult]:
    if not plans:
        return []
    rules = ws.rules
    now = plans[0].events[0]["recorded_at"]
    account_owners = link_accounts(  # a person back after erasure starts with no account (nor its owner)
        conn,
        [p.lead for p in plans if not (p.capture.after_erasure and p.before is None)],
        now,
        company_names=rules.config.identity.accounts.company_name,
    )
    active = routing.directory(ws, conn).by_id
    for p in plans:  # a returning lead whose owner has left is routed afresh
        if (
            p.before is not None
            and p.assignment is None
            and not p.capture.history
            and not p.capture.owner_id
            and p.lead.get("owner_id") not in (None, *active)
        ):
            p.lead["owner_id"] = None
            p.assignment = routing.plan(rules, p.lead, p.capture.occurred_at, p.events[0]["actor"])
    assignments = [p.assignment for p in plans if p.assignment is not None]
    routing.assign(ws, conn, assignments, account_owners=account_owners)

    new = [p for p in plans if p.before is None]
    old = [p for p in plans if p.before is not None]
    if len(new) == 1:
        new[0].lead["id"] = _INSERT_LEAD.execute(conn, new[0].lead)[0]["id"]
    elif new and conn.dialect.name == "sqlite":
        # The transaction holds SQLite's write lock, so the next rowids are ours to give: one
        # executemany instead of a multi-row INSERT ... RETURNING built by SQLAlchemy.
        last = conn.execute(_LAST_LEAD_ID).scalar_one()
        for i, plan in enumerate(new, 1):
            plan.lead["id"] = last + i
        _INSERT_LEADS_WITH_IDS.executemany(conn, [p.lead for p in new])
    elif new:
        ids = conn.execute(_INSERT_LEADS, [{k: p.lead[k] for k in LEAD_COLUMNS} for p in new]).scalars().all()
        for plan, lead_id in zip(new, ids, strict=True):
            plan.lead["id"] = lead_id
    if old:
        _UPDATE_LEAD.executemany(conn, [{"_id": p.lead["id"], **p.lead} for p in old])

    link_visitors(conn, [(p.link_visitor, p.lead["id"]) for p in plans if p.link_visitor])
    rows = []
    results = []
    for plan in plans:
        lead = plan.lead
        for row in plan.events:
            row["lead_id"] = lead["id"]
        rows.extend(plan.events)
        results.append(
            LeadResult(
                lead_id=lead["id"],
                created=plan.before is None,
                stage=lead["stage"],
                score=lead["score"],
                grade=lead["grade"],
                owner_id=lead["owner_id"],
                team_id=lead["team_id"],
                sla_policy=lead["sla_policy"],
                sla_due_at=lead["sla_due_at"],
                events=[row["type"] for row in plan.events],
                lead=lead,
            )
        )
    assigned = routing.finish(ws, conn, assignments, now)
    handed = hand_off(
        ws, conn, [(p.lead, p.capture.occurred_at, p.events[0]["actor"]) for p in plans if p.handoff], now, route=False
    )
    rows.extend(assigned)
    rows.extend(handed)
    rows.extend(open_items(ws, conn, [(p.lead, p.review) for p in plans if p.review is not None], now))
    predictive.stamp(
        ws,
        conn,
        rows,
        {p.lead["id"]: p.lead for p in plans},
        [p.lead["id"] for p in plans if p.before is not None or p.link_visitor],
    )
    ev.append(conn, rows)
    for result, plan in zip(results, plans, strict=True):
        if plan.assignment is not None:
            result.events.append(ev.LEAD_ASSIGNED)
        if plan.handoff:
            result.events.append(ev.HANDOFF_SENT)
    return results


# -- activity path -----------------------------------------------------------------------------


@dataclass
class Activity:
    """Something a lead did or that was done to reach them."""

    type: str
    lead_id: int
    occurred_at: datetime
    actor: str = "api"
    data: dict[str, Any] = field(default_factory=dict)
    personal: dict[str, Any] | None = None
    visitor_id: str | None = None
    external_id: str | None = None  # its id in the system it came from


@dataclass
class ActivityResult:
    lead_id: int
    score: int
    stage: str
    score_changed: bool
    first_contact: bool


def record_activities(ws: Workspace, conn: Connection, activities: Sequence[Activity]) -> list[ActivityResult]:
    """Append activity events and carry their effects: contact, consent, score and stage."""
    if not activities:
        return []
    rules = ws.rules
    model = rules.scoring
    now = ws.clock.now()
    ids = {a.lead_id for a in activities}
    current = load_for_update(conn, ids)
    require_live(current, ids)
    rows: list[dict[str, Any]] = []
    touched: set[int] = set()
    results = []
    q = ws.config.qualification
    product_events = {spec.event for spec in (q.pql, q.pqa) if spec is not None}
    handoff_stage = ws.config.handoff.stage
    handoffs: list[tuple[dict[str, Any], datetime, str]] = []
    for activity in activities:
        lead = current[activity.lead_id]
        at = activity.occurred_at

        def event(
            type_: str,
            data: Mapping[str, Any],
            *,
            personal: Mapping[str, Any] | None = None,
            stage: str | None = None,
            lead: dict[str, Any] = lead,
            activity: Activity = activity,
            actor: str | None = None,
            external_id: str | None = None,
        ) -> None:
            rows.append(
                ev.event_row(
                    type=type_,
                    lead_id=lead["id"],
                    occurred_at=activity.occurred_at,
                    recorded_at=now,
                    actor=actor or activity.actor,
                    config_version=rules.version,
                    data=data,
                    personal=personal,
                    stage=stage,
                    visitor_id=activity.visitor_id,
                    external_id=external_id,
                )
            )

        event(activity.type, activity.data, personal=activity.personal, external_id=activity.external_id)
        if lead.get("erased_at") is not None:
            results.append(ActivityResult(lead["id"], lead["score"], lead["stage"], False, False))
            continue
        before = tuple(lead[k] for k in PROJECTION_COLUMNS)
        if activity.actor != ev.HISTORY:
            lead["historical"] = False  # live activity: the lead is in play again
        active = activity.type in ev.ENGAGEMENT_TYPES or activity.type in ("call", "email_sent", "meeting_held")
        if active and (lead["last_activity_at"] is None or at > lead["last_activity_at"]):
            lead["last_activity_at"] = at
        first_contact = False
        history = activity.actor == ev.HISTORY
        system = ev.HISTORY if history else "system"
        if (
            history
            and lead["first_contact_at"] is not None
            and at < lead["first_contact_at"]
            and ev.is_outbound_contact(activity.type, activity.data, activity.actor)
        ):
            lead["first_contact_at"] = at  # an export need not be in time order: the earliest counts
        elif lead["first_contact_at"] is None and ev.is_outbound_contact(activity.type, activity.data, activity.actor):
            first_contact = True
            lead["first_contact_at"] = at
            lead["sla_next_at"] = None  # no more reminders or escalations
            due = lead.get("sla_due_at")
        if first_contact and (due is not None or lead.get("sla_policy") is not None):  # a clock to stop
            event(
                ev.SLA_STOPPED,
                {
                    "policy": lead.get("sla_policy"),
                    "due_at": due,
                    "met": None if due is None else at <= due,
                    "response_seconds": int((at - lead["created_at"]).total_seconds()),
                    "by": activity.type,
                },
            )
        if activity.type == "email_unsubscribed" and lead.get("consent_email") is not False:
            lead["consent_email"] = False
            event(ev.CONSENT_CHANGED, {"email": False, "via": "email_unsubscribed"})

        if activity.type in product_events:
            ev.append(conn, rows)  # the PQL/PQA rules count stored usage, this event included
            rows.clear()
            rows.extend(product.check(ws, conn, lead, at, activity.actor))
        state, added = model.add_event(model.engagement_of(lead), {"type": activity.type, **activity.data}, lead, at)
        score_changed = False
        if added or (rows and rows[-1]["type"] in (ev.PQL_REACHED, ev.PQA_REACHED)):
            score = model.score(lead, state)
            previous = lead["score"]
            apply_score(lead, score, state)
            if score.score != previous:
                score_changed = True
                event(ev.LEAD_SCORED, score_event_data(score, model, previous, trigger=activity.type))
        if score_changed:
            criteria = rules.criteria.evaluate(lead)
            if criteria != lead.get("criteria"):
                lead["criteria"] = criteria
                event(ev.LEAD_QUALIFIED, {"criteria": criteria, "trigger": activity.type}, actor=system)
        # history keeps the stages the system it came from recorded: rules do not move it
        decision = None if history else rules.stages.automatic(lead["stage"], lead)
        if decision is not None:
            event(
                ev.STAGE_CHANGED,
                {"from": lead["stage"], "to": decision.to, "rule": decision.rule, "why": decision.why},
                stage=decision.to,
                actor=system,
            )
            lead.update(stage=decision.to, stage_entered_at=at, stage_reason=decision.why)
            if decision.to == handoff_stage:
                handoffs.append((lead, at, "system"))
        if tuple(lead[k] for k in PROJECTION_COLUMNS) != before:
            lead["updated_at"] = max(lead["updated_at"], at)
            touched.add(lead["id"])
        results.append(ActivityResult(lead["id"], lead["score"], lead["stage"], score_changed, first_contact))

    if handoffs:
        rows.extend(hand_off(ws, conn, handoffs, now))
        touched.update(lead["id"] for lead, _, _ in handoffs)
    if touched:
        save_projections(conn, [current[i] for i in sorted(touched)])
    predictive.stamp(ws, conn, rows, current, current)
    ev.append(conn, rows)
    return results


def record_activity(ws: Workspace, conn: Connection, activity: Activity) -> ActivityResult:
    return record_activities(ws, conn, [activity])[0]
