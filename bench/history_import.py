"""History import of a CRM export (``leadflow import --kind leads`` then ``--kind opportunities``),
on SQLite: rows/s and peak memory per file, each imported in a process of its own.

The files are HubSpot-like and seeded: a contacts export of ``--rows`` leads (Record ID, names,
email, company, Create Date spread over the last three years, Lifecycle Stage with the
"Became a ... Date" columns that go with it, Contact owner, Original Source) and a deals export
of ``--deals`` deals keyed by the contact's Record ID (won for customers, open for
opportunities, lost for leads lost after a deal; created and closed after the lead was). Both are
imported as history, with mapping files, into one workspace that has ~40 owners.

In the same run:

- live vs history: the first ``--live-rows`` leads of the same file imported once as history and
  once with ``live=True``, each into a fresh workspace;
- the floor under the leads import: the rows the history import stored for its first leads (the
  lead, its events including its stage history, its match keys and external ids, its account),
  written again for as many leads (``--floor-rows``) with nothing computed, in transactions of the
  import's size, through the same compiled statements (as ``bench csv_import`` does). The goal
  is an import at ≥ 0.8 × the floor's speed.

    python -m bench history_import [--rows 1000000] [--deals 200000] [--live-rows 50000] [--floor-rows N]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import RESULTS, write
from bench.csv_import import _ascii
from leadflow.simulate import sample_leads
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text

OWNERS = 40
YEARS = 3

LEAD_HEADER = [
    "Record ID",
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
    "Lifecycle Stage",
    "Became a Lead Date",
    "Became a Marketing Qualified Lead Date",
    "Became a Sales Qualified Lead Date",
    "Became an Opportunity Date",
    "Became a Customer Date",
    "Lifecycle Stage Date",  # when it entered the stage it is in (a custom property: HubSpot has no "lost date")
    "Contact owner",
]
REACHED = ("lead", "mql", "sql", "opportunity", "customer")
REACHED_COLUMN = dict(zip(REACHED, LEAD_HEADER[13:18], strict=True))
STAGE_LABEL = {
    "lead": "Lead",
    "mql": "Marketing Qualified Lead",
    "sql": "Sales Qualified Lead",
    "opportunity": "Opportunity",
    "customer": "Customer",
    "lost": "Other",  # HubSpot's catch-all stage; the mapping says it means lost
}
# Where the leads stand now (the furthest funnel stage they reached; lost leads reached one first).
STAGE_MIX = {"lead": 0.50, "mql": 0.14, "sql": 0.08, "opportunity": 0.06, "customer": 0.07, "lost": 0.15}
# HubSpot's Original Source values, for the simulator's sources
HUBSPOT_SOURCE = {
    "google_ads": "Paid Search",
    "linkedin_ads": "Paid Social",
    "organic_search": "Organic Search",
    "webinar": "Offline Sources",
    "newsletter": "Email Marketing",
    "referral": "Referrals",
    "partner": "Other Campaigns",
    "outbound": "Sales Outreach",
}

LEAD_MAPPING = """\
columns:
  external_id: Record ID
  first_name: First Name
  last_name: Last Name
  email: Email
  company: Company Name
  title: Job Title
  employees: Number of Employees
  industry: Industry
  country: Country/Region
  phone: Phone Number
  source: Original Source
  occurred_at: Create Date
  stage: Lifecycle Stage
  stage_at: Lifecycle Stage Date
  reached.lead: Became a Lead Date
  reached.mql: Became a Marketing Qualified Lead Date
  reached.sql: Became a Sales Qualified Lead Date
  reached.opportunity: Became an Opportunity Date
  reached.customer: Became a Customer Date
  owner: Contact owner
values:
  stage: {Other: lost}
  source: {%s}
numbers: [employees]
""" % ", ".join(f"{label}: {sid}" for sid, label in HUBSPOT_SOURCE.items())  # noqa: UP031 (YAML full of braces)

DEAL_HEADER = [
    "Record ID",
    "Deal Name",
    "Associated Contact IDs",
    "Associated Company",
    "Deal Stage",
    "Amount",
    "Create Date",
    "Close Date",
    "Deal owner",
    "Product",
]
OPEN_STAGES = ("Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled", "Contract Sent")
DEAL_MAPPING = """\
columns:
  external_id: Record ID
  name: Deal Name
  lead_external_id: Associated Contact IDs
  account: Associated Company
  status: Deal Stage
  pipeline_stage: Deal Stage
  amount: Amount
  created_at: Create Date
  closed_at: Close Date
  owner: Deal owner
  product: Product
