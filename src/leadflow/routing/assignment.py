"""Routing a lead to its owner, in the capturing transaction, in three steps:

1. :func:`plan` (pure): the first routing rule that holds gives the destination, the first SLA
   policy that holds gives the deadline.
2. :func:`assign`: the account's owner, a named owner, or the team's next owner in turn
   (:mod:`leadflow.routing.turns`); owners who cannot take the lead are skipped with a reason.
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
from leadflow.db.tables import accounts
from leadflow.notify import service as notifications
from leadflow.notify.service import lead_lines
from leadflow.routing.availability import Candidate
from leadflow.routing.capacity import take_capacity
from leadflow.routing.directory import Directory, directory
from leadflow.routing.rules import Route
from leadflow.routing.turns import TeamTurns

if TYPE_CHECKING:
    from leadflow.workspace import Ruleset, Workspace

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
                    give(a, named, "named owner", f"the rule names {named.id}")
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

    for team_id, team_items in sorted(by_team.items()):  # teams locked in one order: no deadlocks
        members = d.by_team.get(team_id, [])  # the rotation is over the whole team ...
        if not [m for m in members if m.id not in exclude]:
            for a in team_items:
                _wait(a, team_id, f"team {team_id} has no active owners")
            continue
        strategy = d.strategies.get(team_id, "round_robin")
        turns = TeamTurns(conn, team_id, members, strategy, len(team_items), default_hours)
        for a in team_items:
            if a.lead.get("account_id") in owned_here and _to_account_owner(conn, d, a, owners_of_accounts, exclude):
                continue  # its account got an owner earlier in this batch
            turn = turns.next(  # ... the current owner is not a candidate
                conn,
                a.at,
                exclude=exclude,
                language=a.lead.get("language") if a.route.require_language else None,
                skills=a.route.require_skills,
            )
            a.trace["skipped"].extend(turn.skipped)
            if turn.note:
                a.trace["note"] = turn.note
            a.trace.update(team=team_id, position=turn.position, candidates=[m.id for m in members])
            a.trace.update(turn=turn.sentence, turn_of=turn.turn_of)
            if turn.owner is None:
                _wait(a, team_id, "nobody can take it now (capacity, absence, language or skills): waiting in the team")
                continue
            give(a, turn.owner, strategy, None)
            if account_first and a.lead.get("account_id") and not owners_of_accounts.get(a.lead["account_id"]):
                owners_of_accounts[a.lead["account_id"]] = turn.owner.id  # finish() records it
                owned_here.add(a.lead["account_id"])
        turns.close(conn)


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
        give(a, owner, "account owner", f"{owner.id} owns the lead's account")
        return True
    a.trace["skipped"].append({"owner": owner.id, "why": f"account owner, {why}"})
    return False


def _capacity(conn: Connection, candidate: Candidate, at: datetime) -> str | None:
    full = take_capacity(conn, candidate, at)
    return full.why if full else None


def give(a: Assignment, owner: Candidate, strategy: str, why: str | None) -> None:
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
