"""Scoring one lead with 50 rules, in-process: fit rules, engagement rules on an event, the
score and its explanation.

    python -m bench scoring
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import percentiles, write
from leadflow.config.workspace import ScoringSection
from leadflow.scoring.rules import Engagement, RuleModel

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def fifty_rules() -> ScoringSection:
    rules: list[dict[str, Any]] = []
    for i in range(20):
        rules.append({"id": f"size_{i}", "points": 3, "when": {"field": "employees", "gte": 10 * i}})
    for i in range(10):
        rules.append(
            {
                "id": f"title_{i}",
                "points": 4,
                "when": {"field": "title", "matches": f"(?i)\\b(director|vp|head|chief){i}?\\b"},
            }
        )
    for i in range(5):
        rules.append(
            {
                "id": f"combo_{i}",
                "points": 5,
                "when": {
                    "all": [
                        {"field": "country", "in": ["DE", "AT", "CH"]},
                        {"not": {"field": "is_free_mail", "eq": True}},
                    ]
                },
            }
        )
    for i in range(10):
        rules.append(
            {
                "id": f"pricing_{i}",
                "points": 2,
                "cap": 10,
                "on_event": "page_view",
                "when": {"field": "event.url", "contains": f"/pricing{i}"},
            }
        )
    for i in range(5):
        rules.append({"id": f"opens_{i}", "points": 1, "cap": 5, "on_event": ["email_opened", "email_clicked"]})
    return ScoringSection.model_validate({"rules": rules, "engagement_half_life": "30d"})


def run(argv: list[str] | None = None) -> dict[str, Any]:
    model = RuleModel(fifty_rules())
    lead = {"employees": 120, "title": "Head of Data", "country": "DE", "is_free_mail": False}
    n = 20_000
    full, fit_only = [], []
    state = Engagement()
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        t = time.perf_counter()
        state, _ = model.add_event(state, {"type": "page_view", "url": f"https://x/pricing{i % 10}"}, lead, at)
        score = model.score(lead, state)
        explanation = score.explanation(model)
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.score(lead, Engagement())
        fit_only.append(time.perf_counter() - t)
    assert sum(line["points"] for line in explanation) == score.score
    figures = {
        "rules": 50,
        "iterations": n,
        "event_score_and_explain": percentiles(full),
        "score_only": percentiles(fit_only),
    }
    print(
        f"scoring one lead with 50 rules: event + score + explanation p50 {figures['event_score_and_explain']['p50_ms']:.3f} ms, "
        f"p99 {figures['event_score_and_explain']['p99_ms']:.3f} ms; score only p50 {figures['score_only']['p50_ms']:.3f} ms"
    )
    print(f"wrote {write('scoring', figures)}")
    return figures