values:
  status: {"Closed Won": won, "Closed Lost": lost, %s}
""" % ", ".join(f'"{s}": open' for s in OPEN_STAGES)  # noqa: UP031 (YAML full of braces)
PRODUCTS = ("Analytics Cloud", "Analytics Cloud Pro", "Data Connectors", "Embedded BI", "Onboarding Services")
FORMAT = "%Y-%m-%d %H:%M"  # HubSpot's export: local time, no offset (read in the workspace's time zone)

RUN = """
import json, resource, sys, time
from pathlib import Path
from leadflow.workspace import Workspace
from leadflow.imports.service import import_file
ws = Workspace.open(sys.argv[1])
profile = sys.argv[6] if len(sys.argv) > 6 else ""
if profile:
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
began = time.perf_counter()
summary = import_file(ws, Path(sys.argv[2]), sys.argv[3], mapping_path=Path(sys.argv[4]), live=sys.argv[5] == "live")
seconds = time.perf_counter() - began
if profile:
    prof.disable()
    prof.dump_stats(profile)
ws.close()
print(json.dumps({"seconds": round(seconds, 2), "rows": summary.rows_read, "created": summary.created, "merged": summary.merged,
                  "rejected": summary.rejected, "history": summary.history, "stages": summary.stages,
                  "counts": summary.counts, "warnings": len(summary.warnings),
                  "first_rejections": summary.rejections[:3], "first_warnings": summary.warnings[:3],
                  "unknown_owners": summary.unknown_owners, "undeclared_sources": summary.undeclared_sources,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}, default=str))
"""

FLOOR = """
import json, random, sys, time
from datetime import timedelta
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import sqlite
from leadflow.db.fastpath import Prepared
from leadflow.db.tables import accounts, lead_events, lead_external_ids, lead_match_keys, leads
from leadflow.imports.service import BATCH
from leadflow.leads.service import LEAD_COLUMNS
from leadflow.workspace import Workspace
source, target, total, batch = Workspace.open(sys.argv[1]), Workspace.open(sys.argv[2]), int(sys.argv[3]), BATCH
with source.reader() as conn:
    people = [dict(r._mapping) for r in conn.execute(select(leads).order_by(leads.c.id).limit(batch))]
    ids = [p["id"] for p in people]
    # what the first batch wrote for them (its captures and its stage moves: every event written
    # before the second batch's first one), not what later rows or the deals added
    cut = conn.execute(select(func.min(lead_events.c.id)).where(lead_events.c.lead_id > max(ids))).scalar()
    query = select(lead_events).where(lead_events.c.lead_id.in_(ids))
    history = [dict(r._mapping) for r in conn.execute(query if cut is None else query.where(lead_events.c.id < cut))]
    keys = [dict(r._mapping) for r in conn.execute(select(lead_match_keys).where(lead_match_keys.c.lead_id.in_(ids)))]
    external = [dict(r._mapping) for r in conn.execute(select(lead_external_ids).where(lead_external_ids.c.lead_id.in_(ids)))]
    linked = {p["account_id"] for p in people if p["account_id"]}
    companies = [dict(r._mapping) for r in conn.execute(select(accounts).where(accounts.c.id.in_(linked)))]
