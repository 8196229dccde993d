"""The exploration helpers: leakage checks, label rates, figures."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from clientml_ds import explore


def test_single_feature_auc_flags_a_disguised_label(small_frame: pd.DataFrame) -> None:
    frame = small_frame.copy()
    frame.attrs = dict(small_frame.attrs)
    rng = np.random.default_rng(0)
    frame["leaky"] = frame["label"] * 10 + rng.normal(0, 1, len(frame))
    frame["client_code"] = frame["client_id"]  # an identifier: unique per row, must not look predictive
    table = explore.single_feature_auc(frame).set_index("feature")
    assert table.loc["leaky", "flagged"] and table.loc["leaky", "auc"] > 0.99
    assert not table.drop(index="leaky")["flagged"].any()
    assert table.loc["client_code", "auc"] < 0.6
    assert table.loc["days_since_last_sale", "direction"] == "+"


def _tiny_warehouse(path: Path, n_sales_total: int) -> str:
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE sales AS SELECT * FROM (VALUES "
        "('S1', 'C1', TIMESTAMP '2024-12-30 10:00:00'), ('S2', 'C1', TIMESTAMP '2024-12-31 23:00:00'), "
        "('S3', 'C1', TIMESTAMP '2025-01-01 08:00:00'), ('S4', 'C2', TIMESTAMP '2025-02-01 00:00:00')"
        ") t(sale_id, client_id, sale_date)"
    )
    con.execute(
        "CREATE TABLE feature_store AS SELECT * FROM (VALUES "
        f"('C1', DATE '2025-01-01', {n_sales_total}, 1), ('C2', DATE '2025-01-01', 0, NULL)"
        ") t(client_id, as_of_date, n_sales_total, days_since_last_sale)"
    )
    con.close()
    return f"duckdb:///{path}"


def test_point_in_time_check_recounts_sales_around_the_as_of_date(tmp_path: Path) -> None:
    good = explore.point_in_time_check(_tiny_warehouse(tmp_path / "good.duckdb", n_sales_total=2))
    assert good.ok
    assert (good.sales_before_as_of, good.sales_on_or_after_as_of, good.sales_rows) == (2, 2, 4)
    leaky = explore.point_in_time_check(_tiny_warehouse(tmp_path / "leaky.duckdb", n_sales_total=3))
    assert not leaky.ok and leaky.rows_with_count_mismatch == 1
    assert leaky.to_frame().loc["ok", "value"] is False


def test_point_in_time_check_on_generated_data(small_warehouse: str) -> None:
    report = explore.point_in_time_check(small_warehouse)
    assert report.ok and report.feature_rows == 2000 and report.sales_before_as_of == report.sales_rows


@pytest.mark.slow
def test_label_rates_and_figures(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    table = explore.label_rate_by(small_frame, "segment")
    assert table["rows"].sum() == len(small_frame)
    assert ((table["ci95_low"] <= table["rate"]) & (table["rate"] <= table["ci95_high"])).all()
    binned = explore.binned_label_rate(small_frame, "days_since_last_sale")
    assert binned["rows"].sum() == len(small_frame) and binned["bin"].iloc[0] == "null"
    overview = explore.overview(small_frame, unlabeled=7)
    assert overview.loc["labeled rows", "value"] == len(small_frame)
    paths = [
        explore.plot_missing(small_frame, tmp_path / "a.png"),
        explore.plot_numeric_distributions(small_frame, tmp_path / "b.png"),
        explore.plot_label_rates(small_frame, tmp_path / "c.png"),
        explore.plot_activity_vs_label(small_frame, tmp_path / "d.png"),
        explore.plot_correlations(small_frame, tmp_path / "e.png"),
        explore.plot_single_feature_auc(explore.single_feature_auc(small_frame), tmp_path / "f.png"),
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
