"""Paired bootstrap AUCs (:mod:`clientml_ds.compare`) and feature groups (:mod:`clientml_ds.importance`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from clientml_ds.compare import bootstrap_aucs, fast_auc, ground_truth_comparison, interval
from clientml_ds.importance import DECLARED_GROUP, feature_group, group_importance
from sklearn.metrics import roc_auc_score


def _scores(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0.05, 0.95, n)
    y = (rng.random(n) < p_true).astype(np.int64)
    model = np.clip(p_true + rng.normal(0, 0.15, n), 0, 1)
    return y, p_true, np.round(model, 2)  # rounded: ties, which count half


def test_fast_auc_is_sklearns_with_ties_and_weights() -> None:
    y, _, model = _scores()
    assert fast_auc(y, model) == pytest.approx(roc_auc_score(y, model), abs=1e-12)
    w = np.random.default_rng(1).integers(0, 3, len(y)).astype(np.float64)
    assert fast_auc(y, model, w) == pytest.approx(roc_auc_score(y, model, sample_weight=w), abs=1e-12)


def test_bootstrap_aucs_resamples_every_score_alike() -> None:
    y, p_true, model = _scores()
    point, boot = bootstrap_aucs(y, {"model": model, "best": p_true, "same": model}, n_boot=300, seed=3)
    assert list(boot.columns) == ["model", "best", "same"] and len(boot) == 300
    assert point["model"] == pytest.approx(roc_auc_score(y, model))
    np.testing.assert_array_equal(boot["model"], boot["same"])  # same resamples: a score's gap to itself is 0
    low, high = interval(boot["best"] - boot["model"])
    assert 0 < low < point["best"] - point["model"] < high  # the truth ranks better: the whole interval > 0
    # Paired: the gap's interval is narrower than either AUC's own.
    assert high - low < np.subtract(*interval(boot["model"])[::-1])
    assert np.isnan(interval([])).all()


def test_ground_truth_comparison_gives_best_minus_model_on_the_rows_it_knows() -> None:
    y, p_true, model = _scores(500)
    ids = [f"C{i}" for i in range(len(y))]
    truth = pd.DataFrame({"client_id": ids[:-20], "p_true": p_true[:-20]})  # 20 test rows without truth
    out = ground_truth_comparison(ids, y, model, truth, n_boot=200, seed=0)
    assert out["rows"] == 480 and out["rows_without_truth"] == 20
    assert out["gap"] == pytest.approx(out["best_achievable_roc_auc"] - out["model_roc_auc"])
    assert out["gap_ci95_low"] < out["gap"] < out["gap_ci95_high"]
    assert out["best_achievable_ci95_low"] < out["best_achievable_roc_auc"] < out["best_achievable_ci95_high"]
    with pytest.raises(ValueError, match="covers none"):
        ground_truth_comparison(ids, y, model, truth.assign(client_id="X" + truth.client_id), n_boot=10)


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("n_sales_90d", "activity windows"),
        ("spend_total", "activity windows"),
        ("n_sales_prev_90d", "trends (period over period)"),
        ("spend_ratio_365d", "trends (period over period)"),
        ("trend_30d_vs_90d", "trends (period over period)"),
        ("days_since_last_sale", "recency and gaps"),
        ("days_since_last_channel_web", "recency and gaps"),
        ("last_gap_vs_mean_gap", "recency and gaps"),
        ("avg_sale_value_90d", "basket and discounts"),
        ("discount_share_365d", "basket and discounts"),
        ("share_category_food_365d", "mix (categories, channels)"),
        ("distinct_channels_365d", "mix (categories, channels)"),
        ("tenure_days", "profile"),
        ("region", "profile"),
        ("monthlyCharges", DECLARED_GROUP),
        ("charges_per_tenure_month", DECLARED_GROUP),
    ],
)
def test_feature_groups_from_the_names(name: str, group: str) -> None:
    assert feature_group(name) == group


def test_a_groups_importance_is_its_mean_absolute_summed_contribution() -> None:
    # Two recency features that cancel on every row: each matters, the group as a whole does not.
    values = pd.DataFrame(
        {
            "days_since_last_sale": [1.0, -2.0, 0.5, -1.0],
            "mean_gap_days": [-1.0, 2.0, -0.5, 1.0],
            "n_sales_90d": [0.5, -0.5, 0.5, -0.5],
            "region": [0.1, 0.1, -0.1, -0.1],
        }
    )
    table = group_importance(values).set_index("group")
    assert table.loc["activity windows", "mean_abs_shap"] == pytest.approx(0.5)
    assert table.loc["recency and gaps", "mean_abs_shap"] == pytest.approx(0.0)
    assert table.loc["recency and gaps", "features"] == 2
    assert table.loc["recency and gaps", "top_feature"] == "days_since_last_sale"
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.index[0] == "activity windows"
