"""Run timed tasks: each is a ``domain.action`` function of (workspace, connection) that does one
batch of due work in one transaction and says how much it did. Tasks are idempotent and claim
their rows from the database, so any number of workers can run side by side."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from leadflow.api import idempotency
from leadflow.metrics import tasks as metrics_tasks
from leadflow.model import service as model_service
from leadflow.notify import service as notify_service
from leadflow.nurture import service as nurture_service
from leadflow.routing import service as routing_service
from leadflow.scoring import tasks as scoring_tasks
from leadflow.webhooks import service as webhook_service
from leadflow.workspace import Workspace

Task = Callable[[Workspace, Connection], int]
OwnTransactions = Callable[[Workspace], int]


@dataclass(frozen=True)
class Periodic:
    """A task run in one transaction per batch (``run``), or one that manages its own
    transactions because it waits on the network (``own``)."""

    name: str
    every_s: float
    run: Task | None = None
    own: OwnTransactions | None = None


TASKS: dict[str, Periodic] = {
    "scoring.decay": Periodic("scoring.decay", 300.0, run=scoring_tasks.decay),
    "sla.escalate": Periodic("sla.escalate", 15.0, run=routing_service.tick),
    "routing.retry": Periodic("routing.retry", 300.0, run=routing_service.retry_waiting),
    "nurture.enrol": Periodic("nurture.enrol", 60.0, run=nurture_service.enrol),
    "nurture.advance": Periodic("nurture.advance", 30.0, run=nurture_service.advance),
    "notify.send": Periodic("notify.send", 5.0, own=notify_service.send_due),
    "webhooks.enqueue": Periodic("webhooks.enqueue", 2.0, run=webhook_service.enqueue),
    "webhooks.send": Periodic("webhooks.send", 2.0, own=webhook_service.send_due),
    "api.expire_idempotency_keys": Periodic("api.expire_idempotency_keys", 3600.0, run=idempotency.expire),
    "model.retrain": Periodic("model.retrain", 3600.0, own=model_service.retrain),
    "metrics.fold_milestones": Periodic("metrics.fold_milestones", 60.0, run=metrics_tasks.fold_milestones),
}


def run_task(ws: Workspace, task: Periodic) -> int:
    """Run a task until it reports no more due work; returns the total it did."""
    total = 0
    while True:
        if task.own is not None:
            done = task.own(ws)
        else:
            assert task.run is not None
            with ws.transaction() as conn:
                done = task.run(ws, conn)
        total += done
        if done == 0:
            return total


def run_once(ws: Workspace, names: list[str] | None = None) -> dict[str, int]:
    return {name: run_task(ws, TASKS[name]) for name in (names or list(TASKS))}


def run_forever(ws: Workspace, stop: threading.Event, names: list[str] | None = None) -> None:
    due = dict.fromkeys(names or list(TASKS), 0.0)
    while not stop.is_set():
        now = time.monotonic()
        for name, at in due.items():
            if now >= at:
                run_task(ws, TASKS[name])
                due[name] = now + TASKS[name].every_s
        stop.wait(max(0.05, min(due.values()) - time.monotonic()))
