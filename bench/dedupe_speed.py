"""Speed half of ``python -m bench dedupe``: N stored leads on SQLite, one lead matched against
them (p50/p99), and the batch dedupe over all of them (time, peak memory).

The stored leads are written set-based (executemany straight into ``leads`` and
``lead_match_keys``, 50,000 rows a statement batch), not through the pipeline: a million captures
would take longer than the figure being measured. A share of them are corrupted copies of
others, so the batch has real clusters to find.
"""

from __future__ import annotations

import json
import random
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from faker import Faker

from bench.common import percentiles
from leadflow.identity.normalize import email_key
from leadflow.identity.service import find_candidates, match_model
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text

_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "email",
    "email_key",
    "first_name",
    "last_name",
    "phone",
    "company",
    "domain",
    "stage",
    "stage_entered_at",
    "config_version",
    "do_not_contact",
    "score",
    "fit_score",
    "engagement_score",
    "is_competitor",
    "pql",
    "pqa",
    "sla_step",
)


def _people(n: int, seed: int, duplicate_share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` stored leads (some corrupted copies of others) and probes to match against them."""
    rng = random.Random(seed)
    fake = Faker(["en_US", "de_DE", "fr_FR", "en_GB"])
    fake.seed_instance(seed)
    firsts = list({fake.first_name() for _ in range(3000)})
    lasts = list({fake.last_name() for _ in range(6000)})
    stems = list({fake.last_name().lower().replace(" ", "") for _ in range(4000)})
    suffixes = ["GmbH", "Inc.", "Ltd", "LLC", "SAS", "AG"]
    companies = [
        (
            f"{s.capitalize()} {rng.choice(['Labs', 'Systems', 'Media', 'Foods', 'Capital'])} {rng.choice(suffixes)}",
            f"{s}{i}.example",
        )
        for i, s in enumerate(stems * 25)
    ]
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < n:
        i += 1
        first, last = rng.choice(firsts), rng.choice(lasts)
        company, domain = rng.choice(companies)
        local = f"{first}.{last}".lower().replace(" ", "")
        person = {
            "email": f"{local}{i}@{domain}",
            "first_name": first,
            "last_name": last,
            "phone": f"+4930{rng.randrange(10**7, 10**8)}" if rng.random() < 0.5 else None,
            "company": company,
            "domain": domain,
        }
        out.append(person)
        if rng.random() < duplicate_share and len(out) < n:
            copy = dict(person)
            kind = rng.random()
            if kind < 0.4:
                copy["email"] = f"{local}@gmail.com"
                copy["domain"] = None
            elif kind < 0.7:
                copy["first_name"], copy["last_name"] = last, first
                copy["email"] = None
            else:
                copy["last_name"] = last[:-1] + "x"
                copy["email"] = f"{local[:-2]}{i}@{domain}"
            out.append(copy)
    probes = []
    for _ in range(2000):
        base = rng.choice(out)
        probe = dict(base)
        if rng.random() < 0.5:
            probe["email"] = f"{(base['first_name'] or 'x').lower()}.{(base['last_name'] or 'y').lower()}@gmail.com"
        else:
            probe = {
                "email": f"new{rng.randrange(10**9)}@example.org",
                "first_name": rng.choice(firsts),
                "last_name": rng.choice(lasts),
                "company": rng.choice(companies)[0],
            }
        probes.append(probe)
    return out, probes


def _store(path: Path, model: Any, people: list[dict[str, Any]], version: str) -> float:
    began = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    when = "2026-03-01 09:00:00.000000"
    insert = f"INSERT INTO leads ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    chunk = 50_000
    seen: set[str] = set()
    for start in range(0, len(people), chunk):
        rows, keys = [], []
        for offset, p in enumerate(people[start : start + chunk]):
            lead_id = start + offset + 1
            key = email_key(p["email"], provider_rules=False) if p["email"] else None
            if key in seen:
                key = None
                p["email"] = None
            if key:
                seen.add(key)
            rows.append(
                (
                    lead_id,
                    when,
                    when,
                    p["email"],
                    key,
                    p["first_name"],
                    p["last_name"],
                    p["phone"],
                    p["company"],
                    p["domain"],
                    "lead",
                    when,
                    version,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                )
            )
            keys.extend((k, lead_id) for k in set(model.key_hashes(p)))
        db.executemany(insert, rows)
        db.executemany("INSERT OR IGNORE INTO lead_match_keys (key, lead_id) VALUES (?, ?)", keys)
        db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()
    return time.perf_counter() - began


def speed(root: Path, stored: int, *, seed: int = 7, duplicate_share: float = 0.05) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(starter_config_text())
    ws = Workspace.open(root)
    model = match_model(ws.rules)
    people, probes = _people(stored, seed, duplicate_share)
    write_s = _store(root / "leadflow.db", model, people, ws.version)
    print(f"stored {stored:,} leads (with blocking keys) in {write_s:.1f}s")
    samples = []
    matched = 0
    with ws.reader() as conn:
        for probe in probes[:200]:
            find_candidates(conn, model, [probe])
        for probe in probes:
            t = time.perf_counter()
            found = find_candidates(conn, model, [probe])
            samples.append(time.perf_counter() - t)
            matched += found[0] is not None
    ws.close()
    match = {"stored": stored, "probes": len(probes), "with_candidates": matched, **percentiles(samples)}
    print(f"match one lead against {stored:,}: p50 {match['p50_ms']:.2f} ms  p99 {match['p99_ms']:.2f} ms")

    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "leadflow.cli", "dedupe", "--workspace", str(root), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(proc.stdout)
    batch = {"leads": stored, "seconds": round(seconds, 1), "peak_memory_mb": round(peak_mb, 1), **summary}
    print(f"leadflow dedupe over {stored:,}: {seconds:.1f}s, peak memory {peak_mb:.0f} MB, {summary}")
    return {"write_seconds": round(write_s, 1), "match_one": match, "batch": batch}
