"""Dashboard users: argon2-hashed passwords, one role each, reps and managers linked to an owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, insert, select, update

from leadflow.db.tables import owners, users
from leadflow.errors import Conflict, InvalidInput, NotFound, Problem

ROLES = ("rep", "manager", "marketer", "admin")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
# Verifying against this when the email is unknown keeps the answer time the same either way.
_DUMMY_HASH = _hasher.hash("not a real password")


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str | None
    role: str
    owner_id: str | None
    team_id: str | None
    password_hash: str
    session_epoch: int = 0

    @property
    def actor(self) -> str:
        """How this person appears in the event log (an owner's actions stop the SLA clock)."""
        return f"owner:{self.owner_id}" if self.owner_id else f"user:{self.email}"

    @property
    def display(self) -> str:
        return self.name or self.email

    def can(self, page: str) -> bool:
        return self.role in PAGES[page]


# Which roles see which pages; what they see inside a page is decided by the readable-leads clause.
PAGES = {
    "inbox": ("rep", "manager", "admin", "marketer"),
    "review": ("manager", "marketer", "admin"),
    "teams": ("manager", "admin"),
    "metrics": ("manager", "marketer", "admin"),
    "models": ("manager", "marketer", "admin"),
}


def _from_row(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        role=row.role,
        owner_id=row.owner_id,
        team_id=row.team_id,
        password_hash=row.password_hash,
        session_epoch=row.session_epoch,
    )


def create_user(
    conn: Connection,
    email: str,
    password: str,
    role: str,
    now: datetime,
    *,
    owner: str | None = None,
    team: str | None = None,
    name: str | None = None,
) -> User:
    """Add a user; a rep needs an owner, a manager an owner or a team (taken from the owner)."""
    email = email.strip().lower()
    problems = []
    if "@" not in email:
        problems.append(Problem("email", "an email address, like ana@example.com"))
    if role not in ROLES:
        problems.append(Problem("role", f"one of: {', '.join(ROLES)}"))
    if len(password) < MIN_PASSWORD:
        problems.append(Problem("password", f"at least {MIN_PASSWORD} characters"))
    owner_row = None
    if owner is not None:
        owner_row = conn.execute(select(owners).where(owners.c.id == owner)).first()
        if owner_row is None:
            problems.append(Problem("owner", f"no owner {owner!r} (see: leadflow owners list)"))
    if role == "rep" and owner is None:
        problems.append(Problem("owner", "a rep is linked to the owner whose leads they work (--owner)"))
    if role == "manager" and owner is None and team is None:
        problems.append(Problem("team", "a manager sees a team's leads: give --team or --owner"))
    if problems:
        raise InvalidInput("cannot create the user", problems)
    if team is None and owner_row is not None:
        team = owner_row.team_id
    if conn.execute(select(users.c.id).where(users.c.email == email)).first() is not None:
        raise Conflict(f"a user {email} already exists")
    if name is None and owner_row is not None:
        name = owner_row.name
    user_id = conn.execute(
        insert(users)
        .values(
            email=email,
            name=name,
            password_hash=_hasher.hash(password),
            role=role,
            owner_id=owner,
            team_id=team,
            created_at=now,
        )
        .returning(users.c.id)
    ).scalar_one()
    return get_user(conn, int(user_id))


def get_user(conn: Connection, user_id: int) -> User:
    row = conn.execute(select(users).where(users.c.id == user_id, users.c.disabled_at.is_(None))).first()
    if row is None:
        raise NotFound(f"no user {user_id}")
    return _from_row(row)


# After this many failed sign-ins in a row an account refuses any for a while, doubling each time.
LOCK_AFTER = 5
LOCK_FIRST = timedelta(seconds=30)
LOCK_LONGEST = timedelta(minutes=15)


class Locked(Exception):
    """The account refuses sign-ins until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


def authenticate(conn: Connection, email: str, password: str, now: datetime | None = None) -> User | None:
    """The user whose email and password these are, or None (the same for an unknown email).

    With ``now``, failures count: after :data:`LOCK_AFTER` in a row the account is locked (any
    password refused, :class:`Locked` raised) for 30 s, then twice as long after each further
    failure, up to 15 minutes; a success starts the count again. An email with no account locks
    the same way (in this process), so a lock does not tell that an account exists.
    """
    email = email.strip().lower()
    row = conn.execute(select(users).where(users.c.email == email, users.c.disabled_at.is_(None))).first()
    if now is not None:
        until = row.locked_until if row is not None else _STRANGERS.get(email, (0, None))[1]
        if until is not None and until > now:
            raise Locked(until)
    try:
        _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        if now is not None:
            _failed(conn, row, email, now)
        return None
    return _from_row(row) if row is not None else None


# Failed sign-ins of emails that have no account: (failures, locked until), in this process.
_STRANGERS: dict[str, tuple[int, datetime | None]] = {}


def _failed(conn: Connection, row: Any, email: str, now: datetime) -> None:
    if row is not None:  # counted in the database, atomically: concurrent guesses all count
        failed = conn.execute(
            update(users)
            .where(users.c.id == row.id)
            .values(failed_sign_ins=users.c.failed_sign_ins + 1)
            .returning(users.c.failed_sign_ins)
        ).scalar_one()
    else:
        if len(_STRANGERS) > 10_000:
            _STRANGERS.clear()
        failed = _STRANGERS.get(email, (0, None))[0] + 1
    lock = now + min(LOCK_LONGEST, LOCK_FIRST * 2 ** min(failed - LOCK_AFTER, 10)) if failed >= LOCK_AFTER else None
    if row is not None:
        conn.execute(update(users).where(users.c.id == row.id).values(locked_until=lock))
    else:
        _STRANGERS[email] = (failed, lock)


def record_sign_in(conn: Connection, user: User, now: datetime) -> None:
    conn.execute(
        update(users).where(users.c.id == user.id).values(last_sign_in_at=now, failed_sign_ins=0, locked_until=None)
    )


def end_sessions(conn: Connection, user: User) -> None:
    """Sign the user out everywhere: cookies signed under the current epoch stop working."""
    conn.execute(update(users).where(users.c.id == user.id).values(session_epoch=users.c.session_epoch + 1))


def list_users(conn: Connection) -> list[dict[str, Any]]:
    query = select(users.c.id, users.c.email, users.c.name, users.c.role, users.c.owner_id, users.c.team_id)
    return [dict(r._mapping) for r in conn.execute(query.order_by(users.c.id))]
