"""The three kinds of model training chooses between, each additive on the log-odds scale.

Every learner turns an encoded matrix (:class:`~leadflow.model.frame.Encoding`: category codes and
numbers, NaN for missing) into a margin, and one row's margin into a base value plus one
contribution per feature that add up to it exactly:

* :class:`Trees` — LightGBM gradient boosting; contributions are TreeSHAP values;
* :class:`Logistic` — logistic regression on one-hot categories and log-scaled numbers; a
  feature's contribution is its terms measured from the average lead of the training rows;
* :class:`NaiveBayes` — per feature the log-likelihood ratio of its value (numbers cut at the
  training rows' deciles), measured from its average.

So a blend of them (a weighted sum of margins) explains itself the same way. Fitting needs
scikit-learn; scoring needs only numpy (and LightGBM for trees), so a prediction stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadflow.model.frame import CATEGORY, Encoding


def _level_count(encoding: Encoding, name: str) -> int:
    return len(encoding.levels.get(name, ()))


def _codes(column: np.ndarray, levels: int) -> np.ndarray:
    """Category codes with missing (NaN) as the extra code ``levels``."""
    out = np.where(np.isnan(column), levels, column)
    return np.clip(out, 0, levels).astype(np.int64)


def _scaled(column: np.ndarray) -> np.ndarray:
    return np.sign(column) * np.log1p(np.abs(column))


@dataclass
class Trees:
    booster: Any
    text: str
    kind: str = "gradient_boosting"

    def margins(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, raw_score=True, num_threads=1), dtype=float)

    def explain(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        contrib = self.booster.predict(row, pred_contrib=True, num_threads=1)[0]
        return float(contrib[-1]), np.asarray(contrib[:-1], dtype=float)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}  # the trees themselves are the version's model_text

    @classmethod
    def load(cls, text: str) -> Trees:
        """Scored through LightGBM's C library directly: no ``import lightgbm`` (0.3 s) to score."""
        from leadflow.model import lightgbm_c

        return cls(lightgbm_c.Trees(text), text)


