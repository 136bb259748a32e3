"""Every metric of shared/spec/kpis.md is registered and computes, on both stores, on a simulated
business: every breakdown (each dimension), grain and basis it accepts answers without an error, and rates keep
their conventions (numerator ≤ denominator, value inside its Wilson interval)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from leadflow.clock import FrozenClock
from leadflow.errors import InvalidInput
from leadflow.metrics.queries import DIMENSIONS, MetricQuery
from leadflow.metrics.registry import METRICS
from leadflow.metrics.service import compute
from leadflow.simulate import simulate
from leadflow.workspace import Workspace
from tests.conftest import T0, open_workspace

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "kpis.md"
END = date(2026, 3, 1)


def spec_ids() -> list[str]:
    text = SPEC.read_text(encoding="utf-8")
    return [i for i in re.findall(r"^\| ([a-z_]+) \|", text, flags=re.M) if i != "id"]


def test_every_metric_of_the_spec_is_registered() -> None:
    import leadflow.metrics.service  # noqa: F401

    ids = spec_ids()
    assert len(ids) >= 60
    missing = [i for i in ids if i not in METRICS]
    assert missing == []
    for i in ids:
        m = METRICS[i]
        assert m.name and m.definition and m.unit and m.formula


@pytest.fixture
def business(tmp_path: Path, db_url: str) -> Iterator[Workspace]:
    ws = open_workspace(tmp_path / "sim", db_url, FrozenClock(T0))
    simulate(ws, months=2, seed=5, end=END)
    if ws.dialect == "postgresql":  # fresh tables: give the planner statistics, as autovacuum would
        with ws.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    yield ws
    ws.close()


def test_every_metric_computes_on_a_simulated_business(business: Workspace) -> None:
    failures = []
    for metric_id in METRICS:
        for kw in ({"grain": "month"}, {"basis": "period", "grain": "month"}, *({"by": d} for d in DIMENSIONS)):
            q = MetricQuery(start=date(2026, 1, 1), end=END, **kw)  # type: ignore[arg-type]
            try:
                with business.reader() as conn:
                    out = compute(business, conn, metric_id, q)
            except InvalidInput as exc:  # a breakdown the metric does not offer is refused by name
                assert exc.problems and exc.problems[0].field == "by", (metric_id, kw, exc)
                continue
            except Exception as exc:  # pragma: no cover - reported below
                failures.append((metric_id, kw, repr(exc)[:300]))
                continue
            for row in out["rows"]:
                if METRICS[metric_id].unit == "rate" and row.get("denominator"):
                    assert 0 <= row["numerator"] <= row["denominator"], (metric_id, row)
                    assert row["ci_low"] <= row["value"] <= row["ci_high"], (metric_id, row)
    assert failures == []


def test_the_simulated_business_has_figures_worth_showing(business: Workspace) -> None:
    q = MetricQuery(start=date(2026, 1, 1), end=END)
    with business.reader() as conn:
        volume = compute(business, conn, "lead_volume", q)["rows"][0]["value"]
        cpl = compute(business, conn, "cost_per_lead", q)["rows"][0]
        contact = compute(business, conn, "time_to_first_contact", q)["rows"][0]
    assert volume > 50
    assert cpl["value"] is not None and float(cpl["value"]) > 0
    assert contact["count"] > 0 and contact["median"] > 0
