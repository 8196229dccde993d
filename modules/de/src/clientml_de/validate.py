"""Parse a source CSV and check every row against the contract, in DuckDB, in one pass over the rows.

The file's bytes are checked first (:mod:`clientml_de.staging`, :mod:`clientml_de.csv_structure`,
:mod:`clientml_de.encoding`): a file that is not UTF-8 fails, and malformed lines are quarantined there,
each alone. :func:`validate` then reads the well-formed records once, with DuckDB's parallel CSV reader,
and writes each row, typed, into the temporary staging table ``_stage_<table>`` together with what is wrong
with it: the rules of :mod:`clientml_de.contract` are one generated SQL expression per column
(:mod:`clientml_de.rules_sql`), so the same checks apply whatever the warehouse is. Only the rows whose key
occurs more than once (a few, found by one aggregate over the key column) are looked at again, read back
by number from the file (:func:`clientml_de.staging.extract_records`) to tell exact duplicates from key
conflicts.

:func:`validate` returns a :class:`ValidatedLoad`, the handle that
:meth:`~clientml_de.warehouse.Warehouse.publish_load` takes: the relation of the typed rows that passed
every rule (one per distinct source row), the relation of the quarantined rows (whole and as read, with
their line number and the reasons), and counts that reconcile: rows read = loaded + rejected + exact
duplicates, where rows read are the file's records. The warehouse then writes the valid rows once, in its
own bulk way.

Why a temporary table and a copy, rather than a staging table in the warehouse renamed in place: the
staged rows must keep the file's order (their row ids number them), and DuckDB 1.5 writes an ordered
insert into a database file twice (the rows are compressed again at the checkpoint), or, numbering them
with ``row_number() OVER ()``, on one thread; an uncompressed temporary table in order, then one
unordered, parallel copy of the valid rows, costs less than either (``modules/de/README.md``, "Load time").

Line numbers are the physical lines where records start; the header is line 1.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clientml_de.contract import TableSpec
from clientml_de.duckdb_budget import insertion_order
from clientml_de.errors import SourceError
from clientml_de.header import check_columns, column_labels, read_header
from clientml_de.rules_sql import SQL_TYPES, problems, quote, trimmed, typed, typed_name
from clientml_de.staging import check_read, drop_staged, extract_records, parse_extracted, read_records, stage_csv

__all__ = [
    "SQL_TYPES",
    "SourceError",
    "ValidatedLoad",
    "ValidationCounts",
    "check_columns",
    "read_header",
    "stage_csv",
    "typed_schema",
    "validate",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationCounts:
    """How the rows of one file were accounted for."""

    rows_read: int
    rows_loaded: int
    rows_rejected: int
    duplicates: int
    ignored_columns: tuple[str, ...]


@dataclass(frozen=True)
class ValidatedLoad:
    """One source file, parsed and checked: the handle :meth:`Warehouse.publish_load` takes.

    ``valid`` and ``rejected`` name relations of ``connection`` (SQL identifiers, usable as they are in a
    ``FROM`` clause); they live until :meth:`drop`.

    Attributes:
        spec: the contract of the target table (its name and typed columns).
        source_file: the source as the user named it (path or URI), as recorded with rejected rows.
        connection: the scratch DuckDB connection holding the two relations.
        valid: the typed rows that passed every rule, one per distinct source row; the columns of
            ``spec.columns`` in order, typed as :func:`typed_schema` says.
        rejected: the quarantined rows, ordered by line: ``source_table, source_file, line_number (BIGINT),
            raw_record, reason`` (VARCHAR otherwise).
        counts: how the file's rows were accounted for.
    """

    spec: TableSpec
    source_file: str
    connection: duckdb.DuckDBPyConnection
    valid: str
    rejected: str
    counts: ValidationCounts

    def drop(self) -> None:
        """Remove the scratch relations and files of this file's validation (the handle is unusable afterwards)."""
        discard(self.connection, self.spec.table)


