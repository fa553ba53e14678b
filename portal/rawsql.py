"""Rows in and out of the database without the ORM's query compiler, for the hot paths.

Compiling a queryset costs far more CPU than the statement costs to run: on the order path
(bench/order_placement) the compiler was most of the time of every request. The functions
here build each statement once per model (and backend), then only bind values:

- `columns(model, alias)` — the select list of every concrete column, in field order;
- `instances(model, rows)` — model instances from rows read with that select list (the
  backend's converters applied, so SQLite's decimals come back as `Decimal`);
- `insert(objs)` — one multi-row `INSERT … RETURNING id`, `pre_save` honoured (auto_now,
  auto_now_add), the new primary keys set on the objects; `insert_unless_conflict(obj, …)`
  the same for one row that may collide with a unique constraint;
- `update(obj, names)` — `UPDATE … SET <names> WHERE id = …` of one row;
- `upsert_issue(objs, conflict, update)` / `upsert_rows_issue(model, names, rows, …)` —
  INSERT, or overwrite `update` where the unique `conflict` fields exist already;
- `values(model, rows)` — rows read with `columns(model)` as converted values, no instances;
- `pipeline()` with `issue(sql, params)` / `insert_issue(objs)` — statements sent together in
  one round trip (PostgreSQL's pipeline mode), their results read after the block.

They run on PostgreSQL and SQLite alike, through `issue()`: on PostgreSQL a cursor with
server-side binding whose statements are prepared once per connection (PostgreSQL then skips
parsing and planning them: on the order path planning cost more than executing), elsewhere
Django's own cursor. Use them only where a profile shows the ORM's cost; everywhere else the
ORM is the rule.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model
from psycopg import pq
from psycopg._preparing import Prepare, PrepareManager

M = TypeVar("M", bound=Model)

#: Parameters per INSERT: below SQLite's oldest limit (999), far below PostgreSQL's.
_MAX_PARAMS = 999


def database():
    """The default database's wrapper itself: every attribute read through Django's
    `connection` proxy looks the wrapper up again (a context-local lookup), and the hot path
    reads dozens per order."""
    return connections[DEFAULT_DB_ALIAS]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


@contextlib.contextmanager
def pipeline() -> Iterator[None]:
    """Statements issued inside (`issue`, `insert_issue`, `cursor`) go to PostgreSQL together
    and run in order, each with its own snapshot like any statement; read their results after
    the block (reading one inside would wait for all issued so far). An error in any of them
    is raised when the block ends, and the transaction is then aborted. Elsewhere a no-op:
    statements run as they are issued."""
    db = database()
    if db.vendor != "postgresql":
        yield
        return
    db.ensure_connection()
    with db.wrap_database_errors:
        try:
            with db.connection.pipeline():
                yield
        except psycopg.Error as error:
            _close_if_plans_stale(db, error)
            raise


class PlansOutliveRollback(PrepareManager):
    """psycopg's cache of a connection's prepared statements, except that a rollback keeps it.

    psycopg forgets every prepared statement (and sends `DEALLOCATE ALL`) whenever a
    transaction or a savepoint rolls back, in case the transaction had changed an object a
    statement uses. PostgreSQL itself keeps prepared statements across a rollback, and
    re-plans one whose objects changed; so every request after a failed transaction (a 404,
    a 409, a refused order) made its worker prepare the order path's statements again: 1.3 ms
    of CPU and 3.5 ms of wall time per request in-process (bench/README.md). Schema changes
    still clear the cache as in psycopg (`DROP`, `ALTER`, `DISCARD ALL`, `DEALLOCATE ALL`),
    and a plan whose result type a migration changed still closes the connection
    (`_close_if_plans_stale`)."""

    _schema_change = re.compile(rb"^(?:DROP|ALTER|DISCARD ALL|DEALLOCATE ALL)\b").match

    def clear(self) -> bool:
        return False  # psycopg's rollback calls this: the server still has the statements

    def _should_discard(self, prep: Prepare, results: Sequence[Any], *_: Any) -> bool:
        if self._names or prep == Prepare.SHOULD:
            for result in results:
                status = result.command_status
                if result.status == pq.ExecStatus.COMMAND_OK and status and self._schema_change(status):
                    return PrepareManager.clear(self)
        return False


def keep_plans_across_rollbacks(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: give a new PostgreSQL connection `PlansOutliveRollback`
    (carrying over its settings). A psycopg without the cache this relies on is left alone."""
    raw: Any = getattr(connection, "connection", None)
    current = getattr(raw, "_prepared", None)
    if connection.vendor != "postgresql" or type(current) is not PrepareManager or current._names:
        return
    kept = PlansOutliveRollback()
    kept.prepare_threshold = current.prepare_threshold
    kept.prepared_max = current.prepared_max
    raw._prepared = kept


