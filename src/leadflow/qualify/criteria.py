"""Qualification criteria: each gives a level and a reason. Pure functions over a lead snapshot.

Criteria are declared in the workspace file (fit, intent, need, timing, authority, budget, value,
source quality, or any other name): ordered levels, the first whose condition holds wins.
Completeness is built in (a way to reach the person, who they are, where they work) unless the
workspace declares its own. BANT is four of these criteria and a stage rule over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadflow.config.conditions import Predicate, compile_condition, describe
from leadflow.config.workspace import QualificationSection


def completeness(lead: Mapping[str, Any]) -> dict[str, str]:
    """Is there enough to act on? A way to reach the person, who they are, and where they work."""
    missing = []
    if not (lead.get("email") or lead.get("phone")):
        missing.append("email or phone")
    if not (lead.get("first_name") or lead.get("last_name")):
        missing.append("name")
    if not (lead.get("company") or lead.get("domain")):
        missing.append("company")
    if not missing:
        return {"level": "complete", "reason": "contact, name and company known"}
    if "email or phone" in missing:
        return {"level": "insufficient", "reason": "missing " + ", ".join(missing)}
    return {"level": "partial", "reason": "missing " + ", ".join(missing)}


@dataclass(frozen=True)
class _Level:
    level: str
    holds: Predicate
    reason: str


class CriteriaModel:
    def __init__(self, section: QualificationSection) -> None:
        self._criteria: list[tuple[str, list[_Level], dict[str, str]]] = []
        for name, criterion in section.criteria.items():
            levels = [
                _Level(lv.level, compile_condition(lv.when), lv.reason or (describe(lv.when) if lv.when else "always"))
                for lv in criterion.levels
            ]
            self._criteria.append((name, levels, {"level": criterion.default, "reason": criterion.default_reason}))
        self._builtin_completeness = "completeness" not in section.criteria
        self.competitors = frozenset(d.lower().removeprefix("www.") for d in section.competitor_domains)
        self.names = tuple(name for name, _, _ in self._criteria) + (
            ("completeness",) if self._builtin_completeness else ()
        )

    def is_competitor(self, lead: Mapping[str, Any]) -> bool:
        return bool(self.competitors) and (
            lead.get("domain") in self.competitors or lead.get("email_domain") in self.competitors
        )

    def evaluate(self, lead: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """Every criterion's level and the reason for it."""
        out: dict[str, dict[str, str]] = {}
        if self._builtin_completeness:
            out["completeness"] = completeness(lead)
        for name, levels, default in self._criteria:
            for level in levels:
                if level.holds(lead):
                    out[name] = {"level": level.level, "reason": level.reason}
                    break
            else:
                out[name] = dict(default)
        return out


@dataclass(frozen=True)
class ReviewFlag:
    rule: str
    reason: str


class ReviewRules:
    """Which leads need a human look: the first review rule that holds flags the lead."""

    def __init__(self, section: QualificationSection) -> None:
        self._rules = [(r.id, compile_condition(r.when), r.reason) for r in section.review]

    def check(self, lead: Mapping[str, Any]) -> ReviewFlag | None:
        for rule_id, holds, reason in self._rules:
            if holds(lead):
                return ReviewFlag(rule_id, reason)
        return None
