"""The dedupe benchmark: match quality on a labelled set, Splink on the same records, and speed.

1. **Quality at capture.** The simulator's people, a share of them submitted again with realistic
   corruptions (``leadflow.simulate.duplicates``), go through ``process`` one by one. An automatic
   merge is right when the lead it joined describes the same person. Precision and recall of the
   automatic merges, F1, and the share of submissions queued for review.
2. **Quality in batch, and Splink.** The same records clustered at once by ``dedupe_records`` and
   by Splink (DuckDB backend, comparable comparisons, m estimated by EM, u by random sampling),
   scored pairwise against the truth; the ratio of the F1s and of the times.
3. **Speed.** One incoming lead matched against N stored leads (default 1,000,000, generated
   set-based straight into SQLite with their blocking keys): p50/p99 of ``find_candidates``.
   Then ``leadflow dedupe``'s function over the same database: time and peak memory.

    python -m bench dedupe [--people 3000] [--stored 1000000] [--skip-splink] [--skip-speed]
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import percentiles, write
from leadflow.identity.batch import dedupe_records
from leadflow.identity.service import match_model
from leadflow.pipeline import process
from leadflow.simulate import sample_leads
from leadflow.simulate.duplicates import labelled_set
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text


def _workspace(root: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(starter_config_text())
    return Workspace.open(root)


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("entity", "corruptions")}


def capture_quality(ws: Workspace, records: list[dict[str, Any]]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from leadflow.db.tables import match_pairs

    entity_of_lead: dict[int, int] = {}
    seen: set[int] = set()
    merges = correct = 0
    possible = 0
    errors = 0
    by_corruption: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        duplicate = record["entity"] in seen
        possible += duplicate
        seen.add(record["entity"])
        try:
            with ws.transaction() as conn:
                result = process(ws, conn, _payload(record), actor="bench")
        except Exception:
            errors += 1
            continue
        if result.created:
            entity_of_lead[result.lead_id] = record["entity"]
            if duplicate:
                for c in record["corruptions"] or ["none"]:
                    by_corruption[c][1] += 1
            continue
        merges += 1
        right = entity_of_lead[result.lead_id] == record["entity"]
        correct += right
        if duplicate:
            for c in record["corruptions"] or ["none"]:
                by_corruption[c][0] += right
                by_corruption[c][1] += 1
        on = result.lead.get("_identity_on")
        _ = on
    with ws.reader() as conn:
        reviews = conn.execute(select(func.count()).select_from(match_pairs)).scalar_one()
    precision = correct / merges if merges else 1.0
    recall = correct / possible if possible else 1.0
    return {
        "records": len(records),
        "duplicates": possible,
        "auto_merges": merges,
        "correct_merges": correct,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if merges else 0.0,
        "review_pairs": reviews,
        "review_share": round(reviews / len(records), 4),
        "rejected_as_invalid": errors,
        "recall_by_corruption": {k: round(v[0] / v[1], 3) for k, v in sorted(by_corruption.items()) if v[1]},
    }


def _true_pairs(records: list[dict[str, Any]]) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r["entity"]].append(i)
    return {(a, b) for members in groups.values() for a, b in itertools.combinations(sorted(members), 2)}


def _pairwise(predicted: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "pairs": len(predicted)}


def _cluster_pairs(clusters: dict[int, int]) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for r, c in clusters.items():
        groups[c].append(r)
    return {(a, b) for members in groups.values() for a, b in itertools.combinations(sorted(members), 2)}


def batch_quality(ws: Workspace, records: list[dict[str, Any]]) -> dict[str, Any]:
    from leadflow.capture.normalize import e164

    model = match_model(ws.rules)
    prepared = []
    for r in records:
        p = _payload(r)
        if p.get("phone"):
            p["phone"] = e164(p["phone"], p.get("country") or "US") or p["phone"]
        prepared.append(p)
    began = time.perf_counter()
    result = dedupe_records(model, prepared)
    seconds = time.perf_counter() - began
    truth = _true_pairs(records)
    out = _pairwise(_cluster_pairs(result.clusters), truth)
    out.update(
        seconds=round(seconds, 3),
        candidate_pairs=result.candidate_pairs,
        review_pairs=len(result.review_pairs),
        true_pairs=len(truth),
    )
    return out


def splink_quality(records: list[dict[str, Any]], threshold: float = 0.99) -> dict[str, Any]:
    import csv

    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    from leadflow.capture.normalize import e164
    from leadflow.identity.normalize import company_key, email_key

    columns = ("unique_id", "email", "first_name", "last_name", "phone", "company")
    path = Path(tempfile.mkdtemp()) / "records.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, r in enumerate(records):
            phone = e164(r["phone"], r.get("country") or "US") if r.get("phone") else None
            writer.writerow(
                (
                    i,
                    email_key(r.get("email")) or "",
                    (r.get("first_name") or "").lower(),
                    (r.get("last_name") or "").lower(),
                    phone or "",
                    company_key(r.get("company")) or "",
                )
            )
    began = time.perf_counter()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.ForenameSurnameComparison("first_name", "last_name"),
            cl.JaroWinklerAtThresholds("company", [0.92]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            block_on("first_name", "last_name"),
            block_on("company", "substr(last_name, 1, 3)"),
            block_on("company", "substr(first_name, 1, 3)"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    db_api.duckdb_con.execute(
        f"CREATE TABLE records AS SELECT * FROM read_csv('{path}', header=true, all_varchar=true, nullstr='')"
    )
    db_api.duckdb_con.execute("ALTER TABLE records ALTER unique_id TYPE BIGINT")
    linker = Linker(db_api.register("records"), settings, log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match([block_on("email"), block_on("phone")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("company"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    truth = _true_pairs(records)
    out: dict[str, Any] = {}
    for i, at in enumerate((threshold, 0.9, 0.5)):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, at)
        mapping = {int(r["unique_id"]): r["cluster_id"] for r in clusters.as_record_list()}
        if i == 0:
            out = _pairwise(_cluster_pairs({k: hash(v) for k, v in mapping.items()}), truth)
            out.update(seconds=round(time.perf_counter() - began, 3), threshold=at)
        else:
            out[f"at_{at}"] = _pairwise(_cluster_pairs({k: hash(v) for k, v in mapping.items()}), truth)
    return out


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dedupe")
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-splink", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-capture", action="store_true")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"people": args.people}
    with tempfile.TemporaryDirectory() as tmp:
        ws = _workspace(Path(tmp) / "quality")
        people = sample_leads(ws, args.people, seed=args.seed)
        records = labelled_set(people, seed=args.seed)
        figures["records"] = len(records)
        if not args.skip_capture:
            figures["capture"] = q = capture_quality(ws, records)
            print(
                f"capture  precision {q['precision']:.4f}  recall {q['recall']:.4f}  F1 {q['f1']:.4f}  "
                f"review share {q['review_share']:.2%}  ({q['auto_merges']} merges of {q['duplicates']} duplicates)"
            )
        figures["batch"] = b = batch_quality(ws, records)
        print(
            f"batch    precision {b['precision']:.4f}  recall {b['recall']:.4f}  F1 {b['f1']:.4f}  "
            f"{b['seconds']:.2f}s  review pairs {b['review_pairs']}"
        )
        ws.close()
        if not args.skip_splink:
            figures["splink"] = s = splink_quality(records)
            print(
                f"splink   precision {s['precision']:.4f}  recall {s['recall']:.4f}  F1 {s['f1']:.4f}  {s['seconds']:.2f}s"
            )
            figures["ratio_to_splink"] = {
                "f1": round(b["f1"] / s["f1"], 3) if s["f1"] else None,
                "time": round(b["seconds"] / s["seconds"], 3) if s["seconds"] else None,
            }
            print(
                f"ratio to splink: F1 {figures['ratio_to_splink']['f1']}×, time {figures['ratio_to_splink']['time']}×"
            )
        if not args.skip_speed:
            from bench.dedupe_speed import speed

            figures["speed"] = speed(Path(tmp) / "speed", args.stored, seed=args.seed)
    write("dedupe", figures)


__all__ = ["percentiles", "random", "resource", "run"]
