"""Malformed CSV structure, every kind: each broken line is quarantined alone with its line number and a
reason naming the fault; the lines after it load; rows_read counts every record of the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from clientml_de import csv_structure
from clientml_de.config import DatasetConfig
from clientml_de.load import LoadSummary, load_source
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, csv_bytes, rejected_rows, write_bytes

CONFIG = DatasetConfig()
GOOD = csv_bytes(SALES_HEADER, GOOD_SALES)  # lines 1-6; appended lines start at line 7
AFTER = b"s20,c3,2023-03-03,home,1,2.5,,online\n"  # always appended last: it must load


def _load_sales(tmp_path: Path, warehouse: Warehouse, data: bytes) -> LoadSummary:
    clients = write_bytes(tmp_path / "clients.csv", csv_bytes(CLIENT_HEADER, GOOD_CLIENTS))
    load_source(str(clients), CONFIG.clients_spec(), warehouse)
    return load_source(str(write_bytes(tmp_path / "sales.csv", data)), CONFIG.sales_spec(), warehouse)


def _loaded(warehouse: Warehouse) -> dict[str, dict[str, object]]:
    frame = warehouse.table("sales").to_pandas()
    return {row["sale_id"]: row for row in frame.to_dict("records")}


# (case, lines appended after the good rows, [(line, start of the reason, raw_record)] quarantined)
STRUCTURE_FAULTS = [
    ("unclosed quote", [b's9,c1,2023-01-01,home,1,1,,"online\n'], [(7, "unclosed quote: the quote opening field 8 (sales_channel)", 's9,c1,2023-01-01,home,1,1,,"online')]),
    ("unclosed quote in the first field", [b'"s9,c1,2023-01-01,home,1,1,,online\n'], [(7, "unclosed quote: the quote opening field 1 (sale_id)", '"s9,c1,2023-01-01,home,1,1,,online')]),
    ("unclosed quote, a later quoted field", [b's9,c1,2023-01-01,"home,1,1,,online\n', b's10,c1,2023-01-01,"garden, tools",1,1,,online\n'], [(7, "unclosed quote: the quote opening field 4 (product_category)", 's9,c1,2023-01-01,"home,1,1,,online')]),
    ("stray quote", [b's9,c1,2023-01-01,5" screen,1,1,,online\n'], [(7, "stray quote in field 4 (product_category)", 's9,c1,2023-01-01,5" screen,1,1,,online')]),
    ("two stray quotes", [b's9,c1,2023-01-01,5" or 6" screen,1,1,,online\n'], [(7, "stray quote in field 4 (product_category)", 's9,c1,2023-01-01,5" or 6" screen,1,1,,online')]),
    ("text after closing quote", [b's9,c1,2023-01-01,"home"x,1,1,,online\n'], [(7, "text after the closing quote of field 4 (product_category)", 's9,c1,2023-01-01,"home"x,1,1,,online')]),
    ("carriage return alone", [b"s9,c1,2023-01-01,ho\rme,1,1,,online\n"], [(7, "carriage return without a line feed in field 4 (product_category)", "s9,c1,2023-01-01,ho\rme,1,1,,online")]),
    ("too many fields", [b"s9,c1,2023-01-01,home,1,1,,online,extra\n"], [(7, "wrong number of fields: more fields than the header (9, where the header has 8)", "s9,c1,2023-01-01,home,1,1,,online,extra")]),
    ("too few fields", [b"s9,c1,2023-01-01\n"], [(7, "wrong number of fields: fewer fields than the header (3, where the header has 8)", "s9,c1,2023-01-01")]),
    ("blank line", [b"\n"], [(7, "blank line: fewer fields than the header (1, where the header has 8)", "")]),
    ("blank line with CR LF", [b"\r\n"], [(7, "blank line", "")]),
    ("several faults", [b'"s9,x\n', b"s10\n", b's11,c1,2023-01-01,"a"b,1,1,,online\n'], [(7, "unclosed quote", '"s9,x'), (8, "wrong number of fields", "s10"), (9, "text after the closing quote", 's11,c1,2023-01-01,"a"b,1,1,,online')]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "lines", "expected"), STRUCTURE_FAULTS, ids=[c[0] for c in STRUCTURE_FAULTS])
def test_malformed_line_is_quarantined_alone(
    tmp_path: Path,
    duckdb_warehouse: Warehouse,
    case: str,
    lines: list[bytes],
    expected: list[tuple[int, str, str]],
) -> None:
    sales = _load_sales(tmp_path, duckdb_warehouse, GOOD + b"".join(lines) + AFTER)

    loaded = len(GOOD_SALES) + len(lines) - len(expected) + 1
    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (6 + len(lines), loaded, len(expected)), case
    rejected = rejected_rows(duckdb_warehouse, "sales")
    assert [(r["line_number"], r["raw_record"]) for r in rejected] == [(line, raw) for line, _, raw in expected]
    for row, (_, reason, _) in zip(rejected, expected, strict=True):
        assert row["reason"].startswith(reason), row["reason"]
    assert "s20" in _loaded(duckdb_warehouse)


def test_quoted_fields_load_as_rfc_4180_reads_them(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    lines = (
        b's9,c1,2023-01-01,"home, garden and ""more""",1,1,,online\n'
        b's10,c1,2023-01-01,"two\nlines",1,1,,online\r\n'  # a line break inside quotes: one record, two lines
        b's11,c1,2023-01-01,"ends in CR LF\r\n",1,1,,""\n'
        b"s12,c1,2023-01-01,home,1,1,,online,extra\n"  # line 12: the line numbers follow the physical lines
    )
    sales = _load_sales(tmp_path, duckdb_warehouse, GOOD + lines + AFTER)

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (10, 9, 1)
    assert [r["line_number"] for r in rejected_rows(duckdb_warehouse, "sales")] == [12]
    loaded = _loaded(duckdb_warehouse)
    assert loaded["s9"]["product_category"] == 'home, garden and "more"'
    assert loaded["s10"]["product_category"] == "two\nlines"
    assert loaded["s11"]["product_category"] == "ends in CR LF\r\n"
    assert loaded["s11"]["sales_channel"] is None


