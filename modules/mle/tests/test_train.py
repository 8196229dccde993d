"""The training steps, the baseline ``train`` calling them, and the evaluation metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clientml_mle import train as train_module
from clientml_mle.bundle import load_bundle, read_manifest
from clientml_mle.estimators import EstimatorFactory, default_estimator
from clientml_mle.evaluate import _ranked_metrics, bootstrap_auc_ap, choose_threshold, evaluate
from clientml_mle.schema import FeatureSpec
from clientml_mle.train import TrainResult, evaluate_model, fit, publish_bundle, split_indices, split_rows, train
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline


def test_metrics_are_sane_on_generated_data(trained: TrainResult) -> None:
    m = trained.evaluation
    assert m.roc_auc > 0.7
    assert m.roc_auc_ci95_low < m.roc_auc < m.roc_auc_ci95_high
    assert m.pr_auc_ci95_low < m.pr_auc < m.pr_auc_ci95_high
    assert m.pr_auc > m.positive_rate
    assert 0 < m.brier < 0.25 and 0 < m.log_loss < 0.69
    cm = m.confusion_matrix
    assert cm.tn + cm.fp + cm.fn + cm.tp == m.n_rows == trained.training_data["test_rows"]
    assert m.precision == pytest.approx(cm.tp / (cm.tp + cm.fp))
    assert len(m.calibration) == 10
    assert sum(b.count for b in m.calibration) == m.n_rows
    lift = m.lift_by_decile
    assert [d.decile for d in lift] == list(range(1, 11))
    assert sum(d.count for d in lift) == m.n_rows
    assert lift[0].lift is not None and lift[-1].lift is not None
    assert lift[0].lift > 1.5 > lift[-1].lift
    assert lift[-1].cumulative_capture == pytest.approx(1.0)
    assert 0 < trained.threshold < 1
    data = trained.training_data
    assert data["train_rows"] + data["test_rows"] == data["rows"]


def test_training_is_reproducible_for_a_seed(
    frame: pd.DataFrame, trained: TrainResult, tmp_path: Path, estimator: EstimatorFactory
) -> None:
    again = train(estimator, frame, seed=1, models_dir=tmp_path / "a")
    assert again.evaluation == trained.evaluation
    assert again.threshold == trained.threshold
    assert again.training_data == trained.training_data
    assert again.version != trained.version
    x = load_bundle(again.bundle_path).feature_frame(frame.head(50).to_dict("records"))
    np.testing.assert_array_equal(
        load_bundle(again.bundle_path).predict_proba(x), load_bundle(trained.bundle_path).predict_proba(x)
    )
    other = train(estimator, frame, seed=2, models_dir=tmp_path / "b")
    assert other.evaluation.roc_auc != trained.evaluation.roc_auc


def test_threshold_is_chosen_on_validation_rows_not_test_rows(
    frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, estimator: EstimatorFactory
) -> None:
    seen: list[int] = []
    real = train_module.choose_threshold

    def spy(y: Any, proba: Any, rule: str | float = "max_f1") -> float:
        seen.append(len(y))
        return real(y, proba, rule)

    monkeypatch.setattr(train_module, "choose_threshold", spy)
    result = train(estimator, frame, seed=3, models_dir=tmp_path, n_boot=50)
    train_rows = result.training_data["train_rows"]
    assert seen == [round(train_rows * 0.2)]
    assert seen[0] != result.training_data["test_rows"]


def test_a_pipeline_instance_and_a_fixed_threshold(frame: pd.DataFrame, tmp_path: Path) -> None:
    numeric = ["tenure_days", "n_sales_total", "spend_total"]
    pipeline = Pipeline(
        [
            ("encoder", ColumnTransformer([("numeric", "passthrough", numeric)])),
            ("classifier", LogisticRegression(max_iter=500)),
        ]
    )
    result = train(
        pipeline,
        frame.fillna({c: 0 for c in numeric}),
        seed=0,
        models_dir=tmp_path,
        threshold=0.3,
        feature_cols=numeric,
        n_boot=50,
    )
    assert result.threshold == 0.3 and [f.name for f in result.features] == numeric
    assert not hasattr(pipeline, "classes_") and not hasattr(pipeline[-1], "coef_"), "the given pipeline is cloned"
    assert load_bundle(tmp_path).manifest.feature_names == numeric


def test_bad_training_frames_are_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"^feature_store has {len(frame)} rows and none is labeled: nothing to"):
        train(default_estimator, frame.assign(label=np.nan), models_dir=tmp_path)
    with pytest.raises(ValueError, match="1 rows without a label"):
        train(default_estimator, frame.assign(label=frame["label"].where(frame.index != 3)), models_dir=tmp_path)
    with pytest.raises(ValueError, match="too few"):
        train(default_estimator, frame.head(15), models_dir=tmp_path)
    with pytest.raises(ValueError, match="no 'label'"):
        train(default_estimator, frame.drop(columns="label"), models_dir=tmp_path)


def test_default_estimator_uses_the_schema_categories() -> None:
    specs = [
        FeatureSpec(name="seg", type="category", categories=["a", "b"]),
        FeatureSpec(name="empty", type="category", categories=[]),
        FeatureSpec(name="n", type="integer"),
    ]
    pipeline = default_estimator(specs, n_jobs=1)
    x = pd.DataFrame({"seg": ["a", None, "zzz", "b"], "empty": [None] * 4, "n": [1.0, np.nan, 3.0, 4.0]})
    pipeline.fit(x, [0, 1, 0, 1])
    encoded = pipeline[0].transform(x)
    assert encoded.shape == (4, 3)  # a, b, n: the empty category column is left out
    np.testing.assert_array_equal(encoded[:, :2], [[1, 0], [0, 0], [0, 0], [0, 1]])


def test_group_split_keeps_a_client_on_one_side() -> None:
    labels = np.array([0, 1] * 50)
    groups = np.repeat(np.arange(25), 4)
    train_pos, test_pos = split_indices(labels, 0.2, seed=0, groups=groups)
    assert not set(groups[train_pos]) & set(groups[test_pos])
    assert len(train_pos) + len(test_pos) == 100
    _, b = split_indices(labels, 0.2, seed=0)
    assert len(b) == 20 and labels[b].mean() == 0.5


def test_bootstrap_metrics_match_sklearn_exactly() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(5, 200))
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), int(rng.integers(1, 4)))  # with ties
        w = rng.integers(0, 3, n)
        if (w * y).sum() == 0 or (w * (1 - y)).sum() == 0:
            continue
        _, group = np.unique(p, return_inverse=True)
        auc, ap = _ranked_metrics(
            np.bincount(group, weights=w * y).astype(float), np.bincount(group, weights=w * (1 - y)).astype(float)
        )
        rows = np.repeat(np.arange(n), w)
        assert auc == pytest.approx(roc_auc_score(y[rows], p[rows]))
        assert ap == pytest.approx(average_precision_score(y[rows], p[rows]))


def test_evaluation_helpers() -> None:
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.8, 0.7, 0.3, 0.4, 0.35, 0.9])
    assert choose_threshold(y, p) == pytest.approx(0.4)
    assert choose_threshold(y, p, 0.25) == 0.25
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold(y, p, "youden")
    a = bootstrap_auc_ap(y, p, n_boot=200, seed=5)
    assert a == bootstrap_auc_ap(y, p, n_boot=200, seed=5)
    with pytest.raises(ValueError, match="both labels"):
        evaluate(np.zeros(4), np.full(4, 0.5), 0.5)
    perfect = evaluate(y, y.astype(float), 0.5, n_boot=100)
    assert perfect.roc_auc == 1.0 and perfect.f1 == 1.0 and perfect.roc_auc_ci95_low == 1.0


# The manifest's and evaluation.json's ``metrics`` keys, as they were before the evaluation was typed.
METRIC_KEYS = [
    "n_rows", "positive_rate", "roc_auc", "roc_auc_ci95_low", "roc_auc_ci95_high", "pr_auc", "pr_auc_ci95_low",
    "pr_auc_ci95_high", "log_loss", "brier", "threshold", "accuracy", "precision", "recall", "f1",
    "top_decile_lift", "confusion_matrix", "calibration", "lift_by_decile", "bootstrap",
]  # fmt: skip


def test_the_evaluation_serialises_to_the_manifest_keys(trained: TrainResult) -> None:
    manifest = read_manifest(trained.bundle_path)
    assert list(manifest.metrics) == METRIC_KEYS
    assert list(manifest.metrics["confusion_matrix"]) == ["tn", "fp", "fn", "tp"]
    assert list(manifest.metrics["calibration"][0]) == [
        "bin_low",
        "bin_high",
        "count",
        "mean_predicted",
        "observed_rate",
    ]
    assert list(manifest.metrics["lift_by_decile"][0]) == [
        "decile", "count", "min_probability", "positive_rate", "lift", "cumulative_lift", "cumulative_capture",
    ]  # fmt: skip
    assert manifest.metrics["bootstrap"] == {"n": 1000, "seed": trained.fitted.seed, "level": 0.95}
    assert manifest.metrics == json.loads(json.dumps(trained.evaluation.to_dict()))
    evaluation_json = json.loads((trained.bundle_path / "evaluation.json").read_text())
    assert evaluation_json == {"test": manifest.metrics}
    scalars = trained.evaluation.scalar_metrics()
    assert list(scalars) == METRIC_KEYS[:16] and all(isinstance(v, float) for v in scalars.values())
    assert trained.summary()["metrics"] == scalars


def test_the_steps_with_given_positions_a_given_threshold_and_extra_files(
    frame: pd.DataFrame, tmp_path: Path, estimator: EstimatorFactory
) -> None:
    n = len(frame)
    train_pos, test_pos = np.arange(0, n - 400), np.arange(n - 400, n)
    split = split_rows(frame, positions=(train_pos, test_pos), feature_cols=["tenure_days", "segment"])
    assert [f.name for f in split.features] == ["tenure_days", "segment"]
    assert split.training_data()["test_rows"] == 400 and len(split.x_test) == 400
    fitted = fit(estimator, split, seed=5, threshold=0.4)
    assert fitted.threshold == 0.4 and fitted.model.steps[0][0] == "encode"
    evaluation = evaluate_model(fitted, split, n_boot=50)
    assert evaluation.n_rows == 400 and evaluation.threshold == 0.4 and evaluation.bootstrap.seed == 5
    note = tmp_path / "note.txt"
    note.write_text("written between evaluate and publish")
    bundle_dir = publish_bundle(
        fitted, evaluation, tmp_path / "models", name="steps", extra_files={"notes/a.txt": note}
    )
    bundle = load_bundle(bundle_dir)
    assert bundle.manifest.name == "steps" and (bundle_dir / "notes" / "a.txt").read_text() == note.read_text()
    assert {"evaluation.json", "notes/a.txt"} <= set(bundle.manifest.files)
    with pytest.raises(ValueError, match="clashes"):
        publish_bundle(fitted, evaluation, tmp_path / "models", extra_files={"evaluation.json": note})
    with pytest.raises(ValueError, match="not a probability"):
        fit(estimator, split, threshold=1.5)


def test_given_positions_are_checked(frame: pd.DataFrame) -> None:
    for positions in [
        (np.arange(0, 100), np.arange(50, 150)),  # overlapping
        (np.arange(0, 100), np.array([], dtype=np.int64)),  # empty
        (np.arange(0, 100), np.array([len(frame)])),  # out of range
    ]:
        with pytest.raises(ValueError, match="positions"):
            split_rows(frame, positions=positions)
