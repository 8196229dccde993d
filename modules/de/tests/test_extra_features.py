"""Every type a dataset config can declare for an extra client column keeps its meaning in feature_store
(and a rebuild after a feature's type changed still works)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig, ExtraColumn
from clientml_de.contract import EXTRA_COLUMN_TYPES, FEATURE_STORE, ColumnType
from clientml_de.features import EXTRA_FEATURE_TYPES, FeatureBuildError, build_feature_store, extra_feature
from clientml_de.load import load_source
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, write_csv

EXTRAS = DatasetConfig(
    extra_columns=(
        ExtraColumn(name="tier", type=ColumnType.CATEGORY),
        ExtraColumn(name="score", type=ColumnType.NUMBER),
        ExtraColumn(name="visits", type=ColumnType.INTEGER),
        ExtraColumn(name="last_visit", type=ColumnType.DATE),
        ExtraColumn(name="is_vip", type=ColumnType.BOOLEAN),
    )
)
# c1..c3 of GOOD_CLIENTS; c3 has every extra empty. The default as-of date is 2023-12-21.
EXTRA_VALUES = [["gold", "0.5", "12", "2023-12-01", "Yes"], ["silver", "-2", "0", "2024-01-01", "no"], [""] * 5]
# The feature each extra becomes and its warehouse type (ibis): the declared meaning, kept.
EXPECTED_TYPES = {
    "tier": "string",
    "score": "float64",
    "visits": "int64",
    "days_since_last_visit": "int64",
    "is_vip": "boolean",
}


def _build(warehouse: Warehouse, tmp_path: Path, config: DatasetConfig, values: list[list[str]]) -> None:
    names = [c.name for c in config.extra_columns]
    rows = [[*client, *extra] for client, extra in zip(GOOD_CLIENTS, values, strict=True)]
    clients = write_csv(tmp_path / "clients.csv", [*CLIENT_HEADER, *names], rows)
    sales = write_csv(tmp_path / "sales.csv", SALES_HEADER, GOOD_SALES)
    load_source(str(clients), config.clients_spec(), warehouse)
    load_source(str(sales), config.sales_spec(), warehouse)
    build_feature_store(warehouse, config, created_at=datetime(2025, 1, 1))


def _check_extras(warehouse: Warehouse) -> None:
    table = warehouse.table(FEATURE_STORE)
    schema = table.schema()
    assert {name: str(schema[name]).removeprefix("!") for name in EXPECTED_TYPES} == EXPECTED_TYPES
    rows = table.order_by("client_id").to_pyarrow().to_pylist()
    got = [{name: row[name] for name in EXPECTED_TYPES} for row in rows]
    assert got[0] == {"tier": "gold", "score": 0.5, "visits": 12, "days_since_last_visit": 20, "is_vip": True}
    # c2's as-of date is its observation date, 2023-06-01: a later date counts negative.
    days = (date(2023, 6, 1) - date(2024, 1, 1)).days
    assert got[1] == {"tier": "silver", "score": -2.0, "visits": 0, "days_since_last_visit": days, "is_vip": False}
    assert got[2] == dict.fromkeys(EXPECTED_TYPES)


def test_every_declared_type_keeps_its_meaning_in_feature_store(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    _build(duckdb_warehouse, tmp_path, EXTRAS, EXTRA_VALUES)
    _check_extras(duckdb_warehouse)


@pytest.mark.postgres
def test_every_declared_type_keeps_its_meaning_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    warehouse = connect(postgres_url)
    try:
        _build(warehouse, tmp_path, EXTRAS, EXTRA_VALUES)
        _check_extras(warehouse)
    finally:
        warehouse.close()


def test_every_extra_column_type_has_a_feature_type() -> None:
    assert set(EXTRA_FEATURE_TYPES) == set(EXTRA_COLUMN_TYPES)
    with pytest.raises(ValueError, match="cannot have type"):
        extra_feature("x", ColumnType.TIMESTAMP, None, None)  # type: ignore[arg-type]


def test_rebuild_over_a_feature_store_whose_types_changed(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    _build(duckdb_warehouse, tmp_path, EXTRAS, EXTRA_VALUES)
    raw = duckdb_warehouse.scratch()
    # As a feature_store of the previous feature code left it: the boolean stored as 0/1.
    raw.execute("ALTER TABLE feature_store ALTER COLUMN is_vip TYPE BIGINT USING CAST(is_vip AS BIGINT)")
    build_feature_store(duckdb_warehouse, EXTRAS, created_at=datetime(2030, 1, 1))
    table = duckdb_warehouse.table(FEATURE_STORE)
    assert table.schema()["is_vip"].is_boolean()
    assert set(table.created_at.to_pyarrow().to_pylist()) == {datetime(2030, 1, 1)}


@pytest.mark.parametrize(
    ("extra", "feature"),
    [
        ("mean_gap_days", "mean_gap_days"),
        ("last_category_home", "days_since_last_category_home"),
        ("Age_Years", "Age_Years"),
    ],
)
def test_an_extra_column_may_not_take_a_computed_feature_s_name(
    tmp_path: Path, duckdb_warehouse: Warehouse, extra: str, feature: str
) -> None:
    kind = "date" if feature.startswith("days_since_") else "number"
    path = tmp_path / "dataset.yaml"
    path.write_text(
        f"name: clash\nextra_columns:\n  - {{name: score, type: number}}\n  - {{name: {extra}, type: {kind}}}\n"
    )
    config = DatasetConfig.load(path)
    with pytest.raises(FeatureBuildError) as caught:
        _build(duckdb_warehouse, tmp_path, config, [["1", "2023-01-01"], ["2", ""], ["", ""]])
    assert str(caught.value) == (
        f"dataset config {path}, line 4: extra column {extra!r} becomes the feature {feature!r}, "
        "which feature_store computes from the sales: rename the column"
    )
