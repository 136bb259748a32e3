"""The leakage guard: fields that give the outcome away are left out of training unless forced.

A field leaks when its value is written after the outcome is known (a sales rep's status note, a
"quality" judgement made after the call) — a model trained on it looks excellent and is useless
for a new lead. Two kinds of evidence, neither of which needs the field's name:

* **history**: the event log shows the field set at or after the lead reached the target stage
  for most converted leads that have it (:func:`set_after_outcome`, from the database);
* **implausible power**: on its own the field ranks outcomes better than any honest signal does —
  a single-field AUC (out-of-fold, over all rows and over the rows where it is filled in) above
  ``max_auc``, or a large share of the filled-in rows sitting in levels that are nearly
  all-converted or all-lost (``max_deterministic_share``). Honest fields (source, activity) do
  not do this; a field that records the outcome does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from leadflow.model.frame import CATEGORY, Frame


@dataclass(frozen=True)
class GuardSettings:
    max_auc: float = 0.85
    max_deterministic_share: float = 0.10
    deterministic_rate: float = 0.05  # a level converting below this, or above 1 - this
    min_level_support: int = 20
    min_expected: float = 10.0
    min_filled_share: float = 0.10  # the filled-in-rows test needs this much coverage
    after_outcome_share: float = 0.5
    folds: int = 5
    periods: int = 4  # the rows are judged in this many consecutive periods of time too
    min_period_rows: int = 200


@dataclass(frozen=True)
class Flag:
    feature: str
    reason: str
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_auc(scores: np.ndarray, y: np.ndarray) -> float | None:
    """AUC by ranks (ties count half); None with one class."""
    from scipy.stats import rankdata

    y = np.asarray(y)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _category_auc(values: Sequence[Any] | np.ndarray, y: np.ndarray, folds: int) -> float | None:
    """Out-of-fold AUC of the level's smoothed conversion rate (target encoding)."""
    codes = _codes(values)
    n = len(codes)
    fold = np.arange(n) % folds
    scores = np.zeros(n)
    size = int(codes.max()) + 1 if n else 0
    for k in range(folds):
        train = fold != k
        prior = float(y[train].mean()) if train.any() else 0.5
        count = np.bincount(codes[train], minlength=size)
        conv = np.bincount(codes[train], weights=y[train], minlength=size)
        held = ~train
        scores[held] = (conv[codes[held]] + 10 * prior) / (count[codes[held]] + 10)
    return rank_auc(scores, y)


def _codes(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Integer codes per distinct value (missing is a value of its own); codes stay codes."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "i":
        return values
    table: dict[Any, int] = {}
    return np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int64, count=len(values))


def _number_auc(values: Sequence[Any] | np.ndarray, y: np.ndarray) -> float | None:
    x = values if isinstance(values, np.ndarray) else np.array([np.nan if v is None else float(v) for v in values])
    filled = ~np.isnan(x)
    if filled.sum() < 2:
        return None
    auc = rank_auc(x[filled], y[filled])
    return None if auc is None else max(auc, 1 - auc)


@dataclass(frozen=True)
class Check:
    """The guard's verdict on one field: left out or kept, and why, with the figures."""

    feature: str
    left_out: bool
    reason: str
    evidence: dict[str, Any]

    @property
    def flag(self) -> Flag | None:
        return Flag(self.feature, self.reason, self.evidence) if self.left_out else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def screen(frame: Frame, y: Sequence[int] | np.ndarray, settings: GuardSettings | None = None) -> list[Flag]:
    """Fields that predict the outcome implausibly well on their own."""
    return [c.flag for c in examine(frame, y, settings) if c.flag is not None]


