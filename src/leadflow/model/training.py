"""Training the conversion model, never worse than its own baselines, on data that drifts.

Rows are ordered by time. The newest ``holdout`` share is kept out entirely and only measured on
(the figures in the training report). Of the older rows, the oldest part (``fit``) trains every
candidate — gradient boosting (LightGBM, native categories), logistic regression and naive Bayes,
each with and without recency weights — and the newest part (``validation``) chooses between
them and their blends, stops the boosting and fits the calibration: nothing is tuned on rows
older than the ones it is judged on, and nothing on the holdout. What was chosen is then refitted
on every row before the holdout. The score is the calibrated probability as 0-100.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from leadflow.errors import InvalidInput, Problem
from leadflow.model import learners
from leadflow.model.frame import Encoding, Frame
from leadflow.model.leakage import Check, Flag, GuardSettings, examine, rank_auc
from leadflow.model.learners import Trees
from leadflow.model.predictor import Predictor

PARAMS: dict[str, Any] = {
    "objective": "binary",
    # Small trees: TreeSHAP explanations cost O(trees x leaves x depth^2) per lead; depth 5 keeps
    # an explained score near 0.2 ms (31 leaves cost ~1 ms) at the same held-out AUC.
    "learning_rate": 0.1,
    "num_leaves": 15,
    "max_depth": 5,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "cat_smooth": 10,
    "cat_l2": 10,
    "min_data_per_group": 20,
    "max_cat_to_onehot": 4,
    "verbose": -1,
    "num_threads": 1,  # on a shared machine OpenMP threads spin against each other: 1 is faster
    "seed": 7,
    "deterministic": True,
}
MIN_ROWS = 40
KINDS = ("gradient_boosting", "logistic_regression", "naive_bayes")


@dataclass(frozen=True)
class Split:
    """Row indices, oldest first in each part."""

    fit: np.ndarray
    calibrate: np.ndarray
    holdout: np.ndarray


def time_split(times: Sequence[Any], holdout: float = 0.25, calibrate: float = 0.2) -> Split:
    order = np.array(sorted(range(len(times)), key=lambda i: (times[i], i)))
    n = len(order)
    n_hold = round(n * holdout)
    rest = order[: n - n_hold]
    n_cal = max(1, round(len(rest) * calibrate))
    return Split(fit=rest[: len(rest) - n_cal], calibrate=rest[len(rest) - n_cal :], holdout=order[n - n_hold :])


@dataclass
class TrainingResult:
    predictor: Predictor
    split: Split
    flags: list[Flag]
    forced: list[str]
    excluded: list[str]  # dropped by the guard (not forced) or declared by the caller
    constant: list[str]
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)  # the guard's verdict on every field


# Recency: the weight of a lead halves every ``half_life`` × the span of the training rows (None:
# all weigh the same). Which one is chosen on the validation rows, per kind of model.
HALF_LIVES: tuple[float | None, ...] = (None, 0.5, 0.15)
BLEND_STEP = 0.1
BLEND_MIN_GAIN = 0.001  # a blend must beat the best single model's validation AUC by this much


@dataclass
class Trial:
    """One candidate fitted on the fit rows and judged on the validation rows."""

    kind: str
    half_life: float | None
    learner: Any  # fitted on the last fold
    rounds: int
    margins: list[np.ndarray]  # on each fold's validation rows (the last: the newest)
    auc: float  # mean over the folds
    log_loss: float


def train(
    frame: Frame,
    y: Sequence[int],
    times: Sequence[Any],
    *,
    holdout: float = 0.25,
    exclude: Sequence[str] = (),
    force: Sequence[str] = (),
    guard: GuardSettings | None = None,
    history_flags: Sequence[Flag] = (),
    params: Mapping[str, Any] | None = None,
    kinds: Sequence[str] = KINDS,
    refit: bool = True,
) -> TrainingResult:
    """Screen the fields for leakage; on the older rows fit gradient boosting, logistic regression
    and naive Bayes (each with and without recency weights), choose on the newest of those rows
    (the validation slice) the one or the blend that ranks them best, refit it on all of them and
    calibrate it on the most recent outcomes. The holdout is never looked at."""
    began = time.perf_counter()
    target = np.asarray(y, dtype=float)
    _check(frame, target, times, holdout)
    unknown = [f for f in (*exclude, *force) if f not in frame.columns]
    if unknown:
        raise InvalidInput(
            "unknown fields", [Problem("force" if u in force else "exclude", f"no feature {u!r}") for u in unknown]
        )
    split = time_split(times, holdout)
    learn = np.concatenate([split.fit, split.calibrate])
    candidates = frame.select([n for n in frame.names if n not in exclude])
    # The guard examines every labelled row in time order (holdout included: whether a field gives
    # the outcome away must not depend on how many rows are held out), in each period of time too.
    order = np.array(sorted(range(len(times)), key=lambda i: (times[i], i)))
    checks = examine(candidates.rows(order), target[order], guard)
    flags = merge_flags([*history_flags, *(c.flag for c in checks if c.flag is not None)])
    flagged = {f.feature for f in flags}
    forced = [f for f in force if f in flagged]
    dropped = sorted(flagged - set(force))
    learnable = candidates.select([n for n in candidates.names if n not in dropped])
    informative = set(learnable.rows(split.fit).informative())
    constant = [n for n in learnable.names if n not in informative]
    features = [n for n in learnable.names if n in informative]
    if not features:
        raise InvalidInput("nothing to learn from", [Problem("features", "every feature is constant or excluded")])
    encoding = Encoding.fit(frame.rows(learn), features)
    X = encoding.encode(frame.select(features))
    settings = {**PARAMS, **(params or {})}
    stamps = _numeric_times(times)
    fit, val = split.fit, split.calibrate
    folds = validation_folds(fit, val, target)
    trials = [_trial(kind, h, X, target, stamps, folds, encoding, settings) for kind in kinds for h in HALF_LIVES]
    best = {}
    for t in trials:
        if t.kind not in best or (t.auc, -t.log_loss) > (best[t.kind].auc, -best[t.kind].log_loss):
            best[t.kind] = t
    fold_y = [target[v] for _, v in folds]
    chosen, weights, scales = _choose(list(best.values()), fold_y)
    recent = folds[-1][1]
    # Refit what was chosen on every row before the holdout (the newest outcomes matter most).
    final = []
    for trial, weight, (a, b) in zip(chosen, weights, scales, strict=True):
        learner = (
            _fit(trial.kind, trial.half_life, X, target, stamps, learn, encoding, settings, rounds=trial.rounds)
            if refit
            else trial.learner
        )
        final.append((trial, weight * a, weight * b, learner))
    offset = float(sum(b for _, _, b, _ in final))
    selected_margin = sum(w * np.concatenate(t.margins) for t, w, _, _ in final) + offset
    predictor = Predictor(
        [(w, learner) for _, w, _, learner in final],
        encoding,
        {"method": "linear", "a": 1.0, "b": 0.0},
        offset=offset,
        model_text=next((learner.text for *_, learner in final if isinstance(learner, Trees)), ""),
    )
    predictor = _calibrated(
        predictor, selected_margin, np.concatenate(fold_y), X, target, _recent_rows(learn, target, len(recent))
    )
    report = {
        "model": predictor.kind,
        "chosen": predictor.description,
        "why": _why(chosen, weights, trials, folds),
        "validation": {
            "folds": len(folds),
            "leads": [len(v) for _, v in folds],
            "converted": [int(target[v].sum()) for _, v in folds],
        },
        "candidates": [
            {
                "model": t.kind,
                "recency_half_life": _half_life_label(t.half_life, stamps[fit], times),
                "validation_auc": round(t.auc, 4),
                "validation_log_loss": round(t.log_loss, 4),
                "rounds": t.rounds if t.kind == "gradient_boosting" else None,
                "chosen": any(t is c for c in chosen),
            }
            for t in trials
        ],
        "blend": [{"model": t.kind, "weight": round(w, 3)} for t, w in zip(chosen, weights, strict=True)],
        "refit": refit,
        "calibration": predictor.calibration,
        "iterations": next((t.rounds for t in chosen if t.kind == "gradient_boosting"), None),
        "params": {k: settings[k] for k in sorted(settings)},
    }
    return TrainingResult(
        predictor=predictor,
        split=split,
        flags=flags,
        forced=forced,
        excluded=sorted(set(exclude) | set(dropped)),
        constant=constant,
        seconds=time.perf_counter() - began,
        report=report,
        checks=checks,
    )


def _numeric_times(times: Sequence[Any]) -> np.ndarray:
    return np.array([t.timestamp() if isinstance(t, datetime) else float(t) for t in times], dtype=float)


def recency_weights(stamps: np.ndarray, half_life: float | None) -> np.ndarray:
    """Weights (mean 1) that halve every ``half_life`` × the rows' span back from the newest."""
    if half_life is None or len(stamps) == 0:
        return np.ones(len(stamps))
    span = float(stamps.max() - stamps.min())
    if span <= 0:
        return np.ones(len(stamps))
    w = np.power(0.5, (stamps.max() - stamps) / (half_life * span))
    return w / w.mean()


