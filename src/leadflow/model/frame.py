"""A small columnar table of features: what training, the leakage guard, evaluation and scoring
share. Values are plain Python (strings, numbers, booleans, None); each column is a category or a
number, inferred from its values unless declared. Encoding to numpy happens with the level maps a
model keeps, so a lead scored later is encoded exactly as the training rows were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CATEGORY = "category"
NUMBER = "number"
# Texts that mean "not given". 'unknown' is not among them: it is a value people choose (a bank's
# "job: unknown" converts unlike a blank); a mapping's `missing:` says when a file means otherwise.
MISSING_TEXT = frozenset({"", "select", "none", "null", "nan", "n/a"})
MAX_LEVELS = 200  # levels beyond the most frequent ones are folded into one "(other)" level
OTHER = "(other)"


def clean(value: Any) -> Any:
    """None for the many ways a form says "nothing chosen"."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        value = value.strip()
        return None if value.lower() in MISSING_TEXT else value
    return value


def as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


@dataclass
class Frame:
    """Columns of equal length, with a kind per column."""

    columns: dict[str, list[Any]]
    kinds: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @classmethod
    def from_records(
        cls, records: Sequence[Mapping[str, Any]], kinds: Mapping[str, str] | None = None, exclude: Iterable[str] = ()
    ) -> Frame:
        skip = set(exclude)
        names: dict[str, None] = {}
        for record in records:
            for name in record:
                if name not in skip:
                    names.setdefault(name)
        columns = {name: [clean(r.get(name)) for r in records] for name in names}
        declared = dict(kinds or {})
        out_kinds = {name: declared.get(name) or infer_kind(values) for name, values in columns.items()}
        for name, kind in out_kinds.items():
            if kind == NUMBER:
                columns[name] = [as_number(v) for v in columns[name]]
            else:
                columns[name] = [None if v is None else str(v) for v in columns[name]]
        return cls(columns, out_kinds)

    def select(self, names: Iterable[str]) -> Frame:
        keep = [n for n in names if n in self.columns]
        return Frame({n: self.columns[n] for n in keep}, {n: self.kinds[n] for n in keep})

    def rows(self, index: Sequence[int] | np.ndarray) -> Frame:
        return Frame({n: [v[i] for i in index] for n, v in self.columns.items()}, dict(self.kinds))

    def informative(self) -> list[str]:
        """Columns with at least two distinct present values (a constant says nothing)."""
        out = []
        for name, values in self.columns.items():
            seen: set[Any] = set()
            for v in values:
                if v is not None:
                    seen.add(v)
                    if len(seen) > 1:
                        out.append(name)
                        break
        return out


def infer_kind(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return CATEGORY
    if all(isinstance(v, bool) for v in present):
        return CATEGORY
    if all(as_number(v) is not None for v in present):
        return NUMBER
    return CATEGORY


@dataclass(frozen=True)
class Encoding:
    """How a model turns feature values into a numpy row: column order, kinds and level codes."""

    features: tuple[str, ...]
    kinds: dict[str, str]
    levels: dict[str, list[str]]  # category -> levels in code order

    @classmethod
    def fit(cls, frame: Frame, features: Sequence[str]) -> Encoding:
        levels: dict[str, list[str]] = {}
        for name in features:
            if frame.kinds[name] != CATEGORY:
                continue
            counts: dict[str, int] = {}
            for v in frame.columns[name]:
                if v is not None:
                    counts[v] = counts.get(v, 0) + 1
            ranked = sorted(counts, key=lambda k: (-counts[k], k))
            kept = ranked[:MAX_LEVELS]
            if len(ranked) > MAX_LEVELS:
                kept.append(OTHER)
            levels[name] = kept
        return cls(tuple(features), {n: frame.kinds[n] for n in features}, levels)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.features) if self.kinds[n] == CATEGORY]

    def _codes(self) -> dict[str, dict[str, int]]:
        cached = self.__dict__.get("_code_maps")
        if cached is None:
            cached = {n: {lv: i for i, lv in enumerate(lvls)} for n, lvls in self.levels.items()}
            object.__setattr__(self, "_code_maps", cached)
        return cached

    def encode(self, frame: Frame) -> np.ndarray:
        out = np.full((len(frame), len(self.features)), np.nan)
        codes = self._codes()
        for j, name in enumerate(self.features):
            values = frame.columns.get(name)
            if values is None:
                continue
            if self.kinds[name] == CATEGORY:
                table = codes[name]
                other = table.get(OTHER)
                for i, v in enumerate(values):
                    if v is not None:
                        code = table.get(str(v), other)
                        if code is not None:
                            out[i, j] = code
            else:
                for i, v in enumerate(values):
                    number = as_number(v)
                    if number is not None:
                        out[i, j] = number
        return out

    def encode_one(self, record: Mapping[str, Any]) -> np.ndarray:
        """One record (a lead's features) as a 1×n row, without building a frame."""
        row = np.full((1, len(self.features)), np.nan)
        codes = self._codes()
        for j, name in enumerate(self.features):
            value = clean(record.get(name))
            if value is None:
                continue
            if self.kinds[name] == CATEGORY:
                table = codes[name]
                code = table.get(str(value), table.get(OTHER))
                if code is not None:
                    row[0, j] = code
            else:
                number = as_number(value)
                if number is not None:
                    row[0, j] = number
        return row

    def as_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "kinds": self.kinds, "levels": self.levels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Encoding:
        return cls(tuple(data["features"]), dict(data["kinds"]), {k: list(v) for k, v in data["levels"].items()})