def discard(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Remove what staging and validating ``table``'s file left in ``con`` and its spill directory, the
    staging table included (whatever step was reached: a failed load leaves nothing behind)."""
    con.execute(f"DROP VIEW IF EXISTS _valid_{table}")
    for name in ("stage", "repeated", "extracted", "repeats", "rejected"):
        con.execute(f"DROP TABLE IF EXISTS _{name}_{table}")
    drop_staged(con, table)


def staging_table(table: str) -> str:
    """The name of the staging table of ``table``, a temporary table (a plain identifier: table names are)."""
    return f"_stage_{table}"


def _record_json(header: list[str], prefix: str = "") -> tuple[str, dict[str, str]]:
    """SQL of a row's raw record, a JSON object of its fields ``_c1`` ... keyed by the header's labels
    (which travel as parameters), and those parameters."""
    labels = {f"label_{number}": label for number, label in enumerate(column_labels(header), start=1)}
    pairs = ", ".join(f"$label_{number}, {prefix}_c{number}" for number in range(1, len(header) + 1))
    return f"CAST(json_object({pairs}) AS VARCHAR)", labels


def _typed_pass(spec: TableSpec, header: list[str], read: str) -> str:
    """The SELECT that types and checks every record ``read`` gives: the contract's columns in order, then
    ``_reason`` (the broken column rules; NULL for a valid row) and ``_raw`` (the raw record of a row that has
    a reason). Scalar expressions only: the rows keep the reader's order."""
    position = {name: number for number, name in enumerate(header, start=1) if name}
    present = [c for c in spec.columns if c.name in position]
    fields = ", ".join(f"_c{number}" for number in range(1, len(header) + 1))
    cleaned = "".join(f", {trimmed(f'_c{position[c.name]}')} AS {quote(c.name)}" for c in present)
    checks = [p for column in present for p in problems(column)]
    reason = f"nullif(concat_ws('; ', {', '.join(checks)}), '')" if checks else "NULL"
    typed_inner = "".join(f", {typed(c)} AS {typed_name(c)}" for c in present)
    outer = []
    for c in spec.columns:
        if c.name not in position:
            outer.append(f"CAST(NULL AS {SQL_TYPES[c.type]}) AS {quote(c.name)}")
        elif c.default is not None:
            outer.append(f"coalesce({typed_name(c)}, {c.default!r}) AS {quote(c.name)}")
        else:
            outer.append(f"{typed_name(c)} AS {quote(c.name)}")
    record, _ = _record_json(header)
    return f"""
        SELECT {", ".join(outer)}, _reason, CASE WHEN _reason IS NOT NULL THEN {record} END AS _raw
        FROM (SELECT *, {reason} AS _reason FROM (SELECT *{typed_inner} FROM (SELECT {fields}{cleaned} FROM {read})))
    """


def validate(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    header: list[str],
    source_file: str,
    reference_sql: str | None = None,
) -> ValidatedLoad:
    """Split the records :func:`stage_csv` staged into valid and quarantined rows; return the handle on both.

    ``header`` is the file's header (:func:`read_header`), ``source_file`` the source as the user named
    it. ``reference_sql`` is a query giving the allowed values of the column that has ``references``
    (the client ids for sales).

    The records are read once: each is typed and checked against its column rules and written to
    ``_stage_<table>`` in file order, so a row's ``rowid`` + 1 is its ordinal (a join would reorder the
    rows, so the reference check comes after, over the stored column). Then one aggregate over the key
    column finds the keys seen more than once; only those rows and the ones with an unknown reference (few)
    are read again, by number, for the comparisons that exact duplicates and key conflicts need.

    Raises:
        SourceError: the CSV reader fails or disagrees with the structure check (names the file; never
            expected).
        duckdb.Error: ``stage_csv`` was not called, or DuckDB fails (e.g. its spill directory is full).
    """
    table, stage = spec.table, staging_table(spec.table)
    read, parameters = read_records(con, table)
    _, labels = _record_json(header)
    try:
        with insertion_order(con):  # rowid order = file order: the ordinals
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {stage} AS {_typed_pass(spec, header, read)}", parameters | labels
            )
    except duckdb.Error as exc:
        log.warning("DuckDB could not read %s: %s", parameters["path"], exc)
        raise SourceError(f"{source_file}: the CSV reader failed on records the structure check accepted") from None
    check_read(con, table, Path(source_file), _count(con, stage))
    _second_look(con, spec, header, reference_sql)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rejected_{table} AS
        WITH problems AS (
            SELECT s.rowid + 1 AS _ordinal, s._raw AS raw_record, s._reason AS reason FROM {stage} s
            WHERE s._reason IS NOT NULL AND s.rowid + 1 NOT IN (SELECT _ordinal FROM _repeats_{table})
            UNION ALL
            SELECT _ordinal, _raw, coalesce(_reason, _conflict) FROM _repeats_{table}
            WHERE NOT _duplicate AND (_reason IS NOT NULL OR _conflict IS NOT NULL)
        )
        SELECT $table AS source_table, $source_file AS source_file,
               p._ordinal + o._offset AS line_number, p.raw_record, p.reason
        FROM problems p ASOF LEFT JOIN _offsets_{table} o ON p._ordinal >= o._from
        UNION ALL
        SELECT $table, $source_file, line_number, raw_record, reason FROM _structural_{table}
        ORDER BY line_number
        """,
        {"table": table, "source_file": source_file},
    )
    dropped = f"SELECT _ordinal FROM _repeats_{table} WHERE _duplicate OR _conflict IS NOT NULL OR _reason IS NOT NULL"
    valid = f"_valid_{table}"
    ordered = ", ".join(quote(c.name) for c in spec.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {valid} AS SELECT {ordered} FROM {stage} s "
        f"WHERE s._reason IS NULL AND s.rowid + 1 NOT IN ({dropped})"
    )
    duplicates = con.execute(f"SELECT count(*) FILTER (WHERE _duplicate) FROM _repeats_{table}").fetchone()
    spec_names = {c.name for c in spec.columns}
    counts = ValidationCounts(
        rows_read=_count(con, stage) + _count(con, f"_structural_{table}"),
        rows_loaded=_count(con, valid),
        rows_rejected=_count(con, f"_rejected_{table}"),
        duplicates=int(duplicates[0]) if duplicates else 0,
        ignored_columns=tuple(
            label for label, name in zip(column_labels(header), header, strict=True) if name not in spec_names
        ),
    )
    return ValidatedLoad(spec, source_file, con, valid, f"_rejected_{table}", counts)


def _second_look(con: duckdb.DuckDBPyConnection, spec: TableSpec, header: list[str], reference_sql: str | None) -> None:
    """``_repeats_<table>``: the rows whose key repeats or whose reference is unknown, each with its full
    reason, its raw record, whether it is an exact duplicate of an earlier row, and the key conflict it is.

    Exact means every field of the file as read, ignored columns included, so those rows' fields are read
    back from the file by number. Later copies of an identical row are duplicates; among the distinct rows
    that pass every other rule, the first keeps the key and the others are quarantined.
    """
    table, stage, key = spec.table, staging_table(spec.table), quote(spec.key)
    # The rows whose reference is unknown (the sales whose client is not loaded), with that reason.
    unknown, parameters = "SELECT NULL::BIGINT AS _ordinal, NULL::VARCHAR AS _unknown LIMIT 0", {}
    for column in spec.columns:
        if column.references and reference_sql is not None and column.name in header:
            name = quote(column.name)
            unknown = (
                f"SELECT s.rowid + 1 AS _ordinal, $unknown || '''' || left(s.{name}, 60) || '''' AS _unknown "
                f"FROM {stage} s ANTI JOIN ({reference_sql}) r ON r.value = s.{name} WHERE s.{name} IS NOT NULL"
            )
            parameters = {"unknown": f"{column.name}: unknown, not in {column.references}: "}
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _repeated_{table} AS
        WITH unknown AS ({unknown}),
             repeated AS (SELECT {key} AS _key FROM {stage} GROUP BY ALL HAVING count(*) > 1)
        SELECT s.rowid + 1 AS _ordinal, s.{key} AS _key,
               nullif(concat_ws('; ', s._reason, u._unknown), '') AS _reason
        FROM {stage} s
        LEFT JOIN unknown u ON u._ordinal = s.rowid + 1
        LEFT JOIN repeated r ON r._key IS NOT DISTINCT FROM s.{key}
        WHERE u._ordinal IS NOT NULL OR r._key IS NOT NULL
        """,
        parameters,
    )
    extracted = extract_records(con, table, f"SELECT _ordinal FROM _repeated_{table} ORDER BY _ordinal")
    parse_extracted(con, table, extracted, f"_extracted_{table}")
    fields = ", ".join(f"x._c{number}" for number in range(1, len(header) + 1))
    record, labels = _record_json(header, "x.")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _repeats_{table} AS
        WITH copies AS (
            SELECT r._ordinal, r._key, r._reason, {record} AS _raw,
                   row_number() OVER (PARTITION BY {fields} ORDER BY r._ordinal) AS _copy
            FROM (SELECT row_number() OVER (ORDER BY _ordinal) AS _k, * FROM _repeated_{table}) r
            JOIN _extracted_{table} x USING (_k)
        ), ranked AS (
            SELECT *, min(CASE WHEN _copy = 1 AND _reason IS NULL THEN _ordinal END)
                          OVER (PARTITION BY _key) AS _first_valid
            FROM copies
        )
        SELECT r._ordinal, r._copy > 1 AS _duplicate, r._reason, r._raw,
               CASE WHEN r._copy = 1 AND r._reason IS NULL AND r._ordinal <> r._first_valid
                    THEN $conflict || (r._first_valid + o._offset) END AS _conflict
        FROM ranked r ASOF LEFT JOIN _offsets_{table} o ON r._first_valid >= o._from
        """,
        {**labels, "conflict": f"{spec.key}: duplicate value, first loaded from line "},
    )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def typed_schema(spec: TableSpec) -> list[tuple[str, str]]:
    """(column, DuckDB type) of the typed warehouse table for a spec."""
    return [(c.name, SQL_TYPES[c.type]) for c in spec.columns]


_SAFE_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")


def assert_safe_table_name(name: str) -> str:
    if not _SAFE_TABLE.match(name):
        raise ValueError(f"table name {name!r} is not a plain lower-case identifier")
    return name
