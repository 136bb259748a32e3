"""The X Education lead data set (9,240 real leads with outcomes) as model input: every column
except the outcome and the identifiers, with nothing removed by name, so the leakage guard has
to find the columns the sales team wrote after contact by itself. ``Lead Number`` grows with
time and orders the rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from leadflow.model.frame import Frame

OUTCOME = "Converted"
IDENTIFIERS = ("Prospect ID", "Lead Number")


def load(path: Path, limit: int | None = None) -> tuple[Frame, list[int], list[int], list[str]]:
    """(features, outcomes, times, prospect ids), in file order."""
    records: list[dict[str, Any]] = []
    y, times, ids = [], [], []
    with path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            y.append(int(row[OUTCOME]))
            times.append(int(row["Lead Number"]))
            ids.append(row["Prospect ID"])
            records.append({k: v for k, v in row.items() if k and k != OUTCOME and k not in IDENTIFIERS})
    return Frame.from_records(records), y, times, ids
