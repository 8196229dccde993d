"""The training job end to end: quality on generated data, the report, the split handed to the harness,
the recency behaviour, the time split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_ds.select import SearchBudget
from clientml_ds.train import DsTrainResult, train_model
from clientml_mle.bundle import load_bundle, read_manifest
from clientml_mle.train import training_fingerprint

# Quality target. At 20,000 clients (3,386 test rows) the ds model's test ROC-AUC is measured within
# 0.005 of the best achievable (the AUC of the generator's p_true on the same rows; README). This CI test
# uses 8,000 clients (1,363 test rows, 5,400 training rows), where two things widen the gap: the paired
# bootstrap SD of (best AUC - model AUC) is about 0.004 on 1,363 rows, and the model is fitted on 40% of
# the data (measured gaps at this size: 0.005 and 0.014 on two generator seeds). So the test asserts
# (1) the gap is below 0.02 (0.01 + about 2.5 SD) and (2) the gap's paired 95% CI reaches within 0.01,
# i.e. the data do not reject "within 0.01 of the best achievable".
GAP_TOLERANCE = 0.02
TARGET_GAP = 0.01
# Every test here uses the session model trained on 8,000 clients (a minute on a quiet machine).
pytestmark = pytest.mark.slow


def test_quality_close_to_the_best_achievable_auc(trained: DsTrainResult) -> None:
    truth = trained.ground_truth
    assert truth is not None and truth["rows_without_truth"] == 0
    assert truth["rows"] == trained.result.training_data["test_rows"]
    assert truth["model_roc_auc"] == pytest.approx(trained.result.evaluation.roc_auc)
    assert truth["gap"] == pytest.approx(truth["best_achievable_roc_auc"] - truth["model_roc_auc"])
    assert truth["gap"] < GAP_TOLERANCE, truth
    assert truth["gap_ci95_low"] < TARGET_GAP, truth
    assert truth["best_achievable_ci95_low"] < truth["best_achievable_roc_auc"] < truth["best_achievable_ci95_high"]
    assert trained.selection.winner.kind != "dummy"


def test_the_harness_used_the_split_and_the_oof_threshold(trained: DsTrainResult, frame: pd.DataFrame) -> None:
    data = trained.result.training_data
    assert data["test_rows"] == len(trained.split.test_pos) and data["train_rows"] == len(trained.split.train_pos)
    # `clientml train --watch` recognises content this trainer has trained on by this fingerprint.
    assert data["fingerprint"] == training_fingerprint(frame)
    assert trained.split.rule == "stratified"
    manifest = read_manifest(trained.bundle_path)
    assert manifest.threshold == pytest.approx(trained.selection.threshold)
    assert manifest.metrics["n_rows"] == len(trained.split.test_pos)
    # Every candidate was scored on the same folds: same number of fold scores.
    assert {len(c.fold_scores["roc_auc"]) for c in trained.selection.candidates} == {trained.selection.n_folds}
    names = [c.name for c in trained.selection.candidates]
    assert names[:1] == ["dummy (prior)"] and "logreg" in names and "lightgbm" in names
    json.dumps(trained.summary(), default=str)


def test_the_report_is_in_the_bundle_and_references_every_png(trained: DsTrainResult) -> None:
    report_dir = trained.bundle_path / "report"
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    expected = {"roc.png", "pr.png", "calibration.png", "confusion_matrix.png", "lift.png", "candidates.png"}
    assert expected | {"feature_importance.png", "feature_groups.png"} <= set(pngs)
    referenced = set(re.findall(r'<img src="([^"]+)"', html))
    assert referenced == set(pngs)
    for png in pngs:
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Hashed with the bundle: listed in the manifest and verified by load_bundle.
    manifest = read_manifest(trained.bundle_path)
    assert {f"report/{p}" for p in [*pngs, "report.html", "report.json"]} <= set(manifest.files)
    load_bundle(trained.bundle_path)
    assert "best achievable" in html and "Candidates" in html
    report = json.loads((report_dir / "report.json").read_text())
    # The generator's label follows recent activity: the top feature describes it (recency, or the last 90 days).
    top = report["feature_importance"][0]["feature"]
    assert top.startswith("days_since_last_sale") or re.fullmatch(r"(n_sales|spend|avg_sale_value)_(30|60|90)d", top)
    groups = {g["group"]: g for g in report["feature_group_importance"]}
    assert {"activity windows", "recency and gaps", "profile"} <= set(groups)
    assert sum(g["features"] for g in groups.values()) == len(report["feature_importance"])
    assert "Importance by feature group" in html


def _window(column: str, pattern: str) -> int | None:
    """The day count of a feature column named ``<pattern>_<days>d``, or None."""
    match = re.fullmatch(rf"(?:{pattern})_(\d+)d", column)
    return int(match[1]) if match else None


def _stopped(active: pd.DataFrame, days: int) -> pd.DataFrame:
    """Twins of ``active`` whose activity stopped ``days`` ago, as feature_store would describe them: every
    window and period within those days is empty (counts 0, means and shares null), the recencies at least
    ``days``; what lies further back (lifetime totals, first sale, older periods) is unchanged."""
    stopped = active.copy()
    stopped["days_since_last_sale"] = float(days)
    for col in active.columns:
        window = _window(
            col, r"n_sales|spend|distinct_categories|distinct_channels|n_sales_prev|spend_prev|n_sales_diff|spend_diff"
        )
        if window is not None and window * (2 if "_prev_" in col or "_diff_" in col else 1) <= days:
            stopped[col] = 0.0
        window = _window(col, r"avg_sale_value|discount_share|avg_discount|share_\w+|n_sales_ratio|spend_ratio")
        if window is not None and window <= days:
            stopped[col] = np.nan  # no sale in the window: the feature_store leaves them null
        if col.startswith(("days_since_last_category_", "days_since_last_channel_")):
            stopped[col] = active[col].clip(lower=days)
    for period in (p for p in (_window(c, "n_sales_prev") for c in active.columns) if p and p <= days < 2 * p):
        # The last period is empty, the one before it partly: its count is kept, the comparison says 0.
        for kind in ("n_sales", "spend"):
            before = active[f"{kind}_prev_{period}d"]
            stopped[f"{kind}_ratio_{period}d"] = np.where(before > 0, 0.0, np.nan)
            stopped[f"{kind}_diff_{period}d"] = -before
    stopped["days_since_last_sale_vs_mean_gap"] = days / active["mean_gap_days"]
    return stopped


def test_the_bundle_carries_the_reference_profile_of_its_split(trained: DsTrainResult) -> None:
    """What drift monitoring compares with: the training rows of this split, the test rows' scores, and the
    winner's importances (a calibrated or linear winner included)."""
    profile = load_bundle(trained.bundle_path).reference_profile
    assert profile is not None
    assert profile.rows == len(trained.split.train_pos) and profile.scores.rows == len(trained.split.test_pos)
    assert [f.name for f in profile.features] == [f.name for f in trained.result.features]
    assert sum(f.importance for f in profile.features) == pytest.approx(1.0)
    assert not profile.importance_source.startswith("uniform"), profile.importance_source


