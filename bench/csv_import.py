"""CSV import of simulated leads through the full pipeline (``leadflow import``), on SQLite:
rows/s and peak memory, measured in a process of its own.

    python -m bench csv_import [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write
from leadflow.simulate import sample_leads
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text

HEADER = [
    "First Name",
    "Last Name",
    "Email",
    "Company Name",
    "Job Title",
    "Number of Employees",
    "Industry",
    "Country/Region",
    "Phone Number",
    "Original Source",
    "Create Date",
]

RUN = """
import json, resource, sys, time
from pathlib import Path
from leadflow.workspace import Workspace
from leadflow.imports.service import import_file
ws = Workspace.open(sys.argv[1])
began = time.perf_counter()
summary = import_file(ws, Path(sys.argv[2]), "leads", batch=2000)
seconds = time.perf_counter() - began
ws.close()
print(json.dumps({"seconds": round(seconds, 2), "rows": summary.rows_read, "created": summary.created, "merged": summary.merged,
                  "rejected": summary.rejected, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def make_file(path: Path, rows: int, ws: Workspace) -> None:
    """``rows`` distinct leads: realistic people from the simulator, each email made unique."""
    templates = sample_leads(ws, min(rows, 20_000), seed=3)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            t = templates[i % len(templates)]
            local, _, domain = t["email"].partition("@")
            out.writerow(
                [
                    t.get("first_name", ""),
                    t.get("last_name", ""),
                    f"{local}.{i}@{domain}",
                    t.get("company", ""),
                    t.get("title", ""),
                    t.get("employees", ""),
                    t.get("industry", ""),
                    t.get("country", ""),
                    t.get("phone", ""),
                    t.get("source", ""),
                    f"2026-{1 + i * 12 // rows:02d}-15T10:00:00Z",
                ]
            )


def run(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench csv_import")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadflow-import-") as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        (root / "ws" / CONFIG_FILE).write_text(starter_config_text())
        ws = Workspace.open(root / "ws")
        began = time.perf_counter()
        make_file(root / "leads.csv", args.rows, ws)
        ws.close()
        made = time.perf_counter() - began
        size_mb = (root / "leads.csv").stat().st_size / 1e6
        result = subprocess.run(
            [sys.executable, "-c", RUN, str(root / "ws"), str(root / "leads.csv")],
            capture_output=True,
            text=True,
            check=True,
        )
        figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures.update(
        file_mb=round(size_mb, 1),
        rows_per_s=round(figures["rows"] / figures["seconds"], 1),
        file_written_s=round(made, 1),
    )
    print(
        f"CSV import of {figures['rows']:,} leads ({figures['file_mb']} MB) through the pipeline: {figures['seconds']} s, "
        f"{figures['rows_per_s']:,.0f} rows/s, peak memory {figures['peak_rss_mb']} MB; created {figures['created']:,}, "
        f"merged {figures['merged']:,}, rejected {figures['rejected']:,}"
    )
    print(f"wrote {write('csv_import', figures)}")
    return figures
