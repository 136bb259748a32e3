"""Capacity caps: assignments per owner per day and per week, counted in ``owner_counters``.

A cap is taken with one upsert whose update is conditional (``ON CONFLICT ... DO UPDATE ... WHERE
assigned < cap``), atomic on SQLite and PostgreSQL, so any number of API processes and workers
never exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import owner_counters
from leadflow.routing.availability import Candidate


@dataclass(frozen=True)
class Full:
    """An owner at one of their caps."""

    period: str  # d | w
    cap: int

    @property
    def why(self) -> str:
        return f"{'daily' if self.period == 'd' else 'weekly'} cap of {self.cap} reached"

    @property
    def short(self) -> str:
        return f"at capacity ({self.cap}/{self.cap} {'today' if self.period == 'd' else 'this week'})"


def _take_statement(dialect: Any) -> Prepared:
    """One atomic statement: the period's counter row is created at 1, or counted up by one
    while under the cap; it returns the new count, or nothing when the cap is reached."""
    stmt = dialect.insert(owner_counters).values(
        owner_id=bindparam("owner"), period=bindparam("p"), period_start=bindparam("start"), assigned=1
    )
    return Prepared(
        stmt.on_conflict_do_update(
            index_elements=["owner_id", "period", "period_start"],
            set_={"assigned": owner_counters.c.assigned + 1},
            where=owner_counters.c.assigned < bindparam("cap"),
        ).returning(owner_counters.c.assigned)
    )


_TAKE = {"sqlite": _take_statement(sqlite), "postgresql": _take_statement(postgresql)}
_GIVE_BACK = Prepared(
    update(owner_counters)
    .where(
        owner_counters.c.owner_id == bindparam("owner"),
        owner_counters.c.period == bindparam("p"),
        owner_counters.c.period_start == bindparam("start"),
    )
    .values(assigned=owner_counters.c.assigned - 1)
)


def take_capacity(conn: Connection, candidate: Candidate, at: datetime) -> Full | None:
    """Count one assignment against the owner's daily and weekly caps; None if it fits, else
    the cap that is full (and nothing counted)."""
    if candidate.capacity_day is None and candidate.capacity_week is None:
        return None
    taken = []
    for period, cap, start in (
        ("d", candidate.capacity_day, candidate.day(at)),
        ("w", candidate.capacity_week, candidate.week(at)),
    ):
        if cap is None:
            continue
        if cap < 1 or not _TAKE[conn.dialect.name].execute(
            conn, {"owner": candidate.id, "p": period, "start": start, "cap": cap}
        ):
            for p, s in taken:
                _GIVE_BACK.execute(conn, {"owner": candidate.id, "p": p, "start": s})
            return Full(period, cap)
        taken.append((period, start))
    return None
