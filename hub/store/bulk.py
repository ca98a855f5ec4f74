"""Many rows into one table, the hot path of group commit: the INSERT compiled once per table and
dialect, and each value put through its column type's bind processor (exactly what SQLAlchemy's
`conn.execute(insert(table), rows)` binds), then handed to the driver's executemany. What it saves is
SQLAlchemy's per-row parameter construction, which cost as much as SQLite's own insert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None


class BulkInsert:
    def __init__(self, table: Table, dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(dialect.positional)
        self.names = list(compiled.positiontup if self.positional and compiled.positiontup
                          else compiled.params)
        columns = {column.key: column for column in table.columns}
        self.processors: list[tuple[str, Processor]] = [
            (name, columns[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in self.names]

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` (each with a value for every column) in one executemany."""
        if not rows:
            return
        if self.positional:
            params: list[Any] = [tuple(row[name] if proc is None else proc(row[name])
                                       for name, proc in self.processors) for row in rows]
        else:
            params = [{name: row[name] if proc is None else proc(row[name]) for name, proc in self.processors}
                      for row in rows]
        conn.exec_driver_sql(self.sql, params)


_COMPILED: dict[tuple[str, str, str, str], BulkInsert] = {}


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """`conn.execute(insert(table), rows)` for complete rows, compiled once per table and dialect."""
    dialect = conn.dialect
    key = (table.name, dialect.name, dialect.driver, str(dialect.paramstyle))
    bulk = _COMPILED.get(key)
    if bulk is None:
        bulk = _COMPILED.setdefault(key, BulkInsert(table, dialect))
    bulk.run(conn, rows)
