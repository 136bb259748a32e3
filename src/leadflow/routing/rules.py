"""Which destination a lead goes to: the first routing rule that holds, else the fallback. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadflow.config.conditions import Predicate, compile_condition, describe
from leadflow.config.workspace import Destination, RoutingSection


@dataclass(frozen=True)
class Route:
    rule: str
    kind: str  # team | owner | queue | nurture | workflow
    target: str
    why: str
    require_language: bool = False
    require_skills: tuple[str, ...] = ()

    @property
    def destination(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def assigns_owner(self) -> bool:
        return self.kind in ("team", "owner")


def _route(rule_id: str, dest: Destination, why: str, language: bool = False, skills: tuple[str, ...] = ()) -> Route:
    return Route(
        rule=rule_id, kind=dest.kind, target=dest.target, why=why, require_language=language, require_skills=skills
    )


class RoutingRules:
    def __init__(self, section: RoutingSection) -> None:
        self._rules: list[tuple[Route, Predicate]] = [
            (
                _route(r.id, r, r.description or describe(r.when), r.require_language, tuple(r.require_skills)),
                compile_condition(r.when),
            )
            for r in section.rules
        ]
        fb = section.fallback
        self.fallback = _route("fallback", fb, "no routing rule matched") if fb is not None else None
        self.account_owner_first = section.account_owner_first

    def choose(self, lead: Mapping[str, Any]) -> tuple[Route | None, list[str]]:
        """The route, and the rules tried before it (for the assignment trace)."""
        tried: list[str] = []
        for route, holds in self._rules:
            if holds(lead):
                return route, tried
            tried.append(route.rule)
        return self.fallback, tried
