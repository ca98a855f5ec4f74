"""Many rows into one table, the hot path of group commit: the INSERT compiled once per table and
dialect, and each value put through its column type's bind processor (exactly what SQLAlchemy's
`conn.execute(insert(table), rows)` binds), then handed to the driver's executemany. What it saves is
SQLAlchemy's per-row parameter construction, which cost as much as SQLite's own insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect


class BulkInsert:
    def __init__(self, table: Table, dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(dialect.positional)
        self.names = list(compiled.positiontup if self.positional and compiled.positiontup
                          else compiled.params)
        columns = {column.key: column for column in table.columns}
        processors = [columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names]
        values = itemgetter(*self.names)  # a row's values in the statement's order
        self.values = values if len(self.names) > 1 else lambda row: (values(row),)
        self.processed = [(index, proc) for index, proc in enumerate(processors) if proc is not None]

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` (each with a value for every column) in one executemany."""
        if not rows:
            return
        params: list[Any] = [self._bound(row) for row in rows]
        if not self.positional:
            params = [dict(zip(self.names, values, strict=True)) for values in params]
        conn.exec_driver_sql(self.sql, params)

    def _bound(self, row: dict[str, Any]) -> tuple[Any, ...]:
        values = self.values(row)
        if not self.processed:
            return values
        bound = list(values)
        for index, proc in self.processed:
            bound[index] = proc(bound[index])
        return tuple(bound)


_COMPILED: dict[tuple[str, str, str, str], BulkInsert] = {}


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """`conn.execute(insert(table), rows)` for complete rows, compiled once per table and dialect."""
    dialect = conn.dialect
    key = (table.name, dialect.name, dialect.driver, str(dialect.paramstyle))
    bulk = _COMPILED.get(key)
    if bulk is None:
        bulk = _COMPILED.setdefault(key, BulkInsert(table, dialect))
    bulk.run(conn, rows)
