"""Assignment strategies within a team, and capacity caps.

The team's round-robin cursor is advanced with one ``UPDATE ... RETURNING`` and caps are taken
with one upsert whose update is conditional (``ON CONFLICT ... DO UPDATE ... WHERE assigned <
cap``): both atomic on SQLite and PostgreSQL, so any number of API processes and workers share
one fair rotation and never exceed a cap. Which owner a position means is a pure function of the
members and the position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import owner_counters, teams
from leadflow.routing.availability import Candidate

_ADVANCE = Prepared(
    update(teams)
    .where(teams.c.id == bindparam("team"))
    .values(rr_cursor=teams.c.rr_cursor + bindparam("count"))
    .returning(teams.c.rr_cursor)
)


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


def advance_cursor(conn: Connection, team_id: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive positions for a team; returns the last one reserved."""
    (row,) = _ADVANCE.execute(conn, {"team": team_id, "count": count})
    return int(row["rr_cursor"])


def weighted_sequence(members: Sequence[Candidate]) -> list[Candidate]:
    """One cycle of smooth weighted round robin: each member appears ``weight`` times, spread
    out (weights 3 and 1 give A A B A, not A A A B)."""
    current = dict.fromkeys((m.id for m in members), 0)
    total = sum(m.weight for m in members)
    out = []
    for _ in range(total):
        for m in members:
            current[m.id] += m.weight
        best = max(members, key=lambda m: (current[m.id], -m.position))
        current[best.id] -= total
        out.append(best)
    return out


def rotation(members: Sequence[Candidate], position: int, *, weighted: bool = False) -> list[Candidate]:
    """Members in the order to try them for the lead at ``position``: the one whose turn it is
    first, then the following ones (weighted: in the weighted cycle, each owner once)."""
    cycle = weighted_sequence(members) if weighted else list(members)
    start = (position - 1) % len(cycle)
    ordered, seen = [], set()
    for m in cycle[start:] + cycle[:start]:
        if m.id not in seen:
            seen.add(m.id)
            ordered.append(m)
    return ordered


def by_load(candidates: Sequence[Candidate], loads: Mapping[str, int]) -> list[Candidate]:
    """Least open load first; ties keep their rotation order."""
    return sorted(candidates, key=lambda c: loads.get(c.id, 0))


def take_capacity(conn: Connection, candidate: Candidate, at: datetime) -> str | None:
    """Count one assignment against the owner's daily and weekly caps; None if it fits, else why not."""
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
            return f"{'daily' if period == 'd' else 'weekly'} cap of {cap} reached"
        taken.append((period, start))
    return None
