"""Issue 18, item 6: a prediction from the command line in well under a second, threshold advice
on imported history, a refusal to train that says what the data holds, a version list at 80
columns."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.clock import FrozenClock
from leadflow.errors import InvalidInput
from leadflow.model import cli as model_cli
from leadflow.model import dataset, registry, service
from leadflow.model.scoring import predict_lead
from leadflow.model.thresholds import advise
from leadflow.workspace import Workspace
from tests.model.conftest import make_history

YEARS_AGO = timedelta(days=3 * 365)


def _history_years_ago(ws: Workspace, clock: FrozenClock) -> None:
    """Leads captured three years before the clock's time, as imported history is."""
    now = clock.now()
    clock.set(now - YEARS_AGO)
    make_history(ws, clock, n=160, leak=False)
    clock.set(now)


def test_cli_prediction_imports_neither_lightgbm_nor_scikit_learn_nor_pandas(
    sqlite_ws: Workspace, clock: FrozenClock
) -> None:
    make_history(sqlite_ws, clock, n=160, leak=False)
    with sqlite_ws.transaction() as conn:
        version = service.save_version(conn, service.fit_version(sqlite_ws, conn, actor="test"))["version"]
        registry.activate(sqlite_ws, conn, version, actor="test", reason="test")
    with sqlite_ws.reader() as conn:
        expected = predict_lead(sqlite_ws, conn, 1)
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from leadflow.cli import app\n"
        f"out = CliRunner().invoke(app, ['model', 'predict', '1', '-w', {str(sqlite_ws.path)!r}, '--json'])\n"
        "assert out.exit_code == 0, out.output\n"
        "heavy = sorted(m for m in ('lightgbm', 'sklearn', 'pandas', 'scipy') if m in sys.modules)\n"
        "print(json.dumps({'heavy': heavy, 'prediction': json.loads(out.output)}))\n"
    )
    env = {"LEADFLOW_DATABASE_URL": sqlite_ws.engine.url.render_as_string(hide_password=False)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, env={**_env(), **env}
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []  # 1.6 s of imports: the trees are scored through LightGBM's C library
    assert result["prediction"]["score"] == expected["score"]
    assert result["prediction"]["probability"] == pytest.approx(expected["probability"], abs=1e-6)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}


def test_threshold_advice_as_of_a_date_on_history(sqlite_ws: Workspace, clock: FrozenClock) -> None:
    _history_years_ago(sqlite_ws, clock)
    end = clock.now() - YEARS_AGO
    with sqlite_ws.reader() as conn:
        today = advise(sqlite_ws, conn, 10)
        then = advise(sqlite_ws, conn, 10, as_of=end - timedelta(days=40))
        with pytest.raises(InvalidInput) as future:
            advise(sqlite_ws, conn, 10, as_of=clock.now() + timedelta(days=1))
    assert today["inflow_per_week"] == 0
    newest = (end - timedelta(days=40)).date()
    assert (
        f"--as-of {newest:%Y-%m-%d}" in today["note"]
        or f"--as-of {newest - timedelta(days=1):%Y-%m-%d}" in today["note"]
    )
    assert then["inflow_per_week"] > 0 and then["past_leads"] > 0 and then["note"] is None
    assert then["as_of"] == end - timedelta(days=40)
    assert [p.field for p in future.value.problems] == ["as_of"]


def test_threshold_cli_takes_as_of_and_points_to_it(sqlite_ws: Workspace, clock: FrozenClock) -> None:
    _history_years_ago(sqlite_ws, clock)
    w = ["-w", str(sqlite_ws.path)]
    runner = CliRunner()
    plain = runner.invoke(app, ["model", "threshold", *w, "--capacity", "5"])
    assert plain.exit_code == 0, plain.output
    assert "--as-of" in plain.output and "inflow 0.0 leads/week" in plain.output
    day = (clock.now() - YEARS_AGO - timedelta(days=45)).date().isoformat()
    dated = runner.invoke(app, ["model", "threshold", *w, "--capacity", "5", "--as-of", day, "--json"])
    assert dated.exit_code == 0, dated.output
    result = json.loads(dated.output)
    assert result["inflow_per_week"] > 0 and result["as_of"].startswith(day)
    bad = runner.invoke(app, ["model", "threshold", *w, "--capacity", "5", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_too_few_outcomes_names_the_target_and_how_many_reached_it(sqlite_ws: Workspace, clock: FrozenClock) -> None:
    make_history(sqlite_ws, clock, n=10, leak=False, seed=4)
    with sqlite_ws.reader() as conn:
        data = service.load_dataset(sqlite_ws, conn, service.TrainOptions())
    converted = sum(data.y)
    assert converted < 5 or len(data.y) - converted < 5
    with pytest.raises(InvalidInput) as refused:
        dataset.require_outcomes(data, "customer", min_rows=1)
    (problem,) = refused.value.problems
    assert problem.field == "target"
    assert f"{converted} leads reached 'customer' (the target stage) of {len(data.y)}" in problem.message
    assert "at least 5 converted and 5 unconverted" in problem.message
    out = CliRunner().invoke(app, ["model", "train", "-w", str(sqlite_ws.path), "--window-days", "30"])
    assert out.exit_code != 0
    assert isinstance(out.exception, InvalidInput)
    assert {p.field for p in out.exception.problems} == {"rows", "target"}
    assert "(the target stage)" in " ".join(p.message for p in out.exception.problems)


def test_model_list_fits_80_columns(
    sqlite_ws: Workspace, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_history(sqlite_ws, clock, n=160, leak=False)
    with sqlite_ws.transaction() as conn:
        for actor in ("cli", "someone.with.a.long.name@example.com"):
            service.save_version(conn, service.fit_version(sqlite_ws, conn, actor=actor))
    monkeypatch.setattr(model_cli, "console", Console(width=80, force_terminal=False))
    out = CliRunner().invoke(app, ["model", "list", "-w", str(sqlite_ws.path)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    day = clock.now().strftime("%Y-%m-%d")
    rows = [line for line in lines if day in line]
    assert len(rows) == 2  # one line per version: nothing wrapped
    assert all("customer" in row and ":" not in row for row in rows)
