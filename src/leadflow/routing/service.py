"""Routing: assignment, and SLA reminders and escalations.

Owners and teams, and the directory routing reads them from, live in
:mod:`leadflow.routing.directory` (their names are re-exported here). Routing runs in the
capturing transaction in three steps:

1. :func:`plan` (pure): the first routing rule that holds gives the destination, the first SLA
   policy that holds gives the deadline.
2. :func:`assign`: the team's strategy picks the owner; candidates who cannot take the lead are
   skipped with a reason; the round-robin cursor and capacity caps are taken atomically.
3. :func:`finish`: the account gets its first owner, the owner is notified, and the whole
   decision is kept as the ``lead_assigned`` event's trace.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select, update

from leadflow import events as ev
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import CLOSED_STAGES, accounts, leads, owners
from leadflow.errors import Conflict, InvalidInput, Problem
from leadflow.leads.service import load_for_update, require_live, save_projections
from leadflow.notify import service as notifications
from leadflow.notify.service import lead_lines, queue_email
from leadflow.routing.availability import Candidate, screen
from leadflow.routing.directory import (  # noqa: F401 (re-exported: callers import owners and teams from here)
    DIRECTORY_TTL_S,
    Directory,
    directory,
    forget_directory,
    get_owner,
    list_owners,
    list_teams,
    open_loads,
    sync_from_config,
    upsert_owners,
    upsert_teams,
)
from leadflow.routing.rules import Route
from leadflow.routing.strategies import advance_cursor, by_load, rotation, take_capacity

if TYPE_CHECKING:
    from leadflow.workspace import Ruleset, Workspace

CLOSED = CLOSED_STAGES
SALES_KINDS = ("team", "owner", "queue")
NOTIFY_WITHIN = timedelta(hours=1)  # leads captured longer ago (imports of history) notify nobody


# -- 1. the destination and the deadline (pure) ----------------------------------------------


@dataclass
class Assignment:
    lead: dict[str, Any]
    route: Route
    at: datetime
    actor: str
    trace: dict[str, Any] = field(default_factory=dict)


NAMED_BY_CALLER = "owner named by the caller"  # the rule of a route to an owner an import names


def plan(rules: Ruleset, lead: dict[str, Any], at: datetime, actor: str) -> Assignment | None:
    """Choose the lead's destination and SLA deadline (on the lead, in place). None when no rule
    routes it, or when it already sits at the ownerless destination the rules give again."""
    route, tried = rules.routing.choose(lead)
    if route is None or (not route.assigns_owner and lead.get("destination") == route.destination):
        return None
    sla = rules.sla.deadline(lead, at) if route.kind in SALES_KINDS else None
    lead.update(
        destination=route.destination,
        assigned_at=at,
        sla_policy=sla.policy if sla else None,
        sla_due_at=sla.due_at if sla else None,
        owner_id=None,
        team_id=route.target if route.kind in ("team", "queue") else None,
    )
    schedule(rules, lead, at)
    trace = {
        "rule": route.rule,
        "why": route.why,
        "rules_tried": tried,
        "destination": route.destination,
        "sla": {"policy": sla.policy, "due_at": sla.due_at, "why": sla.why} if sla else None,
    }
    return Assignment(lead=lead, route=route, at=at, actor=actor, trace=trace)


def plan_for_owner(rules: Ruleset, lead: dict[str, Any], at: datetime, actor: str, owner_id: str) -> Assignment:
    """Give the lead to ``owner_id`` (an import names the owner), with the deadline, reminders and
    escalation the SLA policies give it, and the owner's availability and capacity checked as for
    any routed lead (an owner who cannot take it passes it to their team)."""
    route = Route(rule=NAMED_BY_CALLER, kind="owner", target=owner_id, why=f"the import names {owner_id}")
    sla = rules.sla.deadline(lead, at)
    lead.update(
        destination=route.destination,
        assigned_at=at,
        sla_policy=sla.policy if sla else None,
        sla_due_at=sla.due_at if sla else None,
        owner_id=None,
        team_id=None,
    )
    schedule(rules, lead, at)
    trace = {
        "rule": route.rule,
        "why": route.why,
        "destination": route.destination,
        "sla": {"policy": sla.policy, "due_at": sla.due_at, "why": sla.why} if sla else None,
    }
    return Assignment(lead=lead, route=route, at=at, actor=actor, trace=trace)


def schedule(rules: Ruleset, lead: dict[str, Any], start: datetime) -> None:
    """The next reminder or escalation still ahead of ``start`` (a reminder due before the lead
    even arrived is skipped)."""
    if lead.get("first_contact_at") is not None:
        lead["sla_next_at"] = None
        return
    steps = rules.sla.steps(lead.get("sla_policy"), lead.get("sla_due_at"))
    ahead = [i for i, s in enumerate(steps) if s.at > start]
    lead["sla_step"] = ahead[0] if ahead else len(steps)
    lead["sla_next_at"] = steps[ahead[0]].at if ahead else None


# -- 2. the owner ----------------------------------------------------------------------------


def assign(
    ws: Workspace,
    conn: Connection,
    items: Sequence[Assignment],
    *,
    account_owners: Mapping[int, str | None] | None = None,
    exclude: Collection[str] = (),
) -> None:
    """Give each team or owner route its owner (on the lead, in place).

    ``account_owners`` (account id → owner) are the owners of the leads' accounts when the caller
    has them; others are read here. ``exclude`` are owners who must not get these leads (an
    escalation's current owner)."""
    if not items:
        return
    d = directory(ws, conn)
    default_hours = ws.rules.sla.hours
    owners_of_accounts = dict(account_owners or {})
    account_first = ws.config.routing.account_owner_first
    if account_first:
        unknown = {
            a.lead["account_id"]
            for a in items
            if a.lead.get("account_id") and a.lead["account_id"] not in owners_of_accounts
        }
        if unknown:
            owners_of_accounts.update(
                conn.execute(select(accounts.c.id, accounts.c.owner_id).where(accounts.c.id.in_(unknown))).all()
            )
    owned_here: set[int] = set()
    by_team: dict[str, list[Assignment]] = {}
    for a in items:
        route = a.route
        if route.kind == "queue":
            a.trace.update(
                owner=None, team=route.target, strategy="queue", waiting="in the team queue for a rep to take"
            )
            continue
        if not route.assigns_owner:
            a.trace.update(owner=None, team=None, strategy=route.kind)
            continue
        a.trace.setdefault("skipped", [])
        if (
            account_first
            and route.rule != NAMED_BY_CALLER
            and _to_account_owner(conn, d, a, owners_of_accounts, exclude)
        ):
            continue
        if route.kind == "owner":
            named = d.by_id.get(route.target)
            if named is not None and named.id not in exclude:
                why = "out of office" if named.absent(a.at) else _capacity(conn, named, a.at)
                if why is None:
                    _give(a, named, "named owner", f"the rule names {named.id}")
                    continue
            else:
                why = "inactive" if named is None else "excluded"
            a.trace["skipped"].append({"owner": route.target, "why": why})
            if named is None or named.team is None:
                _wait(a, None, f"{route.target} cannot take it ({why}) and has no team to fall back on")
                continue
            by_team.setdefault(named.team, []).append(a)
            continue
        by_team.setdefault(route.target, []).append(a)

    for team_id, team_items in by_team.items():
        members = d.by_team.get(team_id, [])  # the rotation is over the whole team ...
        if not [m for m in members if m.id not in exclude]:
            for a in team_items:
                _wait(a, team_id, f"team {team_id} has no active owners")
            continue
        strategy = d.strategies.get(team_id, "round_robin")
        last = advance_cursor(conn, team_id, len(team_items))
        loads = open_loads(conn, [m.id for m in members]) if strategy == "least_load" else {}
        for k, a in enumerate(team_items):
            position = last - len(team_items) + 1 + k
            if a.lead.get("account_id") in owned_here and _to_account_owner(conn, d, a, owners_of_accounts, exclude):
                continue  # its account got an owner earlier in this batch
            seen = screen(
                [m for m in members if m.id not in exclude],  # ... the current owner is not a candidate
                at=a.at,
                default_hours=default_hours,
                language=a.lead.get("language") if a.route.require_language else None,
                skills=a.route.require_skills,
            )
            skipped = a.trace["skipped"]
            skipped.extend(seen.skipped)
            pool = {c.id for c in (seen.eligible or seen.off_hours)}
            if not seen.eligible and seen.off_hours:
                a.trace["note"] = "nobody is in working hours now: the next in turn gets it"
            elif seen.off_hours:
                skipped.extend({"owner": c.id, "why": "outside working hours"} for c in seen.off_hours)
            order = [
                m for m in rotation(members, position, weighted=strategy == "weighted_round_robin") if m.id in pool
            ]
            if strategy == "least_load":
                order = by_load(order, loads)
            a.trace.update(team=team_id, position=position, candidates=[m.id for m in members])
            for candidate in order:
                why = _capacity(conn, candidate, a.at)
                if why is None:
                    loads[candidate.id] = loads.get(candidate.id, 0) + 1
                    _give(a, candidate, strategy, None)
                    if account_first and a.lead.get("account_id") and not owners_of_accounts.get(a.lead["account_id"]):
                        owners_of_accounts[a.lead["account_id"]] = candidate.id  # finish() records it
                        owned_here.add(a.lead["account_id"])
                    break
                skipped.append({"owner": candidate.id, "why": why})
            else:
                _wait(a, team_id, "nobody can take it now (capacity, absence, language or skills): waiting in the team")


def _to_account_owner(
    conn: Connection,
    d: Directory,
    a: Assignment,
    owners_of_accounts: Mapping[int, str | None],
    exclude: Collection[str],
) -> bool:
    """Give the lead to its account's owner when they can take it; note why not otherwise."""
    owner = d.by_id.get(owners_of_accounts.get(a.lead.get("account_id") or 0) or "")
    if owner is None or owner.id in exclude:
        return False
    why = "out of office" if owner.absent(a.at) else _capacity(conn, owner, a.at)
    if why is None:
        _give(a, owner, "account owner", f"{owner.id} owns the lead's account")
        return True
    a.trace["skipped"].append({"owner": owner.id, "why": f"account owner, {why}"})
    return False


def _capacity(conn: Connection, candidate: Candidate, at: datetime) -> str | None:
    if candidate.capacity_day is None and candidate.capacity_week is None:
        return None
    return take_capacity(conn, candidate, at)


def _give(a: Assignment, owner: Candidate, strategy: str, why: str | None) -> None:
    a.lead["owner_id"] = owner.id
    a.lead["team_id"] = owner.team
    a.trace.update(owner=owner.id, team=owner.team, strategy=strategy)
    if why:
        a.trace["owner_why"] = why


def _wait(a: Assignment, team: str | None, why: str) -> None:
    a.lead["owner_id"] = None
    a.lead["team_id"] = team
    a.trace.update(owner=None, team=team, strategy="waiting", waiting=why)


# -- 3. account, notification, event ---------------------------------------------------------


_CLAIM_ACCOUNT = Prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("_account"), accounts.c.owner_id.is_(None))
    .values(owner_id=bindparam("_owner"), updated_at=bindparam("_now"))
)


