"""Parse a source CSV and check every row against the contract, in DuckDB.

DuckDB's native, parallel CSV reader parses the file in-process and the rules of
:mod:`clientml_de.contract` become one generated SQL statement, so the same checks apply whatever the
warehouse is. :func:`validate` returns a :class:`ValidatedLoad`, the handle that
:meth:`~clientml_de.warehouse.Warehouse.publish_load` takes: the relation of the typed rows that passed
every rule (one per distinct source row), the relation of the quarantined rows (whole and as read, with
their line number and the reasons), both in the scratch DuckDB connection, and counts that reconcile:
rows read = loaded + rejected + exact duplicates.

Line numbers count records from the header (line 1). They equal physical line numbers unless a quoted
field earlier in the file spans several lines or blank lines are skipped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clientml_de.contract import Column, ColumnType, TableSpec

# DuckDB physical types of the typed warehouse columns.
SQL_TYPES: dict[ColumnType, str] = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.CATEGORY: "VARCHAR",
    ColumnType.NUMBER: "DOUBLE",
    ColumnType.INTEGER: "BIGINT",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP: "TIMESTAMP",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.LABEL: "INTEGER",
}
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_ISO_TIMESTAMP = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
_SHOWN_VALUE_CHARS = 60


class SourceError(Exception):
    """A source file cannot be loaded at all (missing, unreadable, not CSV, required column absent)."""


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
        for name in (
            "raw", "checked", "repeated", "repeats", "rejected", "rejects", "rejects_{}_scan", "rejects_{}_lines"
        ):  # fmt: skip
            relation = "_" + (name.format(table) if "{}" in name else f"{name}_{table}")
            self.connection.execute(f"DROP TABLE IF EXISTS {relation}")


def read_header(path: Path) -> list[str]:
    """Return the header of a CSV file, or raise :class:`SourceError` naming the file and the problem."""
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable CSV file ({exc})") from None
    if not header:
        raise SourceError(f"{path}: empty file, expected a CSV header row")
    names = [name.strip() for name in header]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SourceError(f"{path}: column(s) appear more than once in the header: {', '.join(duplicated)}")
    return names


def check_columns(path: Path, header: list[str], spec: TableSpec) -> tuple[str, ...]:
    """Fail when a required column is absent; return the undeclared columns that will be ignored."""
    missing = [c for c in spec.required_columns if c not in header]
    if missing:
        raise SourceError(f"{path}: required column(s) missing: {', '.join(missing)}")
    declared = {c.name for c in spec.columns}
    return tuple(name for name in header if name not in declared)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _value(column: Column, alias: str = "") -> str:
    """The trimmed raw text of a column (of table ``alias`` if given), NULL when empty."""
    qualified = f"{alias}.{_quote(column.name)}" if alias else _quote(column.name)
    return f"nullif(trim({qualified}), '')"


def _clean(column: Column) -> str:
    """The column in the checking query, where every value is already trimmed and NULL when empty."""
    return _quote(column.name)


def _shown(column: Column) -> str:
    return f"'''' || left({_clean(column)}, {_SHOWN_VALUE_CHARS}) || ''''"


def _typed(column: Column) -> str:
    """SQL turning the text of a column into its typed value (NULL when empty or invalid)."""
    v = _clean(column)
    match column.type:
        case ColumnType.STRING | ColumnType.CATEGORY:
            return v
        case ColumnType.NUMBER:
            return f"try_cast({v} AS DOUBLE)"
        case ColumnType.INTEGER:
            return f"CASE WHEN regexp_full_match({v}, '[+-]?[0-9]+') THEN try_cast({v} AS BIGINT) END"
        case ColumnType.DATE:
            date = f"CAST(try_strptime({v}, '%Y-%m-%d') AS DATE)"
            return f"CASE WHEN regexp_full_match({v}, '\\d{{4}}-\\d{{2}}-\\d{{2}}') THEN {date} END"
        case ColumnType.TIMESTAMP:
            # Offsets are honoured and everything is stored in UTC (the session time zone is UTC).
            # The two common forms skip the time-zone-aware cast, which costs five times more.
            date_form, local_form = r"\d{4}-\d{2}-\d{2}", r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"
            stamp = f"CAST(try_cast({v} AS TIMESTAMPTZ) AS TIMESTAMP)"
            return (
                f"CASE WHEN length({v}) = 10 AND regexp_full_match({v}, '{date_form}') "
                f"THEN CAST(try_strptime({v}, '%Y-%m-%d') AS TIMESTAMP) "
                f"WHEN length({v}) = 19 AND regexp_full_match({v}, '{local_form}') "
                f"THEN try_strptime({v}, '%Y-%m-%dT%H:%M:%S') "
                f"WHEN regexp_full_match({v}, '{_ISO_TIMESTAMP}') THEN {stamp} END"
            )
        case ColumnType.BOOLEAN:
            true_values = ", ".join(map(_literal, _TRUE))
            false_values = ", ".join(map(_literal, _FALSE))
            return (
                f"CASE WHEN lower({v}) IN ({true_values}) THEN TRUE WHEN lower({v}) IN ({false_values}) THEN FALSE END"
            )
        case ColumnType.LABEL:
            return f"CASE WHEN {v} IN ('0', '1') THEN CAST({v} AS INTEGER) END"
    raise AssertionError(column.type)


_TYPE_PROBLEM: dict[ColumnType, str] = {
    ColumnType.NUMBER: "not a number",
    ColumnType.INTEGER: "not a whole number",
    ColumnType.DATE: "not a calendar date in YYYY-MM-DD form",
    ColumnType.TIMESTAMP: "not an ISO 8601 date or timestamp",
    ColumnType.BOOLEAN: "not a boolean (true/false, yes/no, 1/0)",
    ColumnType.LABEL: "must be 0, 1 or empty",
}


def _typed_name(column: Column) -> str:
    return _quote(f"__typed_{column.name}")


def _problems(column: Column) -> list[str]:
    """SQL expressions, one per rule of the column, each NULL or a reason naming the column.

    They refer to the typed value by name (``_typed_name``), computed once in an inner query.
    """
    name, v, typed = column.name, _clean(column), _typed_name(column)
    checks: list[tuple[str, str]] = []
    if column.required:
        checks.append((f"{v} IS NULL", _literal(f"{name}: required value is empty")))
    problem = _TYPE_PROBLEM.get(column.type)
    if problem and column.type is not ColumnType.NUMBER:
        checks.append(
            (
                f"{v} IS NOT NULL AND {typed} IS NULL",
                f"{_literal(f'{name}: {problem}: ')} || {_shown(column)}",
            )
        )
    if column.type is ColumnType.NUMBER:
        checks.append(
            (
                f"{v} IS NOT NULL AND ({typed} IS NULL OR NOT isfinite({typed}))",
                f"{_literal(f'{name}: not a finite number: ')} || {_shown(column)}",
            )
        )
    if column.min_value is not None:
        checks.append(
            (
                f"{typed} < {column.min_value!r}",
                f"{_literal(f'{name}: must be >= {column.min_value:g}, got ')} || {_shown(column)}",
            )
        )
    if column.max_value is not None:
        checks.append(
            (
                f"{typed} > {column.max_value!r}",
                f"{_literal(f'{name}: must be <= {column.max_value:g}, got ')} || {_shown(column)}",
            )
        )
    return [f"CASE WHEN {condition} THEN {reason} END" for condition, reason in checks]


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], table: str) -> None:
    """Read the file with DuckDB's CSV reader into ``_raw_<table>`` (all text) plus its structural rejects.

    ``header`` is the file's header (:func:`read_header`); every column is read as VARCHAR.
    ``_lines_<table>`` is a view of the raw rows with their line numbers; :func:`validate` reads both.

    Raises:
        SourceError: DuckDB cannot read the file as CSV (names the file and DuckDB's first error line).
    """
    raw, rejects = f"_raw_{table}", f"_rejects_{table}"
    con.execute(f"DROP TABLE IF EXISTS {rejects}")
    con.execute(f"DROP TABLE IF EXISTS {raw}")
    # The file name and the header's column names come from the user: parameters, not SQL text.
    reader = (
        "read_csv($path, columns=$columns, header=true, auto_detect=false, delim=',', quote='\"', escape='\"', "
        f"store_rejects=true, rejects_table='{rejects}', rejects_scan='{rejects}_scan')"
    )
    columns = dict.fromkeys(header, "VARCHAR")
    try:
        con.execute(
            f"CREATE TEMP TABLE {raw} AS SELECT row_number() OVER () AS _ordinal, * FROM {reader}",
            {"path": str(path), "columns": columns},
        )
    except duckdb.Error as exc:
        raise SourceError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    # DuckDB numbers the physical lines of rows it could not split into the header's fields; the
    # accepted rows are numbered by position. Interleave the two to give every accepted row its line.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {rejects}_lines AS
        SELECT DISTINCT line AS _line, trim(csv_line, chr(13) || chr(10)) AS csv_line,
               'row has ' || CASE error_type WHEN 'TOO MANY COLUMNS' THEN 'more' ELSE 'fewer' END
               || ' fields than the header (' || {len(header)} || ')' AS reason
        FROM {rejects}
        """
    )
    has_rejects = con.execute(f"SELECT count(*) FROM {rejects}_lines").fetchone() != (0,)
    if not has_rejects:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _lines_{table} AS SELECT *, _ordinal + 1 AS _line FROM {raw}")
        return
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _lines_{table} AS
        WITH gaps AS (
            SELECT _line - 1 - row_number() OVER (ORDER BY _line) AS accepted_before,
                   row_number() OVER (ORDER BY _line) AS rejects_so_far
            FROM {rejects}_lines
        )
        SELECT r.*, r._ordinal + 1 + coalesce(g.rejects_so_far, 0) AS _line
        FROM {raw} r ASOF LEFT JOIN gaps g ON r._ordinal > g.accepted_before
        """
    )


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
    present = [c for c in spec.columns if c.name in header]
    absent = [c for c in spec.columns if c.name not in header]
    key = _value(spec.column(spec.key))
    line_key = _value(spec.column(spec.key), alias="l")

    problems = [p for column in present for p in _problems(column)]
    joins, reference_value = "", ""
    for column in present:
        if column.references and reference_sql is not None:
            joins = f"LEFT JOIN ({reference_sql}) AS ref ON ref.value = t.{_clean(column)}"
            reference_value = "ref.value AS _reference,"
            problems.append(
                f"CASE WHEN {_clean(column)} IS NOT NULL AND _reference IS NULL THEN "
                f"{_literal(f'{column.name}: unknown, not in {column.references}: ')} || {_shown(column)} END"
            )
    reason = f"nullif(concat_ws('; ', {', '.join(problems)}), '')" if problems else "NULL"
    typed_inner = ", ".join(f"{_typed(c)} AS {_typed_name(c)}" for c in present)
    typed_outer = ", ".join(
        [
            f"coalesce({_typed_name(c)}, {c.default!r}) AS {_quote(c.name)}"
            if c.default is not None
            else f"{_typed_name(c)} AS {_quote(c.name)}"
            for c in present
        ]
        + [f"CAST(NULL AS {SQL_TYPES[c.type]}) AS {_quote(c.name)}" for c in absent]
    )
    # Keys seen more than once: only these rows can be exact duplicates or key conflicts.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _repeated_{table} AS "
        f"SELECT {key} AS _key FROM _raw_{table} GROUP BY ALL HAVING count(*) > 1"
    )
    trimmed = ", ".join(f"{_value(c, alias='l')} AS {_clean(c)}" for c in present)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked_{table} AS
        SELECT _line, _key, _repeated, {reason} AS _reason, {typed_outer}
        FROM (
            SELECT t.*, rep._key IS NOT NULL AS _repeated, {reference_value} {typed_inner}
            FROM (SELECT l._line, {line_key} AS _key, {trimmed} FROM {lines} l) t
            LEFT JOIN _repeated_{table} rep ON rep._key IS NOT DISTINCT FROM t._key
            {joins}
        )
        """
    )
    # Among repeated keys: later copies of an identical row are duplicates; among the distinct rows
    # that pass every other rule, the first keeps the key and the others are quarantined.
    source_columns = ", ".join(f"l.{_quote(name)}" for name in header)
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
                    THEN {_literal(f"{spec.key}: duplicate value, first loaded from line ")} || _first_valid
               END AS _conflict
        FROM ranked
        """
    )
    ordered = ", ".join(_quote(c.name) for c in spec.columns)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _valid_{table} AS
        SELECT {ordered} FROM _checked_{table} k
        WHERE k._reason IS NULL
          AND (NOT k._repeated OR k._line IN (
                SELECT _line FROM _repeats_{table} WHERE NOT _duplicate AND _conflict IS NULL))
        """
    )
    record = ", ".join(f"{_quote(name)} := l.{_quote(name)}" for name in header)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rejected_{table} AS
        WITH problems AS (
            SELECT k._line, coalesce(k._reason, r._conflict) AS reason
            FROM _checked_{table} k LEFT JOIN _repeats_{table} r USING (_line)
            WHERE (k._reason IS NOT NULL OR r._conflict IS NOT NULL) AND NOT coalesce(r._duplicate, FALSE)
        )
        SELECT $table AS source_table, $source_file AS source_file,
               p._line AS line_number, CAST(to_json(struct_pack({record})) AS VARCHAR) AS raw_record, p.reason
        FROM problems p JOIN {lines} l USING (_line)
        UNION ALL
        SELECT $table, $source_file, _line, csv_line, reason FROM _rejects_{table}_lines
        ORDER BY line_number
        """,
        {"table": table, "source_file": source_file},
    )
    structural = _count(con, f"_rejects_{table}_lines")
    duplicates = con.execute(f"SELECT count(*) FILTER (WHERE _duplicate) FROM _repeats_{table}").fetchone()
    counts = ValidationCounts(
        rows_read=_count(con, f"_raw_{table}") + structural,
        rows_loaded=_count(con, f"_valid_{table}"),
        rows_rejected=_count(con, f"_rejected_{table}"),
        duplicates=int(duplicates[0]) if duplicates else 0,
        ignored_columns=tuple(n for n in header if n not in {c.name for c in spec.columns}),
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
