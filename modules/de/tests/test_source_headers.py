"""Headers: empty names, repeated names and names that differ only in case each get one clear handling:
an undeclared column is ignored and listed, a declared one named ambiguously fails the file naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.validate import SourceError
from clientml_de.warehouse import Warehouse
from de_support import CLIENT_HEADER, GOOD_CLIENTS, csv_bytes, rejected_rows, write_bytes

CONFIG = DatasetConfig()
BAD_CLIENT = ["c9", "2023-02-30", "", "", "", "", "", "", "", ""]


def _load_clients(tmp_path: Path, warehouse: Warehouse, data: bytes) -> tuple[Path, tuple[str, ...], int]:
    path = write_bytes(tmp_path / "clients.csv", data)
    summary = load_source(str(path), CONFIG.clients_spec(), warehouse)
    return path, summary.ignored_columns, summary.rows_loaded


# (case, extra header names, extra values per row, ignored_columns)
IGNORED = [
    ("trailing comma", [""], [""], ("(no name, column 11)",)),
    ("empty name in the middle", ["", "notes"], ["", "n"], ("(no name, column 11)", "notes")),
    ("undeclared name repeated", ["notes", "notes"], ["a", "b"], ("notes (column 11)", "notes (column 12)")),
    ("undeclared names differing in case", ["notes", "Notes"], ["a", "b"], ("notes", "Notes")),
    ("spaces around names", [" notes "], ["x"], ("notes",)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "names", "values", "ignored"), IGNORED, ids=[c[0] for c in IGNORED])
def test_undeclared_columns_are_ignored_and_listed(
    tmp_path: Path,
    duckdb_warehouse: Warehouse,
    case: str,
    names: list[str],
    values: list[str],
    ignored: tuple[str, ...],
) -> None:
    rows = [[*row, *values] for row in [*GOOD_CLIENTS, BAD_CLIENT]]
    _, listed, loaded = _load_clients(tmp_path, duckdb_warehouse, csv_bytes([*CLIENT_HEADER, *names], rows))

    assert (listed, loaded) == (ignored, 3), case
    # The quarantined row keeps every field, the ignored ones under the same labels.
    [bad] = rejected_rows(duckdb_warehouse, "clients")
    record = json.loads(bad["raw_record"])
    assert list(record) == [*CLIENT_HEADER, *ignored]
    assert list(record.values())[len(CLIENT_HEADER) :] == [value or None for value in values]


def test_header_ending_in_a_comma_explains_the_short_rows(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    data = csv_bytes(CLIENT_HEADER, GOOD_CLIENTS).replace(b"observation_date\n", b"observation_date,\n", 1)
    path = write_bytes(tmp_path / "clients.csv", data)
    summary = load_source(str(path), CONFIG.clients_spec(), duckdb_warehouse)

    assert (summary.rows_read, summary.rows_loaded, summary.rows_rejected) == (3, 0, 3)
    assert summary.ignored_columns == ("(no name, column 11)",)
    reasons = {r["reason"] for r in rejected_rows(duckdb_warehouse, "clients")}
    assert reasons == {
        "wrong number of fields: fewer fields than the header (10, where the header has 11); "
        "the header ends with a comma (its last column has no name)"
    }


# (case, the header, the start of the error after the file name)
AMBIGUOUS = [
    ("declared column twice", [*CLIENT_HEADER, "region"], "column(s) appear more than once in the header: region (columns 5 and 11)"),
    ("declared column twice, with spaces", [*CLIENT_HEADER, " region"], "column(s) appear more than once in the header: region (columns 5 and 11)"),
    ("same name but for case", [*CLIENT_HEADER, "Region"], "header column 'Region' (column 11) differs from the column 'region' only in case"),
    ("declared column in other case", [n.upper() if n == "segment" else n for n in CLIENT_HEADER], "header column 'SEGMENT' (column 6) differs from the column 'segment' only in case"),
    ("required column in other case", ["Client_ID", *CLIENT_HEADER[1:]], "header column 'Client_ID' (column 1) differs from the column 'client_id' only in case"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "header", "message"), AMBIGUOUS, ids=[c[0] for c in AMBIGUOUS])
def test_ambiguous_declared_column_fails_the_file_naming_it(
    tmp_path: Path, duckdb_warehouse: Warehouse, case: str, header: list[str], message: str
) -> None:
    rows = [[*row, *([""] * (len(header) - len(row)))] for row in GOOD_CLIENTS]
    with pytest.raises(SourceError) as failure:
        _load_clients(tmp_path, duckdb_warehouse, csv_bytes(header, rows))
    assert str(failure.value).startswith(f"{tmp_path / 'clients.csv'}: {message}"), case


@pytest.mark.parametrize(
    ("case", "first_line", "message"),
    [
        ("blank", b"\n", "line 1 is blank, expected a CSV header row"),
        ("unclosed quote", b'client_id,"signup_date\n', "line 1 (the header): unclosed quote: the quote opening field 2"),
        ("stray quote", b'client_id,sign"up_date\n', "line 1 (the header): stray quote in field 2 at byte offset 14"),
        ("only a byte-order mark", b"\xef\xbb\xbf", "empty file, expected a CSV header row"),
    ],
    ids=["blank", "unclosed-quote", "stray-quote", "bom-only"],
)  # fmt: skip
def test_unusable_header_line_fails_the_file(
    tmp_path: Path, duckdb_warehouse: Warehouse, case: str, first_line: bytes, message: str
) -> None:
    path = write_bytes(tmp_path / "clients.csv", first_line + (b"" if case == "only a byte-order mark" else b"c1,x\n"))
    with pytest.raises(SourceError) as failure:
        load_source(str(path), CONFIG.clients_spec(), duckdb_warehouse)
    assert str(failure.value).startswith(f"{path}: {message}"), case


def test_quoted_header_names_match(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    header = b",".join(b'"' + name.encode() + b'"' for name in CLIENT_HEADER) + b"\r\n"
    data = header + csv_bytes(CLIENT_HEADER, GOOD_CLIENTS).split(b"\n", 1)[1]
    _, ignored, loaded = _load_clients(tmp_path, duckdb_warehouse, data)
    assert (ignored, loaded) == ((), 3)
