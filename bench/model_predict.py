"""What a person waits for a prediction: ``leadflow model predict ID`` as a whole CLI call (a new
process each time: interpreter, imports, workspace, model, one lead) and
``GET /api/v1/leads/{id}/prediction`` over real HTTP against ``leadflow serve``, beside a plain
``GET /api/v1/leads/{id}`` on the same server (the API's own floor).

    python -m bench model_predict          # a 6-month simulated workspace, model trained and activated
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentiles, write

LEADFLOW = str(Path(sys.executable).with_name("leadflow"))


def _run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    done = subprocess.run([LEADFLOW, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"leadflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(ws: str, lead: int, requests: int) -> dict[str, Any]:
    import httpx

    key = json.loads(_run("apikey", "create", "bench", "--scope", "leads:read", "-w", ws, "--json"))["key"]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    server = subprocess.Popen(
        [LEADFLOW, "serve", "-w", ws, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as c:
            for _ in range(100):
                try:
                    c.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            out = {}
            for name, path in (("prediction", "/api/v1/leads/{}/prediction"), ("lead", "/api/v1/leads/{}")):
                for i in range(30):
                    c.get(path.format(lead + i)).raise_for_status()
                samples = []
                for i in range(requests):
                    began = time.perf_counter()
                    c.get(path.format(lead + i % 200)).raise_for_status()
                    samples.append(time.perf_counter() - began)
                out[name] = percentiles(samples)
            return out
    finally:
        server.terminate()
        server.wait(10)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="leadflow-predict-") as tmp:
        ws = str(Path(tmp) / "ws")
        _run("demo", "-w", ws, "--months", "6", "--no-serve")
        _run("model", "train", "--activate", "-w", ws)
        lead = 5
        _run("model", "predict", str(lead), "-w", ws)  # warm the file cache
        walls = []
        for _ in range(7):
            began = time.perf_counter()
            _run("model", "predict", str(lead), "-w", ws, "--json")
            walls.append(time.perf_counter() - began)
        http = _http(ws, lead, 500)
    figures = {
        "cli_predict_seconds": {
            "runs": [round(w, 3) for w in walls],
            "median": round(statistics.median(walls), 3),
            "max": round(max(walls), 3),
        },
        "api_prediction": http["prediction"],
        "api_lead": http["lead"],
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    c = figures["cli_predict_seconds"]
    print(f"leadflow model predict ID (a new process each time): median {c['median']} s, max {c['max']} s")
    for name in ("api_prediction", "api_lead"):
        p = figures[name]
        print(f"  {name}: p50 {p['p50_ms']} ms, p95 {p['p95_ms']} ms, p99 {p['p99_ms']} ms over real HTTP")
    print(f"wrote {write('model_predict', figures)}")
    return figures


if __name__ == "__main__":
    run(sys.argv[1:])