def examine(frame: Frame, y: Sequence[int] | np.ndarray, settings: GuardSettings | None = None) -> list[Check]:
    """Every field judged on all the rows given (in time order) and on each of ``periods``
    consecutive periods of them: a field that gives the outcome away in any period, or over all
    rows, is left out. The verdict does not depend on how many rows a caller holds out."""
    s = settings or GuardSettings()
    target = np.asarray(y, dtype=float)
    n = len(target)
    periods = [np.arange(n)[k * n // s.periods : (k + 1) * n // s.periods] for k in range(s.periods)]
    periods = [
        p for p in periods if len(p) >= s.min_period_rows and min(target[p].sum(), len(p) - target[p].sum()) >= 10
    ]
    checks = []
    for name in frame.names:
        values = frame.columns[name]
        kind = frame.kinds[name]
        filled = np.array([v is not None for v in values], dtype=bool)
        column = _codes(values) if kind == CATEGORY else np.array([np.nan if v is None else float(v) for v in values])
        evidence = _evidence(column, filled, kind, target, s)
        by_period = []
        for rows in periods:
            part = _evidence(column[rows], filled[rows], kind, target[rows], s)
            by_period.append(max((a for a in (part.get("auc"), part.get("auc_filled")) if a is not None), default=None))
        if by_period:
            evidence["auc_by_period"] = [None if a is None else round(a, 4) for a in by_period]
        reasons = []
        overall = max((a for a in (evidence.get("auc"), evidence.get("auc_filled")) if a is not None), default=None)
        worst = max((a for a in by_period if a is not None), default=None)
        if overall is not None and overall > s.max_auc:
            reasons.append(f"on its own it ranks outcomes with AUC {overall:.3f} (above {s.max_auc})")
        elif worst is not None and worst > s.max_auc:
            reasons.append(
                f"on its own it ranks outcomes with AUC {worst:.3f} in one period of time (above {s.max_auc})"
            )
        share = evidence.get("deterministic_share")
        if share is not None and share > s.max_deterministic_share:
            reasons.append(f"{share:.0%} of the leads that have it sit in values that (almost) always or never convert")
        for key in ("auc", "auc_filled"):
            if evidence.get(key) is not None:
                evidence[key] = round(evidence[key], 4)
        if reasons:
            checks.append(Check(name, True, "; ".join(reasons), evidence))
        else:
            best = max((a for a in (overall, worst) if a is not None), default=None)
            why = f"on its own AUC {best:.3f} at most (limit {s.max_auc})" if best is not None else "no ranking power"
            if share is not None:
                why += f"; {share:.0%} of the leads that have it in always/never-converting values"
            checks.append(Check(name, False, f"kept: {why}", evidence))
    return checks


def _evidence(
    column: np.ndarray, filled: np.ndarray, kind: str, target: np.ndarray, s: GuardSettings
) -> dict[str, Any]:
    """Single-field figures on these rows: ``column`` holds category codes or numbers."""
    shuffle = np.random.default_rng(0).permutation(len(target))  # folds independent of row order
    values, ys, filled = column[shuffle], target[shuffle], filled[shuffle]
    evidence: dict[str, Any] = {"filled_share": round(float(filled.mean()), 4) if len(filled) else 0.0}
    if kind == CATEGORY:
        evidence["auc"] = _category_auc(values, ys, s.folds)
        if len(filled) and filled.mean() >= s.min_filled_share and filled.sum() >= s.min_level_support:
            evidence["auc_filled"] = _category_auc(values[filled], ys[filled], s.folds)
            evidence["deterministic_share"] = round(_deterministic_share(values[filled], ys[filled], s), 4)
    else:
        evidence["auc"] = _number_auc(values, ys)
    return evidence


def _deterministic_share(values: Sequence[Any] | np.ndarray, y: np.ndarray, s: GuardSettings) -> float:
    """Share of the rows in levels that (almost) always or (almost) never convert, counting a
    level only when its size makes that unlikely by chance: an "always" level would have been
    expected to hold at least ``min_expected`` non-converters, a "never" level as many converters
    (and converts far below the base rate)."""
    if not len(values):
        return 0.0
    base = float(y.mean())
    codes = _codes(values)
    count = np.bincount(codes)
    rate = np.bincount(codes, weights=y) / np.maximum(count, 1)
    big = count >= s.min_level_support
    always = (rate > 1 - s.deterministic_rate) & (count * (1 - base) >= s.min_expected)
    never = (rate < min(s.deterministic_rate, base * 0.2)) & (count * base >= s.min_expected)
    return float(count[big & (always | never)].sum() / len(values))


def set_after_outcome(
    first_set: Mapping[str, Mapping[int, Any]], outcome_at: Mapping[int, Any], settings: GuardSettings | None = None
) -> list[Flag]:
    """Fields the event log shows being set at or after the outcome for most converted leads.

    ``first_set[field][lead_id]`` is when the field got its current value; ``outcome_at[lead_id]``
    when the lead reached the target stage (converted leads only).
    """
    s = settings or GuardSettings()
    flags = []
    for name, when in first_set.items():
        relevant = [(lead, at) for lead, at in when.items() if lead in outcome_at and at is not None]
        if len(relevant) < 5:
            continue
        after = sum(1 for lead, at in relevant if at >= outcome_at[lead])
        share = after / len(relevant)
        if share >= s.after_outcome_share:
            flags.append(
                Flag(
                    name,
                    f"set at or after the outcome for {share:.0%} of the converted leads that have it",
                    {"converted_with_field": len(relevant), "set_after_outcome": after},
                )
            )
    return flags