class Pending:
    """The result of an issued statement: rows to read once its pipeline ended."""

    def __init__(self, cursor=None, rows: list | None = None, rowcount: int = -1):
        self._cursor = cursor
        self._rows = rows
        self._rowcount = rowcount

    def fetchall(self) -> list:
        if self._cursor is None:
            return list(self._rows or [])
        with database().wrap_database_errors:
            return self._cursor.fetchall()

    def fetchone(self):
        rows = self.fetchall()
        return rows[0] if rows else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount if self._cursor is not None else self._rowcount


def issue(sql: str, params: Sequence[Any] = ()) -> Pending:
    """Run (or, inside `pipeline()`, queue) one prepared statement; its result comes as `Pending`.

    Errors come out as Django's database errors, like from any Django cursor."""
    db = database()
    if db.vendor != "postgresql":
        with db.cursor() as django_cursor:
            django_cursor.execute(sql, params)
            rows = django_cursor.fetchall() if django_cursor.description else []
            return Pending(rows=rows, rowcount=django_cursor.rowcount)
    if db.connection is None:
        db.ensure_connection()
    if db.needs_rollback:
        db.validate_no_broken_transaction()
    numbered = _numbered(sql)
    raw = psycopg.RawCursor(db.connection) if numbered is not None else psycopg.Cursor(db.connection)
    try:
        raw.execute(numbered or sql, params, prepare=True)
    except psycopg.Error as error:
        _close_if_plans_stale(db, error)
        with db.wrap_database_errors:
            raise
    return Pending(raw)


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str | None:
    """`sql` with its `%s` placeholders as PostgreSQL's own `$1`, `$2`, …, for a RawCursor,
    which sends a statement as it is; None if `sql` has any other `%`. A plain psycopg cursor
    converts `%s` again on every execution of a statement with more than 50 parameters (its
    cache of converted statements stops there), and the engine's multi-row INSERTs have more."""
    parts = sql.split("%s")
    if any("%" in part for part in parts):
        return None
    return "".join(part + (f"${index}" if index < len(parts) else "") for index, part in enumerate(parts, start=1))


def _close_if_plans_stale(db, error: psycopg.Error) -> None:
    """A migration that changed a column's type invalidates this connection's prepared
    statements ("cached plan must not change result type", 0A000), and psycopg would keep
    reusing them: the request fails, and the connection is closed when it ends (Django's
    `close_old_connections`), so the next one prepares afresh."""
    if getattr(error, "sqlstate", None) == "0A000" and "cached plan" in str(error):
        db.close_at = time.monotonic()


@functools.cache
def _column_fields(model: type[Model]) -> tuple[Any, ...]:
    return tuple(model._meta.concrete_fields)


@functools.cache
def columns(model: type[Model], alias: str = "") -> str:
    """`alias.col1, alias.col2, …` for every concrete field of `model`, in field order."""
    prefix = f"{quote(alias)}." if alias else ""
    return ", ".join(f"{prefix}{quote(str(field.column))}" for field in _column_fields(model))


def column_count(model: type[Model]) -> int:
    return len(_column_fields(model))


@functools.cache
def _converters(model: type[Model], vendor: str) -> tuple[tuple[int, list[Callable], Any], ...]:
    found = []
    for index, field in enumerate(_column_fields(model)):
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if converters:
            found.append((index, converters, col))
    return tuple(found)


def values(model: type[Model], rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """The rows selected with `columns(model)` as Python values, the way the ORM reads them
    (the backend's converters applied), without building instances."""
    db = database()
    converters = _converters(model, db.vendor)
    result = []
    for row in rows:
        converted = list(row)
        for index, functions, col in converters:
            for function in functions:
                converted[index] = function(converted[index], col, db)
        result.append(converted)
    return result


def instances(model: type[M], rows: Iterable[Sequence[Any]]) -> list[M]:
    """Instances of `model` from rows selected with `columns(model)` (state: loaded from the database)."""
    db = database()
    names = [field.attname for field in _column_fields(model)]
    return [model.from_db(db.alias, names, row) for row in values(model, rows)]


def _field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), f"{model.__name__}.{name} is not a column"
    return field


def _column(model: type[Model], name: str) -> str:
    return quote(str(_field(model, name).column))


def _pk_column(model: type[Model]) -> str:
    return quote(str(model._meta.pk.column)) if model._meta.pk else "id"


@functools.cache
def _insert_fields(model: type[Model]) -> tuple[Any, ...]:
    return tuple(field for field in _column_fields(model) if field is not model._meta.auto_field)


@functools.cache
def _insert_sql(model: type[Model], rows: int) -> str:
    fields = _insert_fields(model)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES {', '.join([row] * rows)} RETURNING {_pk_column(model)}"
    )


def _insert_values(obj: Model, db) -> list[Any]:
    return [field.get_db_prep_save(field.pre_save(obj, True), db) for field in _insert_fields(type(obj))]


def _mark_saved(obj: Model, pk: Any) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS


