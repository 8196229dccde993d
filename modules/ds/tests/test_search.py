"""The seeded search, the shared-fold CV, the calibration shortcut and the winner rule."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from clientml_ds.models import build_candidate
from clientml_ds.search import MAX_TREES, CVResult, calibrated_cv, evaluate_config, search
from clientml_ds.select import SearchBudget, pick_winner, scaled_trials
from clientml_ds.split import make_folds
from clientml_mle.features import feature_columns
from clientml_mle.schema import coerce_frame, infer_feature_specs


@pytest.fixture(scope="module")
def data(small_frame: pd.DataFrame) -> tuple[list, pd.DataFrame, np.ndarray]:
    rows = small_frame.iloc[:1000]
    rows.attrs = dict(small_frame.attrs)
    specs = infer_feature_specs(rows, feature_columns(small_frame))
    return specs, coerce_frame(rows, specs), rows["label"].to_numpy().astype(np.int64)


def _trials(found: object) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "seconds"} for t in found.trials]  # type: ignore[attr-defined]


@pytest.mark.slow
def test_the_search_is_reproducible_for_a_seed(data: tuple) -> None:
    specs, x, y = data
    folds = make_folds(y, 3, seed=5)
    runs = [search("lightgbm", specs, x, y, folds, seed=5, n_trials=4, timeout_s=600) for _ in range(2)]
    assert runs[0].n_trials_done == runs[1].n_trials_done == 4
    assert not runs[0].stopped_by_time and runs[0].to_dict()["reproducible"]
    assert runs[0].best.params == runs[1].best.params
    assert _trials(runs[0]) == _trials(runs[1])
    np.testing.assert_array_equal(runs[0].best.oof, runs[1].best.oof)
    # The first trial is the baseline; the next ones come from the seeded sampler.
    other = search("lightgbm", specs, x, y, folds, seed=6, n_trials=2, timeout_s=600)
    # What a trial tried (its scores and each fold's early-stopped tree count depend on LightGBM's seed).
    scored = ("roc_auc", "number", "trees_per_fold")
    params = [{k: v for k, v in t.items() if k not in scored} for t in _trials(other)]
    first = [{k: v for k, v in t.items() if k not in scored} for t in _trials(runs[0])]
    assert params[0] == first[0]
    assert params[1] != first[1]


def test_the_time_box_caps_the_search_and_says_so(data: tuple) -> None:
    specs, x, y = data
    folds = make_folds(y, 3, seed=0)
    found = search("logreg", specs, x, y, folds, seed=0, n_trials=500, timeout_s=0.5)
    assert 1 <= found.n_trials_done < 500
    assert found.stopped_by_time and not found.to_dict()["reproducible"]


@pytest.mark.parametrize("kind", ["lightgbm", pytest.param("logreg", marks=pytest.mark.slow)])
def test_calibrated_cv_equals_calibrated_classifier_cv(data: tuple, kind: str) -> None:
    specs, x, y = data
    folds = make_folds(y, 3, seed=2)
    params = {"n_estimators": 50, "num_leaves": 7} if kind == "lightgbm" else {"C": 0.3}
    base = evaluate_config(CVResult(name=kind, kind=kind, params=params), specs, x, y, folds, seed=2)
    fast = {r.calibration: r for r in calibrated_cv(base, specs, x, y, folds, seed=2)}
    for method in ("sigmoid", "isotonic"):
        literal = np.full(len(y), np.nan)
        for tr, va in folds:
            model = build_candidate(kind, specs, params, calibration=method, seed=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x.iloc[tr], y[tr])
            literal[va] = model.predict_proba(x.iloc[va])[:, 1]
        np.testing.assert_allclose(fast[method].oof, literal, atol=1e-7)


def _config(name: str, kind: str, auc: float, **kw: object) -> CVResult:
    return CVResult(name=name, kind=kind, params={}, fold_scores={"roc_auc": [auc]}, **kw)  # type: ignore[arg-type]


def test_the_winner_is_the_best_auc_and_ties_go_to_the_simpler_model() -> None:
    dummy = _config("dummy", "dummy", 0.5)
    lr = _config("lr", "logreg", 0.8500)
    gbm = _config("gbm", "lightgbm", 0.8505)
    weighted = _config("gbm+w", "lightgbm", 0.8600, class_weight="balanced")
    assert pick_winner([dummy, lr, gbm]) is lr  # 0.0005 apart: a tie
    assert pick_winner([dummy, lr, _config("gbm", "lightgbm", 0.8520)]).name == "gbm"
    assert pick_winner([dummy, lr, gbm, weighted]) is weighted
    assert pick_winner([dummy]) is dummy


def test_an_early_stopped_config_keeps_each_folds_trees_and_fixes_their_mean(data: tuple) -> None:
    specs, x, y = data
    folds = make_folds(y, 3, seed=1)
    params = {"n_estimators": MAX_TREES, "learning_rate": 0.2, "num_leaves": 31, "min_child_samples": 5}
    stopped = evaluate_config(CVResult("lgbm", "lightgbm", params, early_stopping=True), specs, x, y, folds, seed=1)
    assert len(stopped.best_iterations) == 3 and all(1 <= t < MAX_TREES for t in stopped.best_iterations)
    fixed = stopped.fixed_trees()
    assert fixed.params["n_estimators"] == round(float(np.mean(stopped.best_iterations)))
    assert not fixed.early_stopping and fixed.params["learning_rate"] == 0.2
    # Each fold's model predicts with the trees it kept: refitting with that count gives the same OOF.
    tr, va = folds[0]
    model = build_candidate("lightgbm", specs, {**params, "n_estimators": stopped.best_iterations[0]}, seed=1)
    model.fit(x.iloc[tr], y[tr])
    np.testing.assert_allclose(model.predict_proba(x.iloc[va])[:, 1], stopped.oof[va], atol=1e-12)


def test_the_lightgbm_trial_budget_scales_with_the_rows() -> None:
    assert [scaled_trials(n) for n in (300, 5_000, 6_700, 10_000, 13_300, 100_000)] == [40, 40, 30, 20, 15, 15]
    assert SearchBudget().for_rows(6_700).lightgbm_trials == 30
    assert SearchBudget(lightgbm_trials=4).for_rows(6_700).lightgbm_trials == 4
    assert SearchBudget(lightgbm_trials=None).for_rows(6_700).lightgbm_trials is None
