"""The candidate models, each one scikit-learn ``Pipeline([("encode", ColumnTransformer), ("model", clf)])``.

The shape is mle's (:mod:`clientml_mle.estimators`), what the bundle and the prediction API expect: the
first step is mle's one-hot encoder (``handle_unknown="ignore"``: an unseen category or a null encodes as
all zeros), the last step is the classifier; calibration, when chosen, wraps the classifier *inside* the
pipeline (``CalibratedClassifierCV`` is then the last step).

- ``dummy``: ``DummyClassifier(strategy="prior")``, the floor every model must beat;
- ``logreg``: L2-regularised ``LogisticRegression``; its encoder's numeric branch is
  ``SimpleImputer(median, add_indicator=True, keep_empty_features=True)`` then ``StandardScaler``;
- ``lightgbm``: mle's :func:`~clientml_mle.estimators.lgbm_pipeline` (LightGBM on one-hot categoricals and
  raw numerics, which it routes nulls itself), its parameters over mle's baseline.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from clientml_mle.bundle import untrusted_types as bundle_untrusted_types
from clientml_mle.estimators import ENCODE_STEP, MODEL_STEP, lgbm_pipeline, make_encoder
from clientml_mle.schema import FeatureSpec
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

# Simplest first: on a tie the earlier kind wins.
COMPLEXITY: dict[str, int] = {"dummy": 0, "logreg": 1, "lightgbm": 2}
CALIBRATION_FOLDS = 3
LOGREG_BASELINE: dict[str, Any] = {"C": 1.0}


def scaled_numeric() -> Pipeline:
    """The numeric branch of linear models: median imputation with missing indicators, then standardising.

    A 0/1 indicator column is added for each feature that had nulls in training; ``keep_empty_features``
    keeps a feature that is all-null in training (imputed as 0), so the encoder's width never depends on
    which columns happen to be empty.
    """
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )


def dummy_pipeline(features: Sequence[FeatureSpec]) -> Pipeline:
    """The prior: every client gets the training positive rate."""
    return Pipeline([(ENCODE_STEP, make_encoder(features)), (MODEL_STEP, DummyClassifier())])


def logreg_pipeline(
    features: Sequence[FeatureSpec], *, c: float = 1.0, class_weight: str | None = None, seed: int = 0
) -> Pipeline:
    """L2-regularised logistic regression (``c``: sklearn's ``C``, the inverse strength) on scaled, imputed features."""
    model = LogisticRegression(C=c, class_weight=class_weight, max_iter=2000, random_state=seed)
    return Pipeline([(ENCODE_STEP, make_encoder(features, numeric=scaled_numeric())), (MODEL_STEP, model)])


def build_candidate(
    kind: str,
    features: Sequence[FeatureSpec],
    params: Mapping[str, Any] | None = None,
    *,
    class_weight: str | None = None,
    calibration: str | None = None,
    n_jobs: int = 1,
    seed: int = 0,
) -> Pipeline:
    """The (unfitted) pipeline of a candidate kind, its parameters, class weights and calibration."""
    params = dict(params or {})
    if kind == "dummy":
        pipeline = dummy_pipeline(features)
    elif kind == "logreg":
        pipeline = logreg_pipeline(features, c=float(params.get("C", 1.0)), class_weight=class_weight, seed=seed)
    elif kind == "lightgbm":
        pipeline = lgbm_pipeline(features, params=params, class_weight=class_weight, n_jobs=n_jobs, seed=seed)
    else:
        raise ValueError(f"unknown candidate kind {kind!r} (use one of {sorted(COMPLEXITY)})")
    return calibrated(pipeline, calibration) if calibration else pipeline


def calibrated(pipeline: Pipeline, method: str, folds: int = CALIBRATION_FOLDS) -> Pipeline:
    """The same pipeline with its classifier wrapped in ``CalibratedClassifierCV`` (the last step).

    ``ensemble=False``: the calibrator is fitted on ``folds``-fold cross-validated predictions of the
    classifier and applied to one classifier refitted on all rows, so the served model is a single
    classifier plus a monotone map (sigmoid: Platt scaling; isotonic: a step function).
    """
    if method not in ("sigmoid", "isotonic"):
        raise ValueError(f"unknown calibration method {method!r} (use 'sigmoid' or 'isotonic')")
    encode, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    wrapper = CalibratedClassifierCV(estimator=clone(model), method=method, cv=folds, ensemble=False)
    return Pipeline([(ENCODE_STEP, clone(encode)), (MODEL_STEP, wrapper)])


def untrusted_types(pipeline: Pipeline, sample: pd.DataFrame, labels: Any, trusted: frozenset[str]) -> list[str]:
    """Types of the pipeline, fitted on ``sample``, that a skops loader trusting ``trusted`` refuses.

    A bundle is loaded with :data:`clientml_mle.bundle.TRUSTED_TYPES` by scoring and serving; a candidate
    needing more is not deployable there (until that list is extended, which is a reviewed code change).
    """
    fitted = clone(pipeline)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted.fit(sample, labels)
    return bundle_untrusted_types(fitted, trusted)
