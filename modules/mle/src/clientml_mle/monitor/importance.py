"""Which features a model relies on: each feature's share of the fitted model's importance.

The classifier's own importances, per encoded column, added back to the feature each column comes from
(:func:`clientml_mle.estimators.output_sources`: a categorical feature's one-hot columns, a numeric feature's
column and its missing indicator):

- LightGBM: the total gain of the splits on the column (``booster_.feature_importance("gain")``): how much
  the column improved the fit, not how often it was split on;
- another classifier with ``feature_importances_``: those;
- a linear model (``coef_``): ``|coefficient| x standard deviation of the column`` on the training rows, the
  standardised coefficient, so that a one-hot 0/1 column and a scaled number compare;
- anything else (``DummyClassifier``), or columns that cannot be traced: every feature the same share.

A calibration wrapper is looked through (the calibrated classifier's importances). Shares sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from clientml_mle.estimators import base_classifier, output_sources
from clientml_mle.manifest import FeatureSpec

# Rows of the training set that the standard deviations of a linear model's columns are computed on.
STD_SAMPLE = 50_000


def _column_importance(model: Pipeline, classifier: Any, x_train: pd.DataFrame) -> tuple[Any, str] | None:
    booster = getattr(classifier, "booster_", None)
    if booster is not None and hasattr(booster, "feature_importance"):
        return booster.feature_importance(importance_type="gain"), "LightGBM total gain per feature"
    if getattr(classifier, "feature_importances_", None) is not None:
        return classifier.feature_importances_, f"{type(classifier).__name__}.feature_importances_"
    coef = getattr(classifier, "coef_", None)
    if coef is None:
        return None
    sample = x_train.sample(n=STD_SAMPLE, random_state=0) if len(x_train) > STD_SAMPLE else x_train
    matrix = model[:-1].transform(sample)
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix, dtype=np.float64)
    scale = np.nanstd(matrix, axis=0)
    return np.abs(np.ravel(coef)) * scale, "|coefficient| x standard deviation of its column (standardised)"


def importance_shares(
    model: Pipeline, x_train: pd.DataFrame, features: Sequence[FeatureSpec]
) -> tuple[dict[str, float], str]:
    """(feature -> share of the model's importance, how it was obtained) for a fitted Pipeline whose first
    step is :func:`~clientml_mle.estimators.make_encoder`'s encoder; ``x_train`` its coerced training rows."""
    names = [f.name for f in features]
    uniform = dict.fromkeys(names, 1.0 / len(names)) if names else {}
    classifier = base_classifier(model)
    try:
        sources = output_sources(model.steps[0][1])
    except (TypeError, AttributeError) as exc:
        return uniform, f"uniform: the encoded columns cannot be traced to the features ({exc})"
    found = _column_importance(model, classifier, x_train)
    if found is None:
        return uniform, f"uniform: {type(classifier).__name__} has no importances"
    raw, source = found
    values = np.abs(np.asarray(raw, dtype=np.float64))
    if len(values) != len(sources) or not np.isfinite(values).all() or values.sum() <= 0:
        return uniform, f"uniform: the importances of {type(classifier).__name__} are empty or do not match its input"
    totals = dict.fromkeys(names, 0.0)
    for feature, value in zip(sources, values, strict=True):
        totals[feature] = totals.get(feature, 0.0) + float(value)
    total = sum(totals.values())
    return {name: totals[name] / total for name in names}, source
