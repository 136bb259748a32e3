"""A trained model ready to score: the LightGBM trees, the feature encoding and the calibration.

Scoring one lead is a few hundred microseconds: the row is encoded from the lead's features
without building a frame, the trees give the raw margin (log-odds), isotonic calibration turns it
into a probability, and ``pred_contrib`` gives per-feature contributions that sum, with the
model's base value, exactly to that margin.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadflow.model.frame import CATEGORY, Encoding, clean

BASE = "(base value)"


@dataclass
class Prediction:
    score: int  # calibrated probability × 100, rounded
    probability: float
    margin: float  # raw log-odds of the trees
    contributions: list[dict[str, Any]]  # largest first; with BASE they sum to ``margin``

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        return {
            "score": self.score,
            "probability": round(self.probability, 6),
            "margin": round(self.margin, 6),
            "contributions": self.contributions[:top] if top else self.contributions,
        }


class Predictor:
    def __init__(
        self,
        booster: Any,
        encoding: Encoding,
        calibration: Mapping[str, Any],
        model_text: str,
    ) -> None:
        self.booster = booster
        self.encoding = encoding
        self.calibration = dict(calibration)
        self.method = calibration["method"]
        if self.method == "isotonic":
            self.cal_x = np.asarray(calibration["x"], dtype=float)
            self.cal_y = np.asarray(calibration["y"], dtype=float)
        else:
            self.a, self.b = float(calibration["a"]), float(calibration["b"])
        self.model_text = model_text

    # -- storage -------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {"encoding": self.encoding.as_dict(), "calibration": self.calibration}

    @classmethod
    def load(cls, model_text: str, meta: Mapping[str, Any] | str) -> Predictor:
        import lightgbm as lgb

        data = json.loads(meta) if isinstance(meta, str) else meta
        booster = lgb.Booster(model_str=model_text)
        return cls(booster, Encoding.from_dict(data["encoding"]), data["calibration"], model_text)

    # -- scoring -------------------------------------------------------------------------------

    def calibrate(self, raw_probability: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(raw_probability, self.cal_x, self.cal_y)
        p = np.clip(raw_probability, 1e-9, 1 - 1e-9)
        return 1.0 / (1.0 + np.exp(-(self.a * np.log(p / (1 - p)) + self.b)))

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return self.calibrate(self.booster.predict(X, num_threads=1))

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.rint(self.probabilities(X) * 100)

    def predict(self, record: Mapping[str, Any], top: int = 5) -> Prediction:
        """One lead's score with its ``top`` contributions (all of them with ``top=0``)."""
        row = self.encoding.encode_one(record)
        contrib = self.booster.predict(row, pred_contrib=True, num_threads=1)[0]
        margin = float(contrib.sum())
        raw = 1.0 / (1.0 + math.exp(-margin))
        probability = float(self.calibrate(np.array([raw]))[0])
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
        lines.append({"feature": BASE, "value": None, "contribution": round(float(contrib[-1]), 6)})
        return Prediction(round(probability * 100), probability, margin, lines)
