"""Storage keeps its promises on both stores: aware UTC times, exact money, migrations match models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select

from leadflow.db import migrate
from leadflow.db.tables import metadata, spend
from leadflow.workspace import Workspace


def test_schema_is_at_head_and_matches_the_models(ws: Workspace) -> None:
    assert migrate.current_revision(ws.engine) == migrate.head_revision()
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