def _fit(
    kind: str,
    half_life: float | None,
    X: np.ndarray,
    y: np.ndarray,
    stamps: np.ndarray,
    rows: np.ndarray,
    encoding: Encoding,
    settings: Mapping[str, Any],
    *,
    rounds: int | None = None,
    valid: np.ndarray | None = None,
) -> Any:
    w = recency_weights(stamps[rows], half_life)
    if kind == "gradient_boosting":
        trees, best = learners.fit_trees(
            X[rows],
            y[rows],
            w,
            encoding.categorical_indices,
            settings,
            valid=None if valid is None else (X[valid], y[valid]),
            rounds=rounds,
        )
        return (trees, best) if valid is not None else trees
    if kind == "logistic_regression":
        return learners.fit_logistic(X[rows], y[rows], w, encoding)
    return learners.fit_naive_bayes(X[rows], y[rows], w, encoding)


MIN_VALIDATION_CLASS = 50  # fewer converted (or lost) validation leads than this: judge on rolling folds


def validation_folds(fit: np.ndarray, val: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Where candidates are judged: the validation slice after the fit rows, or — when it holds
    too few outcomes of one kind to tell models apart — three rolling folds over every row before
    the holdout (fit on the oldest 40%, 60%, 80%, judge on the next 20%), the last of which is the
    newest."""
    positives = int(y[val].sum())
    if min(positives, len(val) - positives) >= MIN_VALIDATION_CLASS:
        return [(fit, val)]
    learn = np.concatenate([fit, val])
    n = len(learn)
    cuts = [round(n * f) for f in (0.4, 0.6, 0.8, 1.0)]
    folds = [(learn[: cuts[i]], learn[cuts[i] : cuts[i + 1]]) for i in range(3)]
    return [(f, v) for f, v in folds if len(v) and 0 < y[f].sum() < len(f)] or [(fit, val)]


def _trial(
    kind: str,
    half_life: float | None,
    X: np.ndarray,
    y: np.ndarray,
    stamps: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    encoding: Encoding,
    settings: Mapping[str, Any],
) -> Trial:
    margins, aucs, losses, rounds, learner = [], [], [], [], None
    for fit, val in folds:
        if kind == "gradient_boosting":
            learner, r = _fit(kind, half_life, X, y, stamps, fit, encoding, settings, valid=val)
            rounds.append(r)
        else:
            learner = _fit(kind, half_life, X, y, stamps, fit, encoding, settings)
        m = learner.margins(X[val])
        a, b = _platt(m, y[val])
        margins.append(m)
        aucs.append(rank_auc(m, y[val]))
        losses.append(_log_loss(a * m + b, y[val]))
    judged = [a for a in aucs if a is not None]
    return Trial(
        kind,
        half_life,
        learner,
        int(np.median(rounds)) if rounds else 0,
        margins,
        float(np.mean(judged)) if judged else 0.5,
        float(np.mean(losses)),
    )


def _choose(best: list[Trial], fold_y: list[np.ndarray]) -> tuple[list[Trial], list[float], list[tuple[float, float]]]:
    """The single model or the blend (weights on a 0.1 grid, each model's margin first put on a
    common scale by its own linear calibration, fold by fold) with the best validation AUC; a
    blend must beat the best single model by ``BLEND_MIN_GAIN``. The scales returned are
    fitted on every fold's validation rows together."""
    scales = [[_platt(t.margins[k], y) for k, y in enumerate(fold_y)] for t in best]
    scaled = [[a * t.margins[k] + b for k, (a, b) in enumerate(sc)] for t, sc in zip(best, scales, strict=True)]
    top = max(range(len(best)), key=lambda i: (best[i].auc, -best[i].log_loss))
    choice: tuple[float, list[float]] = (best[top].auc + BLEND_MIN_GAIN, [float(i == top) for i in range(len(best))])
    steps = round(1 / BLEND_STEP)
    for combo in _simplex(len(best), steps):
        if max(combo) == steps:
            continue  # single models were judged above
        w = [c / steps for c in combo]
        aucs = [rank_auc(sum(wi * scaled[i][k] for i, wi in enumerate(w)), y) for k, y in enumerate(fold_y)]
        judged = [a for a in aucs if a is not None]
        auc = float(np.mean(judged)) if judged else 0.0
        if auc > choice[0] + 1e-12:
            choice = (auc, w)
    keep = [i for i, w in enumerate(choice[1]) if w > 0]
    pooled_y = np.concatenate(fold_y)
    pooled = [_platt(np.concatenate(best[i].margins), pooled_y) for i in keep]
    return [best[i] for i in keep], [choice[1][i] for i in keep], pooled


def _simplex(parts: int, total: int) -> list[tuple[int, ...]]:
    if parts == 1:
        return [(total,)]
    return [(k, *rest) for k in range(total + 1) for rest in _simplex(parts - 1, total - k)]


def _platt(margin: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """``a``, ``b`` of the logistic fit ``p = 1 / (1 + e^-(a m + b))`` (Newton's method)."""
    a, b = 1.0, 0.0
    w = np.ones(len(y)) if weight is None else weight
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(a * margin + b, -35, 35)))
        g = w * (p - y)
        h = w * p * (1 - p) + 1e-9
        grad = np.array([np.sum(g * margin), np.sum(g)]) + np.array([1e-4 * (a - 1), 0.0])
        hess = np.array([[np.sum(h * margin * margin) + 1e-4, np.sum(h * margin)], [np.sum(h * margin), np.sum(h)]])
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a), float(b)


