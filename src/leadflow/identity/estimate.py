"""Estimate the m and u probabilities of a match model from data, the way Splink does.

u (how often two different people agree at a level) comes from random pairs: nearly all of
them are different people. m (how often one person's two records agree at a level) comes from
labelled pairs when there are labels, otherwise from pairs that agree exactly on another
comparison (pairs sharing an email tell us how often the same person's name or phone agree,
pairs sharing a phone tell us about their emails). The result is a ``comparisons`` list for the
workspace file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from leadflow.config.identity import LEVELS
from leadflow.identity.matching import MatchModel

_FLOOR = 1e-7


def estimate_u(
    model: MatchModel, prepared: Sequence[tuple[Any, ...]], *, pairs: int = 1_000_000, seed: int = 0
) -> list[dict[str, float]]:
    rng = random.Random(seed)
    n = len(prepared)
    counts = [Counter() for _ in model.comparisons]
    totals = [0] * len(model.comparisons)
    for _ in range(pairs):
        a, b = rng.randrange(n), rng.randrange(n)
        if a == b:
            continue
        for i, level in enumerate(model.levels(prepared[a], prepared[b])):
            if level is not None:
                counts[i][level] += 1
                totals[i] += 1
    out = []
    for i, c in enumerate(model.comparisons):
        levels = LEVELS[c.kind]
        total = max(totals[i], 1)
        floor = max(_FLOOR, 0.5 / total)
        out.append({name: max(counts[i][j] / total, floor) for j, name in enumerate(levels)})
    return out


def estimate_m(model: MatchModel, matched: Iterable[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> list[dict[str, float]]:
    counts = [Counter() for _ in model.comparisons]
    for a, b in matched:
        for i, level in enumerate(model.levels(a, b)):
            if level is not None:
                counts[i][level] += 1
    out = []
    for i, c in enumerate(model.comparisons):
        levels = LEVELS[c.kind]
        total = sum(counts[i].values())
        if not total:
            out.append({})
            continue
        out.append({name: max(counts[i][j] / total, 0.001) for j, name in enumerate(levels)})
    return out


def estimate(
    model: MatchModel,
    records: Sequence[Mapping[str, Any]],
    *,
    labels: Sequence[Any] | None = None,
    pairs: int = 1_000_000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """m and u per comparison, as the ``identity.match.comparisons`` list of a workspace file."""
    from leadflow.identity.batch import candidate_pairs

    prepared = [model.prepare(r) for r in records]
    u = estimate_u(model, prepared, pairs=pairs, seed=seed)
    blocked = candidate_pairs(model, ((i, model.blocking_keys(r)) for i, r in enumerate(records)))
    if labels is not None:
        m = estimate_m(model, ((prepared[a], prepared[b]) for a, b in blocked if labels[a] == labels[b]))
    else:  # each comparison's m from pairs another comparison says are the same person
        m = []
        anchors = [i for i, c in enumerate(model.comparisons) if c.kind in ("email", "phone")]
        for i, _c in enumerate(model.comparisons):
            others = [j for j in anchors if j != i]
            sure = [
                (prepared[a], prepared[b])
                for a, b in blocked
                if any(model.levels(prepared[a], prepared[b])[j] == 0 for j in others)
            ]
            m.append(estimate_m(model, sure)[i])
    out = []
    for i, c in enumerate(model.comparisons):
        entry: dict[str, Any] = {"field": c.field}
        if c.comparator != c.field:
            entry["comparator"] = c.comparator
        if m[i]:
            entry["m"] = {k: round(v, 4) for k, v in m[i].items()}
        entry["u"] = {k: float(f"{v:.3g}") for k, v in u[i].items()}
        out.append(entry)
    return out
