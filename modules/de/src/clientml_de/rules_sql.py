"""The contract's column rules as DuckDB SQL: how a text value becomes a typed one, and why it may not.

:func:`clientml_de.validate.validate` puts these expressions into one statement that types and checks
every row. The rules, with the ranges the warehouse types hold, are documented in ``modules/de/README.md``
("Types, numbers and ranges"):

- ``number``: a decimal or exponent literal (``12``, ``-0.5``, ``1e3``; no ``_``, ``inf`` or ``nan``)
  that is a finite double (about ±1.8e308);
- ``integer``: a whole number within BIGINT, written in digits (``12``) or, as spreadsheets and pandas
  write them, with a decimal point or exponent when the value is whole (``2.0``, ``1e3``, exact up to
  2^53); anything else is "not a whole number";
- ``label``: an integer that is 0 or 1 (``1.0`` counts);
- a column's ``supported_max`` bounds values that feature sums multiply (``quantity``, ``unit_price``), so
  a client's total stays within the ``DECIMAL(38, 6)`` money type of :mod:`clientml_de.features`.
"""

from __future__ import annotations

from clientml_de.contract import Column, ColumnType

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
BIGINT_RANGE = (-(2**63), 2**63 - 1)
# Whole numbers written with a decimal point or an exponent are read through a double: exact up to 2^53.
EXACT_DOUBLE_INTEGER = 2**53
SUPPORTED_MAX_WHY = "so that a client's total of quantity x unit_price fits DECIMAL(38, 6)"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_ISO_TIMESTAMP = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
_DIGITS = "[+-]?[0-9]+"
_SHOWN_VALUE_CHARS = 60


def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal (for texts of our own: user values travel as parameters)."""
    return "'" + text.replace("'", "''") + "'"


def trimmed(source: str) -> str:
    """The trimmed text of a source column expression, NULL when empty.

    DuckDB's ``trim`` removes the Unicode space characters, among ASCII only the space; it copies every
    value, which costs half as much as parsing the file, so it runs only on the values that may need it:
    those starting or ending with a space, or holding a non-ASCII character (more bytes than characters).
    """
    return (
        f"CASE WHEN prefix({source}, ' ') OR suffix({source}, ' ') OR strlen({source}) <> length({source}) "
        f"THEN nullif(trim({source}), '') ELSE nullif({source}, '') END"
    )


def _clean(column: Column) -> str:
    """The column in the checking query, where every value is already trimmed and NULL when empty."""
    return quote(column.name)


def _shown(column: Column) -> str:
    return f"left({_clean(column)}, {_SHOWN_VALUE_CHARS})"


def _quoted_shown(column: Column) -> str:
    return f"'''' || {_shown(column)} || ''''"


def _double(v: str) -> str:
    """A text as a DOUBLE, NULL unless it is a plain decimal or exponent literal (DuckDB also reads ``1_000``)."""
    return f"CASE WHEN NOT contains({v}, '_') THEN try_cast({v} AS DOUBLE) END"


def _whole(v: str) -> str:
    """A text as a BIGINT when it is a whole number: digits in range, or a whole decimal/exponent up to 2^53."""
    d = _double(v)
    return (
        f"CASE WHEN regexp_full_match({v}, '{_DIGITS}') THEN try_cast({v} AS BIGINT) "
        f"WHEN isfinite({d}) AND {d} = trunc({d}) AND abs({d}) <= {EXACT_DOUBLE_INTEGER} "
        f"THEN CAST({d} AS BIGINT) END"
    )


def typed(column: Column) -> str:
    """SQL turning the text of a column into its typed value (NULL when empty or invalid)."""
    v = _clean(column)
    match column.type:
        case ColumnType.STRING | ColumnType.CATEGORY:
            return v
        case ColumnType.NUMBER:
            return _double(v)
        case ColumnType.INTEGER:
            return _whole(v)
        case ColumnType.DATE:
            date = f"CAST(try_strptime({v}, '%Y-%m-%d') AS DATE)"
            # Years 0001-9999: what DATE holds on every engine (DuckDB alone would read 0000 as 1 BC).
            return f"CASE WHEN regexp_full_match({v}, '\\d{{4}}-\\d{{2}}-\\d{{2}}') AND {v} >= '0001' THEN {date} END"
        case ColumnType.TIMESTAMP:
            # Offsets are honoured and everything is stored in UTC (the session time zone is UTC).
            # The two common forms skip the time-zone-aware cast, which costs five times more.
            date_form, local_form = r"\d{4}-\d{2}-\d{2}", r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"
            stamp = f"CAST(try_cast({v} AS TIMESTAMPTZ) AS TIMESTAMP)"
            return (
                f"CASE WHEN {v} < '0001' THEN NULL "
                f"WHEN length({v}) = 10 AND regexp_full_match({v}, '{date_form}') "
                f"THEN CAST(try_strptime({v}, '%Y-%m-%d') AS TIMESTAMP) "
                f"WHEN length({v}) = 19 AND regexp_full_match({v}, '{local_form}') "
                f"THEN try_strptime({v}, '%Y-%m-%dT%H:%M:%S') "
                f"WHEN regexp_full_match({v}, '{_ISO_TIMESTAMP}') THEN {stamp} END"
            )
        case ColumnType.BOOLEAN:
            true_values = ", ".join(map(literal, _TRUE))
            false_values = ", ".join(map(literal, _FALSE))
            return (
                f"CASE WHEN lower({v}) IN ({true_values}) THEN TRUE WHEN lower({v}) IN ({false_values}) THEN FALSE END"
            )
        case ColumnType.LABEL:
            whole = _whole(v)
            return (
                f"CASE WHEN {v} IN ('0', '1') THEN CAST({v} AS INTEGER) "
                f"WHEN {whole} IN (0, 1) THEN CAST({whole} AS INTEGER) END"
            )
    raise AssertionError(column.type)


_TYPE_PROBLEM: dict[ColumnType, str] = {
    ColumnType.DATE: "not a calendar date in YYYY-MM-DD form",
    ColumnType.TIMESTAMP: "not an ISO 8601 date or timestamp",
    ColumnType.BOOLEAN: "not a boolean (true/false, yes/no, 1/0)",
    ColumnType.LABEL: "must be 0, 1 or empty",
}


def typed_name(column: Column) -> str:
    """The name of the typed value of ``column`` in the checking query."""
    return quote(f"__typed_{column.name}")


def _number_reason(column: Column) -> str:
    """Why a number column's text is not a finite double."""
    name, v = column.name, _clean(column)
    return (
        f"CASE WHEN {typed_name(column)} IS NOT NULL AND regexp_matches({v}, '[0-9]') "
        f"THEN {literal(f'{name}: ')} || {_shown(column)} || "
        f"{literal(' is outside the range of finite numbers (about -1.8e308 to 1.8e308)')} "
        f"ELSE {literal(f'{name}: not a finite number: ')} || {_quoted_shown(column)} END"
    )


