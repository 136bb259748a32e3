"""A trained model ready to score: its learners (trees, logistic regression, naive Bayes, or a
blend of them), the feature encoding and the calibration.

The arithmetic a person can follow: the learners give a **margin** (log-odds) that is exactly the
**base value** plus one **contribution** per feature; the **calibration** is a straight line on
that margin, ``z = a × margin + b`` (fitted on the most recent leads with known outcomes, so it
follows the conversion rate as it drifts); the probability is ``1 / (1 + e^-z)`` and the score is
that probability × 100, rounded. Scoring one lead is a few hundred microseconds: the row is
encoded without building a frame and no scikit-learn is imported.

Versions stored before blends existed (trees with isotonic or Platt calibration on the
probability) load and score as they always did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadflow.model.frame import CATEGORY, Encoding, clean
from leadflow.model.learners import Logistic, NaiveBayes, Trees, load_component

BASE = "(base value)"
LABELS = {
    "gradient_boosting": "gradient boosting",
    "logistic_regression": "logistic regression",
    "naive_bayes": "naive Bayes",
}
Component = Trees | Logistic | NaiveBayes


@dataclass
class Prediction:
    score: int  # calibrated probability × 100, rounded
    probability: float
    margin: float  # log-odds before calibration: base + the contributions
    base: float
    contributions: list[dict[str, Any]]  # largest first; with ``base`` they sum to ``margin``
    calibration: dict[str, Any]  # how the margin became the probability

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        return {
            "score": self.score,
            "probability": round(self.probability, 6),
            "base_value": round(self.base, 6),
            "margin": round(self.margin, 6),
            "contributions": self.contributions[:top] if top else self.contributions,
            "calibration": self.calibration,
        }


def sigmoid(z: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


class Predictor:
    """``components``: (weight, learner) pairs whose weighted margins plus ``offset`` make the
    margin; ``calibration``: ``{"method": "linear", "a", "b"}`` on that margin (or, for versions
    from before, ``isotonic``/``platt`` on the trees' probability)."""

    def __init__(
        self,
        components: Sequence[tuple[float, Component]],
        encoding: Encoding,
        calibration: Mapping[str, Any],
        *,
        offset: float = 0.0,
        model_text: str = "",
    ) -> None:
        self.components = [(float(w), c) for w, c in components]
        self.offset = float(offset)
        self.encoding = encoding
        self.calibration = dict(calibration)
        self.method = calibration["method"]
        if self.method == "isotonic":
            self.cal_x = np.asarray(calibration["x"], dtype=float)
            self.cal_y = np.asarray(calibration["y"], dtype=float)
        else:
            self.a, self.b = float(calibration["a"]), float(calibration["b"])
        self.model_text = model_text

    @property
    def kind(self) -> str:
        kinds = [c.kind for _, c in self.components]
        return kinds[0] if len(kinds) == 1 else "blend"

    @property
    def description(self) -> str:
        if len(self.components) == 1:
            return LABELS[self.components[0][1].kind]
        return "blend of " + " and ".join(LABELS[c.kind] for _, c in self.components)

    @property
    def booster(self) -> Any:
        """The LightGBM trees, when the model has them."""
        return next((c.booster for _, c in self.components if isinstance(c, Trees)), None)

    # -- storage -------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding.as_dict(),
            "calibration": self.calibration,
            "model": {
                "offset": self.offset,
                "components": [{"weight": w, **c.as_dict()} for w, c in self.components],
            },
        }

    @classmethod
    def load(cls, model_text: str, meta: Mapping[str, Any] | str) -> Predictor:
        data = json.loads(meta) if isinstance(meta, str) else meta
        encoding = Encoding.from_dict(data["encoding"])
        spec = data.get("model")
        if spec is None:  # a version from before blends: trees alone
            return cls([(1.0, Trees.load(model_text))], encoding, data["calibration"], model_text=model_text)
        components = [(float(c["weight"]), load_component(c, model_text)) for c in spec["components"]]
        return cls(components, encoding, data["calibration"], offset=spec.get("offset", 0.0), model_text=model_text)

    # -- scoring -------------------------------------------------------------------------------

    def margins(self, X: np.ndarray) -> np.ndarray:
        out = np.full(X.shape[0], self.offset)
        for weight, component in self.components:
            out += weight * component.margins(X)
        return out

    def calibrate_margin(self, margin: np.ndarray) -> np.ndarray:
        if self.method == "linear":
            return sigmoid(self.a * margin + self.b)
        raw = sigmoid(margin)
        if self.method == "isotonic":
            return np.interp(raw, self.cal_x, self.cal_y)
        p = np.clip(raw, 1e-9, 1 - 1e-9)
        return sigmoid(self.a * np.log(p / (1 - p)) + self.b)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.calibrate_margin(self.margins(X)), dtype=float)

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.rint(self.probabilities(X) * 100)

    def explain_row(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        """(base value, contribution per feature) of one encoded row."""
        base = self.offset
        total = np.zeros(len(self.encoding.features))
        for weight, component in self.components:
            b, contrib = component.explain(row)
            base += weight * b
            total += weight * contrib
        return base, total

    def _calibration_step(self, margin: float, probability: float) -> dict[str, Any]:
        if self.method == "linear":
            z = self.a * margin + self.b
            return {
                "method": "linear",
                "a": round(self.a, 6),
                "b": round(self.b, 6),
                "calibrated_margin": round(z, 6),
                "how": f"{self.a:.3f} × {margin:.3f} {'+' if self.b >= 0 else '−'} {abs(self.b):.3f} = {z:.3f}; "
                f"1 / (1 + e^{-z:.3f}) = {probability:.3f}",
            }
        raw = 1.0 / (1.0 + math.exp(-margin))
        return {
            "method": self.method,
            "raw_probability": round(raw, 6),
            "how": f"1 / (1 + e^{-margin:.3f}) = {raw:.3f}, then {self.method} calibration gives {probability:.3f}",
        }

    def predict(self, record: Mapping[str, Any], top: int = 5) -> Prediction:
        """One lead's score with its ``top`` contributions (all of them with ``top=0``)."""
        row = self.encoding.encode_one(record)
        base, contrib = self.explain_row(row)
        margin = float(base + contrib.sum())
        probability = float(self.calibrate_margin(np.array([margin]))[0])
        lines = []
        for j, name in enumerate(self.encoding.features):
            value = float(contrib[j])
            if value == 0.0:
                continue
            shown = clean(record.get(name))
            if self.encoding.kinds[name] == CATEGORY and shown is not None:
                shown = str(shown)
            lines.append({"feature": name, "value": shown, "contribution": round(value, 6)})
        lines.sort(key=lambda line: -abs(line["contribution"]))
        if top:
            head, rest = lines[:top], lines[top:]
            if rest:
                head.append(
                    {
                        "feature": f"({len(rest)} other features)",
                        "value": None,
                        "contribution": round(sum(r["contribution"] for r in rest), 6),
                    }
                )
            lines = head
        return Prediction(
            round(probability * 100),
            probability,
            margin,
            float(base),
            lines,
            self._calibration_step(margin, probability),
        )
