"""Tables made of partitions: sets of rows sharing one value of a key column, each replaced atomically.

A monitoring run's rows of ``drift_report`` (key ``run_id``) or a model version's predictions are such a
partition: a rerun replaces its own rows and leaves the others. :func:`replace_partition` does it in one
step readers never see half done, on every engine:

- DuckDB and PostgreSQL: one transaction creates the table when it is missing (columns and types from the
  rows' Arrow schema), deletes the partition's rows and inserts the new ones (PostgreSQL takes a lock on
  the table first, so two writers of the same partition do not interleave); the values travel as Arrow
  data or ``COPY`` rows, never as SQL text;
- Spark: the table is rewritten (the other partitions plus the new rows) and its view repointed, as
  :class:`~clientml_de.warehouse.SparkWarehouse` replaces any table.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa

from clientml_de.errors import WarehouseError
from clientml_de.warehouse import DuckDBWarehouse, PostgresWarehouse, SparkWarehouse, Warehouse

__all__ = ["replace_partition"]


def _sql_type(dtype: pa.DataType, engine: str) -> str:
    """The column type of an Arrow type on ``engine`` (``duckdb``, ``postgres`` or ``spark``)."""
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return {"duckdb": "VARCHAR", "postgres": "TEXT", "spark": "STRING"}[engine]
    if pa.types.is_floating(dtype):
        return "DOUBLE PRECISION" if engine == "postgres" else "DOUBLE"
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_timestamp(dtype) and dtype.tz is None:
        return "TIMESTAMP"
    if pa.types.is_date(dtype):
        return "DATE"
    raise TypeError(f"replace_partition does not store Arrow type {dtype} (use text, numbers, booleans, dates)")


def _ddl(schema: pa.Schema, engine: str) -> str:
    return ", ".join(f'"{field.name}" {_sql_type(field.type, engine)}' for field in schema)


def _check_columns(warehouse: Warehouse, table: str, schema: pa.Schema) -> None:
    """A table that exists must have exactly the rows' columns (in any order)."""
    if not warehouse.has_table(table):
        return
    existing = list(warehouse.con.table(table).columns)
    if sorted(existing) != sorted(schema.names):
        raise WarehouseError(
            f"table {table!r} in warehouse {warehouse.redacted_url} has columns {existing}, not the "
            f"{schema.names} being written: drop or rename it (it was made by another version of this code)"
        )


def replace_partition(warehouse: Warehouse, table: str, rows: pa.Table, *, key: str, value: str) -> None:
    """Atomically replace the rows of ``table`` whose ``key`` column equals ``value`` with ``rows``.

    The table is created (from ``rows.schema``) when missing; ``rows`` may be empty (the partition is then
    removed). Column types: text, floating and integer numbers, booleans, dates and zone-less timestamps.

    Raises:
        ValueError: a row of ``rows`` has another ``key`` value, or ``key`` is not one of its columns.
        TypeError: a column has a type this function does not store.
        clientml_de.errors.WarehouseError: the warehouse was opened read-only, or the table exists with
            other columns; and what the engine raises when the write fails (the table is then unchanged).
    """
    if key not in rows.schema.names:
        raise ValueError(f"key column {key!r} is not among the rows' columns {rows.schema.names}")
    others = {str(v) for v in rows.column(key).to_pylist()} - {value}
    if others:
        raise ValueError(f"rows of partition {key} = {value!r} hold other {key} values: {sorted(others)}")
    for field in rows.schema:
        _sql_type(field.type, "duckdb")  # refuse an unsupported type before anything is written
    warehouse._check_writable()
    _check_columns(warehouse, table, rows.schema)
    if isinstance(warehouse, DuckDBWarehouse):
        _replace_duckdb(warehouse, table, rows, key, value)
    elif isinstance(warehouse, PostgresWarehouse):
        _replace_postgres(warehouse, table, rows, key, value)
    elif isinstance(warehouse, SparkWarehouse):
        _replace_spark(warehouse, table, rows, key, value)
    else:  # pragma: no cover - connect() makes one of the three
        raise WarehouseError(f"cannot write partitions to a {type(warehouse).__name__}")


def _replace_duckdb(warehouse: DuckDBWarehouse, table: str, rows: pa.Table, key: str, value: str) -> None:
    view = f"_partition_{uuid.uuid4().hex}"
    columns = ", ".join(f'"{name}"' for name in rows.schema.names)
    with warehouse._transaction() as raw:
        raw.register(view, rows)
        try:
            raw.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({_ddl(rows.schema, "duckdb")})')
            raw.execute(f'DELETE FROM "{table}" WHERE "{key}" = ?', [value])
            raw.execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{view}"')
        finally:
            raw.unregister(view)


def _replace_postgres(warehouse: PostgresWarehouse, table: str, rows: pa.Table, key: str, value: str) -> None:
    columns = ", ".join(f'"{name}"' for name in rows.schema.names)
    with warehouse._psycopg() as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({_ddl(rows.schema, "postgres")})')
        # Writers of one partition take turns: two deletes before either insert would keep both runs' rows.
        cur.execute(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE')
        cur.execute(f'DELETE FROM "{table}" WHERE "{key}" = %s', [value])
        with cur.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for row in rows.to_pylist():
                copy.write_row([row[name] for name in rows.schema.names])


def _replace_spark(warehouse: SparkWarehouse, table: str, rows: pa.Table, key: str, value: str) -> None:
    from pyspark.sql import functions

    schema = ", ".join(f"`{field.name}` {_sql_type(field.type, 'spark')}" for field in rows.schema)
    records: list[Any] = [tuple(row[name] for name in rows.schema.names) for row in rows.to_pylist()]
    frame = warehouse.session.createDataFrame(records, schema)
    if warehouse.has_table(table):
        kept = warehouse.session.table(table).where(functions.col(key) != functions.lit(value))
        frame = kept.unionByName(frame)
    warehouse._swap(table, frame)
