"""The training flow, as steps a trainer calls in order, and :func:`train`, the baseline calling them all.

1. :func:`split_rows` -> :class:`Split`: a stratified test split (``test_size``), used once, for the final
   evaluation; when a client has several rows (as-of dates), all of a client's rows stay on one side. A
   trainer with its own rule (the ds module's time split) passes the row ``positions`` instead.
2. :func:`fit` -> :class:`Fitted`: the threshold first (``"max_f1"``: a copy of the model is fitted on the
   training rows minus a stratified validation part, ``validation_size``, and the threshold chosen on that
   part, never on the test rows; or a given number), then the model refitted on all the training rows.
3. :func:`evaluate_model` -> :class:`~clientml_mle.evaluate.Evaluation` on the test rows, at that threshold.
4. :func:`publish_bundle`: the bundle (with ``evaluation.json``, the reference profile drift is measured
   against, and any extra files, e.g. a report written between steps 3 and 4), ``LATEST`` moves to it.
5. :func:`track_and_gate`: the run in MLflow and the champion rule (``tracking``); when the new version is
   promoted, ``models_dir/CHAMPION`` moves to its bundle too.

The model is any sklearn Pipeline (its first step is the encoder, saved on its own in the bundle) or a
function building one from the feature schema (:mod:`clientml_mle.estimators`). All random choices derive
from ``seed``: a seed gives the same split, model and metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.contract import BOOKKEEPING_COLUMNS, FEATURE_STORE, KEY_COLUMNS, LABEL_COLUMN
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.pipeline import Pipeline

from clientml_mle.bundle import TRUSTED_TYPES, save_bundle
from clientml_mle.estimators import EstimatorFactory, positive_proba, seeded
from clientml_mle.evaluate import N_BOOTSTRAP, Evaluation, choose_threshold, evaluate
from clientml_mle.features import feature_columns
from clientml_mle.manifest import PROFILE_FILE
from clientml_mle.monitor.importance import importance_shares
from clientml_mle.monitor.profile import ReferenceProfile, build_profile
from clientml_mle.schema import FeatureSpec, coerce_frame, infer_feature_specs
from clientml_mle.tracking import ChampionDecision, MlflowTracker, TrackingRecord
from clientml_mle.trainable import check_part, check_trainable, split_minimum, table_rows, training_labels

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
CLIENT_COLUMN, AS_OF_COLUMN = KEY_COLUMNS
FEATURE_SET_COLUMN = BOOKKEEPING_COLUMNS[0]
EVALUATION_FILE = "evaluation.json"
VALIDATION_SIZE = 0.2


def data_fingerprint(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """SHA-256 (hex) of the given columns' names, dtypes and values (row order as given)."""
    digest = hashlib.sha256()
    sub = frame[list(columns)]
    digest.update(json.dumps([[c, str(sub[c].dtype)] for c in sub.columns]).encode())
    digest.update(pd.util.hash_pandas_object(sub, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def training_fingerprint(frame: pd.DataFrame, feature_cols: Sequence[str] | None = None) -> str:
    """The content fingerprint a bundle manifest records (``training_data.fingerprint``) for a labeled frame.

    The key columns, the label and ``feature_cols`` (default: :func:`~clientml_mle.features.feature_columns`),
    so the bookkeeping columns (``created_at``, ``feature_set_version``) do not count: a rebuild that
    restamps identical rows keeps the fingerprint. The one way to compute it, for the manifest and for
    ``clientml train --watch`` deciding whether a table's content was already trained on.
    """
    columns = tuple(feature_cols) if feature_cols is not None else tuple(feature_columns(frame))
    key_cols = [c for c in KEY_COLUMNS if c in frame.columns]
    return data_fingerprint(frame, [*key_cols, LABEL_COLUMN, *columns])


def split_indices(
    labels: IntArray, test_size: float, seed: int, groups: npt.NDArray[Any] | None = None
) -> tuple[IntArray, IntArray]:
    """Stratified (train, test) positions, sorted; with ``groups``, a group never straddles the split.

    Without repeated groups: ``train_test_split`` with ``test_size`` (a fraction). With them:
    the first fold of a shuffled ``StratifiedGroupKFold`` of ``round(1 / test_size)`` folds.
    """
    positions = np.arange(len(labels))
    if groups is not None and len(np.unique(groups)) < len(groups):
        folds = max(2, round(1 / test_size))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        train_pos, test_pos = next(splitter.split(positions, labels, groups))
        return train_pos.astype(np.int64), test_pos.astype(np.int64)
    train_pos, test_pos = train_test_split(positions, test_size=test_size, stratify=labels, random_state=seed)
    return np.sort(train_pos).astype(np.int64), np.sort(test_pos).astype(np.int64)


def client_groups(frame: pd.DataFrame) -> npt.NDArray[Any] | None:
    """The client id of each row (``None`` without a client column): what group-aware splits keep together."""
    return frame[CLIENT_COLUMN].to_numpy() if CLIENT_COLUMN in frame.columns else None


def _rows(frame: pd.DataFrame, positions: IntArray) -> pd.DataFrame:
    rows = frame.iloc[positions]
    rows.attrs = dict(frame.attrs)  # the warehouse's feature types, which the schema is inferred from
    return rows


@dataclass(frozen=True, eq=False)
class Split:
    """A labeled frame (index ``0..n-1``) and the positions of its training and test rows.

    Rows in neither (e.g. a time split leaving out earlier rows of test clients) are not used. The
    feature schema is inferred from the training rows only.
    """

    frame: pd.DataFrame = field(repr=False)
    labels: IntArray = field(repr=False)
    train_pos: IntArray = field(repr=False)
    test_pos: IntArray = field(repr=False)
    feature_cols: tuple[str, ...]
    test_size: float
    table: str = FEATURE_STORE

    @cached_property
    def train_rows(self) -> pd.DataFrame:
        """The raw training rows (every column of the frame)."""
        return _rows(self.frame, self.train_pos)

    @cached_property
    def test_rows(self) -> pd.DataFrame:
        """The raw test rows (every column: an older champion using other features can score them)."""
        return _rows(self.frame, self.test_pos)

    @cached_property
    def features(self) -> list[FeatureSpec]:
        """The feature schema inferred from the training rows (the bundle manifest's ``features``)."""
        return infer_feature_specs(self.train_rows, list(self.feature_cols))

    @cached_property
    def x_train(self) -> pd.DataFrame:
        """The training rows as model input (the schema's columns and dtypes), shape (n_train, n_features)."""
        return coerce_frame(self.train_rows, self.features)

    @cached_property
    def x_test(self) -> pd.DataFrame:
        """The test rows as model input, shape (n_test, n_features)."""
        return coerce_frame(self.test_rows, self.features)

    @property
    def y_train(self) -> IntArray:
        return self.labels[self.train_pos]

    @property
    def y_test(self) -> IntArray:
        return self.labels[self.test_pos]

    @property
    def train_groups(self) -> npt.NDArray[Any] | None:
        """The client id of each training row (``None`` without a client column): for group-aware splits."""
        return client_groups(self.train_rows)

    def training_data(self) -> dict[str, Any]:
        """What the bundle manifest records about the data: table, row counts, fingerprint, label rate."""
        frame = self.frame
        data: dict[str, Any] = {
            "table": self.table,
            "rows": len(frame),
            "fingerprint": training_fingerprint(frame, self.feature_cols),
            "train_rows": len(self.train_pos),
            "test_rows": len(self.test_pos),
            "positive_rate": float(self.labels.mean()),
        }
        if FEATURE_SET_COLUMN in frame.columns:
            data["feature_set_versions"] = sorted({str(v) for v in frame[FEATURE_SET_COLUMN].dropna()})
        if AS_OF_COLUMN in frame.columns and len(frame):
            data["max_as_of_date"] = str(pd.Timestamp(frame[AS_OF_COLUMN].max()).date())
        return data


def split_rows(
    frame: pd.DataFrame,
    *,
    test_size: float = 0.2,
    seed: int = 0,
    feature_cols: Sequence[str] | None = None,
    table: str = FEATURE_STORE,
    positions: tuple[IntArray, IntArray] | None = None,
) -> Split:
    """Step 1: cut a labeled frame (e.g. :func:`clientml_mle.features.training_frame`) into train and test.

    The split keeps the frame (not copied when its index is already ``0..n-1``): do not change it after.
    ``feature_cols`` defaults to every column but the key, label and bookkeeping ones. ``positions``
    gives the (train, test) row positions (of ``frame`` in its order) instead of the stratified split of
    :func:`split_indices` (group-aware by client); ``test_size`` is then only recorded.

    Raises:
        clientml_mle.trainable.TrainingDataError: bad labels (:func:`~clientml_mle.trainable.training_labels`),
            too few of a label for the test split, or test or training rows without both labels.
        ValueError: ``test_size`` not in (0, 1), no feature column, or ``positions`` that are empty, out of
            range or overlapping.
    """
    if not 0 < test_size < 1:
        raise ValueError("test_size must be between 0 and 1")
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)  # a copy: only when the index is not already 0..n-1
    labels = training_labels(frame)
    groups = client_groups(frame)
    if positions is None:
        check_trainable(labels, test_size=test_size, groups=groups, table=table, table_rows=table_rows(frame))
    columns = tuple(feature_cols) if feature_cols is not None else tuple(feature_columns(frame))
    if not columns:
        raise ValueError("the training frame has no feature columns")
    if positions is None:
        train_pos, test_pos = split_indices(labels, test_size, seed, groups)
    else:
        train_pos, test_pos = (np.asarray(p, dtype=np.int64).copy() for p in positions)
        inside = all(len(p) and p.min() >= 0 and p.max() < len(frame) for p in (train_pos, test_pos))
        if not inside or np.intersect1d(train_pos, test_pos).size:
            raise ValueError("positions must be two non-empty, disjoint sets of row positions of the frame")
    check_part(labels[test_pos], "the test rows", "evaluating the model")
    check_part(labels[train_pos], "the training rows", "fitting a classifier")
    return Split(frame, labels, train_pos, test_pos, columns, test_size, table)


@dataclass(frozen=True, eq=False)
class Fitted:
    """A model fitted on a split's training rows, its decision threshold and what it was trained on."""

    model: Pipeline = field(repr=False)
    features: list[FeatureSpec]
    threshold: float
    threshold_rule: str | float
    seed: int
    validation_size: float
    training_data: dict[str, Any]


def _build(estimator: Pipeline | EstimatorFactory, specs: list[FeatureSpec], seed: int) -> Pipeline:
    pipeline = clone(estimator) if isinstance(estimator, Pipeline) else estimator(list(specs))
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"the estimator must be (or build) an sklearn Pipeline, not {type(pipeline).__name__}")
    return seeded(pipeline, seed)


