"""The points rule model: fit points from the lead, engagement points from its events.

Pure functions over snapshots. Fit points are re-evaluated from the lead whenever it changes.
Engagement points accumulate per rule, each rule capped, and (when the workspace sets a
half-life) decay with time, so last year's clicks count less than today's. The score is fit plus
engagement, rounded and kept within ``[0, max_score]``; the explanation lists the points each
rule contributes now, rounded so that they sum exactly to the score (a ``score_bounds`` line
carries any clamping). The fit grade (A-D) and the engagement level (1-4) together make the
matrix position (``B2``), as the better marketing tools show it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.config.conditions import Predicate, compile_condition, describe
from leadflow.config.workspace import ScoringSection

BOUNDS_RULE = "score_bounds"


@dataclass(frozen=True)
class CompiledRule:
    id: str
    kind: str
    points: int
    cap: int | None
    applies: Predicate
    reads: str
    on_event: bool


@dataclass(frozen=True)
class Engagement:
    """Engagement points per rule as of a moment (floats: decay makes them fractional)."""

    points: dict[str, float] = field(default_factory=dict)
    as_of: datetime | None = None

    @property
    def total(self) -> float:
        return sum(self.points.values())


@dataclass(frozen=True)
class Score:
    score: int
    fit: int
    engagement: int
    grade: str
    engagement_grade: int
    fit_detail: dict[str, int]
    engagement_detail: dict[str, float]  # from events, decaying
    lead_engagement_detail: dict[str, int]  # from engagement figures kept on the lead
    lines: tuple[tuple[str, int], ...]  # (rule, whole points) summing exactly to `score`

    @property
    def matrix(self) -> str:
        return f"{self.grade}{self.engagement_grade}"

    def stored(self) -> dict[str, dict[str, Any]]:
        return {
            "fit": self.fit_detail,
            "engagement": {k: round(v, 4) for k, v in self.engagement_detail.items()},
            "lead_engagement": self.lead_engagement_detail,
        }

    def explanation(self, model: RuleModel) -> list[dict[str, Any]]:
        """Rules that contribute, largest first; the points sum exactly to ``score``."""
        out = []
        for rule_id, pts in self.lines:
            if rule_id == BOUNDS_RULE:
                out.append(
                    {
                        "rule": BOUNDS_RULE,
                        "kind": "bounds",
                        "points": pts,
                        "why": f"score is kept within 0..{model.max_score}",
                    }
                )
            else:
                out.append(
                    {"rule": rule_id, "kind": model.kind_of(rule_id), "points": pts, "why": model.reads_of(rule_id)}
                )
        return out


def apportion(values: Mapping[str, float]) -> dict[str, int]:
    """Whole numbers per key that sum exactly to the rounded total (largest remainders)."""
    target = round(sum(values.values()))
    floors = {k: math.floor(v) for k, v in values.items()}
    left = target - sum(floors.values())
    order = sorted(values, key=lambda k: (-(values[k] - floors[k]), k))
    for k in order[: max(0, left)]:
        floors[k] += 1
    if left < 0:  # only with negative totals: take from the smallest remainders
        for k in sorted(values, key=lambda k: (values[k] - floors[k], k))[:-left]:
            floors[k] -= 1
    return floors


class RuleModel:
    def __init__(self, section: ScoringSection) -> None:
        self.max_score = section.max_score
        self.mql_threshold = section.mql_threshold
        self.grades = section.grades
        self.engagement_grades = section.engagement_grades
        half_life = section.engagement_half_life
        self.half_life_s = half_life.total_seconds() if half_life else None
        self.fit_rules: list[CompiledRule] = []
        self.lead_engagement_rules: list[CompiledRule] = []  # engagement figures kept on the lead
        self.engagement_rules: dict[str, list[CompiledRule]] = {}
        self._rules: dict[str, CompiledRule] = {}
        for rule in section.rules:
            compiled = CompiledRule(
                id=rule.id,
                kind=rule.kind,
                points=rule.points,
                cap=rule.cap,
                applies=compile_condition(rule.when),
                reads=rule.description
                or (describe(rule.when) if rule.when else f"each {' or '.join(rule.on_event or ())}"),
                on_event=bool(rule.on_event),
            )
            self._rules[rule.id] = compiled
            if rule.on_event:
                for event_type in rule.on_event:
                    self.engagement_rules.setdefault(event_type, []).append(compiled)
            elif rule.kind == "engagement":
                self.lead_engagement_rules.append(compiled)
            else:
                self.fit_rules.append(compiled)

    def kind_of(self, rule_id: str) -> str:
        rule = self._rules.get(rule_id)
        return rule.kind if rule else "retired"

    def reads_of(self, rule_id: str) -> str:
        rule = self._rules.get(rule_id)
        return rule.reads if rule else "rule no longer in the configuration"

    # -- fit -----------------------------------------------------------------------------------

    def fit_points(self, lead: Mapping[str, Any]) -> dict[str, int]:
        """Fit points now: fit rules are re-evaluated from scratch whenever the lead changes."""
        return {r.id: r.points for r in self.fit_rules if r.applies(lead)}

    def lead_engagement_points(self, lead: Mapping[str, Any]) -> dict[str, int]:
        """Engagement rules on figures kept on the lead itself (no events, no decay)."""
        return {r.id: r.points for r in self.lead_engagement_rules if r.applies(lead)}

    # -- engagement ----------------------------------------------------------------------------

    def engagement_of(self, lead: Mapping[str, Any]) -> Engagement:
        stored = (lead.get("score_detail") or {}).get("engagement") or {}
        return Engagement({k: float(v) for k, v in stored.items()}, lead.get("engagement_as_of"))

    def decayed(self, state: Engagement, to: datetime) -> Engagement:
        """The same points as they stand at ``to`` (halved every half-life)."""
        if self.half_life_s is None or state.as_of is None or not state.points:
            return Engagement(dict(state.points), to if state.points else state.as_of)
        elapsed = (to - state.as_of).total_seconds()
        if elapsed <= 0:
            return state
        factor = 0.5 ** (elapsed / self.half_life_s)
        points = {k: v * factor for k, v in state.points.items()}
        if sum(abs(v) for v in points.values()) < 0.5:
            points = {}  # nothing left that could move the score: stop decaying this lead
        return Engagement(points, to if points else None)

    def add_event(
        self, state: Engagement, event: Mapping[str, Any], lead: Mapping[str, Any], at: datetime
    ) -> tuple[Engagement, dict[str, float]]:
        """Apply one event: decay to its time, then add the points of the rules it fires
        (each rule capped on its running total). Returns the new state and what was added."""
        rules = self.engagement_rules.get(event["type"])
        if not rules:
            return state, {}
        snapshot = {**lead, "event": event}
        fired = [r for r in rules if r.applies(snapshot)]
        if not fired:
            return state, {}
        if state.as_of is not None and at < state.as_of:
            # a late event: its points count as already decayed to the state's moment
            weight = 0.5 ** ((state.as_of - at).total_seconds() / self.half_life_s) if self.half_life_s else 1.0
            now = state
        else:
            weight = 1.0
            now = self.decayed(state, at)
        points = dict(now.points)
        added: dict[str, float] = {}
        for rule in fired:
            pts = rule.points * weight
            if rule.cap is not None:
                room = rule.cap - abs(points.get(rule.id, 0.0))
                if room <= 0:
                    continue
                pts = max(-room, min(room, pts))
            points[rule.id] = points.get(rule.id, 0.0) + pts
            added[rule.id] = pts
        return Engagement(points, now.as_of if now.as_of and now.as_of > at else at), added

    # -- the score -----------------------------------------------------------------------------

    def stored_score(self, lead: Mapping[str, Any]) -> Score:
        """The score as the lead row holds it (its stored points, the current rule texts)."""
        detail = lead.get("score_detail") or {}
        return self.combine(
            detail.get("fit") or {},
            {k: float(v) for k, v in (detail.get("engagement") or {}).items()},
            detail.get("lead_engagement"),
        )

    def score(self, lead: Mapping[str, Any], state: Engagement) -> Score:
        """The lead's score now: its fit, engagement figures kept on it, and its event engagement."""
        return self.combine(self.fit_points(lead), state.points, self.lead_engagement_points(lead))

    def combine(
        self, fit: Mapping[str, int], engagement: Mapping[str, float], lead_engagement: Mapping[str, int] | None = None
    ) -> Score:
        lead_engagement = lead_engagement or {}
        fit_total = sum(fit.values())
        engagement_total = sum(engagement.values()) + sum(lead_engagement.values())
        whole = apportion({**{k: float(v) for k, v in (*fit.items(), *lead_engagement.items())}, **engagement})
        raw = sum(whole.values())
        score = max(0, min(self.max_score, raw))
        lines = [(k, v) for k, v in sorted(whole.items(), key=lambda kv: (-abs(kv[1]), kv[0])) if v]
        if score != raw:
            lines.append((BOUNDS_RULE, score - raw))
        engagement_whole = round(engagement_total)
        return Score(
            score=score,
            fit=fit_total,
            engagement=engagement_whole,
            grade=self.grade(fit_total),
            engagement_grade=self.engagement_level(engagement_whole),
            fit_detail=dict(fit),
            engagement_detail=dict(engagement),
            lead_engagement_detail=dict(lead_engagement),
            lines=tuple(lines),
        )

    def grade(self, fit_points: int) -> str:
        g = self.grades
        if fit_points >= g.A:
            return "A"
        if fit_points >= g.B:
            return "B"
        if fit_points >= g.C:
            return "C"
        return "D"

    def engagement_level(self, engagement_points: int) -> int:
        g = self.engagement_grades
        if engagement_points >= g.level_1:
            return 1
        if engagement_points >= g.level_2:
            return 2
        if engagement_points >= g.level_3:
            return 3
        return 4
