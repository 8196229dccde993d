"""The training job: split, model selection on the training part, then mle's training steps for the rest.

``train_model(frame, ...)``:

1. split with the rule of :mod:`clientml_ds.split` (time-based when ``as_of_date`` varies, else
   stratified random), handed to :func:`clientml_mle.train.split_rows` as positions; the test rows are
   not looked at until the final evaluation;
2. select the model on the training rows (:func:`clientml_ds.select.select_model`: dummy, logistic
   regression and LightGBM on the same folds, bounded Optuna search, class weights, calibration, the
   threshold from out-of-fold predictions);
3. mle's steps with the winner: :func:`~clientml_mle.train.fit` on all training rows with that threshold,
   :func:`~clientml_mle.train.evaluate_model` on the test rows (bootstrap CIs), then the evaluation report
   (``report/report.html`` and its PNGs, from the final model on the test rows), then
   :func:`~clientml_mle.train.publish_bundle` with the report inside the bundle (hashed with it) and
   :func:`~clientml_mle.train.track_and_gate` (MLflow and the champion gate).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from clientml_de.contract import FEATURE_STORE, KEY_COLUMNS
from clientml_de.settings import get_settings
from clientml_mle.bundle import TRUSTED_TYPES
from clientml_mle.estimators import positive_proba
from clientml_mle.evaluate import N_BOOTSTRAP
from clientml_mle.features import training_frame, wait_for_table
from clientml_mle.tracking import MlflowTracker
from clientml_mle.train import (
    TrainResult,
    client_groups,
    evaluate_model,
    fit,
    publish_bundle,
    split_rows,
    track_and_gate,
)
from clientml_mle.trainable import check_trainable, table_rows, training_labels

from clientml_ds.compare import ground_truth_comparison
from clientml_ds.models import CALIBRATION_FOLDS
from clientml_ds.report import ReportData, write_report
from clientml_ds.select import SearchBudget, Selection, select_model
from clientml_ds.split import SplitPlan, plan_split

log = logging.getLogger(__name__)

REPORT_DIR = "report"


@dataclass(frozen=True)
class DsTrainResult:
    """mle's training result plus what model selection decided and where the report is."""

    result: TrainResult
    selection: Selection
    split: SplitPlan
    report_files: list[str]
    ground_truth: dict[str, Any] | None = None

    @property
    def bundle_path(self) -> Path:
        return self.result.bundle_path

    @property
    def report_path(self) -> Path:
        return self.result.bundle_path / REPORT_DIR / "report.html"

    def summary(self) -> dict[str, Any]:
        """mle's JSON summary plus the selection, the split, the report and the ground truth."""
        out = self.result.summary()
        out["trainer"] = "clientml_ds"
        out["selection"] = self.selection.to_dict(trials=False)
        out["split"] = self.split.to_dict()
        out["report"] = str(self.report_path)
        out["ground_truth"] = self.ground_truth
        return out


def load_ground_truth(path: Path | str) -> pd.DataFrame:
    """``ground_truth.csv`` of ``clientml generate``: ``client_id,p_true``."""
    truth = pd.read_csv(path, dtype={"client_id": str})
    missing = {"client_id", "p_true"} - set(truth.columns)
    if missing:
        raise ValueError(f"{path}: not a ground-truth file, it lacks {sorted(missing)}")
    return truth


def _tracking_params(selection: Selection, plan: SplitPlan) -> dict[str, Any]:
    winner = selection.winner
    params: dict[str, Any] = {
        "trainer": "clientml_ds",
        "ds.winner": winner.name,
        "ds.kind": winner.kind,
        "ds.class_weight": winner.class_weight or "none",
        "ds.calibration": winner.calibration or "none",
        "ds.cv_roc_auc": round(winner.mean(), 6),
        "ds.cv_roc_auc_std": round(winner.std(), 6),
        "ds.cv_folds": selection.n_folds,
        "ds.search_rows": selection.search_rows,
        "ds.split_rule": plan.rule,
        "ds.threshold_rule": "max_f1_oof",
        "ds.search_seconds": selection.budget.seconds,
        "ds.search_trials_lightgbm": selection.budget.lightgbm_trials,
        "ds.search_trials_logreg": selection.budget.logreg_trials,
    }
    for kind, found in selection.searches.items():
        params[f"ds.{kind}.trials_done"] = found.n_trials_done
        params[f"ds.{kind}.stopped_by_time"] = found.stopped_by_time
    return params


