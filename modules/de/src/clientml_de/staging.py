"""A source file made ready for validation: its structure checked, and the way to read its records.

:func:`stage_csv` scans the file (:func:`clientml_de.csv_structure.scan`) and keeps what the scan finds
in the scratch DuckDB connection and its spill directory, streamed as it is found, so nothing grows
with the file in Python:

- ``_structural_<table>``: the malformed lines (``line_number, start, end, raw_record, reason``);
- ``_offsets_<table>``: the line offsets (``_from, _offset``: well-formed record ``k`` starts on line
  ``k + _offset`` of the last row whose ``_from <= k``);
- a file of the byte offsets where each well-formed record starts, which :func:`extract_records` uses to
  read back, by number, the few records validation needs again (rows whose key repeats or whose
  reference is unknown);
- when lines were quarantined, a copy of the file without them: the CSV reader must not see them;
- ``_source_<table>``: one row naming those files, what :func:`read_records` builds on.

Records are numbered from 1 among the well-formed ones, in file order (their *ordinal*).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from clientml_de.csv_structure import BadRecord, FileStructure, scan
from clientml_de.duckdb_budget import insertion_order, spill_directory
from clientml_de.errors import SourceError

_DUCKDB_MAX_LINE_SIZE = 2_097_152  # DuckDB's default max_line_size
_COPY_CHUNK = 1 << 20
# Rows buffered before they are appended to their table: a bounded buffer, few appends.
_BAD_BATCH = 4096
_OFFSET_BATCH = 1 << 16
_INT64 = np.dtype("<i8")


def _append_arrow(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, pa.Array]) -> None:
    """``INSERT INTO name`` the given Arrow columns (in their order)."""
    source = f"{name}_arrow"
    con.register(source, pa.table(columns))
    try:
        con.execute(f"INSERT INTO {name} SELECT * FROM {source}")
    finally:
        con.unregister(source)


class _StructureTables:
    """The :class:`~clientml_de.csv_structure.StructureSink` of a load: appends what the scan finds to the
    scratch connection's tables, in bounded batches, and the record starts to a file of int64."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, starts: Path) -> None:
        self.con, self.structural, self.offsets = con, f"_structural_{table}", f"_offsets_{table}"
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE {self.structural} (line_number BIGINT, start BIGINT, "end" BIGINT, '
            "raw_record VARCHAR, reason VARCHAR)"
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE {self.offsets} (_from BIGINT, _offset BIGINT)")
        self.bad: list[BadRecord] = []
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.starts = starts.open("wb")

    def bad_record(self, record: BadRecord) -> None:
        self.bad.append(record)
        if len(self.bad) >= _BAD_BATCH:
            self._flush_bad()

    def line_offsets(self, ordinals: np.ndarray, offsets: np.ndarray) -> None:
        self.pending.append((ordinals, offsets))
        if sum(o.size for o, _ in self.pending) >= _OFFSET_BATCH:
            self._flush_offsets()

    def record_starts(self, starts: np.ndarray) -> None:
        starts.astype(_INT64).tofile(self.starts)

    def _flush_bad(self) -> None:
        bad, self.bad = self.bad, []
        columns = {
            "line_number": pa.array([b.line for b in bad], pa.int64()),
            "start": pa.array([b.start for b in bad], pa.int64()),
            "end": pa.array([b.end for b in bad], pa.int64()),
            "raw_record": pa.array([b.text for b in bad], pa.string()),
            "reason": pa.array([b.reason for b in bad], pa.string()),
        }
        _append_arrow(self.con, self.structural, columns)

    def _flush_offsets(self) -> None:
        pending, self.pending = self.pending, []
        ordinals = np.concatenate([o for o, _ in pending]).astype(_INT64)
        offsets = np.concatenate([o for _, o in pending]).astype(_INT64)
        _append_arrow(self.con, self.offsets, {"_from": pa.array(ordinals), "_offset": pa.array(offsets)})

    def finish(self) -> None:
        """Append what is still buffered and close the starts file."""
        self.starts.close()
        if self.bad:
            self._flush_bad()
        if self.pending:
            self._flush_offsets()


def _files(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Path]:
    """The spill-directory files of ``table``'s load: record starts, the file without quarantined lines, and
    the records read back by :func:`extract_records`."""
    spill = spill_directory(con)
    return {kind: spill / f"clientml-{table}-{kind}" for kind in ("starts.i64", "records.csv", "extract.csv")}


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], table: str) -> FileStructure:
    """Check the file's structure and make its well-formed records readable by :func:`read_records`.

    ``header`` is the file's header (:func:`clientml_de.header.read_header`). Creates the relations and
    files listed in the module docstring; :func:`drop_staged` removes them. Returns the file's structure (its
    ``records`` are the rows read).

    Raises:
        SourceError: the file is not UTF-8 or its header is unusable (:func:`clientml_de.csv_structure.scan`).
        OSError: the spill directory cannot be written.
    """
    files = _files(con, table)
    tables = _StructureTables(con, table, files["starts.i64"])
    try:
        structure = scan(path, tables)
    finally:
        tables.finish()
    source = path
    if structure.bad_records:
        source = files["records.csv"]
        _write_kept(con, table, path, source)
    max_line = structure.longest_record + 1 if structure.longest_record >= _DUCKDB_MAX_LINE_SIZE else 0
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _source_{table} AS SELECT $path AS path, $header AS header, "
        "$columns AS columns, $good AS good, $max_line AS max_line, $header_start AS header_start, "
        "$data_start AS data_start",
        {
            "path": str(source),
            "header": str(path),
            "columns": len(header),
            "good": structure.good_records,
            "max_line": max_line,
            "header_start": structure.header.text_start,
            "data_start": structure.data_start,
        },
    )
    return structure


