"""Alembic environment: runs on the connection leadflow hands it, or on LEADFLOW_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from leadflow.db.tables import metadata

config = context.config


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    from leadflow.db.engine import make_engine

    url = config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as conn:
        run(conn)
        conn.commit()
