"""Each activity feature family on hand-made sales whose values are worked out below, and point in time:
a sale on or after a client's as-of date changes none of its features (windows, adjacent periods, gaps,
category and channel mix and recency)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.contract import FEATURE_STORE
from clientml_de.features import build_feature_store
from clientml_de.load import load_source
from clientml_de.warehouse import Warehouse
from de_support import CLIENT_HEADER, SALES_HEADER, by_client, write_csv

AS_OF = date(2024, 1, 1)
CLIENTS = [
    ["a", "2019-01-01", "1984-01-01", "F", "", "", "", "", "1", AS_OF.isoformat()],
    ["b", "2019-01-01", "", "", "", "", "", "", "0", AS_OF.isoformat()],  # only sales on/after the as-of date
    ["c", "2019-01-01", "", "", "", "", "", "", "0", AS_OF.isoformat()],  # one purchase day, two sales
]


def _day(days_before: int, time: str = "") -> str:
    return (AS_OF - timedelta(days=days_before)).isoformat() + time


# Client a: (days before the as-of date, category, channel, quantity x price, discount) -> amount.
A_SALES = [
    (1, "grocery", "online", "1", "10", "0.5", "T23:59:59"),  # 5, the last second before the as-of date
    (1, "grocery", "", "2", "5", "", ""),  # 10, same purchase day, no channel
    (30, "home", "online", "1", "20", "", ""),  # 20, the first day of the 30-day window
    (31, "grocery", "phone", "1", "40", "0.25", ""),  # 30
    (90, "home", "store", "1", "100", "", ""),  # 100, the first day of the last 90 days
    (91, "sports", "store", "1", "60", "", ""),  # 60, the last day of the 90 days before them
    (180, "sports", "store", "1", "7", "", ""),  # 7, the first day of the 90 days before them
    (181, "sports", "store", "1", "8", "", ""),  # 8
    (365, "sports", "store", "1", "9", "", ""),  # 9, the first day of the last 365 days
    (366, "sports", "store", "1", "11", "", ""),  # 11, in the 365 days before them
    (730, "sports", "store", "1", "13", "", ""),  # 13, their first day
    (731, "sports", "store", "1", "17", "", ""),  # 17, older than every range
]
BEFORE = [
    [f"a{i}", "a", _day(days, time), category, quantity, price, discount, channel]
    for i, (days, category, channel, quantity, price, discount, time) in enumerate(A_SALES)
] + [
    ["c1", "c", _day(10), "home", "1", "1", "", "store"],
    ["c2", "c", _day(10, "T12:00:00"), "home", "1", "1", "", "store"],
]
# On or after the as-of date, in new and known categories and channels, for every client.
AFTER = [
    [f"{client}-on", client, AS_OF.isoformat(), "toys", "9", "999", "0.9", "kiosk"] for client in ("a", "b", "c")
] + [
    ["a-late", "a", (AS_OF + timedelta(days=1)).isoformat() + "T00:00:01", "grocery", "5", "50", "", "online"],
    ["b-later", "b", (AS_OF + timedelta(days=60)).isoformat(), "home", "1", "1", "0.1", "store"],
]


def _build(warehouse: Warehouse, tmp_path: Path, sales: list[list[str]], config: DatasetConfig) -> pd.DataFrame:
    clients_csv = write_csv(tmp_path / "clients.csv", CLIENT_HEADER, CLIENTS)
    sales_csv = write_csv(tmp_path / "sales.csv", SALES_HEADER, sales)
    load_source(str(clients_csv), config.clients_spec(), warehouse)
    load_source(str(sales_csv), config.sales_spec(), warehouse)
    build_feature_store(warehouse, config, created_at=datetime(2025, 1, 1))
    return by_client(warehouse.table(FEATURE_STORE).to_pandas()).set_index("client_id")


@pytest.fixture
def features(tmp_path: Path, duckdb_warehouse: Warehouse) -> pd.DataFrame:
    return _build(duckdb_warehouse, tmp_path, BEFORE + AFTER, DatasetConfig())


def _values(row: pd.Series, expected: dict[str, Any]) -> dict[str, Any]:
    """``row``'s values of ``expected``'s columns, nulls as None, numbers as floats (to compare whole dicts)."""
    return {name: None if pd.isna(row[name]) else float(row[name]) for name in expected}


def _approx(expected: dict[str, Any]) -> dict[str, Any]:
    return {name: None if value is None else pytest.approx(value) for name, value in expected.items()}


def test_windows_count_spend_mean_value_and_discount_share(features: pd.DataFrame) -> None:
    expected = {
        "n_sales_30d": 3, "spend_30d": 35.0, "avg_sale_value_30d": 35 / 3, "discount_share_30d": 1 / 3,
        "n_sales_60d": 4, "spend_60d": 65.0, "avg_sale_value_60d": 65 / 4, "discount_share_60d": 2 / 4,
        "n_sales_90d": 5, "spend_90d": 165.0, "discount_share_90d": 2 / 5,
        "n_sales_180d": 7, "spend_180d": 232.0,
        "n_sales_365d": 9, "spend_365d": 249.0, "avg_sale_value_365d": 249 / 9,
        "n_sales_730d": 11, "spend_730d": 273.0,
        "n_sales_total": 12, "spend_total": 290.0, "avg_sale_value": 290 / 12,
        "days_since_last_sale": 1, "days_since_first_sale": 731,
    }  # fmt: skip
    assert _values(features.loc["a"], expected) == _approx(expected)


def test_adjacent_periods_compare_the_last_days_with_as_many_before_them(features: pd.DataFrame) -> None:
    expected = {
        # Last 90 days: 5 sales, 165; the 90 before them (91 to 180 days back): 2 sales, 67.
        "n_sales_prev_90d": 2, "spend_prev_90d": 67.0, "n_sales_ratio_90d": 2.5, "n_sales_diff_90d": 3,
        "spend_ratio_90d": 165 / 67, "spend_diff_90d": 98.0,
        # Last 365 days: 9 sales, 249; the 365 before them: 2 sales, 24 (the one 731 days back is older).
        "n_sales_prev_365d": 2, "spend_prev_365d": 24.0, "n_sales_ratio_365d": 4.5, "n_sales_diff_365d": 7,
        "spend_ratio_365d": 249 / 24, "spend_diff_365d": 225.0,
    }  # fmt: skip
    assert _values(features.loc["a"], expected) == _approx(expected)
    # c: sales in the last 90 days, none before them: the ratio is null (never infinite), the difference 2.
    c = features.loc["c"]
    assert pd.isna(c.n_sales_ratio_90d) and pd.isna(c.spend_ratio_90d)
    assert (c.n_sales_diff_90d, c.spend_diff_90d, c.n_sales_prev_90d) == (2, 2.0, 0)


def test_gaps_between_purchase_days(features: pd.DataFrame) -> None:
    # a bought on 11 distinct days, from 731 to 1 day back: 10 gaps of 73 days on average; the last one,
    # between 30 and 1 day back, 29 days (the two sales 1 day back are one purchase day).
    expected = {
        "mean_gap_days": 73.0, "last_gap_days": 29,
        "last_gap_vs_mean_gap": 29 / 73, "days_since_last_sale_vs_mean_gap": 1 / 73,
    }  # fmt: skip
    assert _values(features.loc["a"], expected) == _approx(expected)
    # c: two sales on one day: no gap yet.
    assert _values(features.loc["c"], expected) == dict.fromkeys(expected)


def test_category_and_channel_mix_and_recency(features: pd.DataFrame) -> None:
    # Within 365 days a has 9 sales: grocery 3, home 2, sports 4; online 2, phone 1, store 5, one without.
    expected = {
        "distinct_categories_365d": 3, "distinct_channels_365d": 3, "avg_discount_365d": 0.75 / 9,
        "share_category_grocery_365d": 3 / 9, "share_category_home_365d": 2 / 9,
        "share_category_sports_365d": 4 / 9, "share_category_toys_365d": 0.0,
        "share_channel_online_365d": 2 / 9, "share_channel_phone_365d": 1 / 9,
        "share_channel_store_365d": 5 / 9, "share_channel_kiosk_365d": 0.0,
        # Recency over all history before the as-of date; toys and kiosk only appear on or after it.
        "days_since_last_category_grocery": 1, "days_since_last_category_home": 30,
        "days_since_last_category_sports": 91, "days_since_last_category_toys": None,
        "days_since_last_channel_online": 1, "days_since_last_channel_phone": 31,
        "days_since_last_channel_store": 90, "days_since_last_channel_kiosk": None,
    }  # fmt: skip
    assert _values(features.loc["a"], expected) == _approx(expected)


def test_a_client_without_activity_before_its_as_of_date(features: pd.DataFrame) -> None:
    b = features.loc["b"]
    zero = [c for c in features.columns if c.startswith(("n_sales_", "spend_", "distinct_")) and "_ratio_" not in c]
    assert all(b[c] == 0 for c in zero), {c: b[c] for c in zero if b[c] != 0}
    null = [c for c in features.columns if c.startswith(("avg_", "discount_share_", "days_since_", "share_"))]
    null += [c for c in features.columns if "_ratio_" in c or "gap" in c]
    assert b[null].isna().all(), b[null][b[null].notna()].to_dict()


def test_sales_on_or_after_the_as_of_date_change_no_feature(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    # Every category and channel is chosen (top 8 / top 5), so both builds have the columns of a, b and c's
    # own values; the one with later sales also has toys and kiosk columns, empty for everyone.
    config = DatasetConfig()
    without = _build(duckdb_warehouse, tmp_path / "without", BEFORE, config)
    with_later = _build(duckdb_warehouse, tmp_path / "with", BEFORE + AFTER, config)
    content = [c for c in without.columns if c not in ("created_at", "feature_set_version")]
    pd.testing.assert_frame_equal(without[content], with_later[content])
    new = sorted(set(with_later.columns) - set(without.columns))
    assert new == [
        "days_since_last_category_toys",
        "days_since_last_channel_kiosk",
        "share_category_toys_365d",
        "share_channel_kiosk_365d",
    ]
    for column in new:
        assert with_later[column].isna().all() or set(with_later[column].dropna()) == {0.0}, column


def test_windows_periods_and_mix_window_come_from_the_config(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    config = DatasetConfig.model_validate(
        {"features": {"windows_days": [7, 31], "periods_days": [30], "mix_window_days": 90, "top_channels": 0}}
    )
    frame = _build(duckdb_warehouse, tmp_path, BEFORE, config)
    a = frame.loc["a"]
    assert (a.n_sales_7d, a.n_sales_31d, a.spend_31d) == (2, 4, 65.0)
    # The last 30 days (3 sales) against days 31 to 60 back (1 sale, the one 31 days back).
    assert (a.n_sales_prev_30d, a.n_sales_ratio_30d, a.spend_diff_30d) == (1, 3.0, 35.0 - 30.0)
    assert (a.distinct_categories_90d, a.share_category_home_90d) == (2, pytest.approx(2 / 5))
    assert not any(c.startswith(("n_sales_90d", "share_channel_", "days_since_last_channel_")) for c in frame.columns)
