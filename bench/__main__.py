"""``python -m bench [name ...] [-- options]``: run benchmarks (all by default)."""

from __future__ import annotations

import sys

from bench import (
    csv_import,
    dashboard,
    dedupe,
    history_import,
    http_capture,
    metrics,
    model,
    model_drift,
    model_predict,
    nurture,
    pipeline,
    routing,
    scoring,
    xeducation,
)

BENCHMARKS = {
    "pipeline": pipeline.run,
    "scoring": scoring.run,
    "xeducation": xeducation.run,
    "model": model.run,
    "model_drift": model_drift.run,
    "model_predict": model_predict.run,
    "http_capture": http_capture.run,
    "csv_import": csv_import.run,
    "history_import": history_import.run,
    "routing": routing.run,
    "nurture": nurture.run,
    "metrics": metrics.run,
    "dedupe": dedupe.run,
    "dashboard": dashboard.run,
}


def main(argv: list[str]) -> None:
    names = [a for a in argv if a in BENCHMARKS] or list(BENCHMARKS)
    options = [a for a in argv if a not in BENCHMARKS]
    for name in names:
        print(f"== {name}")
        BENCHMARKS[name](options)


if __name__ == "__main__":
    main(sys.argv[1:])
