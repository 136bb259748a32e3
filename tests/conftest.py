"""Shared fixtures.

``db_url`` runs a test on SQLite and, when ``LEADFLOW_TEST_POSTGRES_URL`` is set (``make test``
sets it when a server answers), on PostgreSQL too. SQLite tests get a copy of a database migrated
once per session; PostgreSQL tests share one schema per session, emptied before each test.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from leadflow.clock import FrozenClock
from leadflow.db import migrate
from leadflow.db.engine import make_engine, normalise_url
from leadflow.db.tables import metadata
from leadflow.workspace import Workspace, starter_config_text

PG_URL = os.environ.get("LEADFLOW_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", *(["postgres"] if PG_URL else [])]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "leadflow.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # folds the WAL into the file, so a plain copy is a complete database
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    assert PG_URL is not None
    schema = f"lf_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{normalise_url(PG_URL)}{sep}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "leadflow.db"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_schema_url")
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


def open_workspace(root: Path, db_url: str, clock: FrozenClock, config_text: str | None = None) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "leadflow.yaml").write_text(config_text or starter_config_text(), encoding="utf-8")
    return Workspace.open(root, database_url=db_url, clock=clock)


@pytest.fixture
def ws(tmp_path: Path, db_url: str, clock: FrozenClock) -> Iterator[Workspace]:
    workspace = open_workspace(tmp_path / "ws", db_url, clock)
    yield workspace
    workspace.close()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "sqlite" / "leadflow.db"
    target.parent.mkdir(parents=True)
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def sqlite_ws(tmp_path: Path, sqlite_template: Path, clock: FrozenClock) -> Iterator[Workspace]:
    """A workspace on SQLite only, for tests of behaviour that does not depend on the store."""
    target = tmp_path / "ws" / "leadflow.db"
    target.parent.mkdir(parents=True)
    shutil.copy(sqlite_template, target)
    workspace = open_workspace(tmp_path / "ws", f"sqlite:///{target}", clock)
    yield workspace
    workspace.close()


def count(ws: Workspace, table: str) -> int:
    with ws.reader() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


class LiveServer:
    """The real app on a real port (uvicorn in a thread): tests speak HTTP to it."""

    def __init__(self, ws: Workspace) -> None:
        import uvicorn

        from leadflow.api.app import create_app

        self.ws = ws
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(ws), host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.key = self.create_key("tests", ["admin"])
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
        self.anonymous = httpx.Client(base_url=self.url, timeout=30)
        return self

    def create_key(self, name: str, scopes: list[str]) -> str:
        from leadflow.access.keys import create_key

        with self.ws.transaction() as conn:
            key, _ = create_key(conn, name, scopes, self.ws.clock.now())
        return key

    def __exit__(self, *exc: Any) -> None:
        self.client.close()
        self.anonymous.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(ws: Workspace) -> Iterator[LiveServer]:
    with LiveServer(ws) as server:
        yield server


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def serve_smtp(handler: Any, monkeypatch: pytest.MonkeyPatch) -> Controller:
    """A real SMTP server on a free local port with ``handler``, and leadflow pointed at it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("LEADFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LEADFLOW_SMTP_PORT", str(port))
    monkeypatch.setenv("LEADFLOW_SMTP_TLS", "none")
    monkeypatch.setenv("LEADFLOW_SMTP_FROM", "leads@northwind.example")
    return controller


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = serve_smtp(inbox, monkeypatch)
    yield inbox
    controller.stop()