def fit(
    estimator: Pipeline | EstimatorFactory,
    split: Split,
    *,
    seed: int = 0,
    threshold: str | float = "max_f1",
    validation_size: float = VALIDATION_SIZE,
) -> Fitted:
    """Step 2: choose the threshold, then fit ``estimator`` on all of ``split``'s training rows.

    ``estimator`` is a Pipeline (cloned, never fitted itself) or a function of the feature schema
    building one; every unset ``random_state`` is set to ``seed``. ``threshold``: a number in [0, 1] is
    used as it is; ``"max_f1"`` fits a copy on the training rows minus a stratified ``validation_size``
    part (group-aware, seed ``seed + 1``) and takes the probability maximising F1 on that part.

    Raises:
        clientml_mle.trainable.TrainingDataError: the validation part or the rest lacks a label (before
            anything is fitted).
        ValueError: ``validation_size`` not in (0, 1), a threshold outside [0, 1] or an unknown rule.
        TypeError: ``estimator`` is not (and does not build) a Pipeline.
    """
    if not 0 < validation_size < 1:
        raise ValueError("validation_size must be between 0 and 1")
    specs, x_train, y_train = split.features, split.x_train, split.y_train
    if isinstance(threshold, str):
        what = f"the threshold's {validation_size:.0%} validation split"
        check_part(y_train, "the training rows", what, at_least=split_minimum(validation_size))
        fit_rel, val_rel = split_indices(y_train, validation_size, seed + 1, split.train_groups)
        check_part(y_train[val_rel], f"{what}'s validation rows", "choosing the threshold")
        check_part(y_train[fit_rel], f"{what}'s fitting rows", "fitting a classifier")
        probe = _build(estimator, specs, seed)
        probe.fit(x_train.iloc[fit_rel], y_train[fit_rel])
        chosen = choose_threshold(y_train[val_rel], positive_proba(probe, x_train.iloc[val_rel]), threshold)
    elif 0 <= threshold <= 1:
        chosen = float(threshold)
    else:
        raise ValueError(f"threshold {threshold} is not a probability")
    model = _build(estimator, specs, seed)
    model.fit(x_train, y_train)
    return Fitted(model, specs, chosen, threshold, seed, validation_size, split.training_data())


