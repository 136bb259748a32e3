"""A workspace: one ``leadflow.yaml``, one database, one clock.

Open it once per process; it holds the engine, the validated configuration and the rules compiled
from it (cached per configuration version, never re-read per lead). Domain functions take the
workspace and a connection; the caller owns the transaction (one unit of work)::

    ws = Workspace.open("acme")
    with ws.transaction() as conn:
        result = process(ws, conn, {"email": "ada@example.com", "company": "Analytical Engines"})
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from leadflow.capture.rules import CaptureRules
from leadflow.clock import Clock, SystemClock
from leadflow.config.loader import CONFIG_FILE, LoadedConfig, load_config_file, load_config_text
from leadflow.config.settings import Settings, get_settings
from leadflow.config.workspace import StageRule, WorkspaceConfig
from leadflow.db import migrate
from leadflow.db.engine import make_engine, read_options, sqlite_url, statistics_keeper
from leadflow.db.tables import config_versions
from leadflow.errors import LeadflowError
from leadflow.qualify.criteria import CriteriaModel, ReviewRules
from leadflow.qualify.stages import StageModel
from leadflow.routing import directory as routing_directory
from leadflow.routing.rules import RoutingRules
from leadflow.routing.sla import SlaPolicies
from leadflow.scoring.rules import RuleModel
from leadflow.sources import sync as sources_sync

DATABASE_FILE = "leadflow.db"


def starter_config_text() -> str:
    return resources.files("leadflow.config").joinpath("starter.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Ruleset:
    """Everything compiled from one configuration version."""

    version: str
    config: WorkspaceConfig
    capture: CaptureRules
    scoring: RuleModel
    criteria: CriteriaModel
    review: ReviewRules
    stages: StageModel
    routing: RoutingRules
    sla: SlaPolicies


_RULESETS: dict[str, Ruleset] = {}


def compile_ruleset(loaded: LoadedConfig) -> Ruleset:
    cached = _RULESETS.get(loaded.version)
    if cached is not None:
        return cached
    config = loaded.config
    stage_rules = list(config.qualification.stage_rules)
    if not any(rule.to == "mql" for rule in stage_rules):
        stage_rules.append(
            StageRule.model_validate(
                {
                    "to": "mql",
                    "when": {"field": "score", "gte": config.scoring.mql_threshold},
                    "description": f"score at least the MQL threshold ({config.scoring.mql_threshold})",
                }
            )
        )
    ruleset = Ruleset(
        version=loaded.version,
        config=config,
        capture=CaptureRules(config.capture),
        scoring=RuleModel(config.scoring),
        criteria=CriteriaModel(config.qualification),
        review=ReviewRules(config.qualification),
        stages=StageModel(config.stages, stage_rules),
        routing=RoutingRules(config.routing),
        sla=SlaPolicies(config.sla, config.workspace.timezone),
    )
    _RULESETS[loaded.version] = ruleset
    return ruleset


def resolve_path(path: str | os.PathLike[str] | None, settings: Settings | None = None) -> Path:
    """``--workspace`` if given, else ``LEADFLOW_WORKSPACE``, else the current directory."""
    if path is not None:
        return Path(path).expanduser().resolve()
    settings = settings or get_settings()
    if settings.workspace is not None:
        return settings.workspace.expanduser().resolve()
    return Path.cwd()


_LOCKS: dict[str, threading.Lock] = {}


def _sqlite_write_lock(engine: Engine) -> Any:
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _LOCKS.setdefault(str(engine.url), threading.Lock())


class _Writer:
    """A thread's write connection; handed back to the pool when the thread ends (thread pools
    retire idle threads, and a connection kept by a dead thread would never come back)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        if not self.conn.closed:
            with contextlib.suppress(Exception):
                self.conn.close()

    def __del__(self) -> None:
        self.close()


