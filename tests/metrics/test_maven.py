"""Historical sales data: the Maven CRM pipeline (8,800 opportunities) imported from CSV, and
win rate, close rate, deal velocity, pipeline value and stage reached checked against an
independent pandas computation over the same files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from leadflow.clock import FrozenClock
from leadflow.imports.service import import_file
from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.service import compute
from leadflow.workspace import Workspace
from tests.conftest import SHARED_DATA, open_workspace

MAVEN = SHARED_DATA / "maven_crm"
CONFIG = """\
workspace: {name: Maven, timezone: UTC, currency: USD}
teams: [{id: sales, name: Sales}]
owners: [{id: ana, name: Ana, team: sales}]
routing: {fallback: {team: sales}}
sources: [{id: maven, name: Maven CRM history, kind: inbound}]
"""
MAPPING = """\
columns:
  external_id: opportunity_id
  owner: sales_agent
  product: product
  account: account
  status: deal_stage
  pipeline_stage: deal_stage
  created_at: engage_date
  closed_at: close_date
  amount: amount
values:
  status: {Won: won, Lost: lost, Engaging: open, Prospecting: open}
constants: {source: maven}
date_format: "%m/%d/%Y"
"""
RANGE = {"start": date(2016, 10, 1), "end": date(2018, 1, 1)}
IMPORTED_AT = datetime(2017, 12, 31, 12, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not MAVEN.is_dir(), reason="shared/data/maven_crm is not beside the checkout")


def pipeline_frame() -> pd.DataFrame:
    deals = pd.read_csv(MAVEN / "sales_pipeline.csv")
    prices = pd.read_csv(MAVEN / "products.csv")
    prices["product"] = prices["product"].str.replace(" ", "")  # the pipeline spells "GTX Pro" as "GTXPro"
    deals = deals.merge(
        prices.assign(key=prices["product"])[["key", "sales_price"]],
        how="left",
        left_on=deals["product"].str.replace(" ", ""),
        right_on="key",
    )
    # Closed deals carry their close value; open ones are worth their product's list price.
    deals["amount"] = deals["close_value"].where(deals["deal_stage"].isin(["Won", "Lost"]), deals["sales_price"])
    return deals


@pytest.fixture
def maven(tmp_path: Path, db_url: str) -> tuple[Workspace, pd.DataFrame]:
    deals = pipeline_frame()
    source = tmp_path / "pipeline.csv"
    deals.drop(columns=["key", "key_0", "sales_price"], errors="ignore").to_csv(source, index=False)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    ws = open_workspace(tmp_path / "ws", db_url, FrozenClock(IMPORTED_AT), CONFIG)
    summary = import_file(ws, source, "opportunities", mapping_path=mapping, batch=2000)
    assert (summary.created, summary.rejected) == (len(deals), 0), summary.rejections[:3]
    again = import_file(ws, source, "opportunities", mapping_path=mapping)
    assert again.already_imported  # a file imported twice adds nothing
    return ws, deals


def metric(ws: Workspace, metric_id: str, **kw: object) -> list[dict]:
    with ws.reader() as conn:
        return compute(ws, conn, metric_id, MetricQuery(**{**RANGE, **kw}))["rows"]  # type: ignore[arg-type]


def nearest_rank(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * pct / 100) - 1]


def test_maven_against_pandas(maven: tuple[Workspace, pd.DataFrame]) -> None:
    ws, d = maven
    closed = d[d["deal_stage"].isin(["Won", "Lost"])]
    won = closed[closed["deal_stage"] == "Won"]

    [close] = metric(ws, "close_rate")
    assert (close["numerator"], close["denominator"]) == (len(won), len(closed))
    [win] = metric(ws, "win_rate")
    assert win["value"] == pytest.approx(len(won) / len(closed))

    per_agent = closed.groupby("sales_agent")["deal_stage"].apply(lambda s: (s == "Won").mean()).to_dict()
    got = {r["group"]: r["value"] for r in metric(ws, "win_rate", by="owner")}
    assert got == pytest.approx(per_agent)

    hours = ((pd.to_datetime(won["close_date"]) - pd.to_datetime(won["engage_date"])).dt.days * 24).tolist()
    [velocity] = metric(ws, "deal_velocity")
    assert velocity["count"] == len(hours)
    assert velocity["median"] == pytest.approx(nearest_rank(hours, 50))
    assert velocity["p90"] == pytest.approx(nearest_rank(hours, 90))
    assert velocity["mean"] == pytest.approx(sum(hours) / len(hours), abs=1e-3)

    open_deals = d[d["deal_stage"].isin(["Engaging", "Prospecting"])]
    [pipeline] = metric(ws, "pipeline_value")
    assert Decimal(pipeline["value"]) == Decimal(str(open_deals["amount"].sum())).quantize(Decimal("0.01"))
    assert pipeline["open"] == len(open_deals) == velocity["pending"]

    [reached] = metric(ws, "stage_reached")
    expected = d["deal_stage"].map({"Won": "won", "Lost": "lost"}).fillna(d["deal_stage"]).value_counts().to_dict()
    assert reached["opportunities"] == expected


def test_report_without_dates_reads_the_funnel_where_it_is(maven: tuple[Workspace, pd.DataFrame]) -> None:
    """The pipeline ended on 31 December 2017: `leadflow report` without --from/--to covers 2017, not
    the twelve (empty) months before today."""
    ws, d = maven
    closed = d[d["deal_stage"].isin(["Won", "Lost"])]
    env = {**os.environ, "LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)}
    proc = subprocess.run(
        [sys.executable, "-m", "leadflow.cli", "report", "-w", str(ws.path), "-m", "close_rate", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    [close] = json.loads(proc.stdout)
    assert (close["from"], close["to"]) == ("2017-01-01", "2018-01-01")
    [row] = close["rows"]
    assert (row["numerator"], row["denominator"]) == (int((closed["deal_stage"] == "Won").sum()), len(closed))
    assert "the data ends on 2017-12-31" in proc.stderr
