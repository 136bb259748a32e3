"""The metrics benchmark: the dashboard set over a year of a big business.

Generates N leads (default 1,000,000) with ten events each (10,000,000), their opportunities,
revenue and monthly spend, set-based (one INSERT … SELECT per table, indexes built after the
load), on SQLite and on PostgreSQL when one answers. Then times the dashboard set — net lead
flow, funnel, conversion by source, deal velocity, SLA attainment (response time), CPL, CAC and
ROAS — through ``leadflow.metrics.service.dashboard``: a first (cold) run and the best of the
next two. In the same run the tables are exported to Parquet and DuckDB computes the same
figures; the benchmark checks they agree and writes leadflow's time divided by DuckDB's.

    python -m bench metrics [--leads 1000000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.common import postgres_url, write
from leadflow.clock import FrozenClock
from leadflow.db.engine import normalise_url
from leadflow.db.tables import lead_events, leads, opportunities, revenue, spend
from leadflow.metrics.service import dashboard
from leadflow.workspace import CONFIG_FILE, Workspace

START, END = date(2025, 1, 1), date(2026, 1, 1)
T0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
YEAR = 365 * 86400
SOURCES = [
    ("src0", "inbound"), ("src1", "inbound"), ("src2", "inbound"), ("src3", "inbound"),
    ("src4", "inbound"), ("src5", "referral"), ("src6", "outbound"), ("src7", "partner"),
]  # fmt: skip
CONFIG = (
    "workspace: {name: Bench, timezone: UTC, currency: EUR}\n"
    "teams: [{id: t0, name: Team 0}]\n"
    "owners: [{id: o0, name: Owner 0, team: t0}]\n"
    "routing: {fallback: {team: t0}}\n"
    "sources:\n" + "".join(f"  - {{id: {s}, name: {s}, kind: {k}}}\n" for s, k in SOURCES)
)
# Event k of lead i: offset in seconds after its creation, and its type / stage.
OFFSETS = [0, 0, 3600, 7200, 10800, None, 86400, 3 * 86400, 7 * 86400, 30 * 86400]


def _sql(dialect: str, n: int) -> list[str]:
    step = YEAR / n
    if dialect == "sqlite":
        seq = f"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) "
        ks = "(SELECT 0 AS k UNION ALL " + " UNION ALL ".join(f"SELECT {k}" for k in range(1, 10)) + ") AS ks"

        def ts(x: str) -> str:
            return f"(strftime('%Y-%m-%d %H:%M:%S', {x}, 'unixepoch') || '.000000')"

        js = "json_object('source', l.source, 'campaign', l.campaign)"
        empty = "'{}'"
        frm = "FROM seq"
    else:
        seq = ""
        ks = "generate_series(0, 9) AS ks(k)"

        def ts(x: str) -> str:
            return f"to_timestamp({x})"

        js = "jsonb_build_object('source', l.source, 'campaign', l.campaign)"
        empty = "'{}'::jsonb"
        frm = f"FROM generate_series(1, {n}) AS seq(i)"
    created = f"({T0} + (i - 1) * {step})"
    lc = f"({T0} + (l.id - 1) * {step})"
    offset = (
        "CASE k "
        + " ".join(f"WHEN {k} THEN {o if o is not None else '(l.id % 180) * 60'}" for k, o in enumerate(OFFSETS))
        + " END"
    )
    kind = (
        "CASE k WHEN 0 THEN 'lead_created' WHEN 1 THEN 'stage_changed' WHEN 2 THEN 'email_delivered' "
        "WHEN 3 THEN 'email_opened' WHEN 4 THEN 'page_view' "
        "WHEN 5 THEN CASE WHEN l.id % 5 = 4 THEN 'note' ELSE 'call' END "
        "WHEN 6 THEN CASE WHEN l.id % 2 = 0 THEN 'stage_changed' ELSE 'page_view' END "
        "WHEN 7 THEN CASE WHEN l.id % 4 = 0 OR l.id % 10 = 1 THEN 'stage_changed' ELSE 'email_clicked' END "
        "WHEN 8 THEN CASE WHEN l.id % 10 = 0 THEN 'stage_changed' ELSE 'page_view' END "
        "ELSE CASE WHEN l.id % 50 = 0 THEN 'stage_changed' ELSE 'email_opened' END END"
    )
    stage = (
        "CASE k WHEN 1 THEN 'lead' "
        "WHEN 6 THEN CASE WHEN l.id % 2 = 0 THEN 'mql' END "
        "WHEN 7 THEN CASE WHEN l.id % 4 = 0 THEN 'sql' WHEN l.id % 10 = 1 THEN 'disqualified' END "
        "WHEN 8 THEN CASE WHEN l.id % 10 = 0 THEN 'opportunity' END "
        "WHEN 9 THEN CASE WHEN l.id % 50 = 0 THEN 'customer' END END"
    )
    final_stage = (
        "CASE WHEN i % 50 = 0 THEN 'customer' WHEN i % 10 = 0 THEN 'opportunity' WHEN i % 4 = 0 THEN 'sql' "
        "WHEN i % 2 = 0 THEN 'mql' WHEN i % 10 = 1 THEN 'disqualified' ELSE 'lead' END"
    )
    return [
        f"{seq}INSERT INTO leads (id, created_at, updated_at, stage, stage_entered_at, config_version, source, "
        "medium, campaign, country, segment, owner_id, team_id, score, first_contact_at, sla_due_at, "
        "last_activity_at) "
        f"SELECT i, {ts(created)}, {ts(created)}, {final_stage}, {ts(created)}, 'bench', 'src' || (i % 8), "
        "CASE WHEN i % 8 < 5 THEN 'cpc' ELSE 'other' END, 'c' || (i % 40), "
        "CASE i % 5 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' WHEN 3 THEN 'GB' ELSE 'ES' END, "
        "CASE WHEN i % 3 = 0 THEN 'ent' ELSE 'smb' END, 'o' || (i % 20), 't' || (i % 4), i % 100, "
        f"CASE WHEN i % 5 = 4 THEN NULL ELSE {ts(created + ' + (i % 180) * 60')} END, "
        f"{ts(created + ' + 3600')}, {ts(created + ' + 2 * 86400')} {frm}",
        "INSERT INTO lead_events (lead_id, type, occurred_at, recorded_at, actor, stage, data, config_version) "
        f"SELECT l.id, {kind}, {ts(lc + ' + ' + offset)}, {ts(lc + ' + ' + offset)}, 'bench', {stage}, "
        f"CASE WHEN k = 0 THEN {js} ELSE {empty} END, 'bench' FROM leads l CROSS JOIN {ks}",
        "INSERT INTO opportunities (id, lead_id, name, amount, currency, pipeline_stage, status, probability, "
        "created_at, closed_at) "
        "SELECT l.id / 10, l.id, 'deal', 1000 + (l.id % 50) * 100, 'EUR', "
        "CASE WHEN l.id % 50 = 0 THEN 'closed_won' WHEN l.id % 30 = 0 THEN 'closed_lost' ELSE 'proposal' END, "
        "CASE WHEN l.id % 50 = 0 THEN 'won' WHEN l.id % 30 = 0 THEN 'lost' ELSE 'open' END, 0.3, "
        f"{ts(lc + ' + 7 * 86400')}, "
        f"CASE WHEN l.id % 50 = 0 THEN {ts(lc + ' + 30 * 86400')} WHEN l.id % 30 = 0 "
        f"THEN {ts(lc + ' + 20 * 86400')} END FROM leads l WHERE l.id % 10 = 0",
        "INSERT INTO revenue (lead_id, opportunity_id, amount, currency, recognized_at, kind) "
        "SELECT lead_id, id, amount, 'EUR', closed_at, 'new' FROM opportunities WHERE status = 'won'",
    ]


def _spend_rows() -> list[dict[str, Any]]:
    from decimal import Decimal

    rows = []
    for m in range(12):
        for j, (source, kind) in enumerate(SOURCES):
            rows.append({
                "source_id": source, "campaign_id": None, "period_start": date(2025, m + 1, 1),
                "period_end": date(2025 + (m + 1) // 12, (m + 1) % 12 + 1, 1),
                "amount": Decimal(100_000 + 10_000 * j), "currency": "EUR",
                "kind": "sales" if kind == "outbound" else "marketing", "origin": "bench",
            })  # fmt: skip
    return rows


def _open(kind: str, root: Path) -> tuple[Workspace, Any]:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(CONFIG)
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    if kind == "sqlite":
        return Workspace.open(root, clock=clock), None
    base = normalise_url(postgres_url() or "")
    schema = f"lf_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    ws = Workspace.open(root, database_url=f"{base}{sep}options=-csearch_path%3D{schema}", clock=clock)

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return ws, drop


def generate(ws: Workspace, n: int) -> dict[str, float]:
    """Load the data set-based; indexes are dropped for the load and built after it."""
    timings: dict[str, float] = {}
    began = time.perf_counter()
    tables = (leads, lead_events, opportunities, revenue)
    with ws.transaction() as conn:
        for table in tables:
            for ix in table.indexes:
                if not ix.unique:
                    ix.drop(conn)
        for name, stmt in zip(("leads", "events", "opportunities", "revenue"), _sql(ws.dialect, n), strict=True):
            t = time.perf_counter()
            conn.execute(text(stmt))
            timings[f"load_{name}_s"] = round(time.perf_counter() - t, 2)
        conn.execute(spend.insert(), _spend_rows())
        t = time.perf_counter()
        for table in tables:
            for ix in table.indexes:
                if not ix.unique:
                    ix.create(conn)
        timings["indexes_s"] = round(time.perf_counter() - t, 2)
        if ws.dialect == "postgresql":
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('opportunities', 'id'), 10000000)")
    with ws.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE" if ws.dialect == "postgresql" else "ANALYZE")
    timings["generate_s"] = round(time.perf_counter() - began, 2)
    return timings


def time_dashboard(ws: Workspace) -> tuple[dict[str, Any], dict[str, float]]:
    runs = []
    result: dict[str, Any] = {}
    for _ in range(3):
        t = time.perf_counter()
        with ws.reader() as conn:
            result = dashboard(ws, conn, START, END)
        runs.append(time.perf_counter() - t)
    per_metric = {}
    from leadflow.metrics.service import compute, make_query

    queries = {
        "net_lead_flow": make_query(START, END, grain="month"),
        "stage_reached": make_query(START, END),
        "lead_conversion_rate": make_query(START, END, by="source"),
        "deal_velocity": make_query(START, END),
        "response_time": make_query(START, END),
        "cost_per_lead": make_query(START, END, by="source"),
        "cac": make_query(START, END, grain="month"),
        "roas": make_query(START, END, by="source"),
    }
    for name, q in queries.items():
        t = time.perf_counter()
        with ws.reader() as conn:
            compute(ws, conn, name, q)
        per_metric[name] = round(time.perf_counter() - t, 3)
    return result, {"first_s": round(runs[0], 3), "best_s": round(min(runs[1:]), 3), "per_metric_s": per_metric}


# -- DuckDB over Parquet ---------------------------------------------------------------------------

EXPORT = {
    "leads": "SELECT id, created_at, source, first_contact_at, sla_due_at, last_activity_at, stage, "
    "merged_into_id FROM leads",
    "lead_events": "SELECT id, lead_id, type, occurred_at, stage FROM lead_events",
    "opportunities": "SELECT id, lead_id, amount, status, created_at, closed_at FROM opportunities",
    "revenue": "SELECT id, lead_id, opportunity_id, amount, recognized_at FROM revenue",
    "spend": "SELECT source_id, period_start, amount, kind FROM spend",
}


def export_parquet(ws: Workspace, target: Path) -> float:
    """Stream each table to a Parquet file (times as UTC timestamps, money as decimal)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    began = time.perf_counter()
    target.mkdir(parents=True, exist_ok=True)
    for name, query in EXPORT.items():
        writer = None
        with ws.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=200_000).exec_driver_sql(query)
            columns = list(result.keys())
            while chunk := result.fetchmany(200_000):
                cols = list(zip(*chunk, strict=True))
                arrays = []
                for c, values in zip(columns, cols, strict=True):
                    if c.endswith("_at") and ws.dialect == "sqlite":
                        arr = pa.array(values, pa.string()).cast(pa.timestamp("us"))
                    elif c.endswith("_at"):
                        arr = pa.array([v.replace(tzinfo=None) if v else None for v in values], pa.timestamp("us"))
                    elif c == "amount":
                        arr = pa.array([float(v) if v is not None else None for v in values], pa.float64())
                    elif c == "period_start":
                        arr = pa.array(
                            [date.fromisoformat(v) if isinstance(v, str) else v for v in values], pa.date32()
                        )
                    else:
                        arr = pa.array(values)
                    arrays.append(arr)
                batch = pa.table(arrays, names=columns)
                if writer is None:
                    writer = pq.ParquetWriter(target / f"{name}.parquet", batch.schema)
                writer.write_table(batch)
        if writer is not None:
            writer.close()
    return round(time.perf_counter() - began, 2)


