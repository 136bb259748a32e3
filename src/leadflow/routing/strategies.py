"""Whose turn it is in a team: the rotation, as a pure function of the turns each member has had.

Among the members who can take a lead, it goes to the one furthest behind their share of the turns
so far (smooth weighted round robin: each member's share is their weight over the weights of those
who can take it; weight 1 in plain round robin), ties to an owner who fell behind, then by the
owner's position. So equal owners alternate exactly, weights 3 and 1 give A A B A (not A A A B), and
a member who cannot take a lead (at capacity, away, off duty, lacking a language or skill) is
passed over without their turns all falling to the one after them: they are shared by the others
in rotation. In any stretch of leads the owners who could take them all differ by at most one (by
weight: each within one lead of their share).

Nobody banks turns: a member who fell behind the rotation (skipped, new, back from leave, moved in
from another team) is counted as at most one turn behind it, so they get the next lead rather than
every lead until they have caught up.

The turn counts live in ``owner_counters`` (period ``r``). The team's cursor, advanced with one
``UPDATE ... RETURNING``, locks the team's rotation until the transaction ends, so counts read
after it are current: any number of API processes and workers share one rotation.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leadflow.db.fastpath import Prepared
from leadflow.db.tables import owner_counters, teams
from leadflow.routing.availability import Candidate


@dataclass
class Rotation:
    """A team's members and the turns each has had; :meth:`order` says who is next."""

    members: Sequence[Candidate]
    turns: dict[str, int] = field(default_factory=dict)
    weighted: bool = False
    taken: dict[str, int] = field(default_factory=dict)  # turn counts changed here, to store

    def weight(self, m: Candidate) -> int:
        return max(m.weight, 1) if self.weighted else 1

    def _counted(self) -> dict[str, int]:
        """Each member's turns, raised to one behind the rotation if they fell further back."""
        level = max((Fraction(self.turns.get(m.id, 0) - 1, self.weight(m)) for m in self.members), default=Fraction(-1))
        return {m.id: max(self.turns.get(m.id, 0), math.floor(level * self.weight(m))) for m in self.members}

    def order(self, among: Collection[str] | None = None) -> list[Candidate]:
        """Members (those ``among``, when given) in the order their turn comes: the first is the
        one whose turn it is."""
        counted = self._counted()
        pool = [m for m in self.members if among is None or m.id in among]
        total = sum(counted[m.id] for m in pool) + 1
        weights = sum(self.weight(m) for m in pool)

        def behind(m: Candidate) -> tuple[int, bool, int, str]:  # (total x share - turns) x weights
            turns = counted[m.id]
            return (turns * weights - total * self.weight(m), turns == self.turns.get(m.id, 0), m.position, m.id)

        return sorted(pool, key=behind)

    def take(self, m: Candidate) -> None:
        """Count a turn taken by ``m``."""
        self.turns[m.id] = self.taken[m.id] = self._counted()[m.id] + 1


def by_load(candidates: Sequence[Candidate], loads: Mapping[str, int]) -> list[Candidate]:
    """Least open load first; ties keep their rotation order."""
    return sorted(candidates, key=lambda c: loads.get(c.id, 0))


# -- the rotation's shared state -------------------------------------------------------------

TURNS = "r"  # owner_counters.period of a rotation's turn count, which never rolls over
TURNS_START = date(2000, 1, 1)

_ADVANCE = Prepared(
    update(teams)
    .where(teams.c.id == bindparam("team"))
    .values(rr_cursor=teams.c.rr_cursor + bindparam("count"))
    .returning(teams.c.rr_cursor)
)
_TURNS = Prepared(
    select(owner_counters.c.owner_id, owner_counters.c.assigned).where(
        owner_counters.c.period == TURNS, owner_counters.c.owner_id.in_(bindparam("owners", expanding=True))
    )
)


def _save_statement(dialect: Any) -> Prepared:
    stmt = dialect.insert(owner_counters).values(
        owner_id=bindparam("owner"), period=TURNS, period_start=TURNS_START, assigned=bindparam("turns")
    )
    return Prepared(
        stmt.on_conflict_do_update(
            index_elements=["owner_id", "period", "period_start"], set_={"assigned": stmt.excluded.assigned}
        )
    )


_SAVE = {"sqlite": _save_statement(sqlite), "postgresql": _save_statement(postgresql)}


def advance_cursor(conn: Connection, team_id: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive positions for a team; returns the last one reserved. The
    team's row stays locked until the transaction ends."""
    (row,) = _ADVANCE.execute(conn, {"team": team_id, "count": count})
    return int(row["rr_cursor"])


def load_rotation(conn: Connection, members: Sequence[Candidate], *, weighted: bool) -> Rotation:
    """The members' turn counts (read after :func:`advance_cursor` has locked the team)."""
    rows = _TURNS.execute(conn, {"owners": [m.id for m in members]})
    return Rotation(members, {r["owner_id"]: r["assigned"] for r in rows}, weighted=weighted)


def save_rotation(conn: Connection, rotation: Rotation) -> None:
    _SAVE[conn.dialect.name].executemany(conn, [{"owner": o, "turns": n} for o, n in rotation.taken.items()])