def _write_kept(con: duckdb.DuckDBPyConnection, table: str, path: Path, target: Path) -> None:
    """Copy ``path`` without its quarantined lines (the header included) to ``target``, streaming."""
    ranges = con.execute(f'SELECT start, "end" FROM _structural_{table} ORDER BY start')
    with path.open("rb") as source, target.open("wb") as out:
        at = 0
        while batch := ranges.fetchmany(_BAD_BATCH):
            for start, end in batch:
                _copy_range(source, out, at, start)
                at = end
        _copy_range(source, out, at, path.stat().st_size)


def _copy_range(source: Any, out: Any, start: int, end: int) -> None:
    source.seek(start)
    remaining = end - start
    while remaining > 0:
        chunk = source.read(min(remaining, _COPY_CHUNK))
        out.write(chunk)
        remaining -= len(chunk)


def _source(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    cursor = con.execute(f"SELECT * FROM _source_{table}")
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    assert row is not None, f"stage_csv was not called for {table}"
    return dict(zip(names, row, strict=True))


def read_records(con: duckdb.DuckDBPyConnection, table: str, path: Path | None = None) -> tuple[str, dict[str, Any]]:
    """The ``read_csv(...)`` call that parses ``table``'s well-formed records, all text, and its parameters.

    The fields are ``_c1`` ... ``_cN`` (VARCHAR, by position, as read); the records come in file order
    when the statement keeps insertion order. ``path`` reads another file of the same records instead
    (:func:`extract_records`). The file name and the column names travel as parameters, not SQL text.
    """
    source = _source(con, table)
    options = "header=true, auto_detect=false, delim=',', quote='\"', escape='\"', strict_mode=false, columns=$columns"
    parameters: dict[str, Any] = {
        "path": str(path or source["path"]),
        "columns": {f"_c{number}": "VARCHAR" for number in range(1, int(source["columns"]) + 1)},
    }
    if source["max_line"]:
        options += ", max_line_size=$max_line_size"
        parameters["max_line_size"] = int(source["max_line"])
    return f"read_csv($path, {options})", parameters


def good_records(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """How many well-formed records the structure scan found: what the CSV reader must return."""
    return int(_source(con, table)["good"])


def extract_records(con: duckdb.DuckDBPyConnection, table: str, ordinals: str) -> Path:
    """Copy the well-formed records numbered by the query ``ordinals`` (one column, no repeats) to a CSV file.

    The file has the source's header, then those records in ascending order, bytes as in the file (the last
    record of the file, which may lack a line end, can only come last); :func:`read_records` with its path
    parses them as the source was parsed. Consecutive records are copied as one range, so it costs a read of
    each run of records, never more than one read of the file. Returns the file's path.

    Raises:
        OSError: the spill directory cannot be written (e.g. the disk is full).
    """
    source, files = _source(con, table), _files(con, table)
    good = int(source["good"])
    # Runs of consecutive ordinals (gaps and islands): a whole file repeated twice is one run, not 30M reads.
    runs = con.execute(
        f"SELECT min(o), max(o) FROM (SELECT o, o - row_number() OVER (ORDER BY o) AS run FROM ({ordinals}) t(o)) "
        "GROUP BY run ORDER BY 1"
    )
    with (
        Path(source["path"]).open("rb") as records,
        files["starts.i64"].open("rb") as starts,
        files["extract.csv"].open("wb") as out,
    ):
        size = os.fstat(records.fileno()).st_size
        with Path(source["header"]).open("rb") as original:
            _copy_range(original, out, int(source["header_start"]), int(source["data_start"]))
        while batch := runs.fetchmany(_OFFSET_BATCH):
            for first, last in batch:
                # The records are contiguous in the file read: a run ends where the record after it starts.
                start = _start(starts.fileno(), first)
                end = size if last >= good else _start(starts.fileno(), last + 1)
                _copy_range(records, out, start, end)
    return files["extract.csv"]


def _start(starts: int, ordinal: int) -> int:
    """Where record ``ordinal`` starts, from the file of record starts (file descriptor ``starts``)."""
    return int(np.frombuffer(os.pread(starts, 8, (ordinal - 1) * 8), dtype=_INT64)[0])


def parse_extracted(con: duckdb.DuckDBPyConnection, table: str, path: Path, target: str) -> None:
    """``CREATE TEMP TABLE target``: the records of :func:`extract_records`' file, numbered ``_k`` from 1 in
    file order, with their fields ``_c1`` ... ``_cN``.

    Raises:
        duckdb.Error: DuckDB cannot parse them (never expected: the structure scan accepted them).
    """
    read, parameters = read_records(con, table, path)
    with insertion_order(con):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {target} AS SELECT row_number() OVER () AS _k, * FROM {read}", parameters
        )


def check_read(con: duckdb.DuckDBPyConnection, table: str, path: Path, read: int) -> None:
    """Fail when the CSV reader returned another number of records than the structure scan found.

    Raises:
        SourceError: names the file and both counts (never expected).
    """
    expected = good_records(con, table)
    if read != expected:
        raise SourceError(f"{path}: the CSV reader found {read} records where the structure check found {expected}")


def drop_staged(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Remove what :func:`stage_csv` and :func:`extract_records` made for ``table``."""
    for name in ("structural", "offsets", "source"):
        con.execute(f"DROP TABLE IF EXISTS _{name}_{table}")
    for path in _files(con, table).values():
        path.unlink(missing_ok=True)
