"""A PostgreSQL store's writer lock, and a store kept as a schema of a shared database (hub/city/).

Every writing transaction takes a transaction-scoped advisory lock (hub/store/store.py `_writing`):
one key for a store that has its database to itself, one key per schema for halls kept as schemas of
one database, so that they do not wait for each other's writes.
"""

from __future__ import annotations

import zlib

from sqlalchemy import Engine

PG_WRITER_LOCK = 0x48414C4C


def pg_writer_key(search_path: str) -> int:
    """The writer lock's key: PG_WRITER_LOCK for the default search path (one store per database, as
    always), else one key per schema, so that halls kept as schemas of one database do not wait for
    each other's writes (hub/city/)."""
    if search_path.replace(" ", "") in ('"$user",public', "public"):
        return PG_WRITER_LOCK
    return (PG_WRITER_LOCK << 32) | zlib.crc32(search_path.encode("utf-8"))


def schema_writer_key(engine: Engine, create: bool) -> int:
    """A store kept as a schema (`?options=-csearch_path%3Dh02` in the URL): the schema is made when
    the store may be created; returns the writer lock's key for it."""
    with engine.connect() as conn:
        search_path = str(conn.exec_driver_sql("SHOW search_path").scalar())
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        first = search_path.split(",")[0].strip()
        if schema is None and create and first and not first.startswith('"$'):
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{first.strip(chr(34))}"')
            conn.commit()
    return pg_writer_key(search_path)
