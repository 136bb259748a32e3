"""Training the conversion model: LightGBM with native categories, time-ordered validation and
isotonic calibration. The score is the calibrated probability as 0-100.

Rows are ordered by time. The newest ``holdout`` share is kept out entirely and only measured
on (the figures in the training report); of the older rows, the oldest part trains the trees and
the newest part stops the boosting and fits the calibration, so nothing is tuned on rows older
than the ones it is judged on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leadflow.errors import InvalidInput, Problem
from leadflow.model.frame import Encoding, Frame
from leadflow.model.leakage import Flag, GuardSettings, screen
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
) -> TrainingResult:
    """Screen the fields for leakage, train on the older rows, calibrate on the newer ones."""
    import lightgbm as lgb

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
    # The guard looks only at the rows the model learns from: the holdout stays unseen.
    flags = merge_flags([*history_flags, *screen(candidates.rows(learn), target[learn], guard)])
    flagged = {f.feature for f in flags}
    forced = [f for f in force if f in flagged]
    dropped = sorted(flagged - set(force))
    learnable = candidates.select([n for n in candidates.names if n not in dropped])
    informative = set(learnable.rows(split.fit).informative())
    constant = [n for n in learnable.names if n not in informative]
    features = [n for n in learnable.names if n in informative]
    if not features:
        raise InvalidInput("nothing to learn from", [Problem("features", "every feature is constant or excluded")])
    encoding = Encoding.fit(frame.rows(split.fit), features)
    X = encoding.encode(frame.select(features))
    settings = {**PARAMS, **(params or {})}
    cats = encoding.categorical_indices
    train_set = lgb.Dataset(X[split.fit], target[split.fit], categorical_feature=cats, free_raw_data=False)
    valid_set = lgb.Dataset(X[split.calibrate], target[split.calibrate], reference=train_set)
    booster = lgb.train(
        settings,
        train_set,
        num_boost_round=2000,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    text = booster.model_to_string(num_iteration=best)
    booster = lgb.Booster(model_str=text)
    calibration = calibrate(booster.predict(X[split.calibrate]), target[split.calibrate])
    predictor = Predictor(booster=booster, encoding=encoding, calibration=calibration, model_text=text)
    return TrainingResult(
        predictor=predictor,
        split=split,
        flags=flags,
        forced=forced,
        excluded=sorted(set(exclude) | set(dropped)),
        constant=constant,
        seconds=time.perf_counter() - began,
        report={"iterations": best, "params": {k: settings[k] for k in sorted(settings)}},
    )


ISOTONIC_MIN_ROWS = 1000
ISOTONIC_MIN_EACH = 50
CLIP = 0.001


def calibrate(raw: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Isotonic regression when the calibration rows are plenty (it bends to any shape), else
    Platt scaling on the margin (two parameters cannot overfit a few hundred rows)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    positives = int(y.sum())
    if len(y) >= ISOTONIC_MIN_ROWS and min(positives, len(y) - positives) >= ISOTONIC_MIN_EACH:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=CLIP, y_max=1 - CLIP).fit(raw, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    p = np.clip(raw, 1e-9, 1 - 1e-9)
    margin = np.log(p / (1 - p)).reshape(-1, 1)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(margin, y)
    return {"method": "platt", "a": float(platt.coef_[0][0]), "b": float(platt.intercept_[0])}


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
