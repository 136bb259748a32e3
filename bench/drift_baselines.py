"""What plain models reach on the drifting data sets of ``bench.drift_data``, outside leadflow: the
yardstick for ``leadflow model train`` on the same data.

    python -m bench.drift_baselines [--limit N]     # N: employment rows (default: 30,000, as imported)

Rows in time order: the oldest 60% fit, the next 15% validate (early stopping), the newest 25% are
the holdout the figures come from (leadflow's own split is 75/25 with its calibration part inside
the 75). Models: LightGBM with its default parameters (categories native, early stopping on the
validation slice, 50 rounds); scikit-learn LogisticRegression (categories one-hot, numbers
standardised); CategoricalNB (numbers in 10 quantile bins of the fit slice). The outcome rate per
slice shows the drift; the LightGBM AUC on a random split of the same rows shows what the drift
costs. Figures go to ``bench/results/drift_baselines.json``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.naive_bayes import CategoricalNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, StandardScaler

from bench import drift_data
from bench.common import write


def _frame(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str], list[str]]:
    df = pd.DataFrame.from_records(records)
    numbers = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    categories = [c for c in df.columns if c not in numbers]
    for c in categories:
        df[c] = df[c].astype("category")
    return df, numbers, categories


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auc": round(float(roc_auc_score(y, p)), 4), "brier": round(float(brier_score_loss(y, p)), 4)}


def _lightgbm(X: pd.DataFrame, y: np.ndarray, fit: slice, val: slice, test: slice) -> tuple[np.ndarray, int]:
    model = lgb.LGBMClassifier(verbose=-1, random_state=7)
    model.fit(X.iloc[fit], y[fit], eval_set=[(X.iloc[val], y[val])], callbacks=[lgb.early_stopping(50, verbose=False)])
    return model.predict_proba(X.iloc[test])[:, 1], int(model.best_iteration_ or model.n_estimators)


def _logistic(X: pd.DataFrame, y: np.ndarray, numbers: list[str], categories: list[str], fit: slice, test: slice):
    prep = ColumnTransformer(
        [("num", StandardScaler(), numbers), ("cat", OneHotEncoder(handle_unknown="ignore"), categories)]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=2000))
    model.fit(X.iloc[fit], y[fit])
    return model.predict_proba(X.iloc[test])[:, 1]


def _naive_bayes(X: pd.DataFrame, y: np.ndarray, numbers: list[str], categories: list[str], fit: slice, test: slice):
    parts = []
    if numbers:
        parts.append(("num", KBinsDiscretizer(n_bins=10, encode="ordinal", strategy="quantile"), numbers))
    if categories:
        parts.append(("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categories))
    prep = ColumnTransformer(parts)
    A = prep.fit_transform(X.iloc[fit]) + 1  # 0: a level the fit slice never saw
    B = prep.transform(X.iloc[test]) + 1
    model = CategoricalNB(min_categories=(np.maximum(A.max(axis=0), B.max(axis=0)) + 1).astype(int))
    model.fit(A.astype(int), y[fit])
    return model.predict_proba(B.astype(int))[:, 1]


def measure(name: str, limit: int | None = None) -> dict[str, Any]:
    records, labels, times = drift_data.load(name, limit)
    X, numbers, categories = _frame(records)
    y = np.asarray(labels)
    n = len(y)
    a, b = int(n * 0.60), int(n * 0.75)
    fit, val, test = slice(0, a), slice(a, b), slice(b, n)
    out: dict[str, Any] = {
        "rows": n,
        "numbers": numbers,
        "categories": categories,
        "slices": {
            s: {
                "rows": len(y[sl]),
                "from": times[sl.start].isoformat(),
                "to": times[sl.stop - 1].isoformat(),
                "rate": round(float(y[sl].mean()), 4),
            }
            for s, sl in (("fit", fit), ("validation", val), ("holdout", test))
        },
    }
    t = time.perf_counter()
    p, trees = _lightgbm(X, y, fit, val, test)
    out["lightgbm"] = {**_scores(y[test], p), "trees": trees, "distinct_scores": len(np.unique(p))}
    out["logistic_regression"] = _scores(y[test], _logistic(X, y, numbers, categories, fit, test))
    out["naive_bayes"] = _scores(y[test], _naive_bayes(X, y, numbers, categories, fit, test))
    # Same rows, shuffled: what LightGBM reaches when the holdout looks like the training data.
    order = np.random.default_rng(7).permutation(n)
    p, _ = _lightgbm(X.iloc[order].reset_index(drop=True), y[order], fit, val, test)
    out["lightgbm_random_split"] = _scores(y[order][test], p)
    out["seconds"] = round(time.perf_counter() - t, 2)
    return out


def run(argv: list[str] | None = None) -> dict[str, Any]:
    argv = argv or []
    limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else 30_000
    figures = {
        "split": "time order: oldest 60% fit, next 15% validation, newest 25% holdout",
        "rainfall": measure("rainfall"),
        f"employment_{limit}": measure("employment", limit),
        "employment_all": measure("employment"),
    }
    for name, f in figures.items():
        if isinstance(f, dict):
            rates = ", ".join(f"{s} {v['rate']:.1%}" for s, v in f["slices"].items())
            print(f"{name} ({f['rows']:,} rows; outcome rate {rates})")
            for model in ("lightgbm", "logistic_regression", "naive_bayes", "lightgbm_random_split"):
                print(f"  {model:22} AUC {f[model]['auc']:.4f}  Brier {f[model]['brier']:.4f}")
    print("written to", write("drift_baselines", figures))
    return figures


if __name__ == "__main__":
    run(sys.argv[1:])