def finish(ws: Workspace, conn: Connection, items: Sequence[Assignment], now: datetime) -> list[dict[str, Any]]:
    """After the leads have ids: accounts without an owner get the lead's owner, owners are
    notified, and each assignment becomes a ``lead_assigned`` event (returned, to append)."""
    first = {
        a.lead["account_id"]: a.lead["owner_id"] for a in items if a.lead.get("owner_id") and a.lead.get("account_id")
    }
    if first:
        _CLAIM_ACCOUNT.executemany(
            conn, [{"_account": account, "_owner": owner, "_now": now} for account, owner in first.items()]
        )
    if ws.config.routing.notify_owner and not ws.quiet:
        d = directory(ws, conn)
        notifications.queue(
            conn,
            (
                assigned_email(owner, a, now)
                for a in items
                if (owner := d.by_id.get(a.lead.get("owner_id") or "")) is not None and now - a.at <= NOTIFY_WITHIN
            ),
        )
    return [
        ev.event_row(
            type=ev.LEAD_ASSIGNED,
            lead_id=a.lead["id"],
            occurred_at=a.at,
            recorded_at=now,
            actor=a.actor,
            config_version=ws.version,
            data=a.trace,
        )
        for a in items
    ]


def assigned_email(owner: Candidate, a: Assignment, now: datetime) -> dict[str, Any] | None:
    lead = a.lead
    why = a.trace.get("owner_why") or f"{a.trace.get('strategy')} in team {a.trace.get('team')}"
    return notifications.email(
        to=owner.email,
        subject=f"New lead for you: {lead.get('company') or lead.get('email') or lead['id']}",
        body=f"Hello {owner.name},\n\nA new lead is yours ({why}; rule {a.trace.get('rule')}).\n\n{lead_lines(lead)}\n",
        lead_id=lead["id"],
        reason="lead_assigned",
        now=now,
    )


