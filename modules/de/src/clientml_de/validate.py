"""Parse a source CSV and check every row against the contract, in DuckDB.

The file's bytes are checked first (:mod:`clientml_de.csv_structure`, :mod:`clientml_de.encoding`): a file
that is not UTF-8 fails, and malformed lines are quarantined there, each alone. DuckDB's native, parallel
CSV reader then parses the well-formed records only (the file itself, or a copy without the quarantined
lines), and the rules of :mod:`clientml_de.contract` become one generated SQL statement
(:mod:`clientml_de.rules_sql`), so the same checks apply whatever the warehouse is. :func:`validate`
returns a :class:`ValidatedLoad`, the handle that :meth:`~clientml_de.warehouse.Warehouse.publish_load`
takes: the relation of the typed rows that passed every rule (one per distinct source row), the relation
of the quarantined rows (whole and as read, with their line number and the reasons), both in the scratch
DuckDB connection, and counts that reconcile: rows read = loaded + rejected + exact duplicates, where rows
read are the file's records (:attr:`clientml_de.csv_structure.FileStructure.records`).

Line numbers are the physical lines where records start; the header is line 1.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from clientml_de.contract import TableSpec
from clientml_de.csv_structure import FileStructure, scan
from clientml_de.errors import SourceError
from clientml_de.header import check_columns, column_labels, read_header
from clientml_de.rules_sql import SQL_TYPES, literal, problems, quote, trimmed, typed, typed_name

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
_DUCKDB_MAX_LINE_SIZE = 2_097_152  # DuckDB's default max_line_size
_COPY_CHUNK = 1 << 20


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
        """Remove the scratch relations of this file's validation (the handle is unusable afterwards)."""
        table = self.spec.table
        for view in (self.valid, f"_lines_{table}"):
            self.connection.execute(f"DROP VIEW IF EXISTS {view}")
        for name in ("raw", "structural", "offsets", "checked", "repeated", "repeats", "rejected"):
            self.connection.execute(f"DROP TABLE IF EXISTS _{name}_{table}")


def _create_from_arrow(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, pa.Array]) -> None:
    """``CREATE TEMP TABLE name`` holding the given Arrow columns."""
    source = f"{name}_arrow"
    con.register(source, pa.table(columns))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {source}")
    finally:
        con.unregister(source)


def _write_kept(structure: FileStructure, target: Path) -> None:
    """Copy the file without its quarantined lines (the header included) to ``target``."""
    with structure.path.open("rb") as source, target.open("wb") as out:
        for start, end in structure.kept_ranges():
            source.seek(start)
            remaining = end - start
            while remaining:
                chunk = source.read(min(remaining, _COPY_CHUNK))
                out.write(chunk)
                remaining -= len(chunk)


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], table: str) -> FileStructure:
    """Check the file's structure and read its well-formed records, all text, into the scratch connection.

    ``header`` is the file's header (:func:`read_header`). Creates ``_raw_<table>``: ``_line`` (BIGINT, the
    line a record starts on) and ``_c1`` ... ``_cN`` (VARCHAR, the fields by position, as read); and
    ``_structural_<table>``: the malformed lines (``line_number, raw_record, reason``). :func:`validate`
    reads both. Returns the file's structure (its ``records`` are the rows read).

    Raises:
        SourceError: the file is not UTF-8 or its header is unusable (:func:`clientml_de.csv_structure.scan`),
            or the CSV reader disagrees with the structure found (names the file; never expected).
    """
    structure = scan(path)
    raw = f"_raw_{table}"
    columns = {f"_c{number}": "VARCHAR" for number in range(1, len(header) + 1)}
    options = "header=true, auto_detect=false, delim=',', quote='\"', escape='\"', strict_mode=false, columns=$columns"
    parameters: dict[str, object] = {"columns": columns}
    if structure.longest_record >= _DUCKDB_MAX_LINE_SIZE:
        options += ", max_line_size=$max_line_size"
        parameters["max_line_size"] = structure.longest_record + 1
    line, join = _line_numbers(con, structure, table)
    with tempfile.TemporaryDirectory(prefix="clientml-records-") as tmp:
        source = path
        if structure.bad:
            source = Path(tmp) / "records.csv"
            _write_kept(structure, source)
        # The file name and the column names travel as parameters, not SQL text.
        parameters["path"] = str(source)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT {line} AS _line, r.* EXCLUDE (_ordinal) "
                f"FROM (SELECT row_number() OVER () AS _ordinal, * FROM read_csv($path, {options})) r {join}",
                parameters,
            )
        except duckdb.Error as exc:
            log.warning("DuckDB could not read %s: %s", path, exc)
            raise SourceError(f"{path}: the CSV reader failed on records the structure check accepted") from None
    read = _count(con, raw)
    if read != structure.good_records:
        raise SourceError(
            f"{path}: the CSV reader found {read} records where the structure check found {structure.good_records}"
        )
    bad = structure.bad
    _create_from_arrow(
        con,
        f"_structural_{table}",
        {
            "line_number": pa.array([b.line for b in bad], pa.int64()),
            "raw_record": pa.array([b.text for b in bad], pa.string()),
            "reason": pa.array([b.reason for b in bad], pa.string()),
        },
    )
    return structure