def test_line_ends_may_be_mixed(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    data = csv_bytes(SALES_HEADER, GOOD_SALES[:2], newline=b"\r\n") + b"".join(
        ",".join(row).encode() + b"\n" for row in GOOD_SALES[2:]
    )
    assert data.count(b"\r\n") == 3 and data.count(b"\n") == 6
    sales = _load_sales(tmp_path, duckdb_warehouse, data + b"s9,c1,2023-01-01,home,1,1,,online")  # no final line end

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (6, 6, 0)
    assert _loaded(duckdb_warehouse)["s1"]["sales_channel"] == "online"


def test_last_line_unclosed_without_line_end(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    sales = _load_sales(tmp_path, duckdb_warehouse, GOOD + AFTER + b's9,c1,2023-01-01,home,1,1,,"online')

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (7, 6, 1)
    [bad] = rejected_rows(duckdb_warehouse, "sales")
    assert (bad["line_number"], bad["raw_record"]) == (8, 's9,c1,2023-01-01,home,1,1,,"online')


def test_long_record_is_kept_whole(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    long_line = b"s9,c1,2023-01-01," + b"x" * 250_000 + b',1,1,,online,"' + b"y" * 50_000 + b"\n"
    sales = _load_sales(tmp_path, duckdb_warehouse, GOOD + long_line + AFTER)

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (7, 6, 1)
    [bad] = rejected_rows(duckdb_warehouse, "sales")
    assert bad["raw_record"] == long_line[:-1].decode()


def test_line_over_the_record_limit_is_located_by_bytes(
    tmp_path: Path, duckdb_warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_structure, "WINDOW_BYTES", 64)
    monkeypatch.setattr(csv_structure, "MAX_RECORD_BYTES", 256)
    huge = b"s9,c1,2023-01-01," + b"x" * 1000 + b",1,1,,online\n"
    sales = _load_sales(tmp_path, duckdb_warehouse, GOOD + huge + AFTER)

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (7, 6, 1)
    [bad] = rejected_rows(duckdb_warehouse, "sales")
    start = len(GOOD)
    assert bad["line_number"] == 7 and bad["raw_record"] is None
    assert bad["reason"] == (
        f"line too long: {len(huge) - 1} bytes, more than the 256 bytes a record may have; "
        f"not stored: it is bytes {start} to {start + len(huge)} of the file"
    )


def test_well_formed_record_longer_than_duckdb_default_line_loads(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    category = "c" * 3_000_000  # DuckDB reads lines of up to 2 MB by default
    sales = _load_sales(tmp_path, duckdb_warehouse, GOOD + f"s9,c1,2023-01-01,{category},1,1,,online\n".encode())

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (6, 6, 0)
    assert _loaded(duckdb_warehouse)["s9"]["product_category"] == category


def test_small_windows_give_the_same_accounting(
    tmp_path: Path, duckdb_warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records that straddle the scan's windows, and restarts after an unclosed quote near a window's end."""
    data = GOOD + b"".join(b"".join(case[1]) for case in STRUCTURE_FAULTS) + AFTER
    expected = _load_sales(tmp_path / "big", duckdb_warehouse, data)
    expected_rejects = rejected_rows(duckdb_warehouse, "sales")
    monkeypatch.setattr(csv_structure, "WINDOW_BYTES", 7)

    small = _load_sales(tmp_path / "small", duckdb_warehouse, data)

    assert (small.rows_read, small.rows_loaded, small.rows_rejected) == (
        expected.rows_read,
        expected.rows_loaded,
        expected.rows_rejected,
    )
    assert [(r["line_number"], r["reason"]) for r in rejected_rows(duckdb_warehouse, "sales")] == [
        (r["line_number"], r["reason"]) for r in expected_rejects
    ]


def test_quarantined_lines_publish_the_same_on_postgres(
    tmp_path: Path, duckdb_warehouse: Warehouse, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw lines with quotes, commas, a carriage return, and one too long to keep, through COPY."""
    monkeypatch.setattr(csv_structure, "WINDOW_BYTES", 1024)
    monkeypatch.setattr(csv_structure, "MAX_RECORD_BYTES", 4096)
    huge = b"s30,c1,2023-01-01," + b"x" * 5000 + b",1,1,,online\n"
    data = GOOD + b"".join(b"".join(case[1]) for case in STRUCTURE_FAULTS) + huge + AFTER
    expected = _load_sales(tmp_path / "duckdb", duckdb_warehouse, data)
    with connect(postgres_url) as warehouse:
        summary = _load_sales(tmp_path / "postgres", warehouse, data)
        rejected = rejected_rows(warehouse, "sales")

    assert (summary.rows_read, summary.rows_loaded, summary.rows_rejected) == (
        expected.rows_read,
        expected.rows_loaded,
        expected.rows_rejected,
    )
    keep = ("line_number", "raw_record", "reason")
    assert [{k: r[k] for k in keep} for r in rejected] == [
        {k: r[k] for k in keep} for r in rejected_rows(duckdb_warehouse, "sales")
    ]
    assert rejected[-1]["raw_record"] is None and "\r" in rejected[6]["raw_record"]