def train_model(
    frame: pd.DataFrame,
    *,
    models_dir: Path | str,
    seed: int = 0,
    test_size: float = 0.2,
    budget: SearchBudget | None = None,
    tracking: MlflowTracker | None = None,
    name: str = "clientml-classifier",
    n_jobs: int = 1,
    n_boot: int = N_BOOTSTRAP,
    force_promote: bool = False,
    ground_truth: pd.DataFrame | None = None,
    trusted_types: Iterable[str] = TRUSTED_TYPES,
    table: str = FEATURE_STORE,
    kinds: Sequence[str] = ("dummy", "logreg", "lightgbm"),
) -> DsTrainResult:
    """Split, select, then fit/evaluate/report/bundle/track with mle's steps (module docstring).

    ``n_jobs`` is LightGBM's thread count for the final fit; the many small fits of cross-validation use
    one thread, and BLAS is held to one thread throughout (on a shared 2-core machine extra threads only
    contend: a LightGBM fit on 17k rows took 9x longer with 2 threads than with 1 under load).

    Raises:
        clientml_mle.trainable.TrainingDataError: before anything is fitted, rows that cannot train a
            model with this protocol (no labeled row, one label, too few of a label for the test split,
            the ``budget.n_folds``-fold cross-validation or calibration; minimums in
            :mod:`clientml_mle.trainable`), or folds that would not hold both labels.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _train_model(
            frame,
            models_dir=models_dir,
            seed=seed,
            test_size=test_size,
            budget=budget,
            tracking=tracking,
            name=name,
            n_jobs=n_jobs,
            n_boot=n_boot,
            force_promote=force_promote,
            ground_truth=ground_truth,
            trusted_types=trusted_types,
            table=table,
            kinds=kinds,
        )


def _train_model(
    frame: pd.DataFrame,
    *,
    models_dir: Path | str,
    seed: int,
    test_size: float,
    budget: SearchBudget | None,
    tracking: MlflowTracker | None,
    name: str,
    n_jobs: int,
    n_boot: int,
    force_promote: bool,
    ground_truth: pd.DataFrame | None,
    trusted_types: Iterable[str],
    table: str,
    kinds: Sequence[str],
) -> DsTrainResult:
    budget = budget or SearchBudget()
    labels = training_labels(frame)
    check_trainable(
        labels,
        test_size=test_size,
        folds=budget.n_folds,
        calibration_folds=CALIBRATION_FOLDS if set(kinds) - {"dummy"} else 0,
        groups=client_groups(frame),
        table=table,
        table_rows=table_rows(frame),
    )
    plan = plan_split(frame, labels, test_size, seed)  # positions in the frame's order
    log.info("split: %s", plan.reason)
    split = split_rows(frame, test_size=test_size, seed=seed, table=table, positions=(plan.train_pos, plan.test_pos))
    trusted = frozenset(trusted_types)
    selection = select_model(
        split.x_train,
        split.y_train,
        split.features,
        groups=split.train_groups,
        seed=seed,
        budget=budget,
        n_jobs=1,
        trusted_types=trusted,
        kinds=kinds,
    )
    fitted = fit(
        lambda features: selection.build(features, n_jobs=n_jobs, seed=seed),
        split,
        seed=seed,
        threshold=selection.threshold,
    )
    evaluation = evaluate_model(fitted, split, n_boot=n_boot)
    truth = None
    with tempfile.TemporaryDirectory(prefix="clientml-ds-report-") as tmp:
        proba = positive_proba(fitted.model, split.x_test)
        if ground_truth is not None:
            client_ids = split.test_rows[KEY_COLUMNS[0]].astype(str).tolist()
            truth = ground_truth_comparison(client_ids, split.y_test, proba, ground_truth, seed=seed)
        report = ReportData(
            name=name,
            model=fitted.model,
            features=fitted.features,
            threshold=fitted.threshold,
            metrics=evaluation,
            x_test=split.x_test,
            y_test=split.y_test,
            proba_test=proba,
            selection=selection.to_dict(),
            split=plan.to_dict(),
            training_data=fitted.training_data,
            ground_truth=truth,
            seed=seed,
        )
        files = write_report(report, Path(tmp) / REPORT_DIR)
        bundle_dir = publish_bundle(
            fitted,
            evaluation,
            models_dir,
            split=split,
            name=name,
            extra_files={f"{REPORT_DIR}/{n}": path for n, path in files.items()},
            trusted_types=trusted,
        )
    record = None
    if tracking is not None:
        record = track_and_gate(
            tracking,
            split=split,
            fitted=fitted,
            evaluation=evaluation,
            bundle_dir=bundle_dir,
            params=_tracking_params(selection, plan),
            force=force_promote,
        )
    log.info(
        "trained %s: test ROC-AUC %.4f (CV %.4f), bundle %s",
        selection.winner.name,
        evaluation.roc_auc,
        selection.winner.mean(),
        bundle_dir,
    )
    return DsTrainResult(
        result=TrainResult(fitted, evaluation, bundle_dir, name, record),
        selection=selection,
        split=plan,
        report_files=[f"{REPORT_DIR}/{n}" for n in files],
        ground_truth=truth,
    )


def train_from_warehouse(
    warehouse_url: str,
    *,
    wait_timeout_s: float = 600.0,
    poll_s: float = 5.0,
    table: str = FEATURE_STORE,
    **kwargs: Any,
) -> DsTrainResult:
    """Wait for ``table`` in the warehouse, read its labeled rows and :func:`train_model` on them."""
    wait_for_table(warehouse_url, table=table, timeout_s=wait_timeout_s, poll_s=poll_s)
    frame = training_frame(warehouse_url, table=table)
    return train_model(frame, table=table, **kwargs)


def cli_train(
    frame: pd.DataFrame,
    *,
    search_seconds: float | None = None,
    search_trials: int | None = None,
    ground_truth: Path | None = None,
    **kwargs: Any,
) -> DsTrainResult:
    """``clientml train`` (trainer ``ds``): the CLI's options mapped onto :func:`train_model`.

    ``search_trials`` is the LightGBM trial budget (logistic regression gets its default 6, a
    one-parameter space), 0 makes the time box the only budget; ``None`` keeps the default, scaled with the
    rows (:func:`clientml_ds.select.scaled_trials`).
    ``CLIENTML_DS_MAX_SEARCH_ROWS`` (default 100,000) caps the rows the search runs on.
    """
    defaults = SearchBudget()
    trials = defaults.lightgbm_trials if search_trials is None else search_trials
    budget = SearchBudget(
        seconds=defaults.seconds if search_seconds is None else float(search_seconds),
        lightgbm_trials=trials or None,
        logreg_trials=defaults.logreg_trials if trials else None,
        max_rows=get_settings().ds_max_search_rows,
    )
    truth = load_ground_truth(ground_truth) if ground_truth is not None else None
    return train_model(frame, budget=budget, ground_truth=truth, **kwargs)
