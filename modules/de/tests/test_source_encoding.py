"""Encodings: a UTF-8 byte-order mark is skipped; any byte that is not UTF-8, wherever it is, fails the file
with the same message (file, line, byte offset, "expected UTF-8") and leaves the previous tables as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from clientml_de import csv_structure
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.validate import SourceError
from clientml_de.warehouse import Warehouse
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, csv_bytes, write_bytes

CONFIG = DatasetConfig()
CLIENTS = csv_bytes(CLIENT_HEADER, GOOD_CLIENTS)
SALES = csv_bytes(SALES_HEADER, GOOD_SALES)
FILLER = b"".join(b"f%d,c1,2023-01-01,home,1,1,,online\n" % n for n in range(60_000))  # 2 MB of good rows


def _snapshot(warehouse: Warehouse) -> dict[str, list[tuple[object, ...]]]:
    return {t: sorted(map(tuple, warehouse.table(t).to_pandas().astype(str).values)) for t in ("clients", "sales")}


@pytest.fixture
def loaded(tmp_path: Path, duckdb_warehouse: Warehouse) -> Warehouse:
    """The good pair loaded: what a failed load must leave untouched."""
    load_source(str(write_bytes(tmp_path / "good" / "clients.csv", CLIENTS)), CONFIG.clients_spec(), duckdb_warehouse)
    load_source(str(write_bytes(tmp_path / "good" / "sales.csv", SALES)), CONFIG.sales_spec(), duckdb_warehouse)
    return duckdb_warehouse


def test_byte_order_mark_on_both_files_is_skipped(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    bom = b"\xef\xbb\xbf"
    clients = write_bytes(tmp_path / "clients.csv", bom + csv_bytes(CLIENT_HEADER, GOOD_CLIENTS, newline=b"\r\n"))
    sales = write_bytes(tmp_path / "sales.csv", bom + SALES)

    assert load_source(str(clients), CONFIG.clients_spec(), duckdb_warehouse).rows_loaded == 3
    assert load_source(str(sales), CONFIG.sales_spec(), duckdb_warehouse).rows_loaded == 5


# (case, the bytes of the sales file, the first byte that is not UTF-8)
_LATIN1 = "é".encode("latin-1")
BAD_BYTES = [
    ("header", SALES.replace(b"product_category", b"produit_cat" + _LATIN1 + b"gorie"), 0xE9),
    ("first data line", SALES.replace(b"home", b"h" + _LATIN1 + b"me", 1), 0xE9),
    ("far down", SALES + FILLER + b"s9,c1,2023-01-01,caf\xe9,1,1,,online\n", 0xE9),
    ("cut sequence", SALES + FILLER + b"s9,c1,2023-01-01,caf\xc3,1,1,,online\n", 0xC3),
    ("last byte", SALES + b"s9,c1,2023-01-01,home,1,1,,onlin\xff", 0xFF),
]


@pytest.mark.parametrize(("case", "data", "byte"), BAD_BYTES, ids=[c[0] for c in BAD_BYTES])
@pytest.mark.parametrize("window", [None, 4096], ids=["default-window", "small-window"])
def test_a_byte_that_is_not_utf8_fails_the_file_naming_line_and_offset(
    tmp_path: Path,
    loaded: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    data: bytes,
    byte: int,
    window: int | None,
) -> None:
    if window:
        monkeypatch.setattr(csv_structure, "WINDOW_BYTES", window)
    before = _snapshot(loaded)
    path = write_bytes(tmp_path / "sales.csv", data)
    offset = data.index(bytes([byte]))
    line = data[:offset].count(b"\n") + 1

    with pytest.raises(SourceError) as failure:
        load_source(str(path), CONFIG.sales_spec(), loaded)

    message = str(failure.value)
    expected = f"{path}: not a UTF-8 text file: line {line}, byte offset {offset}: byte 0x{byte:02X} is not valid UTF-8"
    assert message.startswith(expected), case
    assert message.endswith("expected UTF-8 (save the file as UTF-8, e.g. 'CSV UTF-8')")
    assert _snapshot(loaded) == before


@pytest.mark.parametrize(
    ("case", "data", "message"),
    [
        ("UTF-16", "\ufeff".encode("utf-16-le") + SALES.decode().encode("utf-16-le"), "it starts with a UTF-16 byte-order mark (0xFF 0xFE)"),
        ("UTF-16 without mark", SALES.decode().encode("utf-16-le"), "line 1, byte offset 1: a NUL byte (0x00)"),
        ("NUL byte", SALES + b"s9,c1,2023-01-01,ho\x00me,1,1,,online\n", f"line 7, byte offset {len(SALES) + 19}: a NUL byte (0x00)"),
    ],
    ids=["utf-16", "utf-16-no-mark", "nul"],
)  # fmt: skip
def test_other_encodings_and_nul_bytes_fail_the_file(
    tmp_path: Path, loaded: Warehouse, case: str, data: bytes, message: str
) -> None:
    before = _snapshot(loaded)
    path = write_bytes(tmp_path / "sales.csv", data)

    with pytest.raises(SourceError, match="expected UTF-8") as failure:
        load_source(str(path), CONFIG.sales_spec(), loaded)

    assert str(failure.value).startswith(f"{path}: not a UTF-8 text file: {message}"), case
    assert _snapshot(loaded) == before


def test_valid_multibyte_text_loads_as_written(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    clients = write_bytes(tmp_path / "clients.csv", CLIENTS)
    load_source(str(clients), CONFIG.clients_spec(), duckdb_warehouse)
    text = "maison & café,\u00a0客户 ✓"
    sales = csv_bytes(SALES_HEADER, [["s9", "c1", "2023-01-01", f'"{text}"', "1", "1", "", "网上"]])
    load_source(str(write_bytes(tmp_path / "sales.csv", sales)), CONFIG.sales_spec(), duckdb_warehouse)

    row = duckdb_warehouse.table("sales").to_pandas().iloc[0]
    assert (row.product_category, row.sales_channel) == (text, "网上")
