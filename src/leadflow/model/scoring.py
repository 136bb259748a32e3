"""The predictive score in the pipeline: every ``lead_scored`` event written while a model is
active carries the model's score, probability, version and top contributions under ``model``.

With no active model this costs one cached lookup per batch and changes nothing. The rule score
stays the lead's ``score`` (stage rules and routing read it); the model's score sits beside it,
explained, for people, threshold advice and backtests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from leadflow import events as ev
from leadflow.errors import NotFound, Problem
from leadflow.model import dataset, registry
from leadflow.workspace import Workspace

TOP = 5


def stamp(
    ws: Workspace,
    conn: Connection,
    rows: list[dict[str, Any]],
    leads_by_id: Mapping[int, Mapping[str, Any]],
    with_history: Iterable[int] = (),
) -> None:
    """Add the active model's prediction to the ``lead_scored`` rows about to be appended.
    ``with_history``: leads whose earlier events are in the database (not new, or just linked to
    their anonymous visits)."""
    active = registry.active(ws, conn)
    if active is None:
        return
    scored = [row for row in rows if row["type"] == ev.LEAD_SCORED and row["lead_id"] in leads_by_id]
    if not scored:
        return
    wanted = {row["lead_id"] for row in scored}
    past = dataset.events_of(conn, [i for i in set(with_history) if i in wanted])
    pending: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["lead_id"] in wanted:
            pending.setdefault(row["lead_id"], []).append(row)
    for row in scored:
        lead_id = row["lead_id"]
        at = row["occurred_at"]
        history = [*past.get(lead_id, ()), *pending.get(lead_id, ())]
        features = dataset.lead_features(leads_by_id[lead_id], history, at)
        prediction = active.predictor.predict(features, top=TOP)
        stamp_data = prediction.as_dict(top=TOP)
        stamp_data.pop("calibration")  # the version's calibration is one line; events keep the figures
        row["data"] = {**row["data"], "model": {"version": active.version_id, **stamp_data}}


def predict_lead(ws: Workspace, conn: Connection, lead_id: int, *, version_id: int | None = None) -> dict[str, Any]:
    """A lead's predicted score now, with every contribution (for the API and CLI)."""
    from leadflow.leads.service import get_lead

    lead = get_lead(conn, lead_id)
    if version_id is None:
        active = registry.active(ws, conn)
        if active is None:
            raise NotFound("no model is active", [Problem("version", "activate one: leadflow model activate ID")])
        version_id, predictor = active.version_id, active.predictor
    else:
        predictor = registry.predictor_for(ws, conn, version_id)
    now = ws.clock.now()
    history = dataset.events_of(conn, [lead_id]).get(lead_id, [])
    prediction = predictor.predict(dataset.lead_features(lead, history, now), top=0)
    return {"lead_id": lead_id, "version": version_id, "as_of": now, **prediction.as_dict()}