source.close()
event_columns = [c.name for c in lead_events.columns if c.name != "id"]
put_leads = Prepared(insert(leads), column_keys=("id", *LEAD_COLUMNS))
put_events = Prepared(insert(lead_events), column_keys=event_columns)
put_keys = Prepared(insert(lead_match_keys), column_keys=("key", "lead_id"))
# as remember_external_ids writes them (ids already known left as they are)
put_external = Prepared(sqlite.insert(lead_external_ids).on_conflict_do_nothing(), column_keys=("external_id", "lead_id"))
put_accounts = Prepared(insert(accounts), column_keys=[c.name for c in accounts.columns])
statements = [s._compile(target.engine.dialect) for s in (put_accounts, put_leads, put_events, put_keys, put_external)]
rng = random.Random(7)
sqlite_s = 0.0  # inside SQLite alone: the executemany calls and the commit, parameters ready
began = time.perf_counter()
for start in range(0, total, batch):
    offset = {p["id"]: start + i + 1 for i, p in enumerate(people)}
    # each copy at its own place in the three years, as the file's leads are (copies at one time
    # would pile onto the same spots of the time indexes: slower than the import's real writes)
    shift = timedelta(days=1095 * start / total)
    moved = lambda row, *names: {**row, **{n: row[n] + shift for n in names if row.get(n) is not None}}
    first = start // batch * len(companies)
    company = {a["id"]: first + j + 1 for j, a in enumerate(companies)}
    rows = [
        [{**a, "id": company[a["id"]], "domain": f"{start}.{a['domain']}"} for a in companies],
        [{**moved(p, "created_at", "updated_at", "stage_entered_at", "last_activity_at", "engagement_as_of", "assigned_at"),
          "id": offset[p["id"]], "email_key": p["email_key"] and f"{start}.{p['email_key']}",
          "external_id": p["external_id"] and f"{start}.{p['external_id']}", "account_id": company.get(p["account_id"])}
         for p in people],
        [{**moved(e, "occurred_at"), "lead_id": offset[e["lead_id"]]} for e in history],
        [{"key": rng.getrandbits(63), "lead_id": offset[k["lead_id"]]} for k in keys],
        [{"external_id": f"{start}.{x['external_id']}", "lead_id": offset[x["lead_id"]]} for x in external],
    ]
    with target.transaction() as conn:
        bound = [(c.sql, [c.params(r) for r in part]) for c, part in zip(statements, rows)]
        cursor = conn.connection.cursor()
        t = time.perf_counter()
        for sql, params in bound:
            if params:
                cursor.executemany(sql, params)
        cursor.close()
        t0 = time.perf_counter()
        sqlite_s += t0 - t
    sqlite_s += time.perf_counter() - t0  # the commit