def evaluate_model(fitted: Fitted, split: Split, *, n_boot: int = N_BOOTSTRAP) -> Evaluation:
    """Step 3: evaluate ``fitted`` on ``split``'s test rows at its threshold (bootstrap seeded by its seed).

    Raises:
        ValueError: the test rows do not hold both labels.
    """
    same = fitted.features == split.features
    x_test = split.x_test if same else coerce_frame(split.test_rows, fitted.features)
    proba = positive_proba(fitted.model, x_test)
    evaluation = evaluate(split.y_test, proba, fitted.threshold, n_boot=n_boot, seed=fitted.seed)
    low, high = evaluation.roc_auc_ci95_low, evaluation.roc_auc_ci95_high
    log.info("test ROC-AUC %.4f (95%% CI %.4f-%.4f)", evaluation.roc_auc, low, high)
    return evaluation


def reference_profile(fitted: Fitted, split: Split) -> ReferenceProfile:
    """The bundle's reference profile (:mod:`clientml_mle.monitor.profile`): ``split``'s training rows, the
    model's importance shares and its scores on the test rows."""
    same = fitted.features == split.features
    x_train = split.x_train if same else coerce_frame(split.train_rows, fitted.features)
    x_test = split.x_test if same else coerce_frame(split.test_rows, fitted.features)
    shares, source = importance_shares(fitted.model, x_train, fitted.features)
    scores = positive_proba(fitted.model, x_test)
    return build_profile(x_train, fitted.features, shares, source, scores)


