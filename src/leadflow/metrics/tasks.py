"""Timed metrics work: ``metrics.fold_milestones`` folds the event log into the milestone table."""

from __future__ import annotations

from sqlalchemy import Connection

from leadflow.metrics import milestones
from leadflow.workspace import Workspace


def fold_milestones(ws: Workspace, conn: Connection) -> int:
    """Fold the events recorded since the watermark; returns how many event ids it moved past
    (0 when up to date, so the worker stops)."""
    before = milestones.watermark(conn, ws)
    after = milestones.fold(ws, conn)
    return after - (before or 0) if before is None or after > before else 0
