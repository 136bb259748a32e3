"""Storage keeps its promises on both stores: aware UTC times, exact money, migrations match models."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select

from leadflow.db import migrate
from leadflow.db.tables import metadata, spend
from leadflow.workspace import Workspace
from tests.conftest import BACKENDS


def test_schema_is_at_head_and_matches_the_models(ws: Workspace) -> None:
    assert migrate.current_revision(ws.engine) == migrate.head_revision()
    # the constant an up-to-date database is recognised by is the scripts' head
    assert migrate.head_revision() == migrate.HEAD
    with ws.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []


def test_times_come_back_aware_utc_and_naive_ones_are_refused(ws: Workspace) -> None:
    berlin = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 1, 10, 30, 15, 123456, tzinfo=berlin)
    with ws.transaction() as conn:
        conn.execute(
            insert(spend).values(
                source_id="s",
                period_start=local.date(),
                period_end=local.date() + timedelta(days=1),
                amount=Decimal("1.00"),
                currency="EUR",
                origin="test",
            )
        )
    from leadflow.db.tables import config_versions

    with ws.transaction() as conn:
        conn.execute(insert(config_versions).values(version="t", loaded_at=local, text=""))
    with ws.reader() as conn:
        got = conn.execute(select(config_versions.c.loaded_at).where(config_versions.c.version == "t")).scalar_one()
    assert got == local and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got.hour == 9
    with pytest.raises(Exception, match="naive datetime"), ws.transaction() as conn:
        conn.execute(insert(config_versions).values(version="n", loaded_at=datetime(2026, 3, 1), text=""))


def test_money_is_exact(ws: Workspace) -> None:
    amounts = [Decimal("0.10"), Decimal("0.20"), Decimal("12345678901234.99"), Decimal("19.999")]
    with ws.transaction() as conn:
        for a in amounts:
            conn.execute(
                insert(spend).values(
                    source_id="s",
                    period_start=datetime(2026, 1, 1, tzinfo=UTC).date(),
                    period_end=datetime(2026, 2, 1, tzinfo=UTC).date(),
                    amount=a,
                    currency="EUR",
                    origin="test",
                )
            )
    with ws.reader() as conn:
        got = conn.execute(select(spend.c.amount).order_by(spend.c.id)).scalars().all()
    assert got == [Decimal("0.10"), Decimal("0.20"), Decimal("12345678901234.99"), Decimal("20.00")]
    assert all(isinstance(a, Decimal) for a in got)


def test_config_is_synced_and_versioned(ws: Workspace) -> None:
    from leadflow.db.tables import config_versions, owners, sources, teams

    with ws.reader() as conn:
        assert conn.execute(select(config_versions.c.version)).scalars().all() == [ws.version]
        assert set(conn.execute(select(teams.c.id)).scalars()) == {"sales", "enterprise"}
        active = dict(conn.execute(select(owners.c.id, owners.c.active)).all())
        assert active["mira"] is False and active["ana"] is True
        assert "referral" in set(conn.execute(select(sources.c.id)).scalars())


def test_threads_that_end_give_their_write_connection_back(ws: Workspace) -> None:
    """Thread pools retire idle threads: a write connection kept by a dead thread must return to
    the pool, or after a few dozen such threads every write would wait for one and fail."""
    pool = ws.engine.pool
    capacity = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    rows: list[int] = []

    def write(i: int) -> None:
        with ws.transaction() as conn:
            conn.execute(
                insert(spend).values(
                    source_id="ads",
                    period_start=datetime(2026, 1, 1, tzinfo=UTC).date(),
                    period_end=datetime(2026, 2, 1, tzinfo=UTC).date(),
                    amount=i,
                    currency="EUR",
                    origin="thread",
                )
            )
        rows.append(i)

    for i in range(capacity + 10):  # one short-lived thread after another, as a thread pool does
        t = threading.Thread(target=write, args=(i,))
        t.start()
        t.join()
    assert len(rows) == capacity + 10
    assert pool.checkedout() <= 1  # only this thread's, if any
    with ws.reader() as conn:
        assert conn.execute(select(func.count()).where(spend.c.origin == "thread")).scalar_one() == capacity + 10


def test_prepared_in_lists_of_every_length_find_the_right_rows(ws: Workspace) -> None:
    """The fast path plans each IN-list length once and keeps it: lengths met again (and a value
    written into the statement itself) must still bind the values of this call, not the last."""
    from sqlalchemy import bindparam

    from leadflow.db.fastpath import Prepared
    from leadflow.db.tables import owners

    with ws.transaction() as conn:
        ids = sorted(r.id for r in conn.execute(select(owners.c.id).where(owners.c.active.is_(True))))
    assert len(ids) >= 3
    query = Prepared(
        select(owners.c.id)
        .where(owners.c.id.in_(bindparam("ids", expanding=True)), owners.c.active.is_(True), owners.c.id != "nobody")
        .order_by(owners.c.id)
    )
    with ws.transaction() as conn:
        # long lists are padded to a power of two with their last value: 3 × ids and 5 × ids
        # may share one plan, and must each still find exactly their own rows
        for wanted in ([ids[0]], [ids[1]], ids[:2], ids[1:3], [], [ids[2]], ids, ids * 3, ids[:2] * 5, [ids[1]] * 20):
            got = [r["id"] for r in query.execute(conn, {"ids": wanted})]
            assert got == sorted(set(wanted))


@pytest.mark.parametrize("db_url", ["postgres"] if "postgres" in BACKENDS else [], indirect=True)
def test_postgres_statistics_are_kept_for_tables_that_grew(ws: Workspace) -> None:
    """A table that grew from empty is planned as empty until analysed, and autovacuum may be off
    (it is off on the test server): writing through the workspace gets a changed table analysed."""
    query = (
        "SELECT n_mod_since_analyze, last_analyze FROM pg_stat_user_tables "
        "WHERE schemaname = current_schema() AND relname = 'spend'"
    )
    with ws.engine.connect() as conn:
        before = conn.exec_driver_sql(query).one().last_analyze
    with ws.transaction() as conn:
        conn.execute(
            insert(spend),
            [
                {
                    "source_id": "google_ads",
                    "period_start": date(2026, 1, 1) + timedelta(days=i),
                    "period_end": date(2026, 1, 2) + timedelta(days=i),
                    "amount": Decimal("1.00"),
                    "currency": "EUR",
                    "origin": "api",
                }
                for i in range(300)
            ],
        )
    deadline = time.monotonic() + 30
    while True:
        with ws.transaction():  # later writes poke the keeper (the insert's counts arrive late)
            pass
        with ws.engine.connect() as conn:
            row = conn.exec_driver_sql(query).one()
        if row.last_analyze is not None and row.last_analyze != before and row.n_mod_since_analyze == 0:
            break
        assert time.monotonic() < deadline, f"spend not analysed: {row}"
        time.sleep(0.5)
