"""Lifecycle stages: automatic moves by rule, manual moves validated. Pure functions.

The funnel is ordered (lead → ... → customer). Side states (nurture, disqualified, lost,
recycled) sit off the funnel. Automatic rules only move a lead forward; a person can move it
forward, aside, or back into the funnel from recycled or nurture, always with a reason where the
move needs one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadflow.config.conditions import Predicate, compile_condition, describe
from leadflow.config.workspace import StageRule, StagesSection
from leadflow.errors import InvalidInput, Problem

NEEDS_REASON = frozenset({"disqualified", "lost", "recycled"})
REOPENABLE = frozenset({"nurture", "recycled"})  # side states a lead can re-enter the funnel from
CLOSED = frozenset({"disqualified", "lost"})


@dataclass(frozen=True)
class StageDecision:
    to: str
    rule: str
    why: str


class StageModel:
    def __init__(self, stages: StagesSection, rules: list[StageRule]) -> None:
        self.order = list(stages.order)
        self.side = list(stages.side)
        self.target = stages.target
        self.first = self.order[0]
        self._index = {s: i for i, s in enumerate(self.order)}
        self._rules: list[tuple[int, StageRule, Predicate]] = sorted(
            ((self._index.get(r.to, -1), r, compile_condition(r.when)) for r in rules),
            key=lambda item: -item[0],
        )

    def index(self, stage: str) -> int:
        """Position in the funnel; -1 for side states."""
        return self._index.get(stage, -1)

    def reached(self, stage: str, other: str) -> bool:
        """Whether being in ``stage`` means having passed ``other``."""
        return self.index(stage) >= self.index(other) >= 0

    def automatic(self, current: str, lead: Mapping[str, Any]) -> StageDecision | None:
        """The furthest stage ahead of ``current`` whose rule holds, if any."""
        if current in CLOSED or current == self.order[-1]:
            return None
        here = self.index(current)
        for position, rule, holds in self._rules:
            if position <= here:
                break
            if position >= 0 and holds(lead):
                return StageDecision(
                    to=rule.to, rule=f"stage_rules:{rule.to}", why=rule.description or describe(rule.when)
                )
        return None

    def validate(self, current: str, to: str, reason: str | None) -> None:
        """Refuse a manual move that makes no sense, saying why and what to do instead."""
        known = [*self.order, *self.side]
        if to not in known:
            raise InvalidInput(
                "unknown stage", [Problem("stage", f"{to!r} is not a stage; stages: {', '.join(known)}")]
            )
        if to == current:
            raise InvalidInput("no change", [Problem("stage", f"the lead is already in {to!r}")])
        if to in NEEDS_REASON and not (reason and reason.strip()):
            raise InvalidInput("a reason is required", [Problem("reason", f"moving a lead to {to!r} needs a reason")])
        if current == self.order[-1]:
            raise InvalidInput(
                "invalid transition",
                [Problem("stage", f"{current!r} is the final stage; a customer does not move back through the funnel")],
            )
        if current in CLOSED and to != "recycled":
            raise InvalidInput(
                "invalid transition",
                [
                    Problem(
                        "stage", f"a lead in {current!r} can only be moved to 'recycled' (then back into the funnel)"
                    )
                ],
            )
        if current in self._index and to in self._index and self.index(to) < self.index(current):
            raise InvalidInput(
                "invalid transition",
                [
                    Problem(
                        "stage",
                        f"cannot move back from {current!r} to {to!r}; move it to 'recycled' or 'nurture' instead",
                    )
                ],
            )
