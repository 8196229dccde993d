"""The training harness: split, fit, choose the threshold, evaluate, bundle, track, decide champion.

It is generic in the model: pass any sklearn Pipeline (its first step is the encoder, saved on its own in
the bundle) or a function building one from the feature schema; :func:`default_estimator` is a minimal
one-hot + LightGBM baseline.

Protocol (all random choices derive from ``seed``, so a seed gives the same split, model and metrics):

1. a stratified test split (``test_size``) that is used once, for the final evaluation; when a client
   has several rows (as-of dates), the split keeps all of a client's rows on one side;
2. a stratified validation split carved from the training rows (``validation_size``): a copy of the model
   is fitted on the rest and the threshold is chosen on it (``"max_f1"``, or a fixed number), never on
   the test rows;
3. the model is refitted on all the training rows, evaluated on the test rows with that threshold, and
   saved as a bundle (``LATEST`` moves to it); the run is tracked in MLflow and the champion rule applied
   (``tracking``); when the new version is promoted, ``models_dir/CHAMPION`` moves to its bundle too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.contract import FEATURE_STORE, KEY_COLUMNS, LABEL_COLUMN
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from clientml_mle.bundle import CHAMPION_FILE, TRUSTED_TYPES, save_bundle, set_pointer
from clientml_mle.evaluate import N_BOOTSTRAP, choose_threshold, evaluate, scalar_metrics
from clientml_mle.features import feature_columns
from clientml_mle.schema import FeatureSpec, coerce_frame, infer_feature_specs
from clientml_mle.tracking import ChampionDecision, MlflowTracker, TrackingRecord

log = logging.getLogger(__name__)

EstimatorFactory = Callable[[list[FeatureSpec]], Pipeline]
IntArray = npt.NDArray[np.int64]
# (model, features, threshold, test metrics, training data) -> {name in the bundle: file}
BundleFiles = Callable[[Pipeline, list[FeatureSpec], float, Mapping[str, Any], Mapping[str, Any]], Mapping[str, Path]]
_MIN_PER_CLASS = 10


def default_estimator(features: Sequence[FeatureSpec], n_jobs: int = 2) -> Pipeline:
    """One-hot encoding of the categorical features (numbers passed through), then LightGBM.

    The encoder knows exactly the manifest's categories; unknown values and nulls encode as all zeros.
    Categorical features with no category at all in training are left out. LightGBM handles NaN.
    """
    from lightgbm import LGBMClassifier

    categorical = [f for f in features if f.type == "category" and f.categories]
    numeric = [f.name for f in features if f.type != "category"]
    encoder = ColumnTransformer(
        [
            (
                "onehot",
                OneHotEncoder(
                    categories=[list(f.categories or []) for f in categorical],
                    handle_unknown="ignore",
                    sparse_output=False,
                    dtype=np.float64,
                ),
                [f.name for f in categorical],
            ),
            ("numeric", "passthrough", numeric),
        ],
        remainder="drop",
    )
    classifier = LGBMClassifier(
        n_estimators=300,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        n_jobs=n_jobs,
        verbose=-1,
        deterministic=True,
        force_col_wise=True,
    )
    return Pipeline([("encoder", encoder), ("classifier", classifier)])


def seeded(pipeline: Pipeline, seed: int) -> Pipeline:
    """Set every unset ``random_state`` parameter of the pipeline to ``seed``."""
    unset = {
        name: seed
        for name, value in pipeline.get_params(deep=True).items()
        if name.endswith("random_state") and value is None
    }
    if unset:
        pipeline.set_params(**unset)
    return pipeline


def data_fingerprint(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """SHA-256 of the given columns' names, dtypes and values (row order as given)."""
    digest = hashlib.sha256()
    sub = frame[list(columns)]
    digest.update(json.dumps([[c, str(sub[c].dtype)] for c in sub.columns]).encode())
    digest.update(pd.util.hash_pandas_object(sub, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def split_indices(
    labels: IntArray, test_size: float, seed: int, groups: npt.NDArray[Any] | None = None
) -> tuple[IntArray, IntArray]:
    """Stratified train/test positions; with ``groups``, a group never straddles the split."""
    positions = np.arange(len(labels))
    if groups is not None and len(np.unique(groups)) < len(groups):
        folds = max(2, round(1 / test_size))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        train_pos, test_pos = next(splitter.split(positions, labels, groups))
        return train_pos.astype(np.int64), test_pos.astype(np.int64)
    train_pos, test_pos = train_test_split(positions, test_size=test_size, stratify=labels, random_state=seed)
    return np.sort(train_pos).astype(np.int64), np.sort(test_pos).astype(np.int64)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    bundle_path: Path
    name: str
    threshold: float
    metrics: dict[str, Any]
    features: list[FeatureSpec]
    training_data: dict[str, Any]
    params: dict[str, Any]
    tracking: TrackingRecord | None = None
    model: Pipeline | None = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str:
        return self.bundle_path.name

    @property
    def decision(self) -> ChampionDecision | None:
        return self.tracking.decision if self.tracking is not None else None

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary (what ``clientml train`` prints)."""
        return {
            "bundle": str(self.bundle_path),
            "version": self.version,
            "name": self.name,
            "threshold": self.threshold,
            "metrics": scalar_metrics(self.metrics),
            "confusion_matrix": self.metrics.get("confusion_matrix"),
            "training_data": self.training_data,
            "n_features": len(self.features),
            "tracking": self.tracking.to_dict() if self.tracking is not None else None,
        }


def _labels(frame: pd.DataFrame) -> IntArray:
    if LABEL_COLUMN not in frame.columns:
        raise ValueError(f"the training frame has no {LABEL_COLUMN!r} column")
    raw = pd.to_numeric(frame[LABEL_COLUMN], errors="coerce")
    if raw.isna().any():
        raise ValueError(f"the training frame has {int(raw.isna().sum())} rows without a label")
    if not raw.isin([0, 1]).all():
        raise ValueError("labels must be 0 or 1")
    labels = raw.to_numpy().astype(np.int64)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < _MIN_PER_CLASS:
        raise ValueError(f"too few rows to train: {counts[0]} negatives and {counts[1]} positives")
    return labels


def _build(estimator: Pipeline | EstimatorFactory, specs: list[FeatureSpec], seed: int) -> Pipeline:
    pipeline = clone(estimator) if isinstance(estimator, Pipeline) else estimator(list(specs))
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"the estimator must be (or build) an sklearn Pipeline, not {type(pipeline).__name__}")
    return seeded(pipeline, seed)


def _rows(frame: pd.DataFrame, positions: IntArray) -> pd.DataFrame:
    rows = frame.iloc[positions]
    rows.attrs = dict(frame.attrs)
    return rows


def _positive_proba(model: Pipeline, x: pd.DataFrame) -> npt.NDArray[np.float64]:
    proba = model.predict_proba(x)
    return np.asarray(proba[:, list(model.classes_).index(1)], dtype=np.float64)


def train(
    estimator: Pipeline | EstimatorFactory,
    frame: pd.DataFrame,
    *,
    seed: int = 0,
    test_size: float = 0.2,
    validation_size: float = 0.2,
    threshold_rule: str | float = "max_f1",
    models_dir: Path | str,
    tracking: MlflowTracker | None = None,
    name: str = "clientml-classifier",
    feature_cols: Sequence[str] | None = None,
    table: str = FEATURE_STORE,
    n_boot: int = N_BOOTSTRAP,
    force_promote: bool = False,
    params: Mapping[str, Any] | None = None,
    split: tuple[IntArray, IntArray] | None = None,
    bundle_files: BundleFiles | None = None,
    trusted_types: frozenset[str] = TRUSTED_TYPES,
) -> TrainResult:
    """Train, evaluate and publish a model on a labeled frame (see the module docstring).

    ``frame`` is e.g. :func:`clientml_mle.features.training_frame`; ``feature_cols`` defaults to every
    column but the key, label and bookkeeping ones. ``tracking=None`` skips MLflow (no champion decision).
    ``split`` gives the (train, test) row positions instead of the stratified split; ``bundle_files`` is
    called with the fitted model, its features, threshold, test metrics and training data, and returns
    extra files (e.g. an evaluation report) to publish, hashed, inside the bundle.
    """
    if not 0 < test_size < 1 or not 0 < validation_size < 1:
        raise ValueError("test_size and validation_size must be between 0 and 1")
    frame = frame.reset_index(drop=True)
    labels = _labels(frame)
    columns = list(feature_cols) if feature_cols is not None else feature_columns(frame)
    if not columns:
        raise ValueError("the training frame has no feature columns")
    groups = frame["client_id"].to_numpy() if "client_id" in frame.columns else None

    train_pos, test_pos = split if split is not None else split_indices(labels, test_size, seed, groups)
    fit_rel, val_rel = split_indices(
        labels[train_pos], validation_size, seed + 1, groups[train_pos] if groups is not None else None
    )
    train_rows, test_rows = _rows(frame, train_pos), _rows(frame, test_pos)
    specs = infer_feature_specs(train_rows, columns)
    x_train = coerce_frame(train_rows, specs)
    x_test = coerce_frame(test_rows, specs)
    y_train, y_test = labels[train_pos], labels[test_pos]

    if isinstance(threshold_rule, float):
        threshold = threshold_rule
    else:
        # Threshold: a copy fitted without the validation rows, chosen on them.
        probe = _build(estimator, specs, seed)
        probe.fit(x_train.iloc[fit_rel], y_train[fit_rel])
        proba = _positive_proba(probe, x_train.iloc[val_rel])
        threshold = choose_threshold(y_train[val_rel], proba, threshold_rule)

    model = _build(estimator, specs, seed)
    model.fit(x_train, y_train)
    test_proba = _positive_proba(model, x_test)
    metrics = evaluate(y_test, test_proba, threshold, n_boot=n_boot, seed=seed)
    log.info("test ROC-AUC %.4f (95%% CI %.4f-%.4f)", metrics["roc_auc"], *metrics_ci(metrics))

    key_cols = [c for c in KEY_COLUMNS if c in frame.columns]
    training_data = {
        "table": table,
        "rows": len(frame),
        "fingerprint": data_fingerprint(frame, [*key_cols, LABEL_COLUMN, *columns]),
        "train_rows": len(train_pos),
        "test_rows": len(test_pos),
        "positive_rate": float(labels.mean()),
    }
    if "feature_set_version" in frame.columns:
        training_data["feature_set_versions"] = sorted({str(v) for v in frame["feature_set_version"].dropna()})
    if "as_of_date" in frame.columns and len(frame):
        training_data["max_as_of_date"] = str(pd.Timestamp(frame["as_of_date"].max()).date())
    run_params = {
        "seed": seed,
        "test_size": test_size,
        "validation_size": validation_size,
        "threshold_rule": threshold_rule,
        "n_features": len(specs),
        "n_boot": n_boot,
        "estimator": type(model.steps[-1][1]).__name__,
        **{f"model.{k}": v for k, v in model.get_params(deep=True).items() if "__" in k},
        **dict(params or {}),
    }

    with tempfile.TemporaryDirectory(prefix="clientml-train-") as tmp:
        evaluation = Path(tmp) / "evaluation.json"
        evaluation.write_text(json.dumps({"test": metrics}, indent=2, default=float), encoding="utf-8")
        bundle_path = save_bundle(
            models_dir,
            model,
            specs,
            threshold,
            metrics,
            training_data,
            name,
            {
                "evaluation.json": evaluation,
                **(bundle_files(model, specs, threshold, metrics, training_data) if bundle_files else {}),
            },
            trusted_types=trusted_types,
        )

    record = None
    if tracking is not None:
        record = tracking.record(
            bundle_dir=bundle_path,
            model=model,
            features=specs,
            params=run_params,
            metrics=scalar_metrics(metrics),
            eval_frame=test_rows,
            eval_labels=y_test,
            new_roc_auc=metrics["roc_auc"],
            new_roc_auc_ci95_low=metrics["roc_auc_ci95_low"],
            force=force_promote,
        )
        if record.decision.promoted:
            set_pointer(models_dir, bundle_path.name, CHAMPION_FILE)
    return TrainResult(
        bundle_path=bundle_path,
        name=name,
        threshold=threshold,
        metrics=metrics,
        features=specs,
        training_data=training_data,
        params=run_params,
        tracking=record,
        model=model,
    )


def metrics_ci(metrics: Mapping[str, Any]) -> tuple[float, float]:
    return float(metrics["roc_auc_ci95_low"]), float(metrics["roc_auc_ci95_high"])
