from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from leadflow import events as ev
from leadflow.capture.service import prepare
from leadflow.clock import FrozenClock
from leadflow.db.tables import lead_events, leads
from leadflow.pipeline import LeadResult, process_many
from leadflow.workspace import Workspace, starter_config_text
from tests.conftest import open_workspace


def config_with(**sections: Any) -> str:
    """The starter file with some top-level sections replaced."""
    data = yaml.safe_load(starter_config_text())
    data.update(sections)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def team(team_id: str, members: Iterable[str], strategy: str = "round_robin", **owner: Any) -> dict[str, Any]:
    return {
        "teams": [{"id": team_id, "name": team_id.title(), "strategy": strategy}],
        "owners": [
            {"id": m, "name": m.title(), "email": f"{m}@northwind.example", "team": team_id, **owner} for m in members
        ],
    }


def workspace(tmp_path: Path, db_url: str, clock: FrozenClock, **sections: Any) -> Workspace:
    return open_workspace(tmp_path / "ws", db_url, clock, config_with(**sections))


def capture(ws: Workspace, payloads: Iterable[Mapping[str, Any]], *, batch: int = 500) -> list[LeadResult]:
    region, now = ws.config.workspace.default_region, ws.clock.now()
    captures = [prepare(dict(p), default_region=region, now=now, rules=ws.rules.capture) for p in payloads]
    out: list[LeadResult] = []
    for start in range(0, len(captures), batch):
        with ws.transaction() as conn:
            out.extend(process_many(ws, conn, captures[start : start + batch]))
    return out


def lead_row(ws: Workspace, lead_id: int) -> dict[str, Any]:
    with ws.reader() as conn:
        return dict(conn.execute(select(leads).where(leads.c.id == lead_id)).one()._mapping)


def events_of(ws: Workspace, lead_id: int, *types: str) -> list[dict[str, Any]]:
    with ws.reader() as conn:
        rows = ev.for_lead(conn, lead_id)
    return [r for r in rows if not types or r["type"] in types]


def all_events(ws: Workspace, type_: str) -> list[dict[str, Any]]:
    with ws.reader() as conn:
        query = select(lead_events).where(lead_events.c.type == type_).order_by(lead_events.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]
