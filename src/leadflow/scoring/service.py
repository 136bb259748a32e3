"""Applying a score to a lead, and the event that records it."""

from __future__ import annotations

from typing import Any

from leadflow.scoring.rules import Engagement, RuleModel, Score


def apply_score(lead: dict[str, Any], score: Score, state: Engagement) -> None:
    """Set the score columns of a lead snapshot (the projection of its ``lead_scored`` events)."""
    lead.update(
        score=score.score,
        fit_score=score.fit,
        engagement_score=score.engagement,
        grade=score.grade,
        engagement_grade=score.engagement_grade,
        matrix=score.matrix,
        score_detail=score.stored(),
        engagement_as_of=state.as_of,
    )


def score_event_data(
    score: Score, model: RuleModel, previous: int | None, trigger: str | None = None
) -> dict[str, Any]:
    """The ``lead_scored`` event data: the score, its parts and its explanation."""
    data: dict[str, Any] = {
        "score": score.score,
        "previous": previous,
        "fit": score.fit,
        "engagement": score.engagement,
        "grade": score.grade,
        "matrix": score.matrix,
        "explanation": score.explanation(model),
    }
    if trigger:
        data["trigger"] = trigger
    return data