def _line_numbers(con: duckdb.DuckDBPyConnection, structure: FileStructure, table: str) -> tuple[str, str]:
    """The SQL of ``_line`` over ``r._ordinal`` (the record's rank among the well-formed), and a join it needs."""
    offsets = structure.line_offsets
    if len(offsets) <= 1:
        return f"r._ordinal + {offsets[0][1] if offsets else 1}", ""
    _create_from_arrow(
        con,
        f"_offsets_{table}",
        {
            "_from": pa.array([o[0] for o in offsets], pa.int64()),
            "_offset": pa.array([o[1] for o in offsets], pa.int64()),
        },
    )
    return "r._ordinal + o._offset", f"ASOF LEFT JOIN _offsets_{table} o ON r._ordinal >= o._from"


def validate(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    header: list[str],
    source_file: str,
    reference_sql: str | None = None,
) -> ValidatedLoad:
    """Split the rows :func:`stage_csv` staged into valid and quarantined rows; return the handle on both.

    ``header`` is the file's header (:func:`read_header`), ``source_file`` the source as the user named
    it. ``reference_sql`` is a query giving the allowed values of the column that has ``references``
    (the client ids for sales).

    Raises:
        duckdb.Error: the staged relations are missing (``stage_csv`` not called) or DuckDB fails.

    The work is shaped for tens of millions of rows: every row is typed and checked in one pass, and
    only the rows whose key occurs more than once (few) go through the comparisons that exact
    duplicates and key conflicts need.
    """
    table = spec.table
    lines = f"_lines_{table}"
    position = {name: number for number, name in enumerate(header, start=1) if name}
    present = [c for c in spec.columns if c.name in position]
    absent = [c for c in spec.columns if c.name not in position]
    aliases = "".join(f", _c{position[c.name]} AS {quote(c.name)}" for c in present)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {lines} AS SELECT *{aliases} FROM _raw_{table}")
    key = trimmed(quote(spec.key))
    line_key = trimmed(f"l.{quote(spec.key)}")

    checks = [p for column in present for p in problems(column)]
    joins, reference_value = "", ""
    for column in present:
        if column.references and reference_sql is not None:
            joins = f"LEFT JOIN ({reference_sql}) AS ref ON ref.value = t.{quote(column.name)}"
            reference_value = "ref.value AS _reference,"
            checks.append(
                f"CASE WHEN {quote(column.name)} IS NOT NULL AND _reference IS NULL THEN "
                f"{literal(f'{column.name}: unknown, not in {column.references}: ')} || "
                f"'''' || left({quote(column.name)}, 60) || '''' END"
            )
    reason = f"nullif(concat_ws('; ', {', '.join(checks)}), '')" if checks else "NULL"
    typed_inner = ", ".join(f"{typed(c)} AS {typed_name(c)}" for c in present)
    typed_outer = ", ".join(
        [
            f"coalesce({typed_name(c)}, {c.default!r}) AS {quote(c.name)}"
            if c.default is not None
            else f"{typed_name(c)} AS {quote(c.name)}"
            for c in present
        ]
        + [f"CAST(NULL AS {SQL_TYPES[c.type]}) AS {quote(c.name)}" for c in absent]
    )
    # Keys seen more than once: only these rows can be exact duplicates or key conflicts.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _repeated_{table} AS "
        f"SELECT {key} AS _key FROM {lines} GROUP BY ALL HAVING count(*) > 1"
    )
    cleaned = ", ".join(f"{trimmed(f'l.{quote(c.name)}')} AS {quote(c.name)}" for c in present)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked_{table} AS
        SELECT _line, _key, _repeated, {reason} AS _reason, {typed_outer}
        FROM (
            SELECT t.*, rep._key IS NOT NULL AS _repeated, {reference_value} {typed_inner}
            FROM (SELECT l._line, {line_key} AS _key, {cleaned} FROM {lines} l) t
            LEFT JOIN _repeated_{table} rep ON rep._key IS NOT DISTINCT FROM t._key
            {joins}
        )
        """
    )
    # Among repeated keys: later copies of an identical row are duplicates; among the distinct rows
    # that pass every other rule, the first keeps the key and the others are quarantined.
    source_columns = ", ".join(f"l._c{number}" for number in range(1, len(header) + 1))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _repeats_{table} AS
        WITH copies AS (
            SELECT l._line, row_number() OVER (PARTITION BY {source_columns} ORDER BY l._line) AS _copy
            FROM {lines} l SEMI JOIN _repeated_{table} rep ON rep._key IS NOT DISTINCT FROM {line_key}
        ), ranked AS (
            SELECT c._line, c._copy, k._key, k._reason,
                   min(CASE WHEN c._copy = 1 AND k._reason IS NULL THEN c._line END)
                       OVER (PARTITION BY k._key) AS _first_valid
            FROM copies c JOIN _checked_{table} k USING (_line)
        )
        SELECT _line, _copy > 1 AS _duplicate,
               CASE WHEN _copy = 1 AND _reason IS NULL AND _line <> _first_valid
                    THEN {literal(f"{spec.key}: duplicate value, first loaded from line ")} || _first_valid
               END AS _conflict
        FROM ranked
        """
    )
    ordered = ", ".join(quote(c.name) for c in spec.columns)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _valid_{table} AS
        SELECT {ordered} FROM _checked_{table} k
        WHERE k._reason IS NULL
          AND (NOT k._repeated OR k._line IN (
                SELECT _line FROM _repeats_{table} WHERE NOT _duplicate AND _conflict IS NULL))
        """
    )
    # The quarantined row as a JSON object of its fields, keyed by the header's labels (parameters).
    labels = {f"label_{number}": label for number, label in enumerate(column_labels(header), start=1)}
    record = ", ".join(f"$label_{number}, l._c{number}" for number in range(1, len(header) + 1))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rejected_{table} AS
        WITH problems AS (
            SELECT k._line, coalesce(k._reason, r._conflict) AS reason
            FROM _checked_{table} k LEFT JOIN _repeats_{table} r USING (_line)
            WHERE (k._reason IS NOT NULL OR r._conflict IS NOT NULL) AND NOT coalesce(r._duplicate, FALSE)
        )
        SELECT $table AS source_table, $source_file AS source_file,
               p._line AS line_number, CAST(json_object({record}) AS VARCHAR) AS raw_record, p.reason
        FROM problems p JOIN {lines} l USING (_line)
        UNION ALL
        SELECT $table, $source_file, line_number, raw_record, reason FROM _structural_{table}
        ORDER BY line_number
        """,
        {"table": table, "source_file": source_file, **labels},
    )
    duplicates = con.execute(f"SELECT count(*) FILTER (WHERE _duplicate) FROM _repeats_{table}").fetchone()
    spec_names = {c.name for c in spec.columns}
    counts = ValidationCounts(
        rows_read=_count(con, f"_raw_{table}") + _count(con, f"_structural_{table}"),
        rows_loaded=_count(con, f"_valid_{table}"),
        rows_rejected=_count(con, f"_rejected_{table}"),
        duplicates=int(duplicates[0]) if duplicates else 0,
        ignored_columns=tuple(
            label for label, name in zip(column_labels(header), header, strict=True) if name not in spec_names
        ),
    )
    return ValidatedLoad(spec, source_file, con, valid=f"_valid_{table}", rejected=f"_rejected_{table}", counts=counts)


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