def _insert_chunks(objs: Sequence[M], db) -> Iterator[Sequence[M]]:
    """`objs` cut into the rows of one INSERT each: below the parameter limit on PostgreSQL;
    one row on SQLite, which does not promise RETURNING rows in VALUES order."""
    per_statement = max(1, _MAX_PARAMS // len(_insert_fields(type(objs[0])))) if db.vendor == "postgresql" else 1
    for start in range(0, len(objs), per_statement):
        yield objs[start : start + per_statement]


def insert(objs: Sequence[Model]) -> None:
    """INSERT `objs` (all of one model, none saved yet) and set their primary keys."""
    insert_issue(objs)()


def insert_issue(objs: Sequence[Model]) -> Callable[[], None]:
    """Issue the INSERT of `objs` (see `insert`); the function returned sets their primary
    keys, to call after the pipeline the statements went in."""
    if not objs:
        return lambda: None
    model = type(objs[0])
    db = database()
    issued: list[tuple[Sequence[Model], Pending]] = []
    for chunk in _insert_chunks(objs, db):
        params = [value for obj in chunk for value in _insert_values(obj, db)]
        issued.append((chunk, issue(_insert_sql(model, len(chunk)), params)))

    def keys_set() -> None:
        for chunk, pending in issued:
            for obj, (pk,) in zip(chunk, pending.fetchall(), strict=True):
                _mark_saved(obj, pk)

    return keys_set


def insert_unless_conflict(obj: Model, conflict: tuple[str, ...]) -> bool:
    """INSERT `obj` unless a row with the same `conflict` fields (a unique constraint) exists;
    True if inserted (its primary key set). No error, so no savepoint is needed around it."""
    row = issue(_insert_many_unless_conflict_sql(type(obj), conflict, 1), _insert_values(obj, database())).fetchone()
    if row is None:
        return False
    _mark_saved(obj, row[0])
    return True


@functools.cache
def _insert_many_unless_conflict_sql(model: type[Model], conflict: tuple[str, ...], rows: int) -> str:
    head, returning = _insert_sql(model, rows).split(" RETURNING ")
    columns = ", ".join(_column(model, name) for name in conflict)
    return f"{head} ON CONFLICT ({columns}) DO NOTHING RETURNING {returning}"


def insert_unless_conflict_many(objs: Sequence[Model], conflict: tuple[str, ...]) -> int:
    """INSERT `objs` except those colliding on `conflict` (a unique constraint); returns how
    many were inserted. Primary keys are not set (the rows returned need not follow `objs`)."""
    if not objs:
        return 0
    db = database()
    model = type(objs[0])
    inserted = 0
    for chunk in _insert_chunks(objs, db):
        params = [value for obj in chunk for value in _insert_values(obj, db)]
        inserted += len(issue(_insert_many_unless_conflict_sql(model, conflict, len(chunk)), params).fetchall())
    return inserted


@functools.cache
def _upsert_sql(
    model: type[Model], names: tuple[str, ...], conflict: tuple[str, ...], update: tuple[str, ...], rows: int
) -> str:
    row = "(" + ", ".join(["%s"] * len(names)) + ")"
    assignments = ", ".join(f"{_column(model, name)} = excluded.{_column(model, name)}" for name in update)
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(_column(model, name) for name in names)}) "  # noqa: S608
        f"VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT ({', '.join(_column(model, name) for name in conflict)}) DO UPDATE SET {assignments}"
    )


def upsert_rows_issue(
    model: type[Model],
    names: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
) -> None:
    """Issue the INSERT of `rows` (plain values of the fields `names`, in that order); where a
    row with the same `conflict` fields (a unique constraint) exists, overwrite its fields
    `update` instead. PostgreSQL takes Python values as they are; elsewhere each field adapts
    its own, as the ORM would."""
    db = database()
    if db.vendor != "postgresql":
        fields = [_field(model, name) for name in names]
        rows = [[field.get_db_prep_save(value, db) for field, value in zip(fields, row, strict=True)] for row in rows]
    per_statement = max(1, _MAX_PARAMS // len(names))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        issue(_upsert_sql(model, names, conflict, update, len(chunk)), [value for row in chunk for value in row])


def upsert_issue(objs: Sequence[Model], conflict: tuple[str, ...], update: tuple[str, ...]) -> None:
    """`upsert_rows_issue` for model instances (`pre_save` honoured, as by `insert`)."""
    if not objs:
        return
    model = type(objs[0])
    fields = _insert_fields(model)
    rows = [[field.pre_save(obj, True) for field in fields] for obj in objs]
    upsert_rows_issue(model, tuple(field.name for field in fields), rows, conflict, update)


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{_column(model, name)} = %s" for name in names)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {_pk_column(model)} = %s"  # noqa: S608


def update(obj: Model, names: tuple[str, ...]) -> int:
    """Write the fields `names` of `obj` (saved before) to its row; returns the rows changed (0 or 1)."""
    return update_issue(obj, names).rowcount


def update_issue(obj: Model, names: tuple[str, ...]) -> Pending:
    """Issue the UPDATE of `update` (its row count is read after the pipeline it went in)."""
    model = type(obj)
    fields = [_field(model, name) for name in names]
    db = database()
    params = [field.get_db_prep_save(field.pre_save(obj, False), db) for field in fields]
    return issue(_update_sql(model, names), [*params, obj.pk])