seconds = time.perf_counter() - began
target.close()
n = -(-total // batch) * batch
stage_events = sum(e["type"] == "stage_changed" for e in history)
print(json.dumps({"rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds, 1), "sqlite_seconds": round(sqlite_s, 2),
                  "events_per_lead": round(len(history) / len(people), 2), "stage_events_per_lead": round(stage_events / len(people), 2),
                  "keys_per_lead": round(len(keys) / len(people), 2), "external_ids_per_lead": round(len(external) / len(people), 2),
                  "accounts_per_lead": round(len(companies) / len(people), 2)}))
"""

CHECK = """
import json, sys
from sqlalchemy import func, select
from leadflow.db.tables import lead_events, leads, notifications, nurture_enrolments, opportunities, revenue, webhook_deliveries
from leadflow.workspace import Workspace
ws = Workspace.open(sys.argv[1])
with ws.reader() as conn:
    out = {
        "stages": dict(conn.execute(select(leads.c.stage, func.count()).group_by(leads.c.stage)).all()),
        "deals": dict(conn.execute(select(opportunities.c.status, func.count()).group_by(opportunities.c.status)).all()),
        "revenue_rows": conn.execute(select(func.count()).select_from(revenue)).scalar(),
        "events": conn.execute(select(func.count()).select_from(lead_events)).scalar(),
        "stage_events": conn.execute(select(func.count()).select_from(lead_events).where(lead_events.c.type == "stage_changed")).scalar(),
        # nothing sent, scheduled or routed for history
        "sla_clocks": conn.execute(select(func.count()).select_from(leads).where(leads.c.sla_next_at.is_not(None))).scalar(),
        "notifications": conn.execute(select(func.count()).select_from(notifications)).scalar(),
        "nurture_enrolments": conn.execute(select(func.count()).select_from(nurture_enrolments)).scalar(),
        "webhook_deliveries": conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar(),
    }
ws.close()
print(json.dumps(out))
"""


def _owners() -> list[tuple[str, str, str]]:
    """~40 sales reps (id, name, email), and the two who left (in the file, not in the directory)."""
    firsts = ["Ana", "Ben", "Carla", "David", "Elif", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kaja", "Luca", "Maya",
              "Nils", "Olga", "Paul", "Rosa", "Sami", "Tara", "Umar"]  # fmt: skip
    lasts = ["Berg", "Costa", "Dietz", "Evans", "Fischer", "Gomez", "Hansen", "Ito", "Jensen", "Keller", "Lindqvist",
             "Meyer", "Novak", "Olsen", "Petrov", "Quinn", "Richter", "Silva", "Tanaka", "Weber"]  # fmt: skip
    out = []
    for i in range(OWNERS):
        name = f"{firsts[i % len(firsts)]} {lasts[(i * 7) % len(lasts)]}"
        rid = f"rep{i + 1:02d}"
        out.append((rid, name, f"{_ascii(name.split()[0])}.{_ascii(name.split()[1])}@northwind.example"))
    return out


def add_owners(ws: Workspace) -> None:
    from leadflow.config.workspace import Owner
    from leadflow.routing.service import upsert_owners

    with ws.transaction() as conn:
        upsert_owners(ws, conn, [Owner(id=i, name=n, email=e, team="sales") for i, n, e in _owners()])


def make_files(leads_path: Path, deals_path: Path, rows: int, deals: int, ws: Workspace) -> dict[str, Any]:
    """The two files; returns what they hold (stages, deal outcomes) to check the import against."""
    templates = sample_leads(ws, min(rows, 20_000), seed=3)
    n = len(templates)
    rng = random.Random(11)
    # local times in the workspace's zone, as HubSpot writes them; the last two days ago
    zone = ZoneInfo(ws.config.workspace.timezone)
    end = ws.clock.now().astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=2)
    start = end - timedelta(days=365 * YEARS)
    span_min = (end - start).total_seconds() / 60
    reps = [name for _, name, _ in _owners()]
    departed = ["Vera Albrecht", "Walter Krug"]  # reps who left: kept as written
    stages, weights = list(STAGE_MIX), list(STAGE_MIX.values())
    stage_counts: Counter[str] = Counter()
    # leads that carry a deal: (record id, company, owner, when the deal opened, its outcome, when it closed)
    carriers: list[tuple[str, str, str, datetime, str, datetime | None]] = []

    def later(at: datetime, mean_days: float) -> datetime:
        return min(at + timedelta(minutes=int(rng.expovariate(1 / (mean_days * 1440))) + 1), end)

    with leads_path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(LEAD_HEADER)
        for i in range(rows):
            t = templates[i % n]
            first = templates[rng.randrange(n)].get("first_name") or ""
            last = templates[rng.randrange(n)].get("last_name") or ""
            domain = t["email"].partition("@")[2].lower()
            local = ".".join(filter(None, (_ascii(first), _ascii(last), str(i))))
            phone = t.get("phone") or ""
            if phone:
                phone = phone[:-7] + f"{i % 10_000_000:07d}"
            record_id = str(51 + i * 3)  # HubSpot record ids: numbers, not dense
            created = start + timedelta(minutes=int((i + rng.random()) * span_min / rows))
            stage = rng.choices(stages, weights)[0]
            stage_counts[stage] += 1
            # the funnel stages it went through, each after the one before
            if stage == "lost":
                furthest = rng.choices(("lead", "mql", "sql", "opportunity"), (0.35, 0.25, 0.15, 0.25))[0]
            else:
                furthest = stage
            reached = {"lead": created}
            at = created
            for step, mean in (("mql", 6), ("sql", 10), ("opportunity", 14), ("customer", 45)):
                if REACHED.index(step) > REACHED.index(furthest):
                    break
                at = later(at, mean)
                reached[step] = at
            stage_at = reached[furthest] if stage != "lost" else later(at, 30)
            owner = "" if furthest == "lead" and rng.random() < 0.6 else rng.choice(reps)
            if owner and rng.random() < 0.01:
                owner = rng.choice(departed)
            out.writerow(
                [
                    record_id,
                    first,
                    last,
                    f"{local}@{domain}",
                    t.get("company", ""),
                    t.get("title", ""),
                    t.get("employees", ""),
                    t.get("industry", ""),
                    t.get("country", ""),
                    phone,
                    HUBSPOT_SOURCE.get(t.get("source", ""), ""),
                    created.strftime(FORMAT),
                    STAGE_LABEL[stage],
                    *(reached[s].strftime(FORMAT) if s in reached else "" for s in REACHED),
                    stage_at.strftime(FORMAT),
                    owner,
                ]
            )
            if stage == "customer":
                carriers.append(
                    (record_id, t.get("company", ""), owner, reached["opportunity"], "won", reached["customer"])
                )
            elif stage == "opportunity":
                carriers.append((record_id, t.get("company", ""), owner, reached["opportunity"], "open", None))
            elif stage == "lost" and furthest == "opportunity":
                carriers.append((record_id, t.get("company", ""), owner, reached["opportunity"], "lost", stage_at))
    # deals: one for each lead that carries one (in the leads' order), as many as asked; beyond
    # that, customers buy again (expansion deals, won later)
    outcomes: Counter[str] = Counter()
    customers = [c for c in carriers if c[4] == "won"] or carriers
    with deals_path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(DEAL_HEADER)
        for j in range(deals):
            if j < len(carriers):
                record_id, company, owner, opened, status, closed = carriers[j]
            else:
                record_id, company, owner, _, _, first_close = customers[j % len(customers)]
                opened = later(first_close or start, 60)
                status, closed = "won", later(opened, 30)
            outcomes[status] += 1
            amount = round(rng.lognormvariate(9.0, 0.8), 2)
            if status == "won" and rng.random() < 0.03:
                amount = ""  # won deals without an amount happen
            stage_name = {"won": "Closed Won", "lost": "Closed Lost"}.get(status) or rng.choice(OPEN_STAGES)
            product = rng.choice(PRODUCTS)
            out.writerow(
                [
                    str(9_000_000_001 + j * 5),
                    f"{company or 'Deal'} - {product}",
                    record_id,
                    company,
                    stage_name,
                    amount,
                    opened.strftime(FORMAT),
                    closed.strftime(FORMAT) if closed else "",
                    owner,
                    product,
                ]
            )
    return {"stages": dict(stage_counts), "deals": dict(outcomes), "carriers": len(carriers)}


def _workspace(root: Path, name: str) -> Path:
    (root / name).mkdir()
    (root / name / CONFIG_FILE).write_text(starter_config_text())
    ws = Workspace.open(root / name)
    add_owners(ws)
    ws.close()
    return root / name


def _run(ws: Path, file: Path, kind: str, mapping: Path, live: bool = False, profile: str = "") -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(ws), str(file), kind, str(mapping), "live" if live else "history", profile],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"the import of {file.name} failed:\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["rows_per_s"] = round(figures["rows"] / figures["seconds"], 1)
    return figures


def _script(code: str, *args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"a measurement failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _head(src: Path, dst: Path, rows: int) -> None:
    with src.open(newline="", encoding="utf-8") as f, dst.open("w", newline="", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i > rows:
                break
            g.write(line)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench history_import")
    parser.add_argument("--rows", type=int, default=1_000_000, help="leads in the contacts export")
    parser.add_argument("--deals", type=int, default=200_000, help="deals in the deals export")
    parser.add_argument("--live-rows", type=int, default=50_000, help="leads imported live and as history, to compare")
    parser.add_argument("--floor-rows", type=int, help="leads for the floor (default: --rows)")
    parser.add_argument("--profile", metavar="DIR", help="write cProfile stats of each import into DIR")
    args = parser.parse_args(argv)
    profiles = Path(args.profile).resolve() if args.profile else None
    if profiles:
        profiles.mkdir(parents=True, exist_ok=True)

    def profile(name: str) -> str:
        return str(profiles / f"{name}.prof") if profiles else ""

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="leadflow-history-") as tmp:
        root = Path(tmp)
        ws_path = _workspace(root, "ws")
        ws = Workspace.open(ws_path)
        began = time.perf_counter()
        expected = make_files(root / "contacts.csv", root / "deals.csv", args.rows, args.deals, ws)
        ws.close()
        figures["files"] = {
            "written_s": round(time.perf_counter() - began, 1),
            "contacts_mb": round((root / "contacts.csv").stat().st_size / 1e6, 1),
            "deals_mb": round((root / "deals.csv").stat().st_size / 1e6, 1),
            "expected_stages": expected["stages"],
            "expected_deals": expected["deals"],
        }
        (root / "leads.yaml").write_text(LEAD_MAPPING)
        (root / "deals.yaml").write_text(DEAL_MAPPING)

        leads = figures["leads"] = _run(
            ws_path, root / "contacts.csv", "leads", root / "leads.yaml", profile=profile("leads")
        )
        print(
            f"history import of {leads['rows']:,} leads ({figures['files']['contacts_mb']} MB): {leads['seconds']} s, "
            f"{leads['rows_per_s']:,.0f} rows/s, peak memory {leads['peak_rss_mb']} MB; created {leads['created']:,}, "
            f"merged {leads['merged']:,}, rejected {leads['rejected']:,}, history {leads['history']:,}, "
            f"stage changes {leads['stages']:,}",
            flush=True,
        )
        deals = figures["deals"] = _run(
            ws_path, root / "deals.csv", "opportunities", root / "deals.yaml", profile=profile("deals")
        )
        print(
            f"history import of {deals['rows']:,} deals ({figures['files']['deals_mb']} MB): {deals['seconds']} s, "
            f"{deals['rows_per_s']:,.0f} rows/s, peak memory {deals['peak_rss_mb']} MB; created {deals['created']:,}, "
            f"rejected {deals['rejected']:,}",
            flush=True,
        )
        figures["after"] = after = _script(CHECK, str(ws_path))
        print(
            f"stored: stages {after['stages']} (file: {expected['stages']}); deals {after['deals']} "
            f"(file: {expected['deals']}); {after['stage_events']:,} stage events of {after['events']:,}; "
            f"SLA clocks {after['sla_clocks']}, notifications {after['notifications']}, "
            f"nurture enrolments {after['nurture_enrolments']}, webhook deliveries {after['webhook_deliveries']}",
            flush=True,
        )

        floor_ws = root / "floor"
        floor_ws.mkdir()
        (floor_ws / CONFIG_FILE).write_text(starter_config_text())
        floor = figures["floor_store_only"] = _script(
            FLOOR, str(ws_path), str(floor_ws), str(args.floor_rows or args.rows)
        )
        figures["ratio_to_floor"] = round(leads["rows_per_s"] / floor["rows_per_s"], 3)
        print(
            f"floor, storing the same rows with nothing computed: {floor['rows']:,} leads in {floor['seconds']} s = "
            f"{floor['rows_per_s']:,.0f} leads/s ({floor['events_per_lead']} events, of them "
            f"{floor['stage_events_per_lead']} stage changes, {floor['keys_per_lead']} match keys and "
            f"{floor['external_ids_per_lead']} external ids a lead) → the history import runs at "
            f"{figures['ratio_to_floor']:.2f}× the floor (goal ≥ 0.8); of the floor, {floor['sqlite_seconds']} s inside "
            f"SQLite alone",
            flush=True,
        )

        # live vs history on the same slice, each into a fresh workspace
        slice_rows = min(args.live_rows, args.rows)
        _head(root / "contacts.csv", root / "slice.csv", slice_rows)
        compare = {}
        for mode in ("history", "live"):
            compare[mode] = _run(
                _workspace(root, f"slice-{mode}"),
                root / "slice.csv",
                "leads",
                root / "leads.yaml",
                live=mode == "live",
                profile=profile(f"slice_{mode}"),
            )
        compare["live_over_history"] = round(compare["live"]["rows_per_s"] / compare["history"]["rows_per_s"], 3)
        figures["slice"] = {"rows": slice_rows, **compare}
        print(
            f"the first {slice_rows:,} leads, fresh workspace: as history {compare['history']['seconds']} s = "
            f"{compare['history']['rows_per_s']:,.0f} rows/s ({compare['history']['peak_rss_mb']} MB); live "
            f"{compare['live']['seconds']} s = {compare['live']['rows_per_s']:,.0f} rows/s "
            f"({compare['live']['peak_rss_mb']} MB) → live at {compare['live_over_history']:.2f}× history",
            flush=True,
        )
    previous = RESULTS / "csv_import.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        figures["csv_import_reference"] = {
            k: old.get(k) for k in ("rows", "rows_per_s", "peak_rss_mb", "ratio_to_floor")
        } | {"commit": old.get("machine", {}).get("commit"), "when": old.get("machine", {}).get("when")}
        print(
            f"for reference, bench csv_import ({old.get('machine', {}).get('commit')}): {old['rows']:,} simulated leads "
            f"(no external id, stage, owner or stage dates; imported live, before history imports existed) at "
            f"{old['rows_per_s']:,.0f} rows/s, {old['ratio_to_floor']}× its own floor; not the same file, size or mode "
            f"as the figures above",
            flush=True,
        )
    print(f"wrote {write('history_import', figures)}")
    return figures
