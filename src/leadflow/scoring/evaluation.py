"""How well a score ranks leads by outcome: AUC, and conversion per grade or score band."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

BANDS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 101))


def auc(scores: Sequence[float], outcomes: Sequence[int]) -> float | None:
    """Area under the ROC curve (the chance a converter outscores a non-converter; ties count
    half), by ranks. None when only one class is present."""
    pairs = sorted(zip(scores, outcomes, strict=True))
    positives = sum(outcomes)
    negatives = len(outcomes) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # ranks i+1 .. j share their mean
        rank_sum += average_rank * sum(o for _, o in pairs[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def conversion_by(groups: Sequence[Hashable], outcomes: Sequence[int]) -> dict[Hashable, dict[str, Any]]:
    counts: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    for group, outcome in zip(groups, outcomes, strict=True):
        counts[group][0] += 1
        counts[group][1] += outcome
    return {
        g: {"leads": n, "converted": k, "rate": k / n if n else None}
        for g, (n, k) in sorted(counts.items(), key=lambda kv: str(kv[0]))
    }


def band(score: float) -> str:
    for lo, hi in BANDS:
        if lo <= score < hi:
            return f"{lo}-{min(hi, 100) - (0 if hi > 100 else 1)}"
    return "100"