DUCK = """
CREATE VIEW leads AS SELECT * FROM '{d}/leads.parquet';
CREATE VIEW ev AS SELECT * FROM '{d}/lead_events.parquet';
CREATE VIEW opps AS SELECT * FROM '{d}/opportunities.parquet';
CREATE VIEW rev AS SELECT * FROM '{d}/revenue.parquet';
CREATE VIEW spend AS SELECT * FROM '{d}/spend.parquet';
"""
DUCK_QUERIES = {
    "new_per_month": "SELECT strftime(created_at, '%Y-%m') m, count(*) n FROM leads "
    "WHERE created_at >= '2025-01-01' AND created_at < '2026-01-01' GROUP BY 1",
    "closed_per_month": "SELECT strftime(occurred_at, '%Y-%m') m, count(DISTINCT lead_id) n FROM ev "
    "WHERE type = 'stage_changed' AND stage IN ('lost', 'disqualified') AND occurred_at >= '2025-01-01' "
    "AND occurred_at < '2026-01-01' GROUP BY 1",
    "inactive_per_month": "SELECT strftime(last_activity_at + INTERVAL 90 DAY, '%Y-%m') m, count(*) n FROM leads "
    "WHERE stage NOT IN ('lost', 'disqualified', 'customer') AND last_activity_at + INTERVAL 90 DAY >= '2025-01-01' "
    "AND last_activity_at + INTERVAL 90 DAY < '2026-01-01' GROUP BY 1",
    "funnel": "WITH f AS (SELECT l.id, max(CASE e.stage WHEN 'lead' THEN 0 WHEN 'prospect' THEN 1 WHEN 'mql' THEN 2 "
    "WHEN 'sql' THEN 3 WHEN 'opportunity' THEN 4 WHEN 'customer' THEN 5 ELSE -1 END) r FROM leads l "
    "JOIN ev e ON e.lead_id = l.id AND e.type = 'stage_changed' WHERE l.created_at >= '2025-01-01' "
    "AND l.created_at < '2026-01-01' GROUP BY l.id) SELECT r, count(*) n FROM f GROUP BY r",
    "conversion_by_source": "WITH c AS (SELECT lead_id, min(occurred_at) t FROM ev WHERE type = 'stage_changed' "
    "AND stage = 'customer' GROUP BY lead_id) SELECT l.source, count(*) den, count(*) FILTER "
    "(WHERE c.t IS NOT NULL AND c.t - l.created_at <= INTERVAL 90 DAY) num FROM leads l LEFT JOIN c "
    "ON c.lead_id = l.id WHERE l.created_at >= '2025-01-01' AND l.created_at < '2026-01-01' GROUP BY 1",
    "deal_velocity": "SELECT quantile_disc(h, 0.5) med, avg(h) mean, quantile_disc(h, 0.9) p90, count(*) n FROM "
    "(SELECT epoch(o.closed_at - coalesce(l.first_contact_at, o.created_at)) / 3600 h FROM opps o "
    "LEFT JOIN leads l ON l.id = o.lead_id WHERE o.status = 'won' AND o.closed_at >= '2025-01-01' "
    "AND o.closed_at < '2026-01-01')",
    "response_time": "SELECT quantile_disc(h, 0.5) med, avg(h) mean, quantile_disc(h, 0.9) p90, count(h) n, "
    "count(*) FILTER (WHERE first_contact_at <= sla_due_at) met, count(*) FILTER (WHERE sla_due_at IS NOT NULL AND "
    "(first_contact_at IS NOT NULL OR sla_due_at < '2026-01-01')) due FROM (SELECT *, "
    "epoch(first_contact_at - created_at) / 3600 h FROM leads WHERE created_at >= '2025-01-01' "
    "AND created_at < '2026-01-01')",
    "cpl_by_source": "WITH s AS (SELECT source_id, sum(amount) a FROM spend WHERE period_start >= DATE '2025-01-01' "
    "AND period_start < DATE '2026-01-01' GROUP BY 1), n AS (SELECT source, count(*) c FROM leads WHERE "
    "created_at >= '2025-01-01' AND created_at < '2026-01-01' GROUP BY 1) SELECT n.source, s.a / n.c FROM n "
    "JOIN s ON s.source_id = n.source",
    "cac_per_month": "WITH f AS (SELECT lead_id, min(occurred_at) t FROM ev WHERE type = 'stage_changed' AND stage = "
    "'customer' GROUP BY 1), c AS (SELECT strftime(t, '%Y-%m') m, count(*) n FROM f WHERE t >= '2025-01-01' AND "
    "t < '2026-01-01' GROUP BY 1), s AS (SELECT strftime(period_start, '%Y-%m') m, sum(amount) a FROM spend "
    "GROUP BY 1) SELECT s.m, s.a / c.n FROM s JOIN c ON c.m = s.m",
    "roas_by_source": "WITH t AS (SELECT l.source, sum(r.amount) a FROM rev r JOIN leads l ON l.id = r.lead_id "
    "WHERE r.recognized_at >= '2025-01-01' AND r.recognized_at < '2026-01-01' GROUP BY 1), s AS (SELECT source_id, "
    "sum(amount) a FROM spend WHERE kind = 'marketing' GROUP BY 1) SELECT t.source, t.a / s.a FROM t "
    "JOIN s ON s.source_id = t.source",
}