def route_leads(
    ws: Workspace, conn: Connection, items: Sequence[tuple[dict[str, Any], datetime, str]], now: datetime
) -> list[dict[str, Any]]:
    """Route leads that already exist (entering the handoff stage, back from nurture): all three
    steps; the caller saves the leads and appends the returned events."""
    planned = [a for lead, at, actor in items if (a := plan(ws.rules, lead, at, actor)) is not None]
    assign(ws, conn, planned)
    return finish(ws, conn, planned, now)


def reassign(
    ws: Workspace,
    conn: Connection,
    lead_id: int,
    *,
    owner: str | None,
    team: str | None,
    actor: str,
    reason: str | None,
) -> dict[str, Any]:
    """Give a lead to a named owner, or to the next owner of a team by its strategy (a manager's
    decision, or a rep taking a lead from the queue)."""
    found = load_for_update(conn, [lead_id])
    require_live(found, [lead_id])
    lead = found[lead_id]
    if lead["erased_at"] is not None or lead["merged_into_id"] is not None:
        raise Conflict(f"lead {lead_id} was {'erased' if lead['erased_at'] else 'merged'}; it cannot be assigned")
    now = ws.clock.now()
    d = directory(ws, conn)
    if owner is not None and owner not in d.by_id:
        raise InvalidInput("unknown owner", [Problem("owner", f"no active owner {owner!r}")])
    if team is not None and team not in d.by_team:
        raise InvalidInput("unknown team", [Problem("team", f"no team {team!r} with active owners")])
    kind, target = ("owner", owner) if owner is not None else ("team", team)
    assert target is not None
    route = Route(rule="manual", kind=kind, target=target, why=reason or f"assigned by {actor}")
    previous = lead["owner_id"]
    lead.update(owner_id=None, destination=route.destination)
    if lead.get("sla_policy") is None:
        sla = ws.rules.sla.deadline(lead, now)
        lead.update(sla_policy=sla.policy if sla else None, sla_due_at=sla.due_at if sla else None)
    a = Assignment(
        lead=lead,
        route=route,
        at=now,
        actor=actor,
        trace={"rule": "manual", "why": route.why, "previous_owner": previous},
    )
    if owner is not None:
        named = d.by_id[owner]
        _give(a, named, "manual", f"{actor} chose {owner}")
    else:
        assign(ws, conn, [a])
    lead["assigned_at"] = now
    schedule(ws.rules, lead, now)
    lead["updated_at"] = max(lead["updated_at"], now)
    save_projections(conn, [lead])
    ev.append(conn, finish(ws, conn, [a], now))
    return a.trace


