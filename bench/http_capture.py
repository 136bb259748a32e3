"""HTTP capture under load: wrk on loopback against one `leadflow serve` process on SQLite,
posting realistic leads (each new) to POST /api/v1/leads — capture to owner assigned, answered.
In the same run, the peer: a bare FastAPI endpoint inserting one lead row and one event row.

    python -m bench http_capture [--seconds 20] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import write
from leadflow.access.keys import create_key
from leadflow.db import migrate
from leadflow.db.engine import make_engine
from leadflow.simulate import sample_leads
from leadflow.workspace import CONFIG_FILE, Workspace, starter_config_text

LUA = """
local bodies = {}
local n = 0
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end
local file = io.open("%(bodies)s", "r")
for line in file:lines() do bodies[#bodies + 1] = line end
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  n = n + 1
  local body = bodies[(n - 1) %% #bodies + 1]
  body = string.gsub(body, "@", "+%(run)s" .. thread_id .. "-" .. n .. "@", 1)
  return wrk.format(nil, "%(path)s", nil, body)
end
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(f"no {label} in wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 2)

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": ms("50%"),
        "p75_ms": ms("75%"),
        "p90_ms": ms("90%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def run(argv: list[str] | None = None) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    parser = argparse.ArgumentParser(prog="python -m bench http_capture")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {
        "seconds": args.seconds,
        "connections": args.connections,
        "server": "one uvicorn process, SQLite",
    }
    with tempfile.TemporaryDirectory(prefix="leadflow-http-") as tmp:
        root = Path(tmp)
        (root / "ws").mkdir()
        (root / "ws" / CONFIG_FILE).write_text(starter_config_text())
        ws = Workspace.open(root / "ws")
        with ws.transaction() as conn:
            key, _ = create_key(conn, "bench", ["leads:write"], ws.clock.now())
        bodies = root / "bodies.jsonl"
        bodies.write_text("".join(json.dumps(p) + "\n" for p in sample_leads(ws, 5000, seed=9)))
        ws.close()

        bare = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--log-level", "warning"]
        runs = [
            (
                "leadflow",
                [sys.executable, "-m", "leadflow.cli", "serve", "--workspace", str(root / "ws")],
                "/api/v1/leads",
                {},
            ),
            ("bare_fastapi_threadpool", bare, "/leads", {"BARE_DATABASE_URL": f"sqlite:///{root / 'bare1.db'}"}),
            ("bare_fastapi_inline", bare, "/leads-inline", {"BARE_DATABASE_URL": f"sqlite:///{root / 'bare2.db'}"}),
        ]
        for name, command, path, env in runs:
            if name.startswith("bare"):
                engine = make_engine(env["BARE_DATABASE_URL"])
                migrate.upgrade(engine)
                engine.dispose()
            port = _port()
            script = root / f"{name}.lua"
            script.write_text(LUA % {"bodies": bodies, "key": key, "path": path, "run": name.replace("_", "")})
            log = (root / f"{name}.log").open("w")
            proc = subprocess.Popen(
                [*command, "--port", str(port)],
                env={**os.environ, **env},
                stdout=log,
                stderr=log,
                cwd=Path(__file__).resolve().parents[1],
            )
            try:
                _wait(f"http://127.0.0.1:{port}/docs", proc)
                figures[name] = _wrk(f"http://127.0.0.1:{port}", script, args.seconds, args.connections)
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
                log.close()
            logged = (root / f"{name}.log").read_text()
            figures[name]["server_errors_logged"] = logged.count("Traceback")
            if logged.count("Traceback"):
                print(
                    f"{name}: first server error:", [line for line in logged.splitlines() if "Error" in line][-1][:300]
                )
    for peer in ("bare_fastapi_threadpool", "bare_fastapi_inline"):
        figures[f"ratio_to_{peer}"] = round(figures["leadflow"]["requests_per_s"] / figures[peer]["requests_per_s"], 3)
    for name in ("leadflow", "bare_fastapi_threadpool", "bare_fastapi_inline"):
        f = figures[name]
        print(
            f"{name:24s} {f['requests_per_s']:>6,.0f}/s  p50 {f['p50_ms']:>6} ms  p99 {f['p99_ms']:>7} ms  non-2xx {f['non_2xx']}  server errors {f['server_errors_logged']}"
        )
    print(
        f"leadflow / bare (thread pool): {figures['ratio_to_bare_fastapi_threadpool']:.2f}; / bare (inline): {figures['ratio_to_bare_fastapi_inline']:.2f}"
    )
    print(f"wrote {write('http_capture', figures)}")
    return figures
