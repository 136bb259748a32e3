"""A skipped owner's turns are shared by the others in rotation (issue 23, item 4), on SQLite and
PostgreSQL: at capacity, away, back from leave, and by weight; the trace says who took the turn."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from leadflow import events as ev
from leadflow.clock import FrozenClock
from tests.routing.helpers import capture, events_of, team, workspace

FOUR = ["ana", "ben", "chloe", "dmitri"]
ROUTE_ALL = {"rules": [], "fallback": {"team": "sales"}, "account_owner_first": False}


def max_gap(owners: Sequence[str | None], among: Sequence[str]) -> int:
    """The largest difference between two owners' counts over any stretch of consecutive leads."""
    worst = 0
    for start in range(len(owners)):
        got: Counter[str | None] = Counter()
        for owner in owners[start : start + 60]:
            got[owner] += 1
            worst = max(worst, max(got[o] for o in among) - min(got[o] for o in among))
    return worst


def share_gap(owners: Sequence[str | None], among: Sequence[str], weights: dict[str, int]) -> float:
    """How far any owner's count strays from their share by weight, after every lead."""
    total = sum(weights[o] for o in among)
    got: Counter[str | None] = Counter()
    worst = 0.0
    for n, owner in enumerate(owners, 1):
        got[owner] += 1
        worst = max(worst, *(abs(got[o] - n * weights[o] / total) for o in among))
    return worst


def test_a_capped_owners_turns_are_shared_by_the_others(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    config = team("sales", FOUR)
    config["owners"][3]["capacity"] = {"per_day": 40}
    ws = workspace(tmp_path, db_url, clock, **config, routing=ROUTE_ALL)
    results = capture(ws, [{"email": f"c{i}@gmail.com"} for i in range(600)], batch=50)
    owners = [r.owner_id for r in results]
    assert Counter(owners) == {"ana": 187, "ben": 187, "chloe": 186, "dmitri": 40}
    full = owners.index("dmitri", 4 * 39) + 1  # the lead after dmitri's 40th
    assert max_gap(owners[full:], ["ana", "ben", "chloe"]) <= 1
    traces = [events_of(ws, r.lead_id, ev.LEAD_ASSIGNED)[0]["data"] for r in results[full : full + 6]]
    passed = [t for t in traces if t["turn_of"] == "dmitri"]
    assert len(passed) >= 2
    for t in passed:
        assert t["turn"] == f"dmitri at capacity (40/40 today): turn passed to {t['owner']}"
        assert {"owner": "dmitri", "why": "daily cap of 40 reached"} in t["skipped"]
    assert {t["owner"] for t in passed} != {"ana"}  # not always the one after him
    others = [t for t in traces if t["turn_of"] != "dmitri"]
    assert all(t["turn"] == f"{t['owner']}'s turn" for t in others)
    ws.close()


def test_an_away_owners_turns_are_shared_and_they_rejoin_without_a_backlog(
    tmp_path: Path, db_url: str, clock: FrozenClock
) -> None:
    config = team("sales", FOUR)
    config["owners"][0]["out_of_office"] = [{"from": "2026-03-02", "to": "2026-03-03"}]  # ana, Monday and Tuesday
    ws = workspace(tmp_path, db_url, clock, **config, routing=ROUTE_ALL)
    away = capture(ws, [{"email": f"a{i}@gmail.com"} for i in range(600)], batch=7)
    owners = [r.owner_id for r in away]
    assert Counter(owners) == {"ben": 200, "chloe": 200, "dmitri": 200}
    assert max_gap(owners, ["ben", "chloe", "dmitri"]) <= 1
    trace = events_of(ws, away[0].lead_id, ev.LEAD_ASSIGNED)[0]["data"]
    assert trace["turn"] == "ana out of office: turn passed to ben"
    # the CLI's "why this owner" says it too
    from typer.testing import CliRunner

    from leadflow.cli import app

    env = {"LEADFLOW_DATABASE_URL": ws.engine.url.render_as_string(hide_password=False), "COLUMNS": "200"}
    shown = CliRunner().invoke(app, ["leads", "why", str(away[0].lead_id), "-w", str(ws.path)], env=env)
    assert shown.exit_code == 0 and "ana out of office: turn passed to ben" in shown.output, shown.output
    clock.advance(days=2)  # Wednesday: ana is back, and gets her share, not the 200 she missed
    back = [r.owner_id for r in capture(ws, [{"email": f"b{i}@gmail.com"} for i in range(200)], batch=7)]
    assert all(49 <= n <= 51 for n in Counter(back).values()) and set(back) == set(FOUR)
    assert max_gap(back[2:], FOUR) <= 1  # her first turn back comes at once, then the plain rotation
    ws.close()


def test_weighted_turns_of_a_capped_owner_are_shared_by_weight(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    weights = {"ana": 3, "ben": 2, "chloe": 1, "dmitri": 2}
    config = team("sales", FOUR, strategy="weighted_round_robin")
    for o in config["owners"]:
        o["weight"] = weights[o["id"]]
    config["owners"][3]["capacity"] = {"per_day": 40}
    ws = workspace(tmp_path, db_url, clock, **config, routing=ROUTE_ALL)
    results = capture(ws, [{"email": f"w{i}@gmail.com"} for i in range(600)], batch=50)
    owners = [r.owner_id for r in results]
    assert Counter(owners) == {"ana": 280, "ben": 187, "chloe": 93, "dmitri": 40}
    full = len(owners) - owners[::-1].index("dmitri")
    assert share_gap(owners[:full], list(weights), weights) < 1
    assert share_gap(owners[full:], ["ana", "ben", "chloe"], weights) <= 1
    traces = [events_of(ws, r.lead_id, ev.LEAD_ASSIGNED)[0]["data"] for r in results[full : full + 12]]
    assert any(t["turn"].startswith("dmitri at capacity (40/40 today): turn passed to ") for t in traces)
    ws.close()


def test_an_owner_without_the_skill_loses_those_turns_only(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    config = team("sales", FOUR)
    for o in config["owners"][:2]:
        o["skills"] = ["fintech"]
    routing = {
        **ROUTE_ALL,
        "rules": [
            {
                "id": "fintech",
                "team": "sales",
                "require_skills": ["fintech"],
                "when": {"field": "custom.fintech", "eq": True},
            }
        ],
    }
    ws = workspace(tmp_path, db_url, clock, **config, routing=routing)
    results = capture(ws, [{"email": f"s{i}@gmail.com", "custom": {"fintech": i % 2 == 1}} for i in range(400)])
    owners = [r.owner_id for r in results]
    assert set(owners[1::2]) == {"ana", "ben"}
    assert Counter(owners) == {"ana": 134, "ben": 133, "chloe": 67, "dmitri": 66}  # no banked turns
    for start in range(len(owners)):  # the two who can take every lead alternate
        got = Counter(owners[start : start + 40])
        assert abs(got["ana"] - got["ben"]) <= 1
    trace = events_of(ws, results[1].lead_id, ev.LEAD_ASSIGNED)[0]["data"]
    assert {"owner": "chloe", "why": "lacks skill fintech"} in trace["skipped"]
    ws.close()