def fit_trees(
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    categorical: Sequence[int],
    params: Mapping[str, Any],
    *,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    rounds: int | None = None,
) -> tuple[Trees, int]:
    """Trees boosted until the validation rows stop improving (or for ``rounds``)."""
    import lightgbm as lgb

    train_set = lgb.Dataset(X, y, weight=weight, categorical_feature=list(categorical), free_raw_data=False)
    if valid is not None:
        valid_set = lgb.Dataset(valid[0], valid[1], reference=train_set)
        booster = lgb.train(
            dict(params),
            train_set,
            num_boost_round=2000,
            valid_sets=[valid_set],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        best = booster.best_iteration or booster.current_iteration()
    else:
        booster = lgb.train(dict(params), train_set, num_boost_round=max(1, rounds or 100))
        best = booster.current_iteration()
    text = booster.model_to_string(num_iteration=best)
    return Trees.load(text), best


class _Additive(ABC):
    """A margin that is ``base`` plus one term per feature (``_terms``: rows × features)."""

    base: float

    @abstractmethod
    def _terms(self, X: np.ndarray) -> np.ndarray: ...

    def margins(self, X: np.ndarray) -> np.ndarray:
        return self.base + self._terms(X).sum(axis=1)

    def explain(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        return self.base, self._terms(row)[0]


@dataclass
class Logistic(_Additive):
    """Per feature: a table of terms by category code (missing last), or for a number the
    slope of its log-scaled standardised value, the term for "missing", and its centre."""

    base: float
    tables: dict[int, list[float]]  # feature index -> term per code, missing last (centred)
    numbers: dict[int, tuple[float, float, float, float, float]]  # j -> (mu, sd, slope, missing term, centre)
    kind: str = "logistic_regression"

    def _terms(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros(X.shape, dtype=float)
        for j, table in self.tables.items():
            t = np.asarray(table)
            out[:, j] = t[_codes(X[:, j], len(t) - 1)]
        for j, (mu, sd, slope, miss, centre) in self.numbers.items():
            x = X[:, j]
            missing = np.isnan(x)
            z = np.where(missing, 0.0, (_scaled(np.nan_to_num(x)) - mu) / sd)
            out[:, j] = slope * z + miss * missing - centre
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base": self.base,
            "tables": {str(j): t for j, t in self.tables.items()},
            "numbers": {str(j): list(v) for j, v in self.numbers.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Logistic:
        return cls(
            float(data["base"]),
            {int(j): [float(v) for v in t] for j, t in data["tables"].items()},
            {int(j): tuple(float(v) for v in t) for j, t in data["numbers"].items()},  # type: ignore[misc]
        )


def fit_logistic(X: np.ndarray, y: np.ndarray, weight: np.ndarray, encoding: Encoding, *, C: float = 1.0) -> Logistic:
    """L2-regularised logistic regression; terms centred on the (weighted) training rows."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    blocks, layout = [], []  # layout: (feature index, kind, width)
    n = X.shape[0]
    stats: dict[int, tuple[float, float]] = {}
    for j, name in enumerate(encoding.features):
        col = X[:, j]
        if encoding.kinds[name] == CATEGORY:
            levels = _level_count(encoding, name)
            codes = _codes(col, levels)
            blocks.append(sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, levels + 1)))
            layout.append((j, CATEGORY, levels + 1))
        else:
            missing = np.isnan(col)
            v = _scaled(np.nan_to_num(col))
            present = v[~missing]
            mu = float(np.average(present, weights=weight[~missing])) if len(present) else 0.0
            sd = float(np.sqrt(np.average((present - mu) ** 2, weights=weight[~missing]))) if len(present) else 1.0
            sd = sd if sd > 0 else 1.0
            stats[j] = (mu, sd)
            z = np.where(missing, 0.0, (v - mu) / sd)
            blocks.append(sparse.csr_matrix(np.column_stack([z, missing.astype(float)])))
            layout.append((j, "number", 2))
    design = sparse.hstack(blocks, format="csr")
    # Newton steps on the (small) Hessian: exact and several times faster than lbfgs on one-hot columns
    model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200).fit(design, y, sample_weight=weight)
    coef = model.coef_[0]
    means = np.asarray(design.multiply(weight[:, None]).sum(axis=0)).ravel() / weight.sum()
    base = float(model.intercept_[0] + coef @ means)
    tables: dict[int, list[float]] = {}
    numbers: dict[int, tuple[float, float, float, float, float]] = {}
    at = 0
    for j, kind, width in layout:
        c, m = coef[at : at + width], means[at : at + width]
        centre = float(c @ m)
        if kind == CATEGORY:
            tables[j] = [float(v - centre) for v in c]
        else:
            mu, sd = stats[j]
            numbers[j] = (mu, sd, float(c[0]), float(c[1]), centre)
        at += width
    return Logistic(base, tables, numbers)


@dataclass
class NaiveBayes(_Additive):
    """Per feature the log-likelihood ratio of its bin (category code or number decile; missing
    a bin of its own), centred on the training rows' average."""

    base: float
    tables: dict[int, list[float]]  # j -> ratio per bin (centred); categories: missing last
    edges: dict[int, list[float]]  # numbers: j -> decile edges (bin 0 is missing)
    kind: str = "naive_bayes"

    def _bins(self, X: np.ndarray, j: int) -> np.ndarray:
        col = X[:, j]
        if j in self.edges:
            return np.where(np.isnan(col), 0, np.digitize(np.nan_to_num(col), self.edges[j]) + 1)
        return _codes(col, len(self.tables[j]) - 1)

    def _terms(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros(X.shape, dtype=float)
        for j, table in self.tables.items():
            out[:, j] = np.asarray(table)[self._bins(X, j)]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base": self.base,
            "tables": {str(j): t for j, t in self.tables.items()},
            "edges": {str(j): e for j, e in self.edges.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NaiveBayes:
        return cls(
            float(data["base"]),
            {int(j): [float(v) for v in t] for j, t in data["tables"].items()},
            {int(j): [float(v) for v in e] for j, e in data["edges"].items()},
        )


def fit_naive_bayes(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray, encoding: Encoding, *, alpha: float = 1.0
) -> NaiveBayes:
    pos = weight * (y == 1)
    neg = weight * (y == 0)
    total = weight.sum()
    p_pos = float(pos.sum() / total)
    base = float(np.log(max(p_pos, 1e-9) / max(1 - p_pos, 1e-9)))
    model = NaiveBayes(base, {}, {})
    for j, name in enumerate(encoding.features):
        col = X[:, j]
        if encoding.kinds[name] == CATEGORY:
            size = _level_count(encoding, name) + 1
        else:
            present = col[~np.isnan(col)]
            edges = np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9))) if len(present) else np.array([])
            model.edges[j] = edges.tolist()
            size = len(edges) + 2
        model.tables[j] = [0.0] * size
        bins = model._bins(X, j)
        n_pos = np.bincount(bins, weights=pos, minlength=size)
        n_neg = np.bincount(bins, weights=neg, minlength=size)
        ratio = np.log((n_pos + alpha) / (pos.sum() + alpha * size)) - np.log(
            (n_neg + alpha) / (neg.sum() + alpha * size)
        )
        centre = float(np.average(ratio[bins], weights=weight))
        model.tables[j] = (ratio - centre).tolist()
        model.base += centre
    return model


def load_component(data: Mapping[str, Any], model_text: str) -> Trees | Logistic | NaiveBayes:
    kind = data["kind"]
    if kind == "gradient_boosting":
        return Trees.load(model_text)
    if kind == "logistic_regression":
        return Logistic.from_dict(data)
    if kind == "naive_bayes":
        return NaiveBayes.from_dict(data)
    raise ValueError(f"unknown model kind {kind!r}")
