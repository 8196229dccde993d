"""The warehouse is a URL; this module turns it into an Ibis connection plus atomic, bulk writes.

- ``duckdb:///path/to/file.duckdb``: the embedded default (the path is absolute: ``duckdb:///`` and ``duckdb:////``
  both start at ``/``);
- ``postgresql://user:password@host:port/db``: the full system (loads use ``COPY``);
- ``spark:///path/to/dir``: Apache Spark with a Hive metastore kept in that directory (master from
  ``CLIENTML_SPARK_MASTER``, ``local[*]`` by default; a cluster URL for users who outgrow one machine, with
  ``CLIENTML_SPARK_CONF``; the session's properties are in :mod:`clientml_de.spark_session`).

``connect(url, read_only=True)`` opens a warehouse for reading only; with DuckDB, readers and writers in
different processes take turns on the file (:mod:`clientml_de.duckdb_file`).

Every write replaces a whole table at once: readers see the old table or the new one, never a partial one.
DuckDB and PostgreSQL do it in one transaction; Spark writes a new physical table and then repoints a
view, which the metastore does in one step.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlparse

import duckdb
import ibis

from clientml_de.duckdb_budget import Budget, apply_budget, remove_spill, scratch_database
from clientml_de.duckdb_file import open_duckdb
from clientml_de.errors import WarehouseError
from clientml_de.settings import get_settings
from clientml_de.spark_session import open_session
from clientml_de.validate import ValidatedLoad, typed_schema

__all__ = ["LOAD_RUNS", "REJECTED_ROWS", "LoadSummary", "Warehouse", "WarehouseError", "connect"]

REJECTED_ROWS = "rejected_rows"
LOAD_RUNS = "load_runs"
_COPY_CHUNK = 1 << 20
_REFERENCE_BATCH = 100_000  # rows of referenced values copied at a time into the scratch database

# Bookkeeping tables, in DuckDB types (mapped for the other engines).
_BOOKKEEPING: dict[str, list[tuple[str, str]]] = {
    REJECTED_ROWS: [
        ("source_table", "VARCHAR"),
        ("source_file", "VARCHAR"),
        ("line_number", "BIGINT"),
        ("raw_record", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("loaded_at", "TIMESTAMP"),
    ],
    LOAD_RUNS: [
        ("run_id", "VARCHAR"),
        ("source_table", "VARCHAR"),
        ("source_file", "VARCHAR"),
        ("rows_read", "BIGINT"),
        ("rows_loaded", "BIGINT"),
        ("rows_rejected", "BIGINT"),
        ("duplicates", "BIGINT"),
        ("ignored_columns", "VARCHAR"),
        ("loaded_at", "TIMESTAMP"),
    ],
}
_PG_TYPES = {"VARCHAR": "TEXT", "DOUBLE": "DOUBLE PRECISION"}
_SPARK_TYPES = {"VARCHAR": "STRING"}


@dataclass(frozen=True)
class LoadSummary:
    """What a load did with one file, as returned to the caller and written to ``load_runs``.

    rows_read = rows_loaded + rows_rejected + duplicates.
    """

    table: str
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    duplicates: int
    ignored_columns: tuple[str, ...]
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """The fields by name (``ignored_columns`` a tuple), JSON-serialisable."""
        return asdict(self)

    def load_runs_values(self) -> tuple[str, str, str, int, int, int, int, str]:
        """The ``load_runs`` row but ``loaded_at``, as query parameters (``ignored_columns`` comma-joined)."""
        return (
            self.run_id,
            self.table,
            self.source_file,
            self.rows_read,
            self.rows_loaded,
            self.rows_rejected,
            self.duplicates,
            ",".join(self.ignored_columns),
        )


def _ddl(columns: list[tuple[str, str]], types: dict[str, str]) -> str:
    return ", ".join(f'"{name}" {types.get(sql_type, sql_type)}' for name, sql_type in columns)


def _insert_load_run(placeholder: str) -> str:
    """``INSERT INTO load_runs``: the values as parameters marked ``placeholder``, loaded_at the engine's now()."""
    markers = ", ".join([placeholder] * (len(_BOOKKEEPING[LOAD_RUNS]) - 1))
    return f"INSERT INTO {LOAD_RUNS} VALUES ({markers}, CAST(now() AS TIMESTAMP))"


