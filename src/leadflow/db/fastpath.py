"""Core statements compiled once per dialect and run straight on the DBAPI cursor.

Speed to lead is the product, and on the capture path SQLAlchemy's per-execution bookkeeping
(parameter construction, result metadata) cost more than SQLite itself: about 0.15 ms a
statement against 0.02 ms. A :class:`Prepared` statement is still written in SQLAlchemy Core and
still uses each column type's own bind and result processors (aware UTC times, JSON, money), so
the SQL and the conversions are exactly those of the rest of the code base; it only skips the
per-call machinery. It runs on the connection's current transaction.

Use it for the few statements executed per lead; everything else goes through ``conn.execute``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any] | None
_GIVEN = object()  # the value comes from the caller's parameters


@dataclass
class _Compiled:
    sql: str
    names: tuple[str, ...]
    positional: bool
    params: Callable[[Mapping[str, Any]], Any]  # the caller's values -> DBAPI parameters
    results: tuple[tuple[str, Processor], ...]
    expanding: Any  # the SQLCompiler, when an IN-list parameter must be expanded per call
    lists: tuple[str, ...] = ()  # the IN-list parameters whose expansions are planned and kept
    plans: dict[Any, Any] = field(default_factory=dict)


_EXACT_UP_TO = 8  # IN-lists this short are planned at their own length
_PAD_UP_TO = 1 << 14  # ... and longer ones padded to a power of two, within SQLite's 32,766 variables


def _bucket(n: int) -> int:
    if n <= _EXACT_UP_TO:
        return n
    return 1 << (n - 1).bit_length()


def _padded(items: Sequence[Any], n: int) -> list[Any]:
    items = list(items)
    return items + [items[-1]] * (n - len(items))


@dataclass(frozen=True)
class _Token:
    """Stands in for a parameter's value while an expansion is planned: says where it comes from."""

    name: str | None
    index: int | None
    literal: Any = None


def _params_function(binds: list[tuple[str, Processor, Any]], positional: bool) -> Callable[[Mapping[str, Any]], Any]:
    """One function turning a row of values into DBAPI parameters: a single tuple or dict
    expression instead of a loop, since it runs for every row written on the hot path."""
    env: dict[str, Any] = {}
    parts = []
    for i, (name, proc, literal) in enumerate(binds):
        value = f"v[{name!r}]"
        if literal is not _GIVEN:
            env[f"L{i}"] = literal
            value = f"L{i}"
        if proc is not None:
            env[f"P{i}"] = proc
            value = f"P{i}({value})"
        parts.append(value if positional else f"{name!r}: {value}")
    body = f"({', '.join(parts)},)" if positional else "{" + ", ".join(parts) + "}"
    return eval(f"lambda v: {body}", env)  # type: ignore[no-any-return]


class Prepared:
    """A Core statement with a fixed set of parameter names, compiled once per dialect."""

    def __init__(self, statement: ClauseElement, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys, for_executemany=True)
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        binds = [
            (
                name,
                compiled.binds[name].type._cached_bind_processor(dialect),
                _GIVEN if compiled.binds[name].required else compiled.binds[name].effective_value,
            )
            for name in names
        ]
        results = tuple(
            (col.key, col.type._cached_result_processor(dialect, None))
            for col in getattr(self.statement, "selected_columns", ())
        )
        expanding = compiled if any(b.expanding for b in compiled.binds.values()) else None
        params = _params_function(binds, bool(compiled.positional))
        found = _Compiled(compiled.string, names, bool(compiled.positional), params, results, expanding)
        if expanding is not None and not compiled.literal_execute_params:
            lists = [b for b in compiled.binds.values() if b.expanding]
            if not any(getattr(b.type, "_is_tuple_type", False) for b in lists):
                found.lists = tuple(b.key for b in lists)
        self._compiled[dialect.name] = found
        return found

    def _expanded(self, c: _Compiled, values: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and DBAPI parameters with each IN-list expanded to its length.

        The expanded SQL depends only on the lengths of the lists, so it is worked out once per
        combination of lengths (SQLAlchemy's expansion costs ~0.1 ms a call) and kept, with where
        each expanded parameter's value comes from. Longer lists are padded to the next power of
        two by repeating their last value (``x IN (a, b, b)`` is ``x IN (a, b)``), so batches of
        every size share a few plans."""
        if not c.lists or any(len(values[name]) > _PAD_UP_TO for name in c.lists):
            # tuple IN-lists, literal-execute parameters, huge lists: expand every time
            state = c.expanding.construct_expanded_state(values)
            procs = state.processors
            names = list(state.positiontup or ()) if c.positional else list(state.parameters)
            params = [procs[n](state.parameters[n]) if n in procs else state.parameters[n] for n in names]
            return state.statement, params if c.positional else dict(zip(names, params, strict=True))
        lengths = tuple(_bucket(len(values[name])) for name in c.lists)
        if any(len(values[name]) != n for name, n in zip(c.lists, lengths, strict=True)):
            values = {**values, **{name: _padded(values[name], n) for name, n in zip(c.lists, lengths, strict=True)}}
        plan = c.plans.get(lengths)
        if plan is None:
            plan = c.plans[lengths] = self._plan_expansion(c, values, lengths)
        sql, sources, names = plan
        params = []
        for token, proc in sources:
            if token.name is None:
                value = token.literal
            else:
                value = values[token.name] if token.index is None else values[token.name][token.index]
            params.append(proc(value) if proc else value)
        return sql, params if c.positional else dict(zip(names, params, strict=True))

    @staticmethod
    def _plan_expansion(c: _Compiled, values: Mapping[str, Any], lengths: tuple[int, ...]) -> Any:
        tokens: dict[str, Any] = {name: _Token(name, None) for name in values}
        for name, n in zip(c.lists, lengths, strict=True):
            tokens[name] = [_Token(name, i) for i in range(n)]
        state = c.expanding.construct_expanded_state(tokens)
        names = list(state.positiontup or ()) if c.positional else list(state.parameters)
        sources = []
        for n in names:
            token = state.parameters[n]
            if not isinstance(token, _Token):  # a value given in the statement itself
                token = _Token(None, None, token)
            sources.append((token, state.processors.get(n)))
        return state.statement, sources, names

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run once; returns the rows (as dicts, types converted) if the statement returns any.

        IN-list parameters (``bindparam(..., expanding=True)``) are expanded for each call.
        """
        c = self._compile(conn.dialect)
        sql, params = self._expanded(c, values) if c.expanding is not None else (c.sql, c.params(values))
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, params)
            if cursor.description is None:
                return []
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if c.results:
            return [
                {key: (proc(v) if proc else v) for (key, proc), v in zip(c.results, row, strict=True)} for row in rows
            ]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        c = self._compile(conn.dialect)
        cursor = conn.connection.cursor()
        try:
            params = c.params
            cursor.executemany(c.sql, [params(row) for row in rows])
        finally:
            cursor.close()
