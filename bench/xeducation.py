"""Replay the real X Education leads (9,240, with outcomes) through the pipeline under a rule
model written from business sense (examples/xeducation/leadflow.yaml), and report how well the
rule score ranks them: AUC against ``Converted``, conversion per fit grade and per score band.

    python -m bench xeducation
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import write
from leadflow.capture.normalize import country_code
from leadflow.capture.service import prepare
from leadflow.db.tables import leads
from leadflow.pipeline import process_many
from leadflow.scoring.evaluation import auc, band, conversion_by
from leadflow.workspace import CONFIG_FILE, Workspace

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "xeducation" / "leads.csv"
CONFIG = ROOT / "examples" / "xeducation" / CONFIG_FILE
MISSING = {"", "Select"}


def _value(row: dict[str, str], column: str) -> str | None:
    value = (row.get(column) or "").strip()
    return None if value in MISSING else value


def _number(row: dict[str, str], column: str) -> float | None:
    value = _value(row, column)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def to_lead(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as a lead submission. The outcome and the columns sales fills after contact
    (Tags, Lead Quality, Lead Profile, Asymmetrique ...) are left out."""
    custom = {
        "origin": _value(row, "Lead Origin"),
        "occupation": _value(row, "What is your current occupation"),
        "what_matters": _value(row, "What matters most to you in choosing a course"),
        "specialization": _value(row, "Specialization"),
        "heard_from": _value(row, "How did you hear about X Education"),
        "last_activity": _value(row, "Last Activity"),
        "visits": _number(row, "TotalVisits"),
        "seconds_on_site": _number(row, "Total Time Spent on Website"),
        "pages_per_visit": _number(row, "Page Views Per Visit"),
        "free_copy": _value(row, "A free copy of Mastering The Interview") == "Yes",
    }
    country = _value(row, "Country")
    lead: dict[str, Any] = {
        "visitor_id": row["Prospect ID"],
        "source": _value(row, "Lead Source"),
        "city": _value(row, "City"),
        "country": country if country and country_code(country) else None,
        "consent": {"email": row["Do Not Email"] != "Yes", "phone": row["Do Not Call"] != "Yes"},
        "custom": {k: v for k, v in custom.items() if v is not None},
    }
    return {k: v for k, v in lead.items() if v is not None}


def load(path: Path = DATA) -> list[tuple[dict[str, Any], int]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [(to_lead(row), int(row["Converted"])) for row in csv.DictReader(f)]


def replay(ws: Workspace, rows: list[tuple[dict[str, Any], int]], batch: int = 500) -> dict[str, Any]:
    region, now = ws.config.workspace.default_region, ws.clock.now()
    for i in range(0, len(rows), batch):
        captures = [prepare(payload, default_region=region, now=now) for payload, _ in rows[i : i + batch]]
        with ws.transaction() as conn:
            process_many(ws, conn, captures, actor="replay")
    outcome = {payload["visitor_id"]: converted for payload, converted in rows}
    with ws.reader() as conn:
        scored = conn.execute(select(leads.c.visitor_id, leads.c.score, leads.c.grade, leads.c.stage)).all()
    scores = [r.score for r in scored]
    labels = [outcome[r.visitor_id] for r in scored]
    mql = [int(r.stage in ("mql", "sql", "opportunity", "customer")) for r in scored]
    return {
        "leads": len(scored),
        "conversion_rate": round(sum(labels) / len(labels), 4),
        "auc_rule_score": round(auc(scores, labels) or 0, 4),
        "by_fit_grade": conversion_by([r.grade for r in scored], labels),
        "by_score_band": conversion_by([band(s) for s in scores], labels),
        "mql": conversion_by(["mql" if m else "not mql" for m in mql], labels),
    }


def run(argv: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="leadflow-xeducation-") as tmp:
        root = Path(tmp)
        (root / CONFIG_FILE).write_text(CONFIG.read_text())
        ws = Workspace.open(root)
        began = time.perf_counter()
        figures = replay(ws, load())
        figures["seconds"] = round(time.perf_counter() - began, 2)
        ws.close()
    print(
        f"X Education: {figures['leads']:,} leads replayed in {figures['seconds']} s; conversion {figures['conversion_rate']:.1%}"
    )
    print(f"  AUC of the rule score against Converted: {figures['auc_rule_score']:.3f}")
    for title, table in (
        ("fit grade", figures["by_fit_grade"]),
        ("score band", figures["by_score_band"]),
        ("MQL", figures["mql"]),
    ):
        cells = ", ".join(f"{k}: {v['rate']:.0%} of {v['leads']:,}" for k, v in table.items())
        print(f"  conversion by {title}: {cells}")
    print(f"wrote {write('xeducation', figures)}")
    return figures