class Warehouse(ABC):
    """A warehouse: Ibis for reads and transformations, plus atomic bulk writes."""

    def __init__(self, url: str, read_only: bool = False, budget: Budget | None = None) -> None:
        self.url = url
        self.read_only = read_only
        self.budget = budget or Budget.from_settings()
        self._spills: list[Path] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    @abstractmethod
    def con(self) -> Any:
        """The Ibis backend."""

    def _check_writable(self) -> None:
        if self.read_only:
            raise WarehouseError(f"warehouse {self.redacted_url} was opened read-only: it cannot be written")

    @cached_property
    def _scratch(self) -> duckdb.DuckDBPyConnection:
        con, directory = scratch_database(self.budget)
        self._spills.append(directory)
        return con

    def scratch(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection where source files are parsed and validated: a temporary database file
        within the memory budget (:func:`~clientml_de.duckdb_budget.scratch_database`) by default."""
        return self._scratch

    @abstractmethod
    def publish_load(self, validated: ValidatedLoad, record: LoadSummary) -> None:
        """Atomically replace ``validated.spec.table`` and its rejected rows with ``validated``, and log it.

        ``record`` becomes a row of ``load_runs`` in the same atomic step; rows of ``rejected_rows``
        from earlier loads of other tables are kept.

        Raises:
            duckdb.Error, psycopg.Error, or a Spark error: the write failed; the previous tables are
                left as they were.
        """

    @abstractmethod
    def replace_table(self, name: str, expr: ibis.Table) -> None:
        """Atomically replace table ``name`` with the result of ``expr``."""

    def has_table(self, name: str) -> bool:
        return name in self.con.list_tables()

    def table(self, name: str) -> ibis.Table:
        if not self.has_table(name):
            raise WarehouseError(f"table {name!r} does not exist in warehouse {self.redacted_url}")
        return self.con.table(name)

    def reference_sql(self, scratch: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
        """A query, in ``scratch``, giving the distinct values of ``table.column`` as ``value``.

        The values are copied into a table of ``scratch`` batch by batch, so that they count against its
        memory budget (and spill) rather than being held in Python.
        """
        values = self.table(table).select(value=self.table(table)[column].cast("string")).distinct()
        scratch.execute("CREATE OR REPLACE TEMP TABLE _reference_values (value VARCHAR)")
        for batch in values.to_pyarrow_batches(chunk_size=_REFERENCE_BATCH):
            scratch.register("_reference_batch", batch)
            try:
                scratch.execute("INSERT INTO _reference_values SELECT value FROM _reference_batch")
            finally:
                scratch.unregister("_reference_batch")
        return "SELECT value FROM _reference_values"

    @property
    def redacted_url(self) -> str:
        parsed = urlparse(self.url)
        if parsed.password:
            return self.url.replace(f":{parsed.password}@", ":***@")
        return self.url

    def close(self) -> None:
        """Release the connections this object opened, and remove their spill directories."""
        if "_scratch" in self.__dict__:
            self._scratch.close()
            del self.__dict__["_scratch"]
        self._remove_spills()

    def _remove_spills(self) -> None:
        while self._spills:
            remove_spill(self._spills.pop())


class DuckDBWarehouse(Warehouse):
    """Embedded DuckDB file: validation runs inside the warehouse itself, no copy needed."""

    def __init__(
        self, url: str, read_only: bool = False, lock_timeout_s: float = 60.0, budget: Budget | None = None
    ) -> None:
        super().__init__(url, read_only, budget)
        if not url.startswith("duckdb://"):
            # urlparse accepts "duckdb:/file" and "duckdb:file"; taken as paths they would name a file
            # under a directory called "duckdb:".
            raise WarehouseError(f"warehouse URL {url!r} is malformed (expected duckdb:///absolute/path/file.duckdb)")
        path = url.removeprefix("duckdb://")
        if not path or path == "/":
            raise WarehouseError(f"warehouse URL {url!r} has no file path (expected duckdb:///path/file.duckdb)")
        self.in_memory = path == ":memory:"
        # duckdb:///abs/file and duckdb:////abs/file name the same file.
        self.path = Path(path) if self.in_memory else Path(re.sub("^/+", "/", path)).expanduser()
        self.lock_timeout_s = lock_timeout_s
        if not self.in_memory and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @cached_property
    def con(self) -> Any:
        """The Ibis connection, opened on first use (waiting for a lock another process holds) until :meth:`close`."""
        if self.in_memory:
            con = ibis.duckdb.connect(":memory:")
        else:
            con = open_duckdb(self.path, self.read_only, self.lock_timeout_s)
        con.raw_sql("SET TimeZone = 'UTC'")
        spill = self.budget.spill_path()
        self._spills.append(spill)
        apply_budget(con.con, self.budget, spill)
        return con

    def scratch(self) -> duckdb.DuckDBPyConnection:
        raw: duckdb.DuckDBPyConnection = self.con.con
        return raw

    def reference_sql(self, scratch: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
        if not self.has_table(table):
            raise WarehouseError(f"table {table!r} does not exist in warehouse {self.redacted_url}")
        return f'SELECT DISTINCT "{column}" AS value FROM "{table}"'

    def publish_load(self, validated: ValidatedLoad, record: LoadSummary) -> None:
        self._check_writable()
        table = validated.spec.table
        with self._transaction() as raw:
            raw.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM {validated.valid}')
            for name, columns in _BOOKKEEPING.items():
                raw.execute(f"CREATE TABLE IF NOT EXISTS {name} ({_ddl(columns, {})})")
            raw.execute(f"DELETE FROM {REJECTED_ROWS} WHERE source_table = ?", [table])
            raw.execute(f"INSERT INTO {REJECTED_ROWS} SELECT *, CAST(now() AS TIMESTAMP) FROM {validated.rejected}")
            raw.execute(_insert_load_run("?"), record.load_runs_values())

    def replace_table(self, name: str, expr: ibis.Table) -> None:
        self._check_writable()
        sql = self.con.compile(expr)
        with self._transaction() as raw:
            raw.execute(f'CREATE OR REPLACE TABLE "{name}" AS {sql}')

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        raw = self.scratch()
        raw.execute("BEGIN TRANSACTION")
        try:
            yield raw
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")

    def close(self) -> None:
        if "con" in self.__dict__:
            self.con.disconnect()
            del self.__dict__["con"]
        self._remove_spills()


class PostgresWarehouse(Warehouse):
    """PostgreSQL: files are validated in an in-process DuckDB, then streamed in with ``COPY``."""

    @cached_property
    def con(self) -> Any:
        parsed = urlparse(self.url)
        # No read-only session even when read_only: lookups join an in-memory table of ids, which Ibis creates
        # as a temporary table (refused in a read-only transaction); our write methods refuse writes instead.
        try:
            return ibis.postgres.connect(
                host=parsed.hostname or "localhost",
                port=parsed.port or 5432,
                user=parsed.username,
                password=parsed.password,
                database=(parsed.path or "/").lstrip("/") or None,
            )
        except Exception as exc:
            raise WarehouseError(f"cannot connect to warehouse {self.redacted_url}: {exc}") from exc

    def _psycopg(self) -> Any:
        import psycopg

        return psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"))

    def publish_load(self, validated: ValidatedLoad, record: LoadSummary) -> None:
        self._check_writable()
        table, scratch = validated.spec.table, validated.connection
        with tempfile.TemporaryDirectory(prefix="clientml-copy-") as tmp:
            valid_csv, rejected_csv = Path(tmp) / "valid.csv", Path(tmp) / "rejected.csv"
            scratch.table(validated.valid).write_csv(str(valid_csv), header=False)
            _with_loaded_at(validated).write_csv(str(rejected_csv), header=False)
            staging = f"{table}__loading"
            with self._psycopg() as conn, conn.transaction(), conn.cursor() as cur:
                cur.execute(f'DROP TABLE IF EXISTS "{staging}"')
                cur.execute(f'CREATE TABLE "{staging}" ({_ddl(typed_schema(validated.spec), _PG_TYPES)})')
                _copy_file(cur, f'COPY "{staging}" FROM STDIN (FORMAT csv)', valid_csv)
                cur.execute(f'DROP TABLE IF EXISTS "{table}"')
                cur.execute(f'ALTER TABLE "{staging}" RENAME TO "{table}"')
                for name, bookkeeping in _BOOKKEEPING.items():
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {name} ({_ddl(bookkeeping, _PG_TYPES)})")
                cur.execute(f"DELETE FROM {REJECTED_ROWS} WHERE source_table = %s", [table])
                _copy_file(cur, f"COPY {REJECTED_ROWS} FROM STDIN (FORMAT csv)", rejected_csv)
                cur.execute(_insert_load_run("%s"), record.load_runs_values())

    def replace_table(self, name: str, expr: ibis.Table) -> None:
        self._check_writable()
        sql = self.con.compile(expr)
        staging = f"{name}__building"
        with self._psycopg() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(f'DROP TABLE IF EXISTS "{staging}"')
            cur.execute(f'CREATE TABLE "{staging}" AS {sql}')
            cur.execute(f'DROP TABLE IF EXISTS "{name}"')
            cur.execute(f'ALTER TABLE "{staging}" RENAME TO "{name}"')

    def close(self) -> None:
        if "con" in self.__dict__:
            self.con.disconnect()
            del self.__dict__["con"]
        super().close()


def _with_loaded_at(validated: ValidatedLoad) -> duckdb.DuckDBPyRelation:
    """The quarantined rows plus ``loaded_at`` (now, UTC): the columns of ``rejected_rows`` in order."""
    return validated.connection.sql(f"SELECT *, CAST(now() AS TIMESTAMP) AS loaded_at FROM {validated.rejected}")


def _copy_file(cur: Any, statement: str, path: Path) -> None:
    with cur.copy(statement) as copy, path.open("rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            copy.write(chunk)


class SparkWarehouse(Warehouse):
    """Apache Spark with a persistent Hive metastore; each table is a view over its newest version."""

    def __init__(
        self,
        url: str,
        master: str = "local[*]",
        conf: Mapping[str, str] | None = None,
        read_only: bool = False,
        budget: Budget | None = None,
    ) -> None:
        super().__init__(url, read_only, budget)
        path = urlparse(url).path
        if not path or path == "/":
            raise WarehouseError(f"warehouse URL {url!r} has no directory (expected spark:///path/to/dir)")
        self.path = Path("/" + path.lstrip("/"))  # spark:////abs and spark:///abs name the same directory
        self.master = master
        self.conf = dict(conf or {})

    @cached_property
    def session(self) -> Any:
        return open_session(self.path, self.master, self.conf)

    @cached_property
    def con(self) -> Any:
        return ibis.pyspark.connect(self.session)

    def has_table(self, name: str) -> bool:
        return bool(self.session.catalog.tableExists(name))

    def publish_load(self, validated: ValidatedLoad, record: LoadSummary) -> None:
        from pyspark.sql import functions

        self._check_writable()
        table = validated.spec.table
        staging = self.path / "staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            validated.connection.table(validated.valid).write_parquet(str(staging / "valid.parquet"))
            _with_loaded_at(validated).write_parquet(str(staging / "rejected.parquet"))
            self._swap(table, self._read_parquet(staging / "valid.parquet"))
            rejected = self._read_parquet(staging / "rejected.parquet")
            if self.has_table(REJECTED_ROWS):
                kept = self.session.table(REJECTED_ROWS).where(functions.col("source_table") != table)
                rejected = kept.unionByName(rejected)
            self._swap(REJECTED_ROWS, rejected)
            # One row from Python values (no SQL text; pyspark ships them as pickled rows, which a Python worker on
            # the executors decodes); loaded_at is Spark's clock.
            schema = ", ".join(f"{name} {_SPARK_TYPES.get(kind, kind)}" for name, kind in _BOOKKEEPING[LOAD_RUNS][:-1])
            runs = self.session.createDataFrame([record.load_runs_values()], schema)
            runs = runs.withColumn("loaded_at", functions.current_timestamp())
            if self.has_table(LOAD_RUNS):
                runs = self.session.table(LOAD_RUNS).unionByName(runs)
            self._swap(LOAD_RUNS, runs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _read_parquet(self, path: Path) -> Any:
        from pyspark.sql import functions

        frame = self.session.read.parquet(path.as_uri())  # file: whatever the cluster's default filesystem
        # DuckDB writes zone-less timestamps; store them as Spark's (UTC session) TIMESTAMP.
        for field in frame.schema.fields:
            if field.dataType.typeName() == "timestamp_ntz":
                frame = frame.withColumn(field.name, functions.col(field.name).cast("timestamp"))
        return frame

    def replace_table(self, name: str, expr: ibis.Table) -> None:
        self._check_writable()
        self._swap(name, self.con._session.sql(self.con.compile(expr)))

    def _swap(self, name: str, frame: Any) -> None:
        version = f"{name}__v{time.time_ns()}"
        frame.write.format("parquet").saveAsTable(version)
        previous = [t.name for t in self.session.catalog.listTables() if t.name.startswith(f"{name}__v")]
        self.session.sql(f"CREATE OR REPLACE VIEW `{name}` AS SELECT * FROM `{version}`")
        for old in previous:
            if old != version:
                self.session.sql(f"DROP TABLE IF EXISTS `{old}`")


def connect(
    url: str,
    spark_master: str | None = None,
    *,
    read_only: bool = False,
    lock_timeout_s: float | None = None,
    budget: Budget | None = None,
) -> Warehouse:
    """Open the warehouse a URL names (lazily: nothing is opened before the first use).

    Args:
        url: ``duckdb:///file``, ``postgresql://...`` or ``spark:///dir``.
        spark_master: the Spark master, for ``spark://`` URLs (default: the ``CLIENTML_SPARK_MASTER`` setting,
            ``local[*]``); the session also gets the ``CLIENTML_SPARK_CONF`` properties.
        read_only: open for reading only. DuckDB opens the file read-only: other processes may read it at
            the same time, and a writer waits until it is closed, so close it after each read (``with
            connect(url, read_only=True) as warehouse: ...``). PostgreSQL and Spark handle concurrent readers
            themselves (the session stays able to make temporary tables, which id lookups need). On every
            engine the write methods then raise :class:`WarehouseError`.
        lock_timeout_s: DuckDB only: how long to wait, in seconds, for a file another process holds
            (default: the ``CLIENTML_WAREHOUSE_LOCK_TIMEOUT_S`` setting, 60 s).
        budget: the memory budget and spill directory of the DuckDB databases it opens (the warehouse
            file, or the scratch database where files are validated); default: the settings'.

    Raises:
        WarehouseError: the scheme is unknown or the URL malformed (naming the URL).
    """
    scheme = urlparse(url).scheme
    if scheme == "duckdb":
        timeout = get_settings().warehouse_lock_timeout_s if lock_timeout_s is None else lock_timeout_s
        return DuckDBWarehouse(url, read_only=read_only, lock_timeout_s=timeout, budget=budget)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return PostgresWarehouse(url, read_only=read_only, budget=budget)
    if scheme == "spark":
        settings = get_settings()
        return SparkWarehouse(
            url,
            master=spark_master or settings.spark_master,
            conf=settings.spark_conf,
            read_only=read_only,
            budget=budget,
        )
    raise WarehouseError(
        f"warehouse URL {url!r}: unknown scheme {scheme!r} (use duckdb:///file, postgresql://..., spark:///dir)"
    )
