"""Derived features declared in the dataset config: their values (division by zero, the functions' domains,
nulls) on DuckDB and PostgreSQL, and a build that fails naming the config file, the line and the derived
feature when an expression reads a column it cannot. Spark's values: the parity test in test_features.py."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig
from clientml_de.contract import FEATURE_STORE
from clientml_de.features import DerivedFeatureError, build_feature_store
from clientml_de.load import load_source
from clientml_de.tasks import build_features
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, write_csv

EXTRAS = """\
extra_columns:
  - {name: tier, type: category}
  - {name: score, type: number}
  - {name: visits, type: integer}
  - {name: is_vip, type: boolean}
"""
DERIVED = """\
derived_features:
  - {name: per_visit, expression: score / visits}
  - {name: mean_sale, expression: spend_total / n_sales_total}
  - {name: mixed, expression: -score + 2 * visits - (tenure_days - tenure_days) / 4}
  - {name: log_score, expression: log1p(score)}
  - {name: root_score, expression: sqrt(score)}
  - {name: abs_score, expression: abs(score)}
  - {name: doubled, expression: per_visit * 2}
  - {name: older, expression: age_years + 1}
"""
# c1..c3 of GOOD_CLIENTS; c3 has every extra empty.
EXTRA_VALUES = [["gold", "0.5", "12", "yes"], ["silver", "-2", "0", "no"], [""] * 4]
EXPECTED = {
    "per_visit": [0.5 / 12, None, None],  # c2: 0 visits -> null, not inf
    "mean_sale": [(2 * 10.5 * 0.9 + 3.33 + 3 * 9.99 * 0.5) / 3, 100.0, None],  # c3: no sales, 0 / 0
    "mixed": [-0.5 + 24, 2.0, None],
    "log_score": [math.log(1.5), None, None],  # c2: log1p(-2) has no real value
    "root_score": [math.sqrt(0.5), None, None],  # c2: sqrt(-2) neither
    "abs_score": [0.5, 2.0, None],
    "doubled": [1 / 12, None, None],
    "older": [None, None, None],  # filled below from age_years, null where birth_date is
}


def _config(tmp_path: Path, derived: str = DERIVED) -> Path:
    path = tmp_path / "dataset.yaml"
    path.write_text(f"name: derived\n{EXTRAS}{derived}", encoding="utf-8")
    return path


def _load(warehouse: Warehouse, tmp_path: Path, config: DatasetConfig) -> None:
    names = [c.name for c in config.extra_columns]
    rows = [[*client, *extra] for client, extra in zip(GOOD_CLIENTS, EXTRA_VALUES, strict=True)]
    load_source(
        str(write_csv(tmp_path / "clients.csv", [*CLIENT_HEADER, *names], rows)), config.clients_spec(), warehouse
    )
    load_source(str(write_csv(tmp_path / "sales.csv", SALES_HEADER, GOOD_SALES)), config.sales_spec(), warehouse)


def _check_values(warehouse: Warehouse, tmp_path: Path) -> None:
    config = DatasetConfig.load(_config(tmp_path))
    _load(warehouse, tmp_path, config)
    build_feature_store(warehouse, config, created_at=datetime(2025, 1, 1))
    table = warehouse.table(FEATURE_STORE)
    assert all(table.schema()[name].is_float64() for name in EXPECTED)
    rows = table.order_by("client_id").to_pyarrow().to_pylist()
    expected = dict(EXPECTED, older=[None if r["age_years"] is None else r["age_years"] + 1 for r in rows])
    assert expected["older"][0] is not None  # c1 has a birth date
    got = {name: [row[name] for row in rows] for name in expected}
    assert got == {
        name: [None if v is None else pytest.approx(v, rel=1e-12) for v in vs] for name, vs in expected.items()
    }
    assert list(table.columns)[-len(EXPECTED) - 2 :] == [*EXPECTED, "feature_set_version", "created_at"]


def test_derived_features_on_duckdb(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    _check_values(duckdb_warehouse, tmp_path)


@pytest.mark.postgres
def test_derived_features_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    warehouse = connect(postgres_url)
    try:
        _check_values(warehouse, tmp_path)
    finally:
        warehouse.close()


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("spend_totl / 2", "unknown column 'spend_totl' (did you mean 'spend_total'"),
        ("tier * 2", "column 'tier' is string, not a number"),
        ("is_vip + 1", "column 'is_vip' is boolean, not a number"),
        ("segment / 2", "column 'segment' is string, not a number"),
        ("label * 1", "column 'label' cannot be used: the key, the label and the bookkeeping columns are not features"),
        ("later / 2", "unknown column 'later'"),  # declared after it
    ],
)
def test_an_expression_reading_a_column_it_cannot_fails_the_build_naming_the_line(
    tmp_path: Path, duckdb_warehouse: Warehouse, expression: str, problem: str
) -> None:
    path = _config(
        tmp_path,
        f"derived_features:\n  - {{name: ok, expression: score * 2}}\n  - {{name: bad, expression: '{expression}'}}\n  - {{name: later, expression: score}}\n",
    )
    config = DatasetConfig.load(path)
    _load(duckdb_warehouse, tmp_path, config)
    with pytest.raises(DerivedFeatureError) as caught:
        build_feature_store(duckdb_warehouse, config)
    assert str(caught.value).startswith(f"dataset config {path}, line 9: derived feature 'bad': {problem}")
    assert not duckdb_warehouse.has_table(FEATURE_STORE)


@pytest.mark.parametrize("name", ["n_sales_total", "N_Sales_Total", "tier", "client_id", "created_at"])
def test_a_derived_feature_may_not_take_a_column_s_name(tmp_path: Path, duckdb_warehouse: Warehouse, name: str) -> None:
    path = _config(tmp_path, f"derived_features:\n  - {{name: {name}, expression: score * 2}}\n")
    config = DatasetConfig.load(path)
    _load(duckdb_warehouse, tmp_path, config)
    with pytest.raises(
        DerivedFeatureError, match=rf"line 8: derived feature '{name}': the name is already a feature_store column"
    ):
        build_feature_store(duckdb_warehouse, config)


def test_the_process_data_task_fails_naming_the_config_file_line_and_feature(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    path = _config(tmp_path, "derived_features:\n  - name: share\n    expression: spend_365d / spend_totals\n")
    _load(duckdb_warehouse, tmp_path, DatasetConfig.load(path))
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    duckdb_warehouse.close()
    with pytest.raises(DerivedFeatureError) as caught:
        build_features(url, str(path))
    assert str(caught.value).startswith(
        f"dataset config {path}, line 8: derived feature 'share': unknown column 'spend_totals'"
    )
