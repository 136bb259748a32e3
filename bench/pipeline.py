"""The pipeline benchmark: simulated leads through ``process`` in-process, one transaction each.

Measured on SQLite (a file in WAL mode) and on PostgreSQL when one answers. In the same run, the
ceiling the architecture names: one transaction inserting one lead row and one event row through
SQLAlchemy Core. Also the batched path (``process_many``, 500 leads a transaction) used by
imports and the simulator.

    python -m bench pipeline [--leads 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from bench.common import percentiles, postgres_url, write
from leadflow.capture.service import prepare
from leadflow.db.engine import normalise_url
from leadflow.db.tables import lead_events, leads
from leadflow.pipeline import process, process_many
from leadflow.simulate import sample_leads
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text


def _workspace(kind: str, root: Path) -> tuple[Workspace, Any]:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(starter_config_text())
    if kind == "sqlite":
        return Workspace.open(root), None
    base = normalise_url(postgres_url() or "")
    schema = f"lf_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    ws = Workspace.open(root, database_url=f"{base}{sep}options=-csearch_path%3D{schema}")

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return ws, drop


def one_per_transaction(ws: Workspace, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    for p in payloads[:200]:  # warm-up: compiled statements, caches, a few pages
        with ws.transaction() as conn:
            process(ws, conn, {**p, "email": "warm-" + p["email"]})
    latencies = []
    began = time.perf_counter()
    for p in payloads:
        t = time.perf_counter()
        with ws.transaction() as conn:
            process(ws, conn, p)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - began
    return {
        "leads": len(payloads),
        "seconds": round(elapsed, 3),
        "leads_per_s": round(len(payloads) / elapsed, 1),
        **percentiles(latencies),
    }


def batched(ws: Workspace, payloads: list[dict[str, Any]], size: int = 500) -> dict[str, Any]:
    region = ws.config.workspace.default_region
    began = time.perf_counter()
    for i in range(0, len(payloads), size):
        now = ws.clock.now()
        captures = [
            prepare({**p, "email": "b-" + p["email"]}, default_region=region, now=now) for p in payloads[i : i + size]
        ]
        with ws.transaction() as conn:
            process_many(ws, conn, captures, actor="bench")
    elapsed = time.perf_counter() - began
    return {
        "leads": len(payloads),
        "batch": size,
        "seconds": round(elapsed, 3),
        "leads_per_s": round(len(payloads) / elapsed, 1),
    }


def ceiling(ws: Workspace, n: int) -> dict[str, Any]:
    """One lead row and one event row per transaction through SQLAlchemy Core: the floor of cost."""
    insert_lead, insert_event = insert(leads), insert(lead_events)
    latencies = []
    began = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        now = ws.clock.now()
        with ws.transaction() as conn:
            lead_id = conn.execute(
                insert_lead,
                {
                    "created_at": now,
                    "updated_at": now,
                    "email": f"c{i}@ceiling.example",
                    "email_key": f"c{i}@ceiling.example",
                    "stage": "lead",
                    "stage_entered_at": now,
                    "config_version": ws.version,
                },
            ).inserted_primary_key[0]
            conn.execute(
                insert_event,
                {
                    "lead_id": lead_id,
                    "type": "lead_created",
                    "occurred_at": now,
                    "recorded_at": now,
                    "actor": "bench",
                    "data": {"source": "ceiling"},
                    "config_version": ws.version,
                },
            )
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - began
    return {"leads": n, "leads_per_s": round(n / elapsed, 1), **percentiles(latencies)}


def run(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench pipeline")
    parser.add_argument("--leads", type=int, default=20_000)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"leads": args.leads}
    kinds = ["sqlite", *(["postgres"] if postgres_url() else [])]
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        for kind in kinds:
            ws, cleanup = _workspace(kind, Path(tmp) / kind)
            payloads = sample_leads(ws, args.leads, seed=42)
            result = {"process_one_per_transaction": one_per_transaction(ws, payloads)}
            result["process_many_batched"] = batched(ws, payloads[: min(len(payloads), 20_000)])
            result["ceiling_core_two_rows"] = ceiling(ws, 5_000)
            result["ratio_to_ceiling"] = round(
                result["process_one_per_transaction"]["leads_per_s"] / result["ceiling_core_two_rows"]["leads_per_s"], 3
            )
            figures[kind] = result
            ws.close()
            if cleanup:
                cleanup()
            one = result["process_one_per_transaction"]
            print(
                f"{kind:9s} process: {one['leads_per_s']:>7,.0f} leads/s  p50 {one['p50_ms']:.2f} ms  p95 {one['p95_ms']:.2f} ms  "
                f"p99 {one['p99_ms']:.2f} ms | batched {result['process_many_batched']['leads_per_s']:,.0f} leads/s | "
                f"ceiling (2 rows, Core) {result['ceiling_core_two_rows']['leads_per_s']:,.0f}/s → {result['ratio_to_ceiling']:.2f}× of ceiling"
            )
    path = write("pipeline", figures)
    print(f"wrote {path}")
    return figures
