"""Reading the ``feature_store`` table (CONTRACT section 2) from any warehouse URL, through Ibis.

Every reader returns a pandas DataFrame with one representation whatever the engine:

- key columns ``client_id`` (str) and ``as_of_date``; ``label`` as float (1.0, 0.0 or NaN);
- string features as ``object`` (str or ``None``), numeric and boolean features as ``float64`` (NaN when
  null), so DuckDB's DECIMAL sums, PostgreSQL's NUMERIC and Spark's types all look the same;
- ``df.attrs["feature_types"]``: the warehouse type of every feature (``category``, ``integer``,
  ``number`` or ``boolean``), which :func:`clientml_mle.schema.infer_feature_specs` uses;
- :func:`training_frame` with no labeled row: ``df.attrs["table_rows"]``, the rows the table has.

Rows come sorted by ``(client_id, as_of_date)`` so that training on the same table is reproducible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from clientml_de.contract import BOOKKEEPING_COLUMNS, FEATURE_STORE, KEY_COLUMNS, LABEL_COLUMN
from clientml_de.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

NON_FEATURE_COLUMNS = (*KEY_COLUMNS, LABEL_COLUMN, *BOOKKEEPING_COLUMNS)
FEATURE_TYPES_ATTR = "feature_types"
# On an empty training frame: how many rows the table has, labeled or not (for "none is labeled").
TABLE_ROWS_ATTR = "table_rows"


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Every column but the key, the label and the bookkeeping columns, in table order."""
    return [c for c in df.columns if c not in NON_FEATURE_COLUMNS]


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs and messages."""
    parsed = urlparse(url)
    return url.replace(f":{parsed.password}@", ":***@") if parsed.password else url


def _missing_duckdb_file(url: str) -> bool:
    """A DuckDB warehouse whose file does not exist yet (connecting would create an empty one)."""
    if not url.startswith("duckdb://"):
        return False
    path = url.removeprefix("duckdb://")
    return path not in ("", "/", ":memory:") and not Path(path).expanduser().exists()


def wait_for_table(
    warehouse_url: str, table: str = FEATURE_STORE, timeout_s: float = 600.0, poll_s: float = 5.0
) -> None:
    """Return once ``table`` exists in the warehouse; raise :class:`TimeoutError` after ``timeout_s``.

    An unreachable warehouse counts as "not there yet" (it may be starting), and is said so in the log.
    """
    deadline = time.monotonic() + timeout_s
    shown = redact_url(warehouse_url)
    announced = False
    while True:
        problem = ""
        warehouse: Warehouse | None = None
        if _missing_duckdb_file(warehouse_url):
            problem = " (the DuckDB file does not exist yet)"
        else:
            warehouse = connect(warehouse_url, read_only=True)  # a malformed URL raises WarehouseError at once
            try:
                if warehouse.has_table(table):
                    if announced:
                        log.info("table %r is now available in %s", table, shown)
                    return
            except Exception as exc:  # the warehouse may be starting up
                problem = f" (warehouse not reachable yet: {exc})"
            finally:
                warehouse.close()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"table {table!r} did not appear in warehouse {shown} within {timeout_s:g} s{problem}; "
                "run the data pipeline (clientml pipeline ...) to build it"
            )
        log.info(
            "waiting for table %r in warehouse %s%s; %.0f s left (checking every %g s)",
            table,
            shown,
            problem,
            remaining,
            poll_s,
        )
        announced = True
        time.sleep(min(poll_s, max(remaining, 0.0)))


@dataclass(frozen=True)
class TableSignal:
    """A table's row counts, label sum, newest ``created_at`` and ``feature_set_version`` range: one query.

    A rebuild that changes rows changes it: the process_data DAG stamps changed and new rows with the
    build's time (a later ``created_at``), removed rows change the counts, a changed label the sum. A rebuild
    that restamps identical rows changes it too, so a changed signal means "look at the content", not
    "different content". Values are only compared with each other (timestamps and versions as text).
    """

    rows: int
    labeled_rows: int
    label_sum: float | None
    max_created_at: str | None
    min_feature_set_version: str | None
    max_feature_set_version: str | None


def table_signal(warehouse_url: str, table: str = FEATURE_STORE) -> TableSignal | None:
    """The :class:`TableSignal` of ``table``, or ``None`` while it does not exist (nor the DuckDB file).

    Raises:
        clientml_de.warehouse.WarehouseError: a malformed URL, or a DuckDB file locked for longer than
            ``CLIENTML_WAREHOUSE_LOCK_TIMEOUT_S``; and what the engine raises when it cannot be reached.
    """
    if _missing_duckdb_file(warehouse_url):
        return None
    warehouse = connect(warehouse_url, read_only=True)
    try:
        if not warehouse.has_table(table):
            return None
        t = warehouse.table(table)
        version, created = BOOKKEEPING_COLUMNS
        label = t[LABEL_COLUMN].cast("float64")
        metrics: dict[str, ir.Scalar] = {"rows": t.count(), "labeled_rows": label.count(), "label_sum": label.sum()}
        if created in t.columns:  # the contract's bookkeeping columns; a hand-made table may lack them
            metrics["max_created_at"] = t[created].max().cast("string")
        if version in t.columns:
            metrics["min_feature_set_version"] = t[version].min().cast("string")
            metrics["max_feature_set_version"] = t[version].max().cast("string")
        row = t.aggregate(**metrics).to_pyarrow().to_pylist()[0]
    finally:
        warehouse.close()
    return TableSignal(
        rows=int(row["rows"]),
        labeled_rows=int(row["labeled_rows"]),
        label_sum=row["label_sum"],
        max_created_at=row.get("max_created_at"),
        min_feature_set_version=row.get("min_feature_set_version"),
        max_feature_set_version=row.get("max_feature_set_version"),
    )


def _feature_type(dtype: dt.DataType) -> str:
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_decimal():
        return "integer" if dtype.scale == 0 else "number"
    if dtype.is_numeric():
        return "number"
    return "category"


def _normalised(table: ir.Table) -> tuple[ir.Table, dict[str, str]]:
    """Cast every feature to a portable type; return the expression and the feature types."""
    types: dict[str, str] = {}
    columns: dict[str, ir.Value] = {}
    for name, dtype in table.schema().items():
        if name in NON_FEATURE_COLUMNS:
            if name == LABEL_COLUMN:
                columns[name] = table[name].cast("float64")
            elif name == "client_id":
                columns[name] = table[name].cast("string")
            else:
                columns[name] = table[name]
            continue
        kind = _feature_type(dtype)
        types[name] = kind
        if kind == "category":
            columns[name] = table[name].cast("string")
        elif kind == "boolean":  # 1.0/0.0, and null stays null (CASE WHEN NULL would give the ELSE)
            column = table[name]
            columns[name] = ibis.cases((column, 1.0), (~column, 0.0), else_=ibis.null("float64"))
        else:
            columns[name] = table[name].cast("float64")
    return table.select(**columns), types


def _to_pandas(expr: ir.Table, types: dict[str, str]) -> pd.DataFrame:
    df = expr.order_by(list(KEY_COLUMNS)).to_pandas()
    df = df.reset_index(drop=True)
    for name, kind in types.items():
        if kind == "category":
            df[name] = df[name].astype(object).where(df[name].notna(), None)
        else:
            df[name] = pd.to_numeric(df[name], errors="coerce").astype(np.float64)
    if LABEL_COLUMN in df.columns:
        df[LABEL_COLUMN] = pd.to_numeric(df[LABEL_COLUMN], errors="coerce").astype(np.float64)
    df.attrs[FEATURE_TYPES_ATTR] = dict(types)
    return df


def _read(warehouse_url: str, table: str, build: Any) -> pd.DataFrame:
    # Read-only and brief: other processes (the API, a notebook) may read the DuckDB file at the same time,
    # and a load that wants to write it waits only while a read is running.
    warehouse = connect(warehouse_url, read_only=True)
    try:
        expr, types = _normalised(build(warehouse.table(table)))
        return _to_pandas(expr, types)
    finally:
        warehouse.close()


def _latest_per_client(t: ir.Table) -> ir.Table:
    window = ibis.window(group_by=t.client_id, order_by=ibis.desc(t.as_of_date))
    ranked = t.mutate(_rank=ibis.row_number().over(window))
    return ranked.filter(ranked._rank == 0).drop("_rank")


def training_frame(warehouse_url: str, as_of: date | None = None, table: str = FEATURE_STORE) -> pd.DataFrame:
    """Labeled rows of ``table`` (all as-of dates; only ``as_of_date <= as_of`` when given).

    When none is labeled, ``attrs["table_rows"]`` counts the rows (as of ``as_of``) there are.
    """

    def dated(t: ir.Table) -> ir.Table:
        return t.filter(t.as_of_date <= ibis.literal(as_of)) if as_of is not None else t

    frame = _read(warehouse_url, table, lambda t: dated(t.filter(t[LABEL_COLUMN].notnull())))
    if frame.empty:
        warehouse = connect(warehouse_url, read_only=True)
        try:
            frame.attrs[TABLE_ROWS_ATTR] = int(dated(warehouse.table(table)).count().execute())
        finally:
            warehouse.close()
    return frame


def latest_rows(warehouse_url: str, client_ids: Sequence[str], table: str = FEATURE_STORE) -> pd.DataFrame:
    """The newest row (largest ``as_of_date``) of each of ``client_ids`` that is in the table.

    The ids travel as data, never as SQL text: an in-memory table of them (Arrow on DuckDB, a bound
    insert into a temporary table on PostgreSQL, a DataFrame on Spark) that the feature store is
    semi-joined with, so any string is looked up as itself. Ids not in the table are simply absent from
    the result. Raises what the warehouse raises (e.g. PostgreSQL refuses a NUL character in text).
    """
    ids = sorted({str(c) for c in client_ids})

    def build(t: ir.Table) -> ir.Table:
        wanted = ibis.memtable({"client_id": ids}, schema={"client_id": "string"})
        return _latest_per_client(t.semi_join(wanted, t.client_id == wanted.client_id))

    if not ids:
        df = _read(warehouse_url, table, lambda t: t.limit(0))
        return df
    return _read(warehouse_url, table, build)


def newest_rows(warehouse_url: str, table: str = FEATURE_STORE) -> pd.DataFrame:
    """Every client's newest row, labeled or not: the population as it is now (what drift is measured on)."""
    return _read(warehouse_url, table, _latest_per_client)


def unlabeled_rows(warehouse_url: str, table: str = FEATURE_STORE) -> pd.DataFrame:
    """The clients to score: each client's newest row, when that row has no label."""

    def build(t: ir.Table) -> ir.Table:
        latest = _latest_per_client(t)
        return latest.filter(latest[LABEL_COLUMN].isnull())

    return _read(warehouse_url, table, build)
