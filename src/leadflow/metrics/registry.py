"""The KPI registry: every metric under its id, with the definition users see.

Definitions and formulas come from ``shared/spec/kpis.md``. Each metric's computation is SQL
pushed down to the database (see :mod:`leadflow.metrics.queries`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    id: str
    name: str
    definition: str
    unit: str  # count | rate | duration | money | ratio | distribution
    formula: str
    compute: Callable[..., Any]

    def describe(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "definition": self.definition,
            "unit": self.unit,
            "formula": self.formula,
        }


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.id in METRICS:
        raise ValueError(f"metric {metric.id} registered twice")
    METRICS[metric.id] = metric
    return metric
