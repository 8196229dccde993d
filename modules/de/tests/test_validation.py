"""Every rule of the data contract, broken by one row: quarantined with a reason naming the column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig, ExtraColumn
from clientml_de.contract import ColumnType
from clientml_de.load import LoadSummary, load_source
from clientml_de.warehouse import Warehouse
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, write_csv


def _load_both(
    tmp_path: Path,
    warehouse: Warehouse,
    clients: list[list[str]],
    sales: list[list[str]],
    *,
    config: DatasetConfig | None = None,
    client_header: list[str] = CLIENT_HEADER,
) -> tuple[LoadSummary, LoadSummary]:
    config = config or DatasetConfig()
    clients_path = write_csv(tmp_path / "clients.csv", client_header, clients)
    sales_path = write_csv(tmp_path / "sales.csv", SALES_HEADER, sales)
    return (
        load_source(str(clients_path), config.clients_spec(), warehouse),
        load_source(str(sales_path), config.sales_spec(), warehouse),
    )


def _rejected(warehouse: Warehouse, table: str) -> list[dict[str, object]]:
    frame = warehouse.table("rejected_rows").to_pandas()
    return frame[frame.source_table == table].sort_values("line_number").to_dict("records")


def _reconciles(summary: LoadSummary) -> bool:
    return summary.rows_read == summary.rows_loaded + summary.rows_rejected + summary.duplicates


CLIENT_RULES = [
    ("empty client_id", ["", "2020-01-01", "", "", "", "", "", "", "", ""], "client_id: required"),
    ("missing signup_date", ["c9", "", "", "", "", "", "", "", "", ""], "signup_date: required"),
    ("impossible signup_date", ["c9", "2023-02-30", "", "", "", "", "", "", "", ""], "signup_date: not a calendar date"),
    ("slashed signup_date", ["c9", "2023/01/05", "", "", "", "", "", "", "", ""], "signup_date: not a calendar date"),
    ("text birth_date", ["c9", "2020-01-01", "yesterday", "", "", "", "", "", "", ""], "birth_date: not a calendar"),
    ("negative income", ["c9", "2020-01-01", "", "", "", "", "", "-5", "", ""], "annual_income: must be >= 0"),
    ("text income", ["c9", "2020-01-01", "", "", "", "", "", "lots", "", ""], "annual_income: not a finite number"),
    ("infinite income", ["c9", "2020-01-01", "", "", "", "", "", "inf", "", ""], "annual_income: not a finite number"),
    ("label 2", ["c9", "2020-01-01", "", "", "", "", "", "", "2", ""], "label: must be 0, 1 or empty"),
    ("label yes", ["c9", "2020-01-01", "", "", "", "", "", "", "yes", ""], "label: must be 0, 1 or empty"),
    ("bad observation_date", ["c9", "2020-01-01", "", "", "", "", "", "", "", "2024-13-01"], "observation_date:"),
    ("duplicate client_id", ["c1", "2020-02-02", "", "", "", "", "", "", "", ""], "client_id: duplicate value"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "row", "reason"), CLIENT_RULES, ids=[c[0] for c in CLIENT_RULES])
def test_client_rule_quarantines_the_row(
    tmp_path: Path, duckdb_warehouse: Warehouse, case: str, row: list[str], reason: str
) -> None:
    clients, _ = _load_both(tmp_path, duckdb_warehouse, [*GOOD_CLIENTS, row], GOOD_SALES)

    assert (clients.rows_read, clients.rows_loaded, clients.rows_rejected) == (4, 3, 1), case
    assert _reconciles(clients)
    [rejected] = _rejected(duckdb_warehouse, "clients")
    assert reason in str(rejected["reason"])
    assert rejected["line_number"] == 5
    assert json.loads(str(rejected["raw_record"])) == {
        name: (value or None) for name, value in zip(CLIENT_HEADER, row, strict=True)
    }
    loaded = set(duckdb_warehouse.table("clients").client_id.to_pyarrow().to_pylist())
    assert loaded == {"c1", "c2", "c3"}


SALES_RULES = [
    ("empty sale_id", ["", "c1", "2023-01-01", "home", "1", "1", "", ""], "sale_id: required"),
    ("duplicate sale_id", ["s1", "c2", "2023-01-02", "home", "1", "1", "", ""], "sale_id: duplicate value"),
    ("empty client_id", ["s9", "", "2023-01-01", "home", "1", "1", "", ""], "client_id: required"),
    ("unknown client", ["s9", "nobody", "2023-01-01", "home", "1", "1", "", ""], "client_id: unknown"),
    ("missing sale_date", ["s9", "c1", "", "home", "1", "1", "", ""], "sale_date: required"),
    ("bad sale_date", ["s9", "c1", "2023-02-29", "home", "1", "1", "", ""], "sale_date: not an ISO 8601"),
    ("text sale_date", ["s9", "c1", "last week", "home", "1", "1", "", ""], "sale_date: not an ISO 8601"),
    ("empty category", ["s9", "c1", "2023-01-01", "", "1", "1", "", ""], "product_category: required"),
    ("zero quantity", ["s9", "c1", "2023-01-01", "home", "0", "1", "", ""], "quantity: must be >= 1"),
    ("negative quantity", ["s9", "c1", "2023-01-01", "home", "-2", "1", "", ""], "quantity: must be >= 1"),
    ("fractional quantity", ["s9", "c1", "2023-01-01", "home", "1.5", "1", "", ""], "quantity: 1.5 is not a whole number"),
    ("missing quantity", ["s9", "c1", "2023-01-01", "home", "", "1", "", ""], "quantity: required"),
    ("negative price", ["s9", "c1", "2023-01-01", "home", "1", "-0.01", "", ""], "unit_price: must be >= 0"),
    ("text price", ["s9", "c1", "2023-01-01", "home", "1", "free", "", ""], "unit_price: not a finite number"),
    ("missing price", ["s9", "c1", "2023-01-01", "home", "1", "", "", ""], "unit_price: required"),
    ("discount above 1", ["s9", "c1", "2023-01-01", "home", "1", "1", "1.5", ""], "discount: must be <= 1"),
    ("negative discount", ["s9", "c1", "2023-01-01", "home", "1", "1", "-0.1", ""], "discount: must be >= 0"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "row", "reason"), SALES_RULES, ids=[c[0] for c in SALES_RULES])
def test_sales_rule_quarantines_the_row(
    tmp_path: Path, duckdb_warehouse: Warehouse, case: str, row: list[str], reason: str
) -> None:
    _, sales = _load_both(tmp_path, duckdb_warehouse, GOOD_CLIENTS, [*GOOD_SALES, row])

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected, sales.duplicates) == (6, 5, 1, 0), case
    [rejected] = _rejected(duckdb_warehouse, "sales")
    assert reason in str(rejected["reason"])
    assert rejected["line_number"] == 7


def test_several_broken_rules_are_all_named(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    row = ["s9", "c1", "2023-01-01", "home", "0", "-1", "2", ""]
    _load_both(tmp_path, duckdb_warehouse, GOOD_CLIENTS, [*GOOD_SALES, row])
    [rejected] = _rejected(duckdb_warehouse, "sales")
    assert all(f"{column}:" in str(rejected["reason"]) for column in ("quantity", "unit_price", "discount"))


def test_exact_duplicates_load_once_and_are_counted(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    clients, sales = _load_both(
        tmp_path,
        duckdb_warehouse,
        [*GOOD_CLIENTS, GOOD_CLIENTS[0]],
        [*GOOD_SALES, GOOD_SALES[1], GOOD_SALES[1]],
    )
    assert (clients.rows_read, clients.rows_loaded, clients.duplicates, clients.rows_rejected) == (4, 3, 1, 0)
    assert (sales.rows_read, sales.rows_loaded, sales.duplicates, sales.rows_rejected) == (7, 5, 2, 0)
    assert duckdb_warehouse.table("sales").count().to_pyarrow().as_py() == 5


def test_row_with_wrong_field_count_is_quarantined_as_read(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    path = tmp_path / "sales.csv"
    write_csv(path, SALES_HEADER, GOOD_SALES)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("s8,c1,2023-01-01,home,1,1,,online,EXTRA\r\n")
        handle.write("s9,c1,2023-01-01\r\n")
        handle.write("s10,c3,2023-03-03,home,1,2.5,,online\r\n")
    clients_path = write_csv(tmp_path / "clients.csv", CLIENT_HEADER, GOOD_CLIENTS)
    config = DatasetConfig()
    load_source(str(clients_path), config.clients_spec(), duckdb_warehouse)
    sales = load_source(str(path), config.sales_spec(), duckdb_warehouse)

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected) == (8, 6, 2)
    rejected = _rejected(duckdb_warehouse, "sales")
    assert [(r["line_number"], r["raw_record"]) for r in rejected] == [
        (7, "s8,c1,2023-01-01,home,1,1,,online,EXTRA"),
        (8, "s9,c1,2023-01-01"),
    ]
    assert all("fields than the header" in str(r["reason"]) for r in rejected)
    assert "s10" in duckdb_warehouse.table("sales").sale_id.to_pyarrow().to_pylist()


def test_declared_extra_columns_are_typed_and_validated(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    config = DatasetConfig(
        extra_columns=(
            ExtraColumn(name="tenure", type=ColumnType.INTEGER, min_value=0),
            ExtraColumn(name="vip", type=ColumnType.BOOLEAN),
        )
    )
    header = [*CLIENT_HEADER, "tenure", "vip", "undeclared"]
    rows = [
        [*GOOD_CLIENTS[0], "12", "Yes", "x"],
        [*GOOD_CLIENTS[1], "-1", "No", "y"],
        [*GOOD_CLIENTS[2], "3", "maybe", ""],
    ]
    clients, _ = _load_both(tmp_path, duckdb_warehouse, rows, GOOD_SALES[:3], config=config, client_header=header)

    assert clients.ignored_columns == ("undeclared",)
    assert (clients.rows_loaded, clients.rows_rejected) == (1, 2)
    reasons = [str(r["reason"]) for r in _rejected(duckdb_warehouse, "clients")]
    assert reasons[0].startswith("tenure: must be >= 0") and reasons[1].startswith("vip: not a boolean")
    loaded = duckdb_warehouse.table("clients").to_pandas()
    assert loaded.loc[0, "tenure"] == 12 and bool(loaded.loc[0, "vip"]) is True


def test_timestamps_with_offsets_are_stored_in_utc(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    rows = [["s1", "c1", "2023-12-01T23:30:00-02:00", "home", "1", "1", "", ""]]
    _load_both(tmp_path, duckdb_warehouse, GOOD_CLIENTS, rows)
    [stamp] = duckdb_warehouse.table("sales").sale_date.to_pyarrow().to_pylist()
    assert stamp.isoformat() == "2023-12-02T01:30:00"


def test_generated_bad_rows_reconcile(generated_small: Path, duckdb_warehouse: Warehouse) -> None:
    config = DatasetConfig()
    clients = load_source(str(generated_small / "clients.csv"), config.clients_spec(), duckdb_warehouse)
    sales = load_source(str(generated_small / "sales.csv"), config.sales_spec(), duckdb_warehouse)
    for summary in (clients, sales):
        assert _reconciles(summary)
        assert summary.rows_rejected > 0
    assert sales.duplicates > 0
    rejected = duckdb_warehouse.table("rejected_rows").count().to_pyarrow().as_py()
    assert rejected == clients.rows_rejected + sales.rows_rejected


def test_rows_read_back_by_number_compare_exactly_whatever_their_bytes(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    """Rows whose key repeats are read back from the file by their byte offsets (after a quarantined line,
    across quoted line breaks, at the end of a file without a final line end) and compared field by field."""
    rows = (
        b's1,c1,2023-12-01,"home\nand garden",2,10.50,0.1,online\r\n'  # lines 2-3
        b"s2,c2,2023-05-01,home,1,100,,store\n"  # line 4
        b"s3,c1,2023-05-02\n"  # line 5, quarantined: the records after it start earlier in the copy read
        b"s4,c1,2023-05-03,home,1,5,,store\n"  # line 6
        b"s2, c2,2023-05-01,home,1,100,,store\n"  # line 7: key s2 again, a field differs by a space: a conflict
        b"s5,c1,2023-05-04,home,1,5,,store\n"  # line 8
        b"s1,c3,2023-12-01,home,1,1,,online\n"  # line 9: key s1 again, another row: a conflict
        b's1,c1,2023-12-01,"home\nand garden",2,10.50,0.1,online'  # lines 10-11: s1 exactly, no line end
    )
    path = tmp_path / "sales.csv"
    path.write_bytes((",".join(SALES_HEADER) + "\n").encode() + rows)
    clients = write_csv(tmp_path / "clients.csv", CLIENT_HEADER, GOOD_CLIENTS)
    load_source(str(clients), DatasetConfig().clients_spec(), duckdb_warehouse)

    sales = load_source(str(path), DatasetConfig().sales_spec(), duckdb_warehouse)

    assert (sales.rows_read, sales.rows_loaded, sales.rows_rejected, sales.duplicates) == (8, 4, 3, 1)
    rejected = _rejected(duckdb_warehouse, "sales")
    assert [(r["line_number"], r["reason"][:24]) for r in rejected] == [
        (5, "wrong number of fields: "),
        (7, "sale_id: duplicate value"),
        (9, "sale_id: duplicate value"),
    ]
    assert [r["reason"][-6:] for r in rejected[1:]] == ["line 4", "line 2"]
    assert json.loads(rejected[1]["raw_record"])["client_id"] == " c2"
    assert json.loads(rejected[2]["raw_record"])["client_id"] == "c3"
    loaded = duckdb_warehouse.table("sales").to_pandas().set_index("sale_id")
    assert sorted(loaded.index) == ["s1", "s2", "s4", "s5"]
    assert loaded.loc["s1", "product_category"] == "home\nand garden"


def test_values_are_trimmed_of_unicode_spaces_only(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    """What DuckDB's ``trim`` removes (the space, U+00A0, ...), wherever the value has them; tabs stay."""
    rows = [
        ["s9", " c1 ", "2023-01-01", "\u00a0home\u3000", "1", " 2.5", "   ", "\tweb"],
        ["s10", "c1", "2023-01-02", "caf\u00e9 ", "1", "2", "", "ok"],
    ]
    _load_both(tmp_path, duckdb_warehouse, GOOD_CLIENTS, [*GOOD_SALES, *rows])
    loaded = duckdb_warehouse.table("sales").to_pandas().set_index("sale_id")
    assert loaded.loc["s9", ["client_id", "product_category", "unit_price", "discount", "sales_channel"]].tolist() == [
        "c1",
        "home",
        2.5,
        0.0,
        "\tweb",
    ]
    assert loaded.loc["s10", "product_category"] == "caf\u00e9"
