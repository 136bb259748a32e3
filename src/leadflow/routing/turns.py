"""Giving a team's leads out in turn: who can take each lead (availability, language, skills,
capacity) and whose turn it is (:class:`~leadflow.routing.strategies.Rotation`), with the sentence
the trace keeps ("dmitri at capacity (40/40 today): turn passed to ben").

Per team and batch of leads this costs three statements (advance the cursor, which locks the
team's rotation; read its turn counts; store them), plus one per capped owner tried.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from leadflow.routing.availability import Candidate, screen
from leadflow.routing.capacity import take_capacity
from leadflow.routing.directory import open_loads
from leadflow.routing.strategies import advance_cursor, by_load, load_rotation, save_rotation


@dataclass
class Turn:
    """Who takes one lead, and why."""

    owner: Candidate | None
    position: int
    turn_of: str | None = None  # whose turn it was
    passed: list[tuple[str, str]] = field(default_factory=list)  # owners passed over, why
    skipped: list[dict[str, str]] = field(default_factory=list)  # every owner who could not take it, why
    note: str | None = None

    @property
    def sentence(self) -> str:
        if not self.passed:
            return f"{self.owner.id}'s turn" if self.owner else "nobody's turn"
        passed = ", ".join(f"{owner} {why}" for owner, why in self.passed)
        return f"{passed}: turn passed to {self.owner.id}" if self.owner else f"{passed}: nobody could take the turn"


class TeamTurns:
    """One team's rotation for a batch of leads: opened (which locks it), asked for each lead's
    owner in turn, then closed (which stores the turns taken)."""

    def __init__(
        self,
        conn: Connection,
        team_id: str,
        members: Sequence[Candidate],
        strategy: str,
        leads: int,
        default_hours: Mapping[int, tuple[int, int]],
    ) -> None:
        self.members = members
        self.strategy = strategy
        self.default_hours = default_hours
        self.position = advance_cursor(conn, team_id, leads) - leads
        self.rotation = load_rotation(conn, members, weighted=strategy == "weighted_round_robin")
        self.loads = open_loads(conn, [m.id for m in members]) if strategy == "least_load" else {}

    def next(
        self,
        conn: Connection,
        at: datetime,
        *,
        exclude: Collection[str] = (),
        language: str | None = None,
        skills: Sequence[str] = (),
    ) -> Turn:
        """The owner for the next lead (counted against their caps and the rotation), or None."""
        self.position += 1
        candidates = [m for m in self.members if m.id not in exclude]
        seen = screen(candidates, at=at, default_hours=self.default_hours, language=language, skills=skills)
        turn = Turn(owner=None, position=self.position, skipped=list(seen.skipped))
        why = {s["owner"]: s["why"] for s in seen.skipped}
        if not seen.eligible and seen.off_hours:
            turn.note = "nobody is in working hours now: the next in turn gets it"
        elif seen.off_hours:
            turn.skipped.extend({"owner": c.id, "why": "outside working hours"} for c in seen.off_hours)
            why.update((c.id, "outside working hours") for c in seen.off_hours)
        if not candidates:
            return turn
        first = self.rotation.order(among={c.id for c in candidates})
        turn.turn_of = (by_load(first, self.loads) if self.strategy == "least_load" else first)[0].id
        if turn.turn_of in why:
            turn.passed.append((turn.turn_of, why[turn.turn_of]))
        pool = {c.id for c in (seen.eligible or seen.off_hours)}
        while pool:
            order = self.rotation.order(among=pool)
            if self.strategy == "least_load":
                order = by_load(order, self.loads)
            candidate = order[0]
            full = take_capacity(conn, candidate, at)
            if full is None:
                self.rotation.take(candidate)
                self.loads[candidate.id] = self.loads.get(candidate.id, 0) + 1
                turn.owner = candidate
                return turn
            turn.skipped.append({"owner": candidate.id, "why": full.why})
            turn.passed.append((candidate.id, full.short))
            pool.discard(candidate.id)
        return turn

    def close(self, conn: Connection) -> None:
        save_rotation(conn, self.rotation)