def publish_bundle(
    fitted: Fitted,
    evaluation: Evaluation,
    models_dir: Path | str,
    *,
    split: Split | None = None,
    name: str = "clientml-classifier",
    extra_files: Mapping[str, Path] | None = None,
    trusted_types: frozenset[str] = TRUSTED_TYPES,
) -> Path:
    """Step 4: save the bundle (``LATEST`` moves to it) and return its directory.

    The bundle holds the model, its encoder, ``evaluation.json`` (``{"test": evaluation}``), with ``split``
    (the split ``fitted`` was trained and evaluated on; both trainers pass it) ``reference_profile.json``
    (:func:`reference_profile`: what drift monitoring compares with; without it the bundle has none, as
    bundles written before monitoring existed), and ``extra_files`` (relative path in the bundle -> local
    file, e.g. ``{"report/report.html": path}``), all hashed in the manifest.

    Raises:
        ValueError: an extra file's path clashes with a bundle file.
        clientml_mle.bundle.UntrustedModelError: the model holds types outside ``trusted_types``.
    """
    extra = dict(extra_files or {})
    clashes = sorted({EVALUATION_FILE, PROFILE_FILE} & set(extra))
    if clashes:
        raise ValueError(f"extra file {clashes[0]!r} clashes with a bundle file")
    metrics = evaluation.to_dict()
    with tempfile.TemporaryDirectory(prefix="clientml-train-") as tmp:
        evaluation_json = Path(tmp) / EVALUATION_FILE
        evaluation_json.write_text(json.dumps({"test": metrics}, indent=2, default=float), encoding="utf-8")
        written = {EVALUATION_FILE: evaluation_json}
        if split is not None:
            written[PROFILE_FILE] = Path(tmp) / PROFILE_FILE
            written[PROFILE_FILE].write_bytes(reference_profile(fitted, split).to_json())
        else:
            log.warning("no split given to publish_bundle: the bundle has no reference profile to monitor drift")
        return save_bundle(
            models_dir,
            fitted.model,
            fitted.features,
            fitted.threshold,
            metrics,
            fitted.training_data,
            name,
            {**written, **extra},
            trusted_types=trusted_types,
        )


