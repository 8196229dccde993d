"""Numbers and ranges: whole numbers as common tools write them are accepted; values outside what the warehouse types
hold, or that would overflow a client's money total in the features, are quarantined naming the column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig
from clientml_de.contract import MONEY_LIMITS
from clientml_de.features import build_feature_store
from clientml_de.load import load_source
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, GOOD_CLIENTS, SALES_HEADER, csv_bytes, rejected_rows, write_bytes

CONFIG = DatasetConfig()
MAX_QUANTITY, MAX_PRICE = (f"{MONEY_LIMITS[c]:.0f}" for c in ("quantity", "unit_price"))
BIGINT = "(-9223372036854775808 to 9223372036854775807)"
MONEY = "(so that a client's total of quantity x unit_price fits DECIMAL(38, 6))"


def _sale(quantity: str = "1", unit_price: str = "1", sale_id: str = "s1", client: str = "c1") -> list[str]:
    return [sale_id, client, "2023-01-01", "home", quantity, unit_price, "", "online"]


def _load(tmp_path: Path, warehouse: Warehouse, clients: list[list[str]], sales: list[list[str]]) -> None:
    path = write_bytes(tmp_path / "clients.csv", csv_bytes(CLIENT_HEADER, clients))
    load_source(str(path), CONFIG.clients_spec(), warehouse)
    path = write_bytes(tmp_path / "sales.csv", csv_bytes(SALES_HEADER, sales))
    load_source(str(path), CONFIG.sales_spec(), warehouse)


def _outcome(warehouse: Warehouse, table: str, column: str) -> object:
    """The loaded value of the one row of ``table``, or its quarantine reason."""
    rejected = rejected_rows(warehouse, table)
    if rejected:
        return rejected[0]["reason"]
    [value] = warehouse.table(table)[column].to_pyarrow().to_pylist()
    return value


QUANTITIES = [
    ("2", 2), ("+3", 3), ("2.0", 2), ("2.", 2), ("1e3", 1000), ("1E2", 100), ("4.00e1", 40), (" 7 ", 7),
    ("2.5", "quantity: 2.5 is not a whole number"),
    ("1e-1", "quantity: 1e-1 is not a whole number"),
    ("two", "quantity: two is not a whole number"),
    ("1_000", "quantity: 1_000 is not a whole number"),
    ("0x10", "quantity: 0x10 is not a whole number"),
    ("inf", "quantity: inf is not a whole number"),
    ("nan", "quantity: nan is not a whole number"),
    ("9223372036854775808", f"quantity: 9223372036854775808 is outside the range of whole numbers {BIGINT}"),
    ("1e30", f"quantity: 1e30 is outside the range of whole numbers {BIGINT}"),
    ("1e400", f"quantity: 1e400 is outside the range of whole numbers {BIGINT}"),
    ("1e16", "quantity: 1e16 is too large to read exactly in this form (over 9007199254740992): write it in digits"),
    (MAX_QUANTITY, int(MONEY_LIMITS["quantity"])),
    ("1000000001", f"quantity: 1000000001 is above the supported maximum 1,000,000,000 {MONEY}"),
    ("1.5e9", f"quantity: 1.5e9 is above the supported maximum 1,000,000,000 {MONEY}"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), QUANTITIES, ids=[q[0] for q in QUANTITIES])
def test_quantity(tmp_path: Path, duckdb_warehouse: Warehouse, text: str, expected: object) -> None:
    _load(tmp_path, duckdb_warehouse, GOOD_CLIENTS, [_sale(quantity=text)])
    assert _outcome(duckdb_warehouse, "sales", "quantity") == expected


PRICES = [
    ("0", 0.0), ("12.5", 12.5), ("1e3", 1000.0), (MAX_PRICE, MONEY_LIMITS["unit_price"]),
    ("1e33", f"unit_price: 1e33 is above the supported maximum 1,000,000,000,000 {MONEY}"),
    ("1000000000000.01", f"unit_price: 1000000000000.01 is above the supported maximum 1,000,000,000,000 {MONEY}"),
    ("1e400", "unit_price: 1e400 is outside the range of finite numbers (about -1.8e308 to 1.8e308)"),
    ("-1e400", "unit_price: -1e400 is outside the range of finite numbers (about -1.8e308 to 1.8e308)"),
    ("inf", "unit_price: not a finite number: 'inf'"),
    ("NaN", "unit_price: not a finite number: 'NaN'"),
    ("1_0", "unit_price: not a finite number: '1_0'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), PRICES, ids=[p[0] for p in PRICES])
def test_unit_price(tmp_path: Path, duckdb_warehouse: Warehouse, text: str, expected: object) -> None:
    _load(tmp_path, duckdb_warehouse, GOOD_CLIENTS, [_sale(unit_price=text)])
    assert _outcome(duckdb_warehouse, "sales", "unit_price") == expected


def _client(label: str = "", income: str = "") -> list[str]:
    return ["c1", "2020-01-15", "", "", "", "", "", income, label, ""]


LABELS = [
    ("1", 1), ("0", 0), ("1.0", 1), ("0.0", 0), ("1e0", 1), ("", None),
    ("2.0", "label: must be 0, 1 or empty: '2.0'"),
    ("0.5", "label: must be 0, 1 or empty: '0.5'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), LABELS, ids=[f"label-{v[0] or 'empty'}" for v in LABELS])
def test_label(tmp_path: Path, duckdb_warehouse: Warehouse, text: str, expected: object) -> None:
    _load(tmp_path, duckdb_warehouse, [_client(label=text)], [])
    assert _outcome(duckdb_warehouse, "clients", "label") == expected


def test_income_beyond_a_double_is_quarantined(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    _load(tmp_path, duckdb_warehouse, [_client(income="2e308"), ["c2", *_client(income="1e300")[1:]]], [])
    [bad] = rejected_rows(duckdb_warehouse, "clients")
    assert bad["reason"] == "annual_income: 2e308 is outside the range of finite numbers (about -1.8e308 to 1.8e308)"
    assert duckdb_warehouse.table("clients").annual_income.to_pyarrow().to_pylist() == [1e300]


def _extreme_build(tmp_path: Path, warehouse: Warehouse) -> dict[str, object]:
    """Two clients whose every sale is at the supported maxima: the money sums must not overflow."""
    sales = [_sale(MAX_QUANTITY, MAX_PRICE, f"s{n}", f"c{1 + n % 2}") for n in range(40)]
    _load(tmp_path, warehouse, GOOD_CLIENTS[:2], sales)
    assert warehouse.table("sales").count().to_pyarrow().as_py() == 40
    build_feature_store(warehouse, CONFIG, created_at=datetime(2025, 1, 1))
    frame = warehouse.table("feature_store").to_pandas().set_index("client_id")
    return {"spend_total": frame.spend_total.to_dict(), "avg": frame.avg_sale_value.to_dict()}


def test_money_sums_at_the_supported_maxima_fit(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    result = _extreme_build(tmp_path, duckdb_warehouse)
    assert result == {"spend_total": {"c1": 20 * 1e21, "c2": 20 * 1e21}, "avg": {"c1": 1e21, "c2": 1e21}}


@pytest.mark.spark
def test_money_sums_at_the_supported_maxima_fit_on_postgres_and_spark(tmp_path: Path, postgres_url: str) -> None:
    for url in (postgres_url, f"spark:///{tmp_path / 'spark'}"):
        warehouse = connect(url)
        try:
            result = _extreme_build(tmp_path / url.split(":")[0], warehouse)
        finally:
            warehouse.close()
        assert result == {"spend_total": {"c1": 2e22, "c2": 2e22}, "avg": {"c1": 1e21, "c2": 1e21}}, url


def test_year_zero_is_not_a_date(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    """DATE and TIMESTAMP hold years 0001-9999 on every engine; DuckDB alone would read 0000 as 1 BC."""
    clients = [
        ["c1", "0000-01-01", "", "", "", "", "", "", "", ""],
        ["c2", "0001-01-01", "", "", "", "", "", "", "", ""],
    ]
    _load(tmp_path, duckdb_warehouse, clients, [[*_sale(client="c2")[:2], "0000-12-31T10:00:00", *_sale()[3:]]])
    [client] = rejected_rows(duckdb_warehouse, "clients")
    assert client["reason"] == "signup_date: not a calendar date in YYYY-MM-DD form: '0000-01-01'"
    [sale] = rejected_rows(duckdb_warehouse, "sales")
    assert sale["reason"] == "sale_date: not an ISO 8601 date or timestamp: '0000-12-31T10:00:00'"
