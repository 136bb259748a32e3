"""How well scores predict outcomes, and the baselines a model must beat.

Every scorer is judged on the same rows: AUC, log loss, Brier score, a calibration curve, gains
and lift by decile and conversion per score band. Scores are probabilities (0-1); a points score
(the rule model) is compared on ranking (AUC, gains) and, for the probability figures, through a
calibration fitted on the older rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from leadflow.model.frame import CATEGORY, Frame
from leadflow.model.leakage import rank_auc
from leadflow.scoring.evaluation import BANDS

EPS = 1e-6


def figures(probability: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray) -> dict[str, Any]:
    p = np.clip(np.asarray(probability, dtype=float), EPS, 1 - EPS)
    t = np.asarray(y, dtype=float)
    auc = rank_auc(p, t)
    return {
        "leads": len(t),
        "conversion_rate": round(float(t.mean()), 4) if len(t) else None,
        "auc": None if auc is None else round(auc, 4),
        "auc_interval": auc_interval(auc, int(t.sum()), int(len(t) - t.sum())),
        "log_loss": round(float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))), 4),
        "brier": round(float(np.mean((p - t) ** 2)), 4),
        "calibration": calibration_curve(p, t),
        "deciles": gains(p, t),
        "ties": ties(p),
        "bands": by_band(p * 100, t),
    }


def auc_interval(auc: float | None, positives: int, negatives: int) -> list[float] | None:
    """The 95% interval of an AUC measured on this many converted and unconverted leads (Hanley
    and McNeil, 1982): with a handful of conversions, differences inside it are noise."""
    if auc is None or positives == 0 or negatives == 0:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    half = 1.96 * float(np.sqrt(max(var, 0.0)))
    return [round(max(0.0, auc - half), 4), round(min(1.0, auc + half), 4)]


def calibration_curve(p: np.ndarray, t: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    out = []
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "leads": int(inside.sum()),
                    "predicted": round(float(p[inside].mean()), 4),
                    "observed": round(float(t[inside].mean()), 4),
                }
            )
    return out


def gains(p: np.ndarray, t: np.ndarray, parts: int = 10) -> list[dict[str, Any]]:
    """Deciles from the highest scores down: conversions captured so far and lift. Leads with
    equal scores stay in one decile (a decile ends where the next score begins), so row order
    cannot invent lift; a decile may hold more or fewer than a tenth, or none."""
    n = len(t)
    total = t.sum()
    rate = t.mean() if n else 0.0
    order = np.argsort(-p, kind="mergesort")
    sorted_p = p[order]
    # each group of equal scores goes to the decile where the group starts
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_p) != 0) + 1] if n else np.array([], dtype=int)
    group = np.cumsum(np.r_[0, np.diff(sorted_p) != 0]) if n else np.array([], dtype=int)
    decile_of_group = np.minimum(starts * parts // max(n, 1), parts - 1)
    decile = decile_of_group[group] if n else np.array([], dtype=int)
    out, captured = [], 0.0
    for d in range(parts):
        chunk = order[decile == d]
        if len(chunk) == 0:
            continue
        conv = float(t[chunk].sum())
        captured += conv
        out.append(
            {
                "decile": d + 1,
                "leads": len(chunk),
                "converted": int(conv),
                "rate": round(conv / len(chunk), 4),
                "lift": round((conv / len(chunk)) / rate, 3) if rate else None,
                "captured": round(captured / total, 4) if total else None,
            }
        )
    return out


def ties(p: np.ndarray, X: np.ndarray | None = None) -> dict[str, Any]:
    """The largest share of leads that got one and the same score, and whether those leads also
    had identical features (then the tie is honest)."""
    if not len(p):
        return {"largest_share": 0.0, "leads": 0, "identical_features": True}
    values, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    top = int(np.argmax(counts))
    out = {
        "largest_share": round(float(counts[top] / len(p)), 4),
        "leads": int(counts[top]),
        "score": float(values[top]),
    }
    if X is not None:
        rows = np.nan_to_num(X[inverse == top], nan=-1e300)
        out["identical_features"] = bool(len(np.unique(rows, axis=0)) == 1)
    return out


def by_band(score: np.ndarray, t: np.ndarray) -> list[dict[str, Any]]:
    out = []
    for lo, hi in BANDS:
        inside = (score >= lo) & (score < hi)
        n = int(inside.sum())
        out.append(
            {
                "band": f"{lo}-{min(hi, 100) - (0 if hi > 100 else 1)}",
                "leads": n,
                "converted": int(t[inside].sum()),
                "rate": round(float(t[inside].mean()), 4) if n else None,
            }
        )
    return out


# -- baselines ---------------------------------------------------------------------------------


def _design(frame: Frame, features: Sequence[str], fit_rows: np.ndarray) -> tuple[Any, Any]:
    """Category codes (missing as a level) and numbers binned into deciles of the fit rows."""
    cat_cols, num_cols = [], []
    for name in features:
        values = frame.columns[name]
        if frame.kinds[name] == CATEGORY:
            levels = {v: i + 1 for i, v in enumerate(sorted({values[i] for i in fit_rows if values[i] is not None}))}
            cat_cols.append(np.array([levels.get(v, 0) if v is not None else 0 for v in values]))
        else:
            x = np.array([np.nan if v is None else float(v) for v in values])
            num_cols.append(x)
    return cat_cols, num_cols


def naive_bayes(frame: Frame, features: Sequence[str], y: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Categorical naive Bayes: categories as levels, numbers cut at the fit rows' deciles."""
    from sklearn.naive_bayes import CategoricalNB

    cat_cols, num_cols = _design(frame, features, fit)
    cols = list(cat_cols)
    for x in num_cols:
        filled = x[fit][~np.isnan(x[fit])]
        edges = np.unique(np.quantile(filled, np.linspace(0.1, 0.9, 9))) if len(filled) else np.array([])
        binned = np.where(np.isnan(x), 0, np.digitize(np.nan_to_num(x), edges) + 1)
        cols.append(binned)
    X = np.column_stack(cols).astype(int)
    model = CategoricalNB(alpha=1.0, min_categories=X.max(axis=0) + 1).fit(X[fit], y[fit])
    return model.predict_proba(X)[:, 1]