def run_params(
    split: Split, fitted: Fitted, evaluation: Evaluation, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The run's MLflow parameters: the protocol's, the estimator's (``model.<step>__<param>``), ``extra``."""
    model = fitted.model
    return {
        "seed": fitted.seed,
        "test_size": split.test_size,
        "validation_size": fitted.validation_size,
        "threshold_rule": fitted.threshold_rule,
        "n_features": len(fitted.features),
        "n_boot": evaluation.bootstrap.n,
        "estimator": type(model.steps[-1][1]).__name__,
        **{f"model.{k}": v for k, v in model.get_params(deep=True).items() if "__" in k},
        **dict(extra or {}),
    }


def track_and_gate(
    tracker: MlflowTracker,
    *,
    split: Split,
    fitted: Fitted,
    evaluation: Evaluation,
    bundle_dir: Path,
    params: Mapping[str, Any] | None = None,
    force: bool = False,
) -> TrackingRecord:
    """Step 5: log the run (bundle, model, :func:`run_params` plus ``params``), register it, apply the
    champion rule on ``split``'s test rows; when promoted, the ``champion`` alias and ``CHAMPION`` (beside
    the bundle) move to it, together, under the models directory's lock (:meth:`MlflowTracker.gate`).

    ``force`` promotes regardless of the rule. Raises what MLflow raises (e.g. an unreachable server).
    """
    return tracker.record(
        bundle_dir=bundle_dir,
        params=run_params(split, fitted, evaluation, params),
        metrics=evaluation.scalar_metrics(),
        eval_frame=split.test_rows,
        eval_labels=split.y_test,
        new_roc_auc=evaluation.roc_auc,
        new_roc_auc_ci95_low=evaluation.roc_auc_ci95_low,
        force=force,
    )


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run produced: the fitted model, its test evaluation, its bundle, its tracking."""

    fitted: Fitted
    evaluation: Evaluation
    bundle_path: Path
    name: str
    tracking: TrackingRecord | None = None

    @property
    def version(self) -> str:
        return self.bundle_path.name

    @property
    def decision(self) -> ChampionDecision | None:
        return self.tracking.decision if self.tracking is not None else None

    @property
    def model(self) -> Pipeline:
        return self.fitted.model

    @property
    def threshold(self) -> float:
        return self.fitted.threshold

    @property
    def features(self) -> list[FeatureSpec]:
        return self.fitted.features

    @property
    def training_data(self) -> dict[str, Any]:
        return self.fitted.training_data

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary (what ``clientml train`` prints)."""
        return {
            "bundle": str(self.bundle_path),
            "version": self.version,
            "name": self.name,
            "threshold": self.threshold,
            "metrics": self.evaluation.scalar_metrics(),
            "confusion_matrix": asdict(self.evaluation.confusion_matrix),
            "training_data": self.training_data,
            "n_features": len(self.features),
            "tracking": self.tracking.to_dict() if self.tracking is not None else None,
        }


def train(
    estimator: Pipeline | EstimatorFactory,
    frame: pd.DataFrame,
    *,
    models_dir: Path | str,
    seed: int = 0,
    test_size: float = 0.2,
    threshold: str | float = "max_f1",
    tracking: MlflowTracker | None = None,
    name: str = "clientml-classifier",
    feature_cols: Sequence[str] | None = None,
    n_boot: int = N_BOOTSTRAP,
    force_promote: bool = False,
) -> TrainResult:
    """The five steps in order (module docstring) with the stratified split; ``tracking=None`` skips step 5.

    First :func:`~clientml_mle.trainable.check_trainable` with this protocol (the test split, and the
    threshold's validation split for a threshold rule): data that cannot train is refused before any fit.

    Raises:
        clientml_mle.trainable.TrainingDataError: the rows cannot train a model (no labeled row, one
            label, too few of a label for a split); the message says what is needed.
        ValueError: a bad threshold or test size; and what the steps raise.
    """
    labels = training_labels(frame)
    validation = VALIDATION_SIZE if isinstance(threshold, str) else None
    groups, rows = client_groups(frame), table_rows(frame)
    check_trainable(labels, test_size=test_size, validation_size=validation, groups=groups, table_rows=rows)
    split = split_rows(frame, test_size=test_size, seed=seed, feature_cols=feature_cols)
    fitted = fit(estimator, split, seed=seed, threshold=threshold)
    evaluation = evaluate_model(fitted, split, n_boot=n_boot)
    bundle_dir = publish_bundle(fitted, evaluation, models_dir, split=split, name=name)
    record = None
    if tracking is not None:
        record = track_and_gate(
            tracking, split=split, fitted=fitted, evaluation=evaluation, bundle_dir=bundle_dir, force=force_promote
        )
    return TrainResult(fitted, evaluation, bundle_dir, name, record)