# -- SLA reminders and escalations -----------------------------------------------------------


def tick(ws: Workspace, conn: Connection, *, batch: int = 200) -> int:
    """``sla.escalate``: fire due reminders and escalation steps, each exactly once.

    Due leads are claimed with ``FOR UPDATE SKIP LOCKED`` and their step advanced in the same
    transaction as the action and its event, so concurrent workers never fire a step twice."""
    now = ws.clock.now()
    due = [
        dict(r._mapping)
        for r in conn.execute(
            select(leads)
            .where(leads.c.sla_next_at.is_not(None), leads.c.sla_next_at <= now)
            .order_by(leads.c.sla_next_at, leads.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ]
    if not due:
        return 0
    sla = ws.rules.sla
    d = directory(ws, conn)
    rows: list[dict[str, Any]] = []
    for lead in due:
        steps = sla.steps(lead["sla_policy"], lead["sla_due_at"])
        step_no = lead["sla_step"]
        if (
            step_no >= len(steps)
            or lead["first_contact_at"] is not None
            or lead["stage"] in CLOSED
            or lead["erased_at"] is not None
            or lead["merged_into_id"] is not None
        ):
            lead["sla_next_at"] = None
            continue
        step = steps[step_no]
        rows.append(_fire(ws, conn, d, lead, step.action, step_no, now))
        lead["sla_step"] = step_no + 1
        lead["sla_next_at"] = steps[step_no + 1].at if step_no + 1 < len(steps) else None
        if lead["sla_next_at"] is not None and lead["sla_next_at"] < now:
            lead["sla_next_at"] = now  # a late worker catches up one step per pass, each its own event
    conn.execute(
        update(leads)
        .where(leads.c.id == bindparam("_id"))
        .values(
            sla_step=bindparam("_step"),
            sla_next_at=bindparam("_next"),
            owner_id=bindparam("_owner"),
            team_id=bindparam("_team"),
            destination=bindparam("_dest"),
            assigned_at=bindparam("_assigned"),
        ),
        [
            {
                "_id": x["id"],
                "_step": x["sla_step"],
                "_next": x["sla_next_at"],
                "_owner": x["owner_id"],
                "_team": x["team_id"],
                "_dest": x["destination"],
                "_assigned": x["assigned_at"],
            }
            for x in due
        ],
    )
    ev.append(conn, rows)
    return len(due)


def _fire(
    ws: Workspace, conn: Connection, d: Directory, lead: dict[str, Any], action: str, step_no: int, now: datetime
) -> dict[str, Any]:
    owner = d.by_id.get(lead["owner_id"] or "")
    data: dict[str, Any] = {
        "policy": lead["sla_policy"],
        "due_at": lead["sla_due_at"],
        "step": step_no,
        "action": action,
        "owner": lead["owner_id"],
    }
    subject = lead.get("company") or lead.get("email") or f"lead {lead['id']}"
    notify = ws.config.routing.notify_owner and not ws.quiet
    if action == "remind":
        if owner is not None and notify:
            queue_email(
                conn,
                to=owner.email,
                subject=f"Reminder: respond to {subject} by {lead['sla_due_at']:%H:%M} UTC",
                body=f"Hello {owner.name},\n\nThis lead is waiting for your first contact.\n\n{lead_lines(lead)}\n",
                lead_id=lead["id"],
                reason="sla_reminder",
                now=now,
            )
        kind = ev.SLA_REMINDED
    else:
        kind = ev.SLA_ESCALATED
        if action == "notify_manager":
            manager = d.by_id.get(owner.manager or "") if owner else None
            if manager is None and owner is not None and owner.manager:  # managers need not take leads
                manager = _inactive_owner(conn, owner.manager, ws)
            data["notified"] = manager.id if manager else None
            if manager is not None and notify:
                queue_email(
                    conn,
                    to=manager.email,
                    subject=f"Overdue lead: {subject} ({lead['owner_id']} has not responded)",
                    body=f"{lead['owner_id']} has not contacted this lead by its deadline.\n\n{lead_lines(lead)}\n",
                    lead_id=lead["id"],
                    reason="sla_escalated",
                    now=now,
                )
        elif action == "reassign":
            previous = lead["owner_id"]
            team = lead["team_id"] or (owner.team if owner else None)
            a = Assignment(
                lead=lead,
                route=Route(
                    rule="sla_escalation", kind="team", target=team or "", why="overdue: the next owner in turn"
                ),
                at=now,
                actor="system",
                trace={"rule": "sla_escalation", "why": "overdue: the next owner in turn", "previous_owner": previous},
            )
            if team is not None:
                assign(ws, conn, [a], exclude={previous} if previous else ())
            if lead["owner_id"] is None:  # nobody else can take it: it stays where it was
                lead["owner_id"] = previous
                a.trace["kept"] = "no other owner can take it"
            else:
                lead["assigned_at"] = now
                if notify and (new := d.by_id.get(lead["owner_id"])) is not None:
                    notifications.queue(conn, [assigned_email(new, a, now)])
            data.update(to=lead["owner_id"], trace=a.trace)
        elif action == "return_to_pool":
            data["team"] = lead["team_id"]
            lead["owner_id"] = None
            lead["destination"] = f"queue:{lead['team_id']}" if lead["team_id"] else lead["destination"]
    return ev.event_row(
        type=kind,
        lead_id=lead["id"],
        occurred_at=now,
        recorded_at=now,
        actor="system",
        config_version=ws.version,
        data=data,
    )


def _inactive_owner(conn: Connection, owner_id: str, ws: Workspace) -> Candidate | None:
    row = conn.execute(select(owners).where(owners.c.id == owner_id)).first()
    return Candidate.from_row(row._mapping, ws.config.workspace.timezone) if row is not None else None


def retry_waiting(ws: Workspace, conn: Connection, *, batch: int = 200) -> int:
    """``routing.retry``: leads routed to a team that nobody could take (caps, absence) get
    another try, oldest first. Returns how many found an owner."""
    waiting = [
        dict(r._mapping)
        for r in conn.execute(
            select(leads)
            .where(
                leads.c.owner_id.is_(None),
                leads.c.destination.like("team:%"),
                leads.c.stage.not_in(CLOSED),
                leads.c.merged_into_id.is_(None),
                leads.c.erased_at.is_(None),
            )
            .order_by(leads.c.created_at, leads.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ]
    if not waiting:
        return 0
    now = ws.clock.now()
    items = [
        Assignment(
            lead=lead,
            route=Route(
                rule="retry", kind="team", target=lead["destination"].split(":", 1)[1], why="waiting for an owner"
            ),
            at=now,
            actor="system",
            trace={"rule": "retry", "why": "waited for an owner with capacity"},
        )
        for lead in waiting
    ]
    assign(ws, conn, items)
    placed = [a for a in items if a.lead["owner_id"] is not None]
    if not placed:
        return 0
    for a in placed:
        a.lead["assigned_at"] = now
        schedule(ws.rules, a.lead, now)
    save_projections(conn, [a.lead for a in placed])
    ev.append(conn, finish(ws, conn, placed, now))
    return len(placed)
