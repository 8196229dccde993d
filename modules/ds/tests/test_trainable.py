"""Training data that cannot train a model is refused before any fit, in the project's words, by both
trainers; the least data the minimums accept trains end to end; no fold with one label is ever scored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_de.tasks import run_all
from clientml_ds import train as ds_train
from clientml_ds.search import fold_metrics
from clientml_ds.select import SearchBudget
from clientml_ds.split import make_folds
from clientml_ds.train import train_model
from clientml_mle.trainable import TrainingDataError
from typer.testing import CliRunner

from clientml.cli import app

CASES = Path(__file__).parent / "cases"
NO_LABELS = (
    "feature_store has 10 rows and none is labeled: nothing to train on (training needs at least 7 labeled rows "
    "of each label, 0 and 1)"
)
TINY = SearchBudget(seconds=120, lightgbm_trials=2, logreg_trials=2)


@pytest.fixture(scope="module")
def no_labels_warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The case train-no-labels (10 clients, every label empty) through the ETL."""
    case = CASES / "train-no-labels"
    url = f"duckdb:///{tmp_path_factory.mktemp('no-labels') / 'wh.duckdb'}"
    run_all(str(case / "clients.csv"), str(case / "sales.csv"), url)
    return url


def _subset(frame: pd.DataFrame, positives: int, negatives: int | None = None) -> pd.DataFrame:
    """``positives`` rows of label 1 (the first ones) and ``negatives`` of label 0 (all by default)."""
    pos = frame[frame["label"] == 1].head(positives)
    neg = frame[frame["label"] == 0]
    rows = pd.concat([pos, neg if negatives is None else neg.head(negatives)]).sort_index().reset_index(drop=True)
    rows.attrs = dict(frame.attrs)
    return rows


@pytest.mark.parametrize("trainer", ["ds", "default"])
def test_clientml_train_without_labels_says_so(no_labels_warehouse: str, tmp_path: Path, trainer: str) -> None:
    models = tmp_path / "models"
    args = ["train", "--warehouse", no_labels_warehouse, "--models-dir", str(models), "--no-tracking"]
    result = CliRunner().invoke(app, [*args, "--trainer", trainer, "--wait-timeout", "5"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert f"error: {NO_LABELS}\n" in result.stderr
    assert result.stdout == "" and not models.exists()


def test_the_case_as_a_command(no_labels_warehouse: str, tmp_path: Path) -> None:
    """The case's own command, in a process of its own: exit 1, our message, no traceback, no library's."""
    clientml = Path(sys.executable).with_name("clientml")
    args = ["train", "--warehouse", no_labels_warehouse, "--models-dir", str(tmp_path / "m"), "--no-tracking"]
    done = subprocess.run([str(clientml), *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert f"error: {NO_LABELS}" in done.stderr and done.stdout == ""
    for library_words in ("Traceback", "n_samples", "sklearn", "scikit-learn", "LightGBM"):
        assert library_words not in done.stderr


def test_too_few_of_a_label_is_refused_before_any_fit(
    small_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_selection(*args: object, **kwargs: object) -> None:
        raise AssertionError("model selection ran on data that cannot train")

    monkeypatch.setattr(ds_train, "select_model", no_selection)
    six = _subset(small_frame, 6)
    with pytest.raises(TrainingDataError) as refused:
        train_model(six, models_dir=tmp_path, budget=TINY)
    assert str(refused.value) == (
        "feature_store has 6 labeled rows of label 1: too few, the 5-fold cross-validation needs at least 7 of "
        "each label (5 among the training rows after the 20% test split, one per fold)"
    )
    with pytest.raises(TrainingDataError, match="all have label 0: a classifier needs both labels"):
        train_model(_subset(small_frame, 0), models_dir=tmp_path, budget=TINY)
    # With 3 folds, calibration's internal 3 folds are what needs the most.
    with pytest.raises(TrainingDataError, match="calibration's internal 3-fold cross-validation needs at least 7"):
        train_model(six, models_dir=tmp_path, budget=SearchBudget(n_folds=3))
    # Without a calibrated candidate (dummy only), 3 folds need 5, as much as the test split.
    with pytest.raises(TrainingDataError, match="has 4 labeled rows of label 1: too few, the stratified 20% test"):
        train_model(_subset(small_frame, 4), models_dir=tmp_path, budget=SearchBudget(n_folds=3), kinds=("dummy",))
    assert not list(tmp_path.iterdir())


def test_the_least_accepted_data_trains_end_to_end(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    """7 rows of label 1 and every row of label 0 (about 1,300): every fold holds both labels, calibration
    gets its 3 of each label (also in the 400-row sample that checks what can be deployed, which without its
    top-up would hold 1 or 2 rows of label 1 here and fail in scikit-learn), the report is written."""
    seven = _subset(small_frame, 7)
    result = train_model(seven, models_dir=tmp_path, budget=TINY, n_boot=200)
    assert result.result.training_data["rows"] == 7 + int((small_frame["label"] == 0).sum())
    assert result.selection.n_folds == 5
    for candidate in result.selection.candidates:
        assert all(np.isfinite(candidate.fold_scores["roc_auc"])), candidate.name
    assert result.report_path.is_file()


def test_folds_that_cannot_hold_both_labels_are_refused() -> None:
    # Label 1 belongs to two clients only: grouped folds cannot give each fold a row of it.
    labels = np.array([1] * 10 + [0] * 40, dtype=np.int64)
    groups = np.array(["a"] * 5 + ["b"] * 5 + [f"c{i}" for i in range(40)])
    with pytest.raises(TrainingDataError, match="of the 5-fold cross-validation: its validation rows hold 0 rows"):
        make_folds(labels, 5, seed=0, groups=groups)
    with pytest.raises(TrainingDataError, match=r"hold 4 rows of label 1 \(of 44\): the 5-fold cross-validation needs"):
        make_folds(labels[6:], 5, seed=0)
    # Calibration's internal folds need 3 of each label in every fold's training part.
    calibration = r"hold 2 rows of label 1 \(of 22\): calibration's internal 3-fold cross-validation needs at least 3"
    with pytest.raises(TrainingDataError, match=calibration):
        make_folds(
            np.array([1] * 3 + [0] * 30, dtype=np.int64),
            3,
            seed=0,
            min_train_per_label=3,
            min_train_reason="calibration's internal 3-fold cross-validation",
        )
    assert len(make_folds(np.array([1] * 5 + [0] * 30, dtype=np.int64), 3, seed=0, min_train_per_label=3)) == 3


def test_a_fold_with_one_label_gets_no_score() -> None:
    with pytest.raises(TrainingDataError, match="a fold's validation rows hold 0 rows of label 1"):
        fold_metrics(np.zeros(5, dtype=np.int64), np.full(5, 0.3))
