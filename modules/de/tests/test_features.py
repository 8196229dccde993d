"""feature_store: point-in-time correctness, idempotency, atomic replacement, and the same rows on
DuckDB, PostgreSQL and Spark."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import ibis.expr.datatypes as dt
import pandas as pd
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.contract import FEATURE_STORE
from clientml_de.features import build_feature_store, feature_table, plan
from clientml_de.load import load_source
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, SALES_HEADER, by_client, comparable, write_csv

CONFIG = DatasetConfig()
# Every family of features, and derived features using every construct, on each engine.
PARITY_CONFIG = DatasetConfig.model_validate(
    {
        "derived_features": [
            {"name": "spend_share_90d", "expression": "spend_90d / spend_365d"},
            {"name": "income_per_sale", "expression": "annual_income / (n_sales_total - 3)"},
            {"name": "log_spend_trend", "expression": "log1p(spend_90d) - log1p(spend_prev_90d)"},
            {"name": "gap_shape", "expression": "sqrt(abs(n_sales_diff_90d)) * -mean_gap_days + 0.5"},
            {"name": "age_months", "expression": "age_years * 12"},
            {
                "name": "tenure_vs_activity",
                "expression": "tenure_days / days_since_first_sale - log1p(-spend_share_90d)",
            },
        ]
    }
)


def _build(warehouse: Warehouse, clients: Path, sales: Path, config: DatasetConfig = CONFIG) -> pd.DataFrame:
    load_source(str(clients), config.clients_spec(), warehouse)
    load_source(str(sales), config.sales_spec(), warehouse)
    build_feature_store(warehouse, config, created_at=datetime(2025, 1, 1))
    return _features(warehouse)


def _loose(dtype: dt.DataType) -> dt.DataType:
    return dtype.copy(nullable=True)


def _features(warehouse: Warehouse) -> pd.DataFrame:
    return by_client(warehouse.table(FEATURE_STORE).to_pandas())


def test_activity_on_or_after_the_observation_date_never_counts(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    clients = write_csv(
        tmp_path / "clients.csv",
        CLIENT_HEADER,
        [
            ["a", "2020-01-01", "", "", "", "", "", "", "1", "2023-06-01"],
            ["b", "2020-01-01", "", "", "", "", "", "", "0", ""],
        ],
    )
    before = [
        ["s1", "a", "2023-05-31T23:59:59", "home", "1", "10", "", "web"],
        ["s2", "a", "2023-03-01", "home", "2", "5", "", "web"],
        ["s3", "b", "2023-09-01", "home", "1", "1", "", "web"],
    ]
    after = [
        ["s4", "a", "2023-06-01", "toys", "100", "1000", "", "store"],  # on the observation date
        ["s5", "a", "2023-12-24T08:00:00", "toys", "7", "70", "0.5", "store"],
    ]
    sales_without = write_csv(tmp_path / "sales_without.csv", SALES_HEADER, before)
    sales_with = write_csv(tmp_path / "sales_with.csv", SALES_HEADER, before + after)

    without = _build(duckdb_warehouse, clients, sales_without)
    with_future = _build(duckdb_warehouse, clients, sales_with)

    row = with_future[with_future.client_id == "a"].iloc[0]
    assert row.as_of_date == date(2023, 6, 1)
    assert (row.n_sales_total, row.spend_total, row.days_since_last_sale) == (2, 20.0, 1)
    # The default as-of date moves with the latest sale, so only client a (fixed date) is comparable.
    a_without = without[without.client_id == "a"].drop(columns=["created_at", "feature_set_version"])
    a_with = with_future[with_future.client_id == "a"].drop(columns=["created_at", "feature_set_version"])
    pd.testing.assert_frame_equal(
        a_without[[c for c in a_without.columns if not c.startswith("share_")]],
        a_with[[c for c in a_without.columns if not c.startswith("share_")]],
    )
    assert with_future[with_future.client_id == "b"].iloc[0].as_of_date == date(2023, 12, 25)


def test_features_by_hand(duckdb_warehouse: Warehouse, sources: tuple[Path, Path]) -> None:
    frame = _build(duckdb_warehouse, *sources)
    c1 = frame[frame.client_id == "c1"].iloc[0]
    # c1: as of 2023-12-21 (day after the latest sale); sales 20, 1 and 323 days before it.
    assert c1.as_of_date == date(2023, 12, 21)
    assert (c1.n_sales_30d, c1.n_sales_90d, c1.n_sales_365d, c1.n_sales_total) == (2, 2, 3, 3)
    assert c1.spend_30d == pytest.approx(2 * 10.50 * 0.9 + 3.33)
    assert c1.spend_365d == pytest.approx(2 * 10.50 * 0.9 + 3.33 + 3 * 9.99 * 0.5)
    assert (c1.days_since_last_sale, c1.days_since_first_sale) == (1, 323)
    # The last 90 days (2 sales) against the 90 before them (none): no ratio, a difference of 2.
    assert pd.isna(c1.n_sales_ratio_90d) and c1.n_sales_diff_90d == 2
    assert c1.discount_share_365d == pytest.approx(2 / 3)
    assert c1.share_category_premium_services_365d == pytest.approx(1 / 3)
    assert c1.tenure_days == (date(2023, 12, 21) - date(2020, 1, 15)).days
    c3 = frame[frame.client_id == "c3"].iloc[0]
    assert (c3.n_sales_total, c3.spend_total) == (0, 0.0)
    assert pd.isna(c3.days_since_last_sale) and pd.isna(c3.share_channel_online_365d)
    assert frame.label.isna().tolist() == [False, False, True]


def test_rebuild_gives_the_same_rows(duckdb_warehouse: Warehouse, generated_small: Path) -> None:
    first = _build(duckdb_warehouse, generated_small / "clients.csv", generated_small / "sales.csv")
    build_feature_store(duckdb_warehouse, CONFIG, created_at=datetime(2030, 1, 1))
    second = _features(duckdb_warehouse)
    # Unchanged rows keep their created_at: the rebuild is a no-op, to the last column.
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == first.client_id.nunique()


def test_replacement_is_atomic_for_readers(duckdb_warehouse: Warehouse, sources: tuple[Path, Path]) -> None:
    _build(duckdb_warehouse, *sources)
    raw = duckdb_warehouse.scratch()
    raw.execute("BEGIN TRANSACTION")
    raw.execute("CREATE OR REPLACE TABLE feature_store AS SELECT * FROM feature_store LIMIT 1")
    other = raw.cursor()  # another connection to the same database
    assert other.execute("SELECT count(*) FROM feature_store").fetchone() == (3,)
    raw.execute("ROLLBACK")


@pytest.fixture(scope="module")
def spark_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"spark:///{tmp_path_factory.mktemp('spark')}"


@pytest.mark.spark
def test_same_rows_on_duckdb_postgres_and_spark(
    tmp_path: Path, generated_small: Path, postgres_url: str, spark_url: str
) -> None:
    clients, sales = generated_small / "clients.csv", generated_small / "sales.csv"
    frames = {}
    for name, url in (
        ("duckdb", f"duckdb:///{tmp_path / 'parity.duckdb'}"),
        ("postgres", postgres_url),
        ("spark", spark_url),
    ):
        warehouse = connect(url)
        frames[name] = comparable(_build(warehouse, clients, sales, PARITY_CONFIG))
        # Each column is stored with the type the definition gives it (no widened sum left as a decimal).
        stored = warehouse.table(FEATURE_STORE).schema()
        defined = feature_table(
            warehouse.table("clients"), warehouse.table("sales"), plan(warehouse, PARITY_CONFIG), datetime(2025, 1, 1)
        ).schema()
        assert {c: _loose(stored[c]) for c in stored.names if c != "created_at"} == {
            c: _loose(defined[c]) for c in defined.names if c != "created_at"
        }, name
        runs = warehouse.table("load_runs").order_by("loaded_at").to_pandas()
        assert runs.source_file.tolist() == [str(clients), str(sales)], name
        assert (runs.rows_read == runs.rows_loaded + runs.rows_rejected + runs.duplicates).all(), name
        if name != "spark":
            warehouse.close()

    reference = frames["duckdb"]
    assert len(reference) > 1_900 and reference.n_sales_total.sum() > 10_000
    # Not vacuous: each derived feature has values, and nulls where a denominator is 0 or a log undefined.
    derived = [d.name for d in PARITY_CONFIG.derived_features]
    assert reference[derived].notna().mean().gt(0.5).all()
    assert reference[["spend_share_90d", "income_per_sale", "tenure_vs_activity"]].isna().any().all()
    for name in ("postgres", "spark"):
        assert list(frames[name].columns) == list(reference.columns), name
        pd.testing.assert_frame_equal(frames[name], reference, check_exact=False, rtol=1e-9, atol=1e-12)
