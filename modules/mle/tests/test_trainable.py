"""The minimums of the training protocol, the up-front check, and the baseline trainer refusing before any fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_mle.estimators import EstimatorFactory
from clientml_mle.schema import FeatureSpec
from clientml_mle.train import split_indices, split_rows, train
from clientml_mle.trainable import TrainingDataError, check_part, check_trainable, minimums, training_labels
from sklearn.pipeline import Pipeline


def _labels(ones: int, zeros: int) -> np.ndarray:
    return np.array([1] * ones + [0] * zeros, dtype=np.int64)


def _subset(frame: pd.DataFrame, positives: int, negatives: int) -> pd.DataFrame:
    rows = pd.concat([frame[frame["label"] == 1].head(positives), frame[frame["label"] == 0].head(negatives)])
    rows = rows.sort_index().reset_index(drop=True)
    rows.attrs = dict(frame.attrs)
    return rows


def never_built(specs: list[FeatureSpec]) -> Pipeline:
    raise AssertionError("a model was built for data that cannot train")


def test_the_minimums_at_the_defaults() -> None:
    ds = minimums(test_size=0.2, folds=5, calibration_folds=3)
    assert [(n.purpose, n.rows) for n in ds] == [
        ("the stratified 20% test split", 5),
        ("the 5-fold cross-validation", 7),
        ("calibration's internal 3-fold cross-validation", 6),
    ]
    assert (
        ds[2].detail == "4 among the training rows after the 20% test split, so that each fold's training part holds 3"
    )
    baseline = minimums(test_size=0.2, validation_size=0.2)
    assert [(n.purpose, n.rows) for n in baseline] == [
        ("the stratified 20% test split", 5),
        ("the threshold's 20% validation split", 7),
    ]
    assert [n.rows for n in minimums(test_size=0.2, folds=3, calibration_folds=3)] == [5, 5, 7]
    assert [n.rows for n in minimums(test_size=0.1, validation_size=0.2)] == [10, 7]
    assert [n.rows for n in minimums(test_size=0.25)] == [4]


def test_the_messages_say_what_is_lacking_and_what_is_needed() -> None:
    cases = {
        "none labeled": (
            {"labels": _labels(0, 0), "table_rows": 10},
            "feature_store has 10 rows and none is labeled: nothing to train on (training needs at least 7 "
            "labeled rows of each label, 0 and 1)",
        ),
        "empty table": ({"labels": _labels(0, 0), "table_rows": 0}, "feature_store has no rows: nothing to train on"),
        "one label": (
            {"labels": _labels(0, 40)},
            "feature_store's 40 labeled rows all have label 0: a classifier needs both labels (at least 7 rows "
            "of each, 0 and 1)",
        ),
        "folds": (
            {"labels": _labels(3, 40)},
            "feature_store has 3 labeled rows of label 1: too few, the 5-fold cross-validation needs at least 7 of "
            "each label (5 among the training rows after the 20% test split, one per fold)",
        ),
    }
    for name, (given, message) in cases.items():
        with pytest.raises(TrainingDataError) as refused:
            check_trainable(given.pop("labels"), test_size=0.2, folds=5, calibration_folds=3, **given)
        assert str(refused.value).startswith(message), name
    with pytest.raises(TrainingDataError, match="has 6 labeled rows of label 0: too few, calibration's internal"):
        check_trainable(_labels(30, 6), test_size=0.2, folds=3, calibration_folds=3)
    with pytest.raises(TrainingDataError, match="has 9 labeled rows of label 1: too few, the stratified 10% test"):
        check_trainable(_labels(9, 90), test_size=0.1, validation_size=0.2)
    with pytest.raises(TrainingDataError, match="6 labeled rows of label 1: too few, the threshold's 20% validation"):
        check_trainable(_labels(6, 90), test_size=0.2, validation_size=0.2)
    # Clients count when a client has several rows: 8 rows of label 1, but from 4 clients.
    groups = np.array([f"p{i // 2}" for i in range(8)] + [f"n{i}" for i in range(40)])
    with pytest.raises(TrainingDataError, match="feature_store has 4 clients with label 1: too few"):
        check_trainable(_labels(8, 40), test_size=0.2, groups=groups)
    check_trainable(_labels(7, 7), test_size=0.2, folds=5, calibration_folds=3)
    check_trainable(_labels(7, 7), test_size=0.2, validation_size=0.2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whatever_the_minimums_accept_splits_with_both_labels_everywhere(seed: int) -> None:
    """The bound on what the test split leaves holds for every size: accepted labels never give a part
    without a label (the test rows, the threshold's validation part and the rest)."""
    for ones in range(7, 12):
        for zeros in [*range(ones, 40), 101, 333]:
            labels = _labels(ones, zeros)
            check_trainable(labels, test_size=0.2, validation_size=0.2)
            train_pos, test_pos = split_indices(labels, 0.2, seed)
            check_part(labels[test_pos], "the test rows", "evaluating")
            fit_rel, val_rel = split_indices(labels[train_pos], 0.2, seed + 1)
            check_part(labels[train_pos][val_rel], "the validation rows", "the threshold")
            check_part(labels[train_pos][fit_rel], "the fitting rows", "the fit")


def test_labels_are_read_or_refused() -> None:
    frame = pd.DataFrame({"label": [1.0, 0.0, 1.0]})
    assert training_labels(frame).tolist() == [1, 0, 1]
    assert training_labels(frame.assign(label=np.nan)).size == 0
    with pytest.raises(TrainingDataError, match=r"labels must be 0 or 1; found \[2.0\]"):
        training_labels(frame.assign(label=[1.0, 2.0, 0.0]))
    with pytest.raises(TrainingDataError, match="include 1 rows without a label"):
        training_labels(frame.assign(label=[1.0, None, 0.0]))


def test_the_baseline_refuses_before_building_a_model(frame: pd.DataFrame, tmp_path: Path) -> None:
    six = _subset(frame, 6, 300)
    with pytest.raises(TrainingDataError) as refused:
        train(never_built, six, models_dir=tmp_path)
    assert str(refused.value) == (
        "feature_store has 6 labeled rows of label 1: too few, the threshold's 20% validation split needs at least "
        "7 of each label (5 among the training rows after the 20% test split, one in the validation part)"
    )
    with pytest.raises(TrainingDataError, match="the stratified 10% test split needs at least 10"):
        train(never_built, _subset(frame, 9, 300), models_dir=tmp_path, test_size=0.1)
    # A given threshold needs no validation split: 6 of a label are then enough.
    with pytest.raises(AssertionError, match="a model was built"):
        train(never_built, six, models_dir=tmp_path, threshold=0.5)
    with pytest.raises(TrainingDataError, match="the test rows hold 0 rows of label 1"):
        split_rows(six, positions=(np.arange(0, 200), np.arange(200, 306)))
    assert not list(tmp_path.iterdir())


def test_the_least_accepted_data_trains(frame: pd.DataFrame, tmp_path: Path, estimator: EstimatorFactory) -> None:
    result = train(estimator, _subset(frame, 7, 300), models_dir=tmp_path, n_boot=100)
    assert result.training_data["rows"] == 307
    assert 1 <= result.evaluation.confusion_matrix.tp + result.evaluation.confusion_matrix.fn <= 2
    assert np.isfinite(result.evaluation.roc_auc)
