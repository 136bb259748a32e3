"""The KPI registry: every metric under its id, with the definition users see.

Definitions and formulas come from ``shared/spec/kpis.md``. Each metric's computation is SQL
pushed down to the database (see :mod:`leadflow.metrics.queries`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DURATION_UNIT = "hours"


@dataclass(frozen=True)
class Metric:
    id: str
    name: str
    definition: str
    unit: str  # count | rate | duration | money | ratio | distribution | score | months
    formula: str
    compute: Callable[..., Any]
    # What the metric leaves out by definition, said wherever it is shown (e.g. only sources
    # declared in leadflow.yaml), and how to count what was left out in a query (conn, ws, query).
    note: str | None = None
    left_out: Callable[..., dict[str, Any]] | None = None

    def describe(self) -> dict[str, str]:
        out = {
            "id": self.id,
            "name": self.name,
            "definition": self.definition,
            "unit": self.unit,
            "formula": self.formula,
        }
        if self.unit == "duration":
            out["duration_unit"] = DURATION_UNIT  # value, median, mean and p90 are in hours
        if self.note is not None:
            out["note"] = self.note
        return out


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.id in METRICS:
        raise ValueError(f"metric {metric.id} registered twice")
    METRICS[metric.id] = metric
    return metric