class _WriterConnections:
    """One long-lived connection per thread for write transactions, all closed with the workspace."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._all: weakref.WeakSet[_Writer] = weakref.WeakSet()
        self._lock = threading.Lock()

    def get(self) -> Connection:
        writer: _Writer | None = getattr(self._local, "writer", None)
        if writer is None or writer.conn.closed or writer.conn.invalidated:
            writer = _Writer(self._engine.connect())
            self._local.writer = writer
            with self._lock:
                self._all.add(writer)
        return writer.conn

    def close_all(self) -> None:
        with self._lock:
            for writer in list(self._all):
                writer.close()
            self._all.clear()


class Workspace:
    def __init__(self, path: Path | None, loaded: LoadedConfig, engine: Engine, clock: Clock) -> None:
        self.path = path
        self.loaded = loaded
        self.engine = engine
        self.clock = clock
        self._writers = _WriterConnections(engine)
        # SQLite has one writer at a time. Threads of this process queue on a lock (woken at
        # once) instead of on SQLite's busy handler (which sleeps and polls, up to 100 ms a try).
        self._write_lock = _sqlite_write_lock(engine)
        self._statistics = statistics_keeper(engine)  # PostgreSQL: analyse what writes made stale
        # True in simulations and backtests: no email to real people about made-up leads.
        self.quiet = False
        # Per-database caches that domain modules keep (e.g. the routing directory); shared by
        # the copies ``with_clock`` makes.
        self.caches: dict[str, Any] = {}

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        database_url: str | None = None,
        clock: Clock | None = None,
        config_text: str | None = None,
    ) -> Workspace:
        """Open a workspace directory: validate its file, migrate its database, sync its config.

        ``config_text`` replaces the file (tests and backtests); ``database_url`` replaces
        ``LEADFLOW_DATABASE_URL`` and the default ``DIR/leadflow.db``.
        """
        settings = get_settings()
        root = resolve_path(path, settings) if (path is not None or config_text is None) else None
        if config_text is not None:
            loaded = load_config_text(config_text, path=root / CONFIG_FILE if root else None)
        else:
            assert root is not None
            if not root.is_dir():
                raise LeadflowError(f"workspace {root} does not exist; create it with `leadflow init {root}`")
            loaded = load_config_file(root / CONFIG_FILE)
        url = database_url or (settings.database_url.get_secret_value() if settings.database_url else None)
        if url is None:
            if root is None:
                raise LeadflowError("no database: give a workspace directory or LEADFLOW_DATABASE_URL")
            url = sqlite_url(root / DATABASE_FILE)
        engine = make_engine(url, pool_size=settings.pool_size)
        ws = cls(root, loaded, engine, clock or SystemClock())
        migrate.upgrade(engine)
        ws.sync_config()
        return ws

    @classmethod
    def init(
        cls, path: str | os.PathLike[str], *, database_url: str | None = None, config_text: str | None = None
    ) -> Workspace:
        """Create a workspace directory with a commented starter file and an empty database."""
        root = Path(path).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        config_file = root / CONFIG_FILE
        if not config_file.exists():
            text = config_text if config_text is not None else starter_config_text()
            load_config_text(text, path=config_file)  # refuse to write an invalid file
            config_file.write_text(text, encoding="utf-8")
        return cls.open(root, database_url=database_url)

    @classmethod
    def temporary(cls, *, clock: Clock | None = None) -> Workspace:
        """A fresh workspace in a new temporary directory (the demo uses this)."""
        root = Path(tempfile.mkdtemp(prefix="leadflow-"))
        (root / CONFIG_FILE).write_text(starter_config_text(), encoding="utf-8")
        return cls.open(root, database_url=None, clock=clock)

    def sync_config(self) -> None:
        """Record this configuration version and bring owners, teams and sources in line with it."""
        with self.transaction() as conn:
            known = conn.execute(
                select(config_versions.c.version).where(config_versions.c.version == self.version)
            ).first()
            if known is None:
                conn.execute(
                    insert(config_versions).values(
                        version=self.version, loaded_at=self.clock.now(), text=self.loaded.text
                    )
                )
            routing_directory.sync_from_config(conn, self.config)
            routing_directory.forget_directory(self)
            sources_sync.sync_from_config(conn, self.config)

    def with_clock(self, clock: Clock) -> Workspace:
        """The same workspace (engine, configuration) seen through another clock."""
        other = copy.copy(self)
        other.clock = clock
        return other

    def close(self) -> None:
        self._writers.close_all()
        self.engine.dispose()

    # -- what it knows -----------------------------------------------------------------------

    @property
    def config(self) -> WorkspaceConfig:
        return self.loaded.config

    @property
    def version(self) -> str:
        return self.loaded.version

    @cached_property
    def rules(self) -> Ruleset:
        return compile_ruleset(self.loaded)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- units of work -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: commits when the block ends, rolls back on error.

        Each thread keeps one connection for its write transactions (checking one out of the
        pool and back for every lead cost ~7% of the capture path).
        """
        conn = self._writers.get()
        if conn.in_transaction():  # a unit of work inside another: give it its own connection
            with self.engine.begin() as other:
                yield other
            return
        with self._write_lock, conn.begin():
            yield conn
        if self._statistics is not None:
            self._statistics.poke()

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot; no write lock on SQLite)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**read_options())
            with conn.begin():
                yield conn