def logistic(frame: Frame, features: Sequence[str], y: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Logistic regression: one-hot categories, log-scaled standardised numbers with a
    missing indicator."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    cat_cols, num_cols = _design(frame, features, fit)
    parts = []
    if cat_cols:
        C = np.column_stack(cat_cols)
        enc = OneHotEncoder(handle_unknown="ignore", min_frequency=10).fit(C[fit])
        parts.append(enc.transform(C).toarray())
    for x in num_cols:
        missing = np.isnan(x)
        v = np.sign(x) * np.log1p(np.abs(np.nan_to_num(x)))
        filled = v[fit][~missing[fit]]
        mu = float(filled.mean()) if len(filled) else 0.0
        sd = float(filled.std()) if len(filled) and filled.std() > 0 else 1.0
        parts.append(np.column_stack([(np.where(missing, mu, v) - mu) / sd, missing.astype(float)]))
    X = np.hstack(parts)
    model = LogisticRegression(max_iter=2000, C=1.0).fit(X[fit], y[fit])
    return model.predict_proba(X)[:, 1]


def calibrated_points(points: np.ndarray, y: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """A points score (0-100) as a probability, by isotonic regression on the fit rows: its
    ranking is unchanged except for ties, so its AUC stays the rule model's own."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(points[fit], y[fit])
    return np.asarray(iso.predict(points), dtype=float)


def compare(
    frame: Frame,
    features: Sequence[str],
    y: Sequence[int],
    fit: np.ndarray,
    holdout: np.ndarray,
    model_probability: np.ndarray,
    rule_points: Sequence[float] | None = None,
) -> dict[str, dict[str, Any]]:
    """The predictive model, the rule model, naive Bayes and logistic regression on the same
    holdout rows (baselines fitted on the same older rows as the model)."""
    t = np.asarray(y, dtype=float)
    out = {"predictive": figures(model_probability[holdout], t[holdout])}
    if rule_points is not None:
        points = np.asarray(rule_points, dtype=float)
        as_probability = calibrated_points(points, t, fit)
        rule = figures(as_probability[holdout], t[holdout])
        rule["auc"] = round(rank_auc(points[holdout], t[holdout]) or 0.0, 4)
        rule["bands"] = by_band(points[holdout], t[holdout])
        out["rules"] = rule
    out["naive_bayes"] = figures(naive_bayes(frame, features, t, fit)[holdout], t[holdout])
    out["logistic_regression"] = figures(logistic(frame, features, t, fit)[holdout], t[holdout])
    return out