def duckdb_figures(directory: Path) -> tuple[dict[str, Any], dict[str, float]]:
    import duckdb

    con = duckdb.connect()
    con.execute(DUCK.format(d=directory))
    runs = []
    out: dict[str, Any] = {}
    for _ in range(3):
        t = time.perf_counter()
        out = {name: con.execute(q).fetchall() for name, q in DUCK_QUERIES.items()}
        runs.append(time.perf_counter() - t)
    return out, {"first_s": round(runs[0], 3), "best_s": round(min(runs[1:]), 3)}


def agree(ours: dict[str, Any], duck: dict[str, Any]) -> dict[str, bool]:
    """Do leadflow and DuckDB give the same figures?"""
    flow = {r["period"]: r for r in ours["net_lead_flow"]["rows"]}
    new = dict(duck["new_per_month"])
    conv = {r["group"]: (r["numerator"], r["denominator"]) for r in ours["conversion_by_source"]["rows"]}
    dconv = {s: (num, den) for s, den, num in duck["conversion_by_source"]}
    [vel] = ours["deal_velocity"]["rows"]
    [dvel] = duck["deal_velocity"]
    [resp] = ours["response_time"]["rows"]
    [dresp] = duck["response_time"]
    funnel = ours["funnel"]["rows"][0]["furthest"]
    order = ["lead", "prospect", "mql", "sql", "opportunity", "customer"]
    dfunnel = {order[r]: n for r, n in duck["funnel"] if r >= 0}
    roas = {r["group"]: r["value"] for r in ours["roas"]["rows"]}
    return {
        "net_lead_flow_new": all(flow[m]["new"] == n for m, n in new.items()),
        "net_lead_flow_closed": all(flow[m]["closed"] == n for m, n in duck["closed_per_month"]),
        "funnel": all(funnel[s] == dfunnel.get(s, 0) for s in order),
        "conversion_by_source": conv == dconv,
        "deal_velocity": vel["count"] == dvel[3] and abs(vel["median"] - dvel[0]) < 0.01,
        "response_time": resp["count"] == dresp[3]
        and abs(resp["median"] - dresp[0]) < 0.01
        and resp["sla_attainment"]["numerator"] == dresp[4]
        and resp["sla_attainment"]["denominator"] == dresp[5],
        "cost_per_lead": all(
            abs(float(next(r["value"] for r in ours["cost_per_lead"]["rows"] if r["group"] == s)) - v) < 0.01
            for s, v in duck["cpl_by_source"]
        ),
        "roas": all(roas.get(s) is not None and abs(roas[s] - v) < 1e-6 for s, v in duck["roas_by_source"]),
    }


