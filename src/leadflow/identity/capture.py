"""Identity at capture: what the pipeline asks of the identity domain for a batch of submissions.

A submission whose email matched no lead is compared with the leads sharing a blocking key.
Above the upper threshold it is a returning person (the submission is a new touch on that lead,
as an exact email match is); between the thresholds a new lead is created and the pair is queued
for review; below, it is simply new. Afterwards every new or changed lead is filed under its
blocking keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from leadflow.identity.review import open_pairs
from leadflow.identity.service import Candidate, find_candidates, index_leads, match_model
from leadflow.leads.service import load_for_update

__all__ = ["BatchKeys", "Candidate", "after_capture", "probable_matches", "trace"]

_IDENTIFYING = ("email", "phone", "first_name", "last_name", "company")


def _identity_changed(before: Mapping[str, Any] | None, lead: Mapping[str, Any]) -> bool:
    """New, or changed in a field its blocking keys come from: it must be (re)filed."""
    return before is None or any(before.get(f) != lead.get(f) for f in _IDENTIFYING)


def _as_lead(capture: Any) -> dict[str, Any]:
    return {**capture.fields, **capture.personal, "custom": capture.custom}


class BatchKeys:
    """The blocking keys of the leads a batch has created or changed so far: a later submission
    sharing one may be the same person, and must be matched after those leads are filed."""

    def __init__(self, rules: Any) -> None:
        model = match_model(rules)
        self._model = model if model.enabled else None
        self._keys: set[int] = set()

    def add(self, before: Mapping[str, Any] | None, lead: Mapping[str, Any]) -> None:
        if self._model is not None and _identity_changed(before, lead):
            self._keys.update(self._model.key_hashes(lead))

    def shares(self, capture: Any) -> bool:
        return (
            self._model is not None
            and bool(self._keys)
            and not self._keys.isdisjoint(self._model.key_hashes(_as_lead(capture)))
        )


def probable_matches(
    conn: Connection, rules: Any, captures: Sequence[Any], known: Mapping[str, Any]
) -> dict[int, Candidate]:
    """index of a capture → its best candidate, for captures their email key did not match."""
    model = match_model(rules)
    if not model.enabled:
        return {}
    wanted = [i for i, c in enumerate(captures) if not (c.email_key and c.email_key in known)]
    if not wanted:
        return {}
    found = find_candidates(conn, model, [_as_lead(captures[i]) for i in wanted])
    out = {i: cand for i, cand in zip(wanted, found, strict=True) if cand is not None and cand.decision != "new"}
    merging = {c.lead["id"] for c in out.values() if c.decision == "merge"}
    if merging:
        # the lead is about to be updated: read its full current row (locked on PostgreSQL, so
        # that two concurrent captures of one person do not overwrite each other; SQLite already
        # serialises writers)
        current = load_for_update(conn, merging)
        for cand in out.values():
            if cand.decision == "merge":
                row = current.get(cand.lead["id"])
                if row is None or row["merged_into_id"] is not None:
                    cand.decision = "review" if row is not None else "new"
                else:
                    cand.lead = row
        for i, cand in out.items():
            # two records the system they came from keeps apart (each with its own id there) are
            # not merged unseen: the pair waits for review
            theirs, ours = cand.lead.get("external_id"), captures[i].fields.get("external_id")
            if cand.decision == "merge" and theirs and ours and theirs != ours:
                cand.decision = "review"
    return {i: c for i, c in out.items() if c.decision != "new"}


def trace(match: Candidate | None, *, matched: bool, lead_id: int | None = None) -> dict[str, Any]:
    """The ``identity`` part of a capture event: how the submission was recognised (or not)."""
    if matched:
        if match is None or match.decision != "merge":
            return {"matched": True, "on": "email", "lead_id": lead_id}
        return {
            "matched": True,
            "on": "probabilistic",
            "lead_id": lead_id,
            "probability": round(match.match.probability, 6),
            "evidence": match.match.evidence,
        }
    if match is not None and match.decision == "review":
        return {
            "matched": False,
            "review": {"lead_id": match.lead["id"], "probability": round(match.match.probability, 6)},
        }
    return {"matched": False}


def after_capture(
    ws: Any,
    conn: Connection,
    written: Sequence[tuple[dict[str, Any] | None, dict[str, Any], Candidate | None]],
) -> None:
    """File new and changed leads under their blocking keys; queue the pairs to review."""
    model = match_model(ws.rules)
    if not model.enabled or not written:
        return
    to_index = [lead for before, lead, _ in written if _identity_changed(before, lead)]
    index_leads(conn, model, to_index)
    review = [
        (lead["id"], match.lead["id"], match.match)
        for before, lead, match in written
        if before is None and match is not None and match.decision == "review"
    ]
    if review:
        open_pairs(ws, conn, review, found_by="capture")
