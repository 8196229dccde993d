"""The three inputs of the issue "Nothing lost, nothing cryptic" (``cases/``), each with its right result."""

from __future__ import annotations

from pathlib import Path

from clientml_de.config import DatasetConfig
from clientml_de.features import build_feature_store
from clientml_de.load import LoadSummary, load_source
from clientml_de.warehouse import Warehouse
from de_support import CASES, rejected_rows

CONFIG = DatasetConfig()


def _load(warehouse: Warehouse, clients: Path, sales: Path) -> tuple[LoadSummary, LoadSummary]:
    return (
        load_source(str(clients), CONFIG.clients_spec(), warehouse),
        load_source(str(sales), CONFIG.sales_spec(), warehouse),
    )


def _counts(summary: LoadSummary) -> tuple[int, int, int, int]:
    return summary.rows_read, summary.rows_loaded, summary.rows_rejected, summary.duplicates


def _sale_ids(warehouse: Warehouse) -> list[str]:
    return sorted(warehouse.table("sales").sale_id.to_pyarrow().to_pylist())


def test_unclosed_quote_quarantines_its_line_alone(duckdb_warehouse: Warehouse) -> None:
    case = CASES / "csv-unclosed-quote"
    _, sales = _load(duckdb_warehouse, case / "clients.csv", case / "sales.csv")

    assert _counts(sales) == (4, 3, 1, 0)
    [bad] = rejected_rows(duckdb_warehouse, "sales")
    assert bad["line_number"] == 3
    assert bad["raw_record"] == 'T2,K001,2024-03-02,grocery,1,10.00,,"online'
    assert bad["reason"].startswith("unclosed quote: the quote opening field 8 (sales_channel) at byte offset 167")
    assert _sale_ids(duckdb_warehouse) == ["T1", "T3", "T4"]


def test_unclosed_quote_in_a_longer_file_loses_no_line(duckdb_warehouse: Warehouse) -> None:
    case = CASES / "csv-unclosed-quote"
    _, sales = _load(duckdb_warehouse, case / "clients.csv", case / "sales_400.csv")

    lines = (case / "sales_400.csv").read_text().splitlines()
    assert _counts(sales) == (len(lines) - 1, len(lines) - 2, 1, 0) == (399, 398, 1, 0)
    [bad] = rejected_rows(duckdb_warehouse, "sales")
    assert (bad["line_number"], bad["raw_record"]) == (3, lines[2])
    assert len(_sale_ids(duckdb_warehouse)) == 398 and "T399" in _sale_ids(duckdb_warehouse)


def test_huge_price_is_quarantined_at_load_and_features_build(duckdb_warehouse: Warehouse) -> None:
    case = CASES / "csv-huge-price"
    clients, sales = _load(duckdb_warehouse, case / "clients.csv", case / "sales.csv")

    assert (_counts(clients), _counts(sales)) == ((1, 1, 0, 0), (1, 0, 1, 0))
    [bad] = rejected_rows(duckdb_warehouse, "sales")
    assert bad["line_number"] == 2
    assert bad["reason"].startswith("unit_price: 1e33 is above the supported maximum 1,000,000,000,000")
    assert build_feature_store(duckdb_warehouse, CONFIG) == 1


def test_utf8_byte_order_mark_is_skipped(duckdb_warehouse: Warehouse) -> None:
    case = CASES / "csv-utf8-bom"
    assert (case / "clients.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    clients, sales = _load(duckdb_warehouse, case / "clients.csv", case / "sales.csv")

    assert (_counts(clients), _counts(sales)) == ((1, 1, 0, 0), (1, 1, 0, 0))
    assert clients.ignored_columns == ()
    assert duckdb_warehouse.table("clients").client_id.to_pyarrow().to_pylist() == ["K001"]
    assert build_feature_store(duckdb_warehouse, CONFIG) == 1
