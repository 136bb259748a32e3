"""Owners and teams: kept in step with the workspace file, added through the API or an import, and
the directory routing reads them from.

The workspace syncs the file's owners and teams and forgets the directory when it opens, so this
module depends only on the configuration, the tables, the errors and the availability model: no
leads, notifications or events, which would import the workspace back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from leadflow.config.workspace import WorkspaceConfig
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import OPEN_LEAD_SQL, leads, owners, teams
from leadflow.errors import InvalidInput, NotFound, Problem
from leadflow.routing.availability import Candidate

if TYPE_CHECKING:
    from leadflow.workspace import Workspace

DIRECTORY_TTL_S = 5.0


def _owner_values(o: Any, position: int, default_tz: str) -> dict[str, Any]:
    return {
        "name": o.name,
        "email": o.email,
        "team_id": o.team,
        "manager_id": o.manager,
        "timezone": o.timezone or default_tz,
        "active": o.active,
        "position": position,
        "weight": o.weight,
        "capacity_day": o.capacity.per_day,
        "capacity_week": o.capacity.per_week,
        "languages": [x.lower() for x in o.languages],
        "skills": list(o.skills),
        "working_hours": {str(k): list(v) for k, v in o.working_hours.items()} if o.working_hours else None,
        "out_of_office": [{"from": a.start.isoformat(), "to": a.end.isoformat()} for a in o.out_of_office],
    }


def sync_from_config(conn: Connection, config: WorkspaceConfig) -> None:
    """Upsert the file's teams and owners; ones it no longer lists are kept (history) but
    inactive. Owners and teams added through the API or an import are left alone."""
    existing = dict(conn.execute(select(teams.c.id, teams.c.origin)).all())
    for t in config.teams:
        values = {"name": t.name, "strategy": t.strategy, "active": True, "origin": "config"}
        if t.id in existing:
            conn.execute(update(teams).where(teams.c.id == t.id).values(**values))
        else:
            conn.execute(insert(teams).values(id=t.id, **values))
    gone = {t for t, origin in existing.items() if origin == "config"} - {t.id for t in config.teams}
    if gone:
        conn.execute(update(teams).where(teams.c.id.in_(gone)).values(active=False))

    existing = dict(conn.execute(select(owners.c.id, owners.c.origin)).all())
    for position, o in enumerate(config.owners):
        values = {**_owner_values(o, position, config.workspace.timezone), "origin": "config"}
        if o.id in existing:
            conn.execute(update(owners).where(owners.c.id == o.id).values(**values))
        else:
            conn.execute(insert(owners).values(id=o.id, **values))
    gone = {o for o, origin in existing.items() if origin == "config"} - {o.id for o in config.owners}
    if gone:
        conn.execute(update(owners).where(owners.c.id.in_(gone)).values(active=False))


def upsert_teams(ws: Workspace, conn: Connection, items: Sequence[Any]) -> dict[str, int]:
    """Teams from the API or an import (``id``, ``name``, ``strategy``)."""
    declared = {t.id for t in ws.config.teams}
    clash = [t.id for t in items if t.id in declared]
    if clash:
        raise InvalidInput(
            "team is declared in the workspace file",
            [Problem("id", f"team {i!r} is managed in leadflow.yaml; change it there") for i in clash],
        )
    existing = set(conn.execute(select(teams.c.id)).scalars())
    created = 0
    for t in items:
        values = {"name": t.name, "strategy": t.strategy, "active": True, "origin": "api"}
        if t.id in existing:
            conn.execute(update(teams).where(teams.c.id == t.id).values(**values))
        else:
            conn.execute(insert(teams).values(id=t.id, **values))
            created += 1
    forget_directory(ws)
    return {"created": created, "updated": len(items) - created}


def upsert_owners(ws: Workspace, conn: Connection, items: Sequence[Any]) -> dict[str, int]:
    """Owners from the API or an import. Owners the workspace file declares are refused: the
    file is their source of truth. Teams and managers must exist (or come in the same call)."""
    declared = {o.id for o in ws.config.owners}
    clash = [o.id for o in items if o.id in declared]
    if clash:
        raise InvalidInput(
            "owner is declared in the workspace file",
            [Problem("id", f"owner {i!r} is managed in leadflow.yaml; change it there") for i in clash],
        )
    known_teams = set(conn.execute(select(teams.c.id)).scalars())
    known_owners = set(conn.execute(select(owners.c.id)).scalars()) | {o.id for o in items}
    problems = [
        Problem(f"owners[{i}].team", f"no team {o.team!r}; create it first")
        for i, o in enumerate(items)
        if o.team and o.team not in known_teams
    ] + [
        Problem(f"owners[{i}].manager", f"no owner {o.manager!r}")
        for i, o in enumerate(items)
        if o.manager and o.manager not in known_owners
    ]
    if problems:
        raise InvalidInput("owners refer to unknown teams or managers", problems)
    existing = set(conn.execute(select(owners.c.id)).scalars())
    base = conn.execute(select(func.coalesce(func.max(owners.c.position), 0))).scalar_one()
    created = 0
    for i, o in enumerate(items):
        values = {**_owner_values(o, base + 1 + i, ws.config.workspace.timezone), "origin": "api"}
        if o.id in existing:
            values.pop("position")
            conn.execute(update(owners).where(owners.c.id == o.id).values(**values))
        else:
            conn.execute(insert(owners).values(id=o.id, **values))
            created += 1
    forget_directory(ws)
    return {"created": created, "updated": len(items) - created}


def list_owners(conn: Connection, *, team: str | None = None) -> list[dict[str, Any]]:
    query = select(owners).order_by(owners.c.position, owners.c.id)
    if team is not None:
        query = query.where(owners.c.team_id == team)
    return [dict(r._mapping) for r in conn.execute(query)]


def list_teams(conn: Connection) -> list[dict[str, Any]]:
    counts = dict(
        conn.execute(
            select(owners.c.team_id, func.count()).where(owners.c.active.is_(True)).group_by(owners.c.team_id)
        ).all()
    )
    return [
        {**dict(r._mapping), "members": counts.get(r.id, 0)} for r in conn.execute(select(teams).order_by(teams.c.id))
    ]


def get_owner(conn: Connection, owner_id: str) -> dict[str, Any]:
    row = conn.execute(select(owners).where(owners.c.id == owner_id)).first()
    if row is None:
        raise NotFound(f"no owner {owner_id!r}")
    return dict(row._mapping)


@dataclass
class Directory:
    """Active owners as routing sees them, read at most every few seconds (not per lead)."""

    loaded: float
    by_id: dict[str, Candidate] = field(default_factory=dict)
    by_team: dict[str, list[Candidate]] = field(default_factory=dict)
    strategies: dict[str, str] = field(default_factory=dict)


def directory(ws: Workspace, conn: Connection) -> Directory:
    found: Directory | None = ws.caches.get("routing.directory")
    if found is not None and time.monotonic() - found.loaded < DIRECTORY_TTL_S:
        return found
    tz = ws.config.workspace.timezone
    d = Directory(loaded=time.monotonic())
    for row in conn.execute(select(owners).where(owners.c.active.is_(True)).order_by(owners.c.position, owners.c.id)):
        c = Candidate.from_row(row._mapping, tz)
        d.by_id[c.id] = c
        if c.team:
            d.by_team.setdefault(c.team, []).append(c)
    d.strategies = dict(conn.execute(select(teams.c.id, teams.c.strategy)).all())
    ws.caches["routing.directory"] = d
    return d


def forget_directory(ws: Workspace) -> None:
    ws.caches.pop("routing.directory", None)


def open_loads(conn: Connection, owner_ids: Iterable[str]) -> dict[str, int]:
    """Leads each owner still has to work (assigned, not closed)."""
    return {row["owner_id"]: row["n"] for row in _OPEN_LOADS.execute(conn, {"ids": list(owner_ids)})}


_OPEN_LOADS = Prepared(
    select(leads.c.owner_id, func.count().label("n"))
    .where(leads.c.owner_id.in_(bindparam("ids", expanding=True)), text(OPEN_LEAD_SQL))
    .group_by(leads.c.owner_id)
)
