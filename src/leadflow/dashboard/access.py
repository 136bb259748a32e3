"""What a signed-in user may read: one WHERE clause over ``leads`` that every dashboard query uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, false, or_, select, true

from leadflow.dashboard.users import User
from leadflow.db.tables import leads, owners


def readable_leads(user: User) -> Any:
    """A rep reads the leads they own; a manager their team's (owned by a team member or waiting
    in the team's queue); a marketer and an admin every lead."""
    if user.role in ("admin", "marketer"):
        return true()
    if user.role == "manager":
        if user.team_id is None:
            return leads.c.owner_id == user.owner_id if user.owner_id else false()
        members = select(owners.c.id).where(owners.c.team_id == user.team_id)
        return or_(leads.c.owner_id.in_(members), and_(leads.c.owner_id.is_(None), leads.c.team_id == user.team_id))
    if user.role == "rep" and user.owner_id:
        return leads.c.owner_id == user.owner_id
    return false()


def readable_owners(user: User) -> Any:
    if user.role in ("admin", "marketer"):
        return true()
    if user.role == "manager" and user.team_id:
        return owners.c.team_id == user.team_id
    return owners.c.id == user.owner_id if user.owner_id else false()