def run(options: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench metrics")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(options)
    backends = [b for b in args.backends.split(",") if b != "postgres" or postgres_url()]
    figures: dict[str, Any] = {"leads": args.leads, "events": args.leads * 10, "period": f"{START}..{END}"}
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            ws, drop = _open(backend, Path(tmp) / "ws")
            try:
                load = generate(ws, args.leads)
                ours, timing = time_dashboard(ws)
                parquet = Path(tmp) / "parquet"
                export_s = export_parquet(ws, parquet)
                duck, duck_timing = duckdb_figures(parquet)
                checks = agree(ours, duck)
            finally:
                ws.close()
                if drop:
                    drop()
        ratio = round(timing["best_s"] / duck_timing["best_s"], 1)
        figures[backend] = {
            **load,
            "dashboard": timing,
            "parquet_export_s": export_s,
            "duckdb": duck_timing,
            "leadflow_over_duckdb": ratio,
            "same_figures": checks,
        }
        print(
            f"{backend}: dashboard {timing['best_s']:.2f} s (first {timing['first_s']:.2f} s), "
            f"DuckDB over Parquet {duck_timing['best_s']:.3f} s, ratio {ratio}x; "
            f"load {load['generate_s']} s; figures agree: {all(checks.values())} {checks}"
        )
        print(f"  per metric: {timing['per_metric_s']}")
    print(f"wrote {write('metrics', figures)}")
