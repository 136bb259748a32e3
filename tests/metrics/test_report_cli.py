"""`leadflow report` for metrics: tables, JSON, CSV and an HTML page with Plotly charts."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from leadflow.workspace import Workspace
from tests.metrics.test_kpis import jan  # noqa: F401 - the hand-built January

LEADFLOW = [sys.executable, "-m", "leadflow.cli"]


def run(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False)}
    return subprocess.run(
        [*LEADFLOW, "report", "-w", str(ws.path), "--from", "2026-01-01", "--to", "2026-02-01", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_report_json_by_source(jan: Workspace) -> None:  # noqa: F811
    proc = run(jan, "--metric", "lead_to_sql_rate", "--by", "source", "--json")
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    got = {r["group"]: (r["numerator"], r["denominator"]) for r in result["rows"]}
    assert got == {"google": (1, 2), "referral": (1, 1), "outbound": (0, 1)}


def test_report_csv_and_table(jan: Workspace) -> None:  # noqa: F811
    proc = run(jan, "--metric", "lead_volume", "--metric", "cac", "--csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert {(r["metric"], r["value"]) for r in rows} == {("lead_volume", "4"), ("cac", "900.00")}
    table = run(jan, "--metric", "cost_per_lead", "--by", "source")
    assert table.returncode == 0 and "Cost per Lead" in table.stdout and "300.00" in table.stdout


def test_report_html_has_plotly_charts(jan: Workspace, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "report.html"
    proc = run(jan, "--html", str(out))  # the dashboard set
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") == 8 and "Return on Ad Spend" in page


def test_report_bad_breakdown_exits_1_with_the_reason(jan: Workspace) -> None:  # noqa: F811
    proc = run(jan, "--metric", "lead_volume", "--by", "shoe_size")
    assert proc.returncode == 1 and "by" in proc.stderr