def test_a_client_whose_activity_stopped_scores_higher_risk(trained: DsTrainResult, frame: pd.DataFrame) -> None:
    """Direction (the generator's label model): a longer time since the last sale and no recent sales raise
    the probability of label 1. Twins of active clients whose activity stopped 400 days ago (everything
    else identical: profile, lifetime totals, first sale) must score higher."""
    bundle = load_bundle(trained.bundle_path)
    active = frame[(frame["days_since_last_sale"] <= 20) & (frame["n_sales_90d"] >= 3)].head(200)
    assert len(active) >= 100
    stopped = _stopped(active, days=400)
    p_active, p_stopped = bundle.predict_proba(active), bundle.predict_proba(stopped)
    assert (p_stopped > p_active).mean() >= 0.95
    assert float(np.mean(p_stopped - p_active)) > 0.2


def test_time_split_end_to_end(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    frame = small_frame.copy()
    frame.attrs = dict(small_frame.attrs)
    number = frame["client_id"].str[1:].astype(int)
    frame["as_of_date"] = pd.to_datetime("2024-01-01") + pd.to_timedelta((number % 4) * 30, unit="D")
    budget = SearchBudget(seconds=300, lightgbm_trials=2, logreg_trials=None, n_folds=3)
    result = train_model(frame, models_dir=tmp_path, seed=1, budget=budget, kinds=("dummy", "lightgbm"))
    assert result.split.rule == "time"
    test_dates = frame["as_of_date"].iloc[result.split.test_pos]
    assert test_dates.min() > frame["as_of_date"].iloc[result.split.train_pos].max()
    assert result.result.training_data["test_rows"] == len(result.split.test_pos)
    assert result.summary()["split"]["test_as_of_dates"] == ["2024-03-31"]
    assert "latest as-of dates" in (result.bundle_path / "report" / "report.html").read_text()