def _log_loss(z: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(1 / (1 + np.exp(-np.clip(z, -35, 35))), 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


MIN_CALIBRATION_EACH = 20  # the calibration's level is read off at least this many converted and lost leads


def _recent_rows(learn: np.ndarray, y: np.ndarray, at_least: int) -> np.ndarray:
    """The newest rows before the holdout: the validation slice, reaching further back until
    they hold ``MIN_CALIBRATION_EACH`` converted and lost leads (a month with no conversion yet
    must not set every score to 0)."""
    start = max(0, len(learn) - at_least)
    tail = y[learn][::-1]
    positives, negatives = np.cumsum(tail), np.cumsum(1 - tail)
    enough = np.flatnonzero((positives >= MIN_CALIBRATION_EACH) & (negatives >= MIN_CALIBRATION_EACH))
    start = min(start, len(learn) - int(enough[0]) - 1) if len(enough) else 0
    return learn[start:]


def _calibrated(
    predictor: Predictor, selected: np.ndarray, y_selected: np.ndarray, X: np.ndarray, y: np.ndarray, recent: np.ndarray
) -> Predictor:
    """The calibration line: its slope from the validation rows' out-of-sample margins, its
    intercept so that the shipped model's mean probability on the most recent rows is the rate
    at which they converted (the refitted model has seen them, so only the level is taken)."""
    # too few outcomes of a kind to fit a slope: the margins were already put on scale
    a = _platt(selected, y_selected)[0] if min(y_selected.sum(), len(y_selected) - y_selected.sum()) >= 5 else 1.0
    margins = predictor.margins(X[recent])
    rate = float(y[recent].mean())
    lo, hi = -30.0, 30.0
    for _ in range(100):
        b = (lo + hi) / 2
        if float(np.mean(1 / (1 + np.exp(-np.clip(a * margins + b, -35, 35))))) < rate:
            lo = b
        else:
            hi = b
    predictor.calibration = {"method": "linear", "a": a, "b": (lo + hi) / 2, "fitted_on_newest": len(recent)}
    predictor.a, predictor.b = a, (lo + hi) / 2
    return predictor


def _why(
    chosen: list[Trial], weights: list[float], trials: list[Trial], folds: list[tuple[np.ndarray, np.ndarray]]
) -> str:
    from leadflow.model.predictor import LABELS

    best: dict[str, float] = {}
    for t in trials:
        if t.kind not in best or t.auc > best[t.kind]:
            best[t.kind] = t.auc
    others = ", ".join(f"{LABELS[k]} {v:.3f}" for k, v in sorted(best.items(), key=lambda kv: -kv[1]))
    where = (
        f"the newest {len(folds[0][1]):,} outcomes before the holdout"
        if len(folds) == 1
        else f"{len(folds)} rolling folds of the outcomes before the holdout ({sum(len(v) for _, v in folds):,} leads)"
    )
    if len(chosen) == 1:
        head = f"{LABELS[chosen[0].kind]} ranks {where} best"
    else:
        parts = " + ".join(f"{w:.1f} × {LABELS[t.kind]}" for t, w in zip(chosen, weights, strict=True))
        head = f"the blend {parts} ranks {where} better than any one model"
    return f"{head} (validation AUC by model: {others})"


def _half_life_label(half_life: float | None, stamps: np.ndarray, times: Sequence[Any]) -> str | None:
    if half_life is None:
        return None
    span = float(stamps.max() - stamps.min()) if len(stamps) else 0.0
    if times and isinstance(times[0], datetime):
        return f"{half_life * span / 86400:.0f} days"
    return f"{half_life:.0%} of the training span"


def merge_flags(flags: Sequence[Flag]) -> list[Flag]:
    """One flag per feature, its reasons and evidence together."""
    merged: dict[str, Flag] = {}
    for flag in flags:
        seen = merged.get(flag.feature)
        merged[flag.feature] = (
            flag
            if seen is None
            else Flag(flag.feature, f"{seen.reason}; {flag.reason}", {**seen.evidence, **flag.evidence})
        )
    return list(merged.values())


def _check(frame: Frame, y: np.ndarray, times: Sequence[Any], holdout: float) -> None:
    problems = []
    if len(frame) != len(y) or len(times) != len(y):
        problems.append(Problem("rows", "features, outcomes and times differ in length"))
    if len(y) < MIN_ROWS:
        problems.append(Problem("rows", f"{len(y)} leads with known outcomes; at least {MIN_ROWS} are needed"))
    elif y.sum() < 5 or (len(y) - y.sum()) < 5:
        problems.append(Problem("outcome", "at least 5 converted and 5 unconverted leads are needed"))
    if not 0.05 <= holdout <= 0.5:
        problems.append(Problem("holdout", "the held-out share must be between 0.05 and 0.5"))
    if problems:
        raise InvalidInput("cannot train a model on this data", problems)
