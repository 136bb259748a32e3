"""Two real ``leadflow serve`` processes on one database, 16 clients posting 600 leads over HTTP:
one shared rotation, the cap held, and the capped owner's turns shared by the other three."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from leadflow.access.keys import create_key
from leadflow.clock import FrozenClock
from leadflow.db.tables import leads
from tests.routing.helpers import team, workspace

REPO = Path(__file__).resolve().parents[2]
FOUR = ["ana", "ben", "chloe", "dmitri"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path, db_url: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "serve", "--workspace", str(root), "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "LEADFLOW_DATABASE_URL": db_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def test_two_api_processes_share_the_turns_of_a_capped_owner(tmp_path: Path, db_url: str, clock: FrozenClock) -> None:
    config = team("sales", FOUR)
    config["owners"][3]["capacity"] = {"per_day": 40}
    routing = {"rules": [], "fallback": {"team": "sales"}, "account_owner_first": False}
    ws = workspace(tmp_path, db_url, clock, **config, routing=routing)
    with ws.transaction() as conn:
        key, _ = create_key(conn, "tests", ["admin"], clock.now())
    ws.close()
    ports = [_port(), _port()]
    servers = [_serve(tmp_path / "ws", db_url, p) for p in ports]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url, proc in zip(urls, servers, strict=True):
            _wait_until_up(url, proc)
        clients = [httpx.Client(base_url=u, headers={"Authorization": f"Bearer {key}"}, timeout=60) for u in urls]

        def post(i: int) -> int:
            r = clients[i % 2].post("/api/v1/leads", json={"email": f"live{i}@gmail.com"})
            assert r.status_code == 201, r.text
            return r.status_code

        with ThreadPoolExecutor(16) as pool:
            answered = list(pool.map(post, range(600)))
        for c in clients:
            c.close()
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.wait(timeout=30)
    assert len(answered) == 600
    ws = workspace(tmp_path, db_url, clock, **config, routing=routing)
    with ws.reader() as conn:
        stored = dict(conn.execute(select(leads.c.owner_id, func.count()).group_by(leads.c.owner_id)).all())
    ws.close()
    assert stored["dmitri"] == 40
    others = [stored[o] for o in ("ana", "ben", "chloe")]
    assert sum(others) == 560 and max(others) - min(others) <= 1, stored  # before the fix: 260, 150, 150
