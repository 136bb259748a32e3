"""Owners and teams from a CSV file (a CRM's user export, an HR list).

Columns are named by the caller; by default the Maven CRM layout (``sales_agent``, ``manager``,
``regional_office``). Each manager's agents form a team in their office; managers are owners who
take no leads but get escalations. Ids are made from names (``Anna Snelling`` → ``anna_snelling``; the team of Dustin Brinkmann in Central → ``central-dustin_brinkmann``).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from leadflow.config.workspace import Owner, Team
from leadflow.errors import InvalidInput, Problem


@dataclass(frozen=True)
class Columns:
    name: str = "sales_agent"
    manager: str | None = "manager"
    office: str | None = "regional_office"
    email: str | None = None
    email_domain: str | None = None  # build emails as first.last@domain when there is no email column


def slug(text: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_.lower()).strip("_")[:64] or "x"


def read_directory(path: Path, columns: Columns = Columns()) -> tuple[list[Team], list[Owner]]:
    """Teams and owners from the file; every bad row is reported with its line number."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        wanted = [c for c in (columns.name, columns.manager, columns.office, columns.email) if c]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise InvalidInput(
                "missing columns", [Problem(c, f"no column {c!r}; the file has: {', '.join(header)}") for c in missing]
            )
        rows = list(enumerate(reader, start=2))
    problems: list[Problem] = []
    teams: dict[str, Team] = {}
    owners: dict[str, Owner] = {}
    managers: dict[str, tuple[str, str | None]] = {}

    def email_for(name: str) -> str | None:
        if not columns.email_domain:
            return None
        return f"{slug(name).replace('_', '.')}@{columns.email_domain}"

    for line, row in rows:
        name = (row.get(columns.name) or "").strip()
        if not name:
            problems.append(Problem(f"line {line}", f"{columns.name} is empty"))
            continue
        manager = (row.get(columns.manager) or "").strip() if columns.manager else ""
        office = (row.get(columns.office) or "").strip() if columns.office else ""
        team_id = None
        if manager or office:
            team_id = "-".join(slug(p) for p in (office, manager) if p)
            label = f"{office} ({manager})" if office and manager else office or manager
            teams.setdefault(team_id, Team(id=team_id, name=label))
        if manager:
            managers.setdefault(slug(manager), (manager, team_id))
        owner_id = slug(name)
        if owner_id in owners:
            problems.append(Problem(f"line {line}", f"{name!r} appears twice"))
            continue
        email = (row.get(columns.email) or "").strip() if columns.email else email_for(name)
        try:
            owners[owner_id] = Owner(
                id=owner_id, name=name, email=email or None, team=team_id, manager=slug(manager) if manager else None
            )
        except ValueError as exc:
            problems.append(Problem(f"line {line}", str(exc).splitlines()[-1].strip()))
    if problems:
        raise InvalidInput(f"{path.name}: {len(problems)} bad rows", problems)
    for manager_id, (name, team_id) in managers.items():
        if manager_id not in owners:  # managers route no leads to themselves: inactive owners
            owners[manager_id] = Owner(id=manager_id, name=name, email=email_for(name), team=team_id, active=False)
    # managers first, so an owner's manager exists when the owner is written
    ordered = sorted(owners.values(), key=lambda o: (o.active, o.team or "", o.name))
    return list(teams.values()), ordered
