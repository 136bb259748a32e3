"""Dashboard pages over real HTTP: every page, per role, on the demo's simulated year.

Builds a demo workspace (``leadflow demo --no-serve``: twelve simulated months), serves it with
``leadflow serve`` in its own process, signs in as each demo user (rep, manager, marketer,
admin) and times every page that role can open: the first request of each distinct URL (nothing
cached yet: the figures are computed) and warm repeats. The target is every page under 300 ms.

    python -m bench dashboard [--workspace DIR] [--repeat 7]

With ``--workspace`` an existing demo workspace is served instead of building a new one.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import write
from bench.http_capture import _port, _wait

PASSWORD = "leadflow-demo"
TARGET_MS = 300.0
ROLES = {
    "rep": None,  # the first owner's address, read from the demo's output
    "manager": "manager@demo.leadflow",
    "marketer": "marketer@demo.leadflow",
    "admin": "admin@demo.leadflow",
}


def _pages(role: str, lead_id: int | None, extra: dict[str, str]) -> list[tuple[str, str]]:
    """(name, path) of the pages a role can open; metrics with each filter on its own."""
    pages = [("inbox", "/app/inbox")]
    if lead_id is not None:
        pages.append(("lead", f"/app/leads/{lead_id}"))
    if role == "rep":
        return pages
    pages.append(("review", "/app/review"))
    if role in ("manager", "admin"):
        pages.append(("teams", "/app/teams"))
    pages += [
        ("metrics", "/app/metrics"),
        ("metrics 3 months", "/app/metrics?months=3"),
        ("metrics 24 months", "/app/metrics?months=24"),
        ("metrics first-touch", "/app/metrics?model=first_touch"),
    ]
    for key in ("source", "campaign", "team"):
        if extra.get(key):
            pages.append((f"metrics by {key}", f"/app/metrics?{key}={extra[key]}"))
    pages += [("models", "/app/models"), ("models advice", "/app/models?capacity=50")]
    return pages


def _sign_in(url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/login").text)
    assert token is not None
    response = client.post("/app/login", data={"email": email, "password": PASSWORD, "csrf": token.group(1)})
    if response.status_code != 303:
        raise RuntimeError(f"sign-in as {email} failed: {response.status_code}")
    return client


def _time(client: httpx.Client, path: str) -> tuple[float, int, str]:
    t = time.perf_counter()
    response = client.get(path)
    return time.perf_counter() - t, response.status_code, response.text


def _fragments(html: str) -> list[str]:
    """Chart fragments the page loads after it (hx-get), to be timed as pages of their own."""
    return sorted(set(re.findall(r'hx-get="(/app/[^"]+)"', html.replace("&amp;", "&"))))


def _demo(workspace: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "leadflow.cli", "demo", "--no-serve", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out


def _facts(workspace: Path) -> dict[str, Any]:
    """The demo users and a lead each of them may open, the busiest source, campaign and team."""
    from sqlalchemy import func, select

    from leadflow.db.tables import lead_events, leads, owners, users
    from leadflow.workspace import Workspace

    ws = Workspace.open(workspace)
    with ws.reader() as conn:
        rep = conn.execute(select(users.c.email, users.c.owner_id).where(users.c.role == "rep")).first()
        team = conn.execute(select(users.c.team_id).where(users.c.role == "manager")).scalar()
        members = select(owners.c.id).where(owners.c.team_id == team)

        def one(*where: Any) -> int | None:
            return conn.execute(select(func.max(leads.c.id)).where(leads.c.merged_into_id.is_(None), *where)).scalar()

        def busiest(col: Any) -> str | None:
            stmt = select(col).where(col.is_not(None)).group_by(col).order_by(func.count().desc()).limit(1)
            return conn.execute(stmt).scalar()

        busiest_team = conn.execute(
            select(owners.c.team_id)
            .join(leads, leads.c.owner_id == owners.c.id)
            .group_by(owners.c.team_id)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar()
        facts = {
            "rep_email": rep.email,
            "rep_lead": one(leads.c.owner_id == rep.owner_id),
            "team_lead": one(leads.c.owner_id.in_(members)),
            "any_lead": one(),
            "source": busiest(leads.c.source),
            "campaign": busiest(leads.c.campaign),
            "team": busiest_team,
            "leads": conn.execute(select(func.count()).select_from(leads)).scalar(),
            "events": conn.execute(select(func.count()).select_from(lead_events)).scalar(),
        }
    ws.engine.dispose()
    return facts


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard")
    parser.add_argument("--workspace", type=Path, default=None, help="serve this demo workspace (else build one)")
    parser.add_argument("--repeat", type=int, default=7, help="warm requests per page")
    args = parser.parse_args(argv)

    tmp = None
    workspace = args.workspace
    build_s = None
    if workspace is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-dashboard-")
        workspace = Path(tmp.name) / "demo"
        t = time.perf_counter()
        _demo(workspace)
        build_s = round(time.perf_counter() - t, 1)
        print(f"demo workspace built in {build_s} s")
    facts = _facts(workspace)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "serve", "--workspace", str(workspace), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: list[dict[str, Any]] = []
    try:
        _wait(f"{url}/app/login", proc)
        for role, email in ROLES.items():
            client = _sign_in(url, email or facts["rep_email"])
            lead_id = (
                facts["rep_lead"] if role == "rep" else facts["team_lead"] if role == "manager" else facts["any_lead"]
            )
            pages = _pages(role, lead_id, facts)
            seen: set[str] = set()
            queue = list(pages)
            while queue:
                name, path = queue.pop(0)
                if path in seen:
                    continue
                seen.add(path)
                first, status, html = _time(client, path)
                if status != 200:
                    raise RuntimeError(f"{role} {path}: HTTP {status}")
                # the fragments the page loads next, as a browser would: right after it
                queue[0:0] = [(f"{name} · {p.split('/')[-1].split('?')[0]}", p) for p in _fragments(html)]
                warm = sorted(_time(client, path)[0] for _ in range(args.repeat))
                row = {
                    "role": role,
                    "page": name,
                    "path": path,
                    "first_ms": round(first * 1000, 1),
                    "warm_p50_ms": round(warm[len(warm) // 2] * 1000, 1),
                    "warm_max_ms": round(warm[-1] * 1000, 1),
                }
                row["under_target"] = max(row["first_ms"], row["warm_max_ms"]) < TARGET_MS
                results.append(row)
                flag = "" if row["under_target"] else "  <-- over 300 ms"
                print(
                    f"{role:9} {name:32} first {row['first_ms']:7.1f} ms   warm p50 {row['warm_p50_ms']:6.1f} ms"
                    f"   max {row['warm_max_ms']:6.1f} ms{flag}"
                )
            client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if tmp is not None:
            tmp.cleanup()
    slowest = max(results, key=lambda r: max(r["first_ms"], r["warm_max_ms"]))
    figures = {
        "target_ms": TARGET_MS,
        "workspace": {"leads": facts["leads"], "events": facts["events"], "months": 12, "built_s": build_s},
        "repeat": args.repeat,
        "all_under_target": all(r["under_target"] for r in results),
        "slowest": slowest,
        "pages": results,
    }
    path = write("dashboard", figures)
    print(f"slowest: {slowest['role']} {slowest['page']} {max(slowest['first_ms'], slowest['warm_max_ms'])} ms")
    print(f"wrote {path}")
