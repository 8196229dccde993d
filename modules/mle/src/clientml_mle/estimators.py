"""The estimator building blocks every trainer shares: the one-hot encoder, the baseline LightGBM, seeding,
and the positive-class probability.

Every model this system bundles is a scikit-learn ``Pipeline([(ENCODE_STEP, encoder), (MODEL_STEP,
classifier)])``: the first step encodes the feature-store columns into a float matrix (saved on its own in
the bundle as ``encoder.skops``), the last one is the classifier (possibly wrapped, e.g. calibrated). The
bundle and the prediction API address the steps by position, never by name; the names are a convention
that keeps ``get_params`` keys (``encode__…``, ``model__…``) alike across trainers.

:func:`default_estimator` is mle's baseline (one-hot + LightGBM with :data:`LGBM_BASELINE`); the ds module's
candidates are built from the same :func:`make_encoder` and :func:`lgbm_pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from clientml_mle.schema import FeatureSpec

FloatArray = npt.NDArray[np.float64]
EstimatorFactory = Callable[[list[FeatureSpec]], Pipeline]
ENCODE_STEP, MODEL_STEP = "encode", "model"

# The baseline LightGBM: mle's default model and the first trial of the ds search, so that a search never
# ends below it. 300 trees of at most 15 leaves, learning rate 0.03, row and column subsampling 0.8, L2 1.
LGBM_BASELINE: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}


def categorical_features(features: Sequence[FeatureSpec]) -> list[FeatureSpec]:
    """The categorical features that have at least one training category (an empty one carries nothing)."""
    return [f for f in features if f.type == "category" and f.categories]


def numeric_features(features: Sequence[FeatureSpec]) -> list[str]:
    """Names of the non-categorical features (numbers, integers, booleans), in schema order."""
    return [f.name for f in features if f.type != "category"]


def make_encoder(features: Sequence[FeatureSpec], *, numeric: Any = "passthrough") -> ColumnTransformer:
    """The encoder: one-hot of the categoricals with exactly the schema's categories, then the numerics.

    Output columns (float64): one block per categorical feature with categories (in schema order, one
    column per category; an unseen value or a null encodes as all zeros, ``handle_unknown="ignore"``),
    then the numeric features through ``numeric`` (``"passthrough"`` for trees, which route NaN
    themselves; a transformer such as an imputing and scaling ``Pipeline`` for linear models).
    Categorical features without any category are left out. Columns are selected by name, so the input is
    any DataFrame holding the features (extra columns are dropped).
    """
    categorical = categorical_features(features)
    onehot = OneHotEncoder(
        categories=[list(f.categories or []) for f in categorical],
        handle_unknown="ignore",
        sparse_output=False,
        dtype=np.float64,
    )
    return ColumnTransformer(
        [("onehot", onehot, [f.name for f in categorical]), ("numeric", numeric, numeric_features(features))],
        remainder="drop",
    )


def lgbm_pipeline(
    features: Sequence[FeatureSpec],
    *,
    params: Mapping[str, Any] | None = None,
    class_weight: str | None = None,
    n_jobs: int = 1,
    seed: int | None = None,
) -> Pipeline:
    """:func:`make_encoder` then ``LGBMClassifier`` with ``params`` over :data:`LGBM_BASELINE`.

    ``deterministic=True`` and ``force_col_wise=True``: the same data and seed give the same trees on any
    machine. ``seed=None`` leaves ``random_state`` unset, for :func:`seeded` (the training step) to set.
    ``n_jobs`` is LightGBM's thread count (1 is fastest on small data or a shared machine).
    """
    from lightgbm import LGBMClassifier

    classifier = LGBMClassifier(
        **{**LGBM_BASELINE, **dict(params or {})},
        subsample_freq=1,
        class_weight=class_weight,
        n_jobs=n_jobs,
        random_state=seed,
        verbose=-1,
        deterministic=True,
        force_col_wise=True,
    )
    return Pipeline([(ENCODE_STEP, make_encoder(features)), (MODEL_STEP, classifier)])


def default_estimator(features: Sequence[FeatureSpec], n_jobs: int = 2) -> Pipeline:
    """mle's baseline: :func:`lgbm_pipeline` with the baseline settings, its seed set by the training step."""
    return lgbm_pipeline(features, n_jobs=n_jobs)


def seeded(pipeline: Pipeline, seed: int) -> Pipeline:
    """Set every unset (``None``) ``random_state`` parameter of ``pipeline`` to ``seed``, in place; return it."""
    unset = {
        name: seed
        for name, value in pipeline.get_params(deep=True).items()
        if name.endswith("random_state") and value is None
    }
    if unset:
        pipeline.set_params(**unset)
    return pipeline


def base_classifier(pipeline: Pipeline) -> Any:
    """The fitted classifier of ``pipeline`` (its last step), under an optional calibration wrapper (the first
    fold's: the only one with ``ensemble=False``). What SHAP explains and whose importances are read."""
    model = pipeline.steps[-1][1]
    if isinstance(model, CalibratedClassifierCV):
        return model.calibrated_classifiers_[0].estimator
    return model


def output_sources(encoder: ColumnTransformer) -> list[str]:
    """For each output column of a fitted :func:`make_encoder`, the feature it comes from.

    One-hot blocks map to their categorical feature; with an imputing numeric branch (a ``Pipeline`` whose
    ``impute`` step adds missing indicators), the indicators map to the numeric feature they flag. Used to
    add a feature's columns together (SHAP values, importances). Raises TypeError for a transformer whose
    outputs it cannot trace.
    """
    sources: list[str] = []
    for name, step, columns in encoder.transformers_:
        cols = [str(c) for c in columns] if not isinstance(columns, str) else [columns]
        if step == "drop" or not cols:
            continue
        if isinstance(step, OneHotEncoder):
            widths = getattr(step, "_n_features_outs", None) or [len(c) for c in step.categories_]
            for col, width in zip(cols, widths, strict=True):
                sources.extend([col] * int(width))
        elif isinstance(step, Pipeline):
            imputer = step.named_steps.get("impute")
            sources.extend(cols)
            indicator = getattr(imputer, "indicator_", None)
            if indicator is not None:
                sources.extend(cols[int(i)] for i in indicator.features_)
        elif isinstance(step, BaseEstimator) or step == "passthrough":
            sources.extend(cols)
        else:
            raise TypeError(f"cannot trace the outputs of transformer {name!r}")
    return sources


def positive_proba(model: Any, x: pd.DataFrame | npt.NDArray[Any]) -> FloatArray:
    """P(label = 1) of each row of ``x`` (shape ``(n,)``, float64) from a fitted binary classifier.

    The column is found through ``model.classes_``, so it does not depend on the class order.

    Raises:
        ValueError: the model was not fitted with the label 1 among its classes.
    """
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    if 1 not in classes:
        raise ValueError(f"the model's classes {classes} do not include the positive label 1")
    return np.asarray(proba[:, classes.index(1)], dtype=np.float64)
