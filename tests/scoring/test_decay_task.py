"""Score decay in simulated time: the worker's scoring.decay task, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from leadflow import events as ev
from leadflow.clock import FrozenClock
from leadflow.jobs.worker import run_once
from leadflow.leads.service import get_lead
from leadflow.pipeline import Activity, process, record_activities
from leadflow.workspace import Workspace


def test_engagement_decays_and_each_change_is_an_event(ws: Workspace, clock: FrozenClock) -> None:
    with ws.transaction() as conn:
        lead = process(ws, conn, {"email": "e@quiet.example"})
        # trial 20 + meeting 15 = 35 engagement points, no fit
        record_activities(
            ws,
            conn,
            [
                Activity(type="trial_started", lead_id=lead.lead_id, occurred_at=clock.now()),
                Activity(type="meeting_held", lead_id=lead.lead_id, occurred_at=clock.now(), actor="owner:ana"),
            ],
        )
    with ws.reader() as conn:
        assert get_lead(conn, lead.lead_id)["score"] == 35
    clock.advance(days=30)  # one half-life
    assert run_once(ws, ["scoring.decay"]) == {"scoring.decay": 1}
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
        scored = [e for e in ev.for_lead(conn, lead.lead_id) if e["type"] == ev.LEAD_SCORED]
    assert (row["score"], row["engagement_score"], row["engagement_as_of"]) == (
        18,
        18,
        clock.now(),
    )  # 17.5 rounds to 18
    assert (scored[-1]["data"]["trigger"], scored[-1]["data"]["previous"], scored[-1]["data"]["score"]) == (
        "decay",
        35,
        18,
    )
    assert sum(line["points"] for line in scored[-1]["data"]["explanation"]) == 18
    # nothing due again until time passes
    assert run_once(ws, ["scoring.decay"]) == {"scoring.decay": 0}
    clock.advance(days=300)
    run_once(ws, ["scoring.decay"])
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
    assert (row["score"], row["engagement_as_of"], row["score_detail"]["engagement"]) == (0, None, {})
    # long gone: no more work for this lead
    clock.advance(days=30)
    assert run_once(ws, ["scoring.decay"]) == {"scoring.decay": 0}


def test_decay_never_moves_a_stage_back(ws: Workspace, clock: FrozenClock) -> None:
    with ws.transaction() as conn:
        lead = process(
            ws,
            conn,
            {
                "email": "m@big.example",
                "first_name": "Mo",
                "last_name": "Big",
                "company": "Big",
                "title": "CTO",
                "employees": 300,
                "capture_context": "demo",
            },
        )
        record_activities(ws, conn, [Activity(type="trial_started", lead_id=lead.lead_id, occurred_at=clock.now())])
    with ws.reader() as conn:
        assert get_lead(conn, lead.lead_id)["stage"] == "mql"
    clock.advance(days=120)
    run_once(ws, ["scoring.decay"])
    with ws.reader() as conn:
        row = get_lead(conn, lead.lead_id)
    assert row["score"] == 56  # fit 20 + 15 + 20, and the trial's 20 points halved four times (1.25)
    assert row["stage"] == "mql"
    assert clock.now() - timedelta(days=120) < row["stage_entered_at"] + timedelta(days=1)