def _integer_reason(column: Column) -> str:
    """Why an integer column's text is not a whole number in BIGINT (the value shown as written)."""
    name, v = column.name, _clean(column)
    d = _double(v)
    low, high = BIGINT_RANGE
    prefix = f"{literal(f'{name}: ')} || {_shown(column)} || "
    inexact = f" is too large to read exactly in this form (over {EXACT_DOUBLE_INTEGER}): write it in digits"
    return (
        f"CASE WHEN regexp_full_match({v}, '{_DIGITS}') "
        f"OR (abs({d}) > {float(high)!r} AND regexp_matches({v}, '[0-9]')) "
        f"THEN {prefix}{literal(f' is outside the range of whole numbers ({low} to {high})')} "
        f"WHEN isfinite({d}) AND {d} = trunc({d}) "
        f"THEN {prefix}{literal(inexact)} "
        f"ELSE {prefix}{literal(' is not a whole number')} END"
    )


def problems(column: Column) -> list[str]:
    """SQL expressions, one per rule of the column, each NULL or a reason naming the column.

    They refer to the typed value by name (:func:`typed_name`), computed once in an inner query.
    """
    name, v, value = column.name, _clean(column), typed_name(column)
    checks: list[tuple[str, str]] = []
    if column.required:
        checks.append((f"{v} IS NULL", literal(f"{name}: required value is empty")))
    finite = ""
    if column.type is ColumnType.NUMBER:
        checks.append((f"{v} IS NOT NULL AND ({value} IS NULL OR NOT isfinite({value}))", _number_reason(column)))
        finite = f"isfinite({value}) AND "
    elif column.type is ColumnType.INTEGER:
        checks.append((f"{v} IS NOT NULL AND {value} IS NULL", _integer_reason(column)))
    elif problem := _TYPE_PROBLEM.get(column.type):
        reason = f"{literal(f'{name}: {problem}: ')} || {_quoted_shown(column)}"
        checks.append((f"{v} IS NOT NULL AND {value} IS NULL", reason))
    if column.min_value is not None:
        reason = f"{literal(f'{name}: must be >= {column.min_value:g}, got ')} || {_quoted_shown(column)}"
        checks.append((f"{finite}{value} < {column.min_value!r}", reason))
    if column.max_value is not None:
        reason = f"{literal(f'{name}: must be <= {column.max_value:g}, got ')} || {_quoted_shown(column)}"
        checks.append((f"{finite}{value} > {column.max_value!r}", reason))
    if column.supported_max is not None:
        above = f" is above the supported maximum {column.supported_max:,.0f} ({SUPPORTED_MAX_WHY})"
        reason = f"{literal(f'{name}: ')} || {_shown(column)} || {literal(above)}"
        checks.append((f"{finite}{value} > {column.supported_max!r}", reason))
    return [f"CASE WHEN {condition} THEN {reason} END" for condition, reason in checks]
