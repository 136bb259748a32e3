"""CSV import of simulated leads through the full pipeline (``leadflow import``), on SQLite:
rows/s and peak memory, measured in a process of its own.

In the same run, the floor under it: the rows the pipeline stored for the first leads imported
(the lead, its events, its match keys: what every imported lead writes), written again for
as many leads (``--floor-rows``) with nothing computed, in transactions of the import's size, through the
same compiled statements. No import through any pipeline can store a lead faster than that; and
of that floor, the time spent inside SQLite alone (the inserts and commits, parameters bound
beforehand) is what no Python above it can remove.

    python -m bench csv_import [--rows 1000000] [--floor-rows 200000]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
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
summary = import_file(ws, Path(sys.argv[2]), "leads", live=True)  # captured now: routed, as before history imports
seconds = time.perf_counter() - began
ws.close()
print(json.dumps({"seconds": round(seconds, 2), "rows": summary.rows_read, "created": summary.created, "merged": summary.merged,
                  "rejected": summary.rejected, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


FLOOR = """
import json, random, sys, time
from sqlalchemy import insert, select
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import accounts, lead_events, lead_match_keys, leads
from leadflow.imports.service import BATCH
from leadflow.leads.service import LEAD_COLUMNS
from leadflow.workspace import Workspace
source, target, total, batch = Workspace.open(sys.argv[1]), Workspace.open(sys.argv[2]), int(sys.argv[3]), BATCH
with source.reader() as conn:
    people = [dict(r._mapping) for r in conn.execute(select(leads).order_by(leads.c.id).limit(batch))]
    ids = [p["id"] for p in people]
    created = select(lead_events.c.recorded_at).where(lead_events.c.lead_id == ids[0]).order_by(lead_events.c.id).limit(1)
    # what the first batch wrote for them (not what later rows added to the same people)
    history = [dict(r._mapping) for r in conn.execute(select(lead_events).where(
        lead_events.c.lead_id.in_(ids), lead_events.c.recorded_at == created.scalar_subquery()))]
    keys = [dict(r._mapping) for r in conn.execute(select(lead_match_keys).where(lead_match_keys.c.lead_id.in_(ids)))]
    linked = {p["account_id"] for p in people if p["account_id"]}
    companies = [dict(r._mapping) for r in conn.execute(select(accounts).where(accounts.c.id.in_(linked)))]
source.close()
event_columns = [c.name for c in lead_events.columns if c.name != "id"]
put_leads = Prepared(insert(leads), column_keys=("id", *LEAD_COLUMNS))
put_events = Prepared(insert(lead_events), column_keys=event_columns)
put_keys = Prepared(insert(lead_match_keys), column_keys=("key", "lead_id"))
put_accounts = Prepared(insert(accounts), column_keys=[c.name for c in accounts.columns])
statements = [s._compile(target.engine.dialect) for s in (put_accounts, put_leads, put_events, put_keys)]
rng = random.Random(7)
sqlite_s = 0.0  # inside SQLite alone: the executemany calls and the commit, parameters ready
began = time.perf_counter()
for start in range(0, total, batch):
    offset = {p["id"]: start + i + 1 for i, p in enumerate(people)}
    first = start // batch * len(companies)
    company = {a["id"]: first + j + 1 for j, a in enumerate(companies)}
    rows = [
        [{**a, "id": company[a["id"]], "domain": f"{start}.{a['domain']}"} for a in companies],
        [{**p, "id": offset[p["id"]], "email_key": f"{start}.{p['email_key']}", "account_id": company.get(p["account_id"])}
         for p in people],
        [{**e, "lead_id": offset[e["lead_id"]]} for e in history],
        [{"key": rng.getrandbits(63), "lead_id": offset[k["lead_id"]]} for k in keys],
    ]
    with target.transaction() as conn:
        bound = [(c.sql, [c.params(r) for r in part]) for c, part in zip(statements, rows)]
        cursor = conn.connection.cursor()
        t = time.perf_counter()
        for sql, params in bound:
            cursor.executemany(sql, params)
        cursor.close()
        t0 = time.perf_counter()
        sqlite_s += t0 - t
    sqlite_s += time.perf_counter() - t0  # the commit
seconds = time.perf_counter() - began
target.close()
n = -(-total // batch) * batch
print(json.dumps({"rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds, 1), "sqlite_seconds": round(sqlite_s, 2),
                  "events_per_lead": round(len(history) / len(people), 2), "keys_per_lead": round(len(keys) / len(people), 2),
                  "accounts_per_lead": round(len(companies) / len(people), 2)}))
"""


def make_file(path: Path, rows: int, ws: Workspace) -> None:
    """``rows`` distinct people: each row takes a company (and its title, size, industry, country,
    source) from a realistic simulated lead, a first and a last name drawn from other simulated
    leads, a unique email at the company's domain and, where the lead had one, a unique phone."""
    templates = sample_leads(ws, min(rows, 20_000), seed=3)
    n = len(templates)
    rng = random.Random(3)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            t = templates[i % n]
            first = templates[rng.randrange(n)].get("first_name") or ""
            last = templates[rng.randrange(n)].get("last_name") or ""
            domain = t["email"].partition("@")[2].lower()
            local = ".".join(filter(None, (_ascii(first), _ascii(last), str(i))))
            phone = t.get("phone") or ""
            if phone:
                phone = phone[:-7] + f"{i % 10_000_000:07d}"
            out.writerow(
                [
                    first,
                    last,
                    f"{local}@{domain}",
                    t.get("company", ""),
                    t.get("title", ""),
                    t.get("employees", ""),
                    t.get("industry", ""),
                    t.get("country", ""),
                    phone,
                    t.get("source", ""),
                    f"2026-{1 + i * 12 // rows:02d}-15T10:00:00Z",
                ]
            )


def _ascii(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower())


def run(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench csv_import")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--floor-rows", type=int, help="leads for the floor (default: --rows)")
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
        (root / "floor").mkdir()
        (root / "floor" / CONFIG_FILE).write_text(starter_config_text())
        floor = subprocess.run(
            [sys.executable, "-c", FLOOR, str(root / "ws"), str(root / "floor"), str(args.floor_rows or args.rows)],
            capture_output=True,
            text=True,
        )
        if floor.returncode:
            raise SystemExit(f"the floor measurement failed:\n{floor.stderr}")
        figures["floor_store_only"] = json.loads(floor.stdout.strip().splitlines()[-1])
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
    floor = figures["floor_store_only"]
    figures["ratio_to_floor"] = round(figures["rows_per_s"] / floor["rows_per_s"], 3)
    print(
        f"floor, storing the same rows with nothing computed: {floor['rows']:,} leads in {floor['seconds']} s = "
        f"{floor['rows_per_s']:,.0f} leads/s ({floor['events_per_lead']} events and {floor['keys_per_lead']} match keys "
        f"a lead) → the import runs at {figures['ratio_to_floor']:.2f}× the floor; of the floor, {floor['sqlite_seconds']} s "
        f"inside SQLite alone (its inserts and commits, with the parameters ready)"
    )
    print(f"wrote {write('csv_import', figures)}")
    return figures
