"""Global importance of the features and of feature groups, from SHAP values of the final model.

SHAP values (Lundberg & Lee 2017) are in log-odds of the classifier (under a calibration wrapper, the
wrapped classifier: calibration is a monotone map, it does not change which features matter):
``TreeExplainer`` for LightGBM, ``LinearExplainer`` for logistic regression. A feature's values are its
encoded columns added back together (one-hot columns and missing indicators). SHAP values add up, so a
*group*'s contribution to a row is the sum of its features' values, and its importance the mean absolute
contribution: what the model would lose, on average, by not knowing the whole group (a group's importance
is at most the sum of its features').

Groups come from the feature names of ``feature_store`` (``modules/de/README.md``, "feature_store
columns"), first matching rule wins; a name no rule matches is a column the dataset config declares (an
extra client column or a derived feature), grouped as such.
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pandas as pd
from clientml_mle.estimators import base_classifier, output_sources
from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

# SHAP's cost grows with rows explained x background rows; these keep the report under seconds.
SHAP_SAMPLE, SHAP_BACKGROUND = 1000, 200
DECLARED_GROUP = "declared (extra and derived columns)"
# (group, pattern of the full name), in order: the first match wins.
FEATURE_GROUPS: tuple[tuple[str, str], ...] = (
    ("trends (period over period)", r"(n_sales|spend)_(prev|ratio|diff)_\d+d|trend_\w+"),
    (
        "recency and gaps",
        r"days_since_(last|first)_sale(_vs_mean_gap)?|days_since_last_(category|channel)_\w+|(mean|last)_gap_\w+",
    ),
    ("activity windows", r"(n_sales|spend)_(total|\d+d)"),
    ("basket and discounts", r"(avg_sale_value|discount_share|avg_discount)(_\d+d)?"),
    ("mix (categories, channels)", r"(distinct_(categories|channels)|share)_\w+"),
    ("profile", r"age_years|tenure_days|gender|region|segment|acquisition_channel|annual_income"),
)


def feature_group(name: str) -> str:
    """The group of a feature_store column (module docstring)."""
    for group, pattern in FEATURE_GROUPS:
        if re.fullmatch(pattern, name):
            return group
    return DECLARED_GROUP


def shap_values(model: Pipeline, x: pd.DataFrame, *, seed: int = 0, sample: int = SHAP_SAMPLE) -> pd.DataFrame | None:
    """SHAP values per *feature* of a seeded sample of at most ``sample`` rows of ``x``: a frame
    ``(rows, features)`` in log-odds. ``None`` for the dummy or a classifier without an explainer here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's own deprecation and output-format notices
        import shap

    classifier = base_classifier(model)
    kind = type(classifier).__name__
    if kind == "DummyClassifier":
        return None
    rng = np.random.default_rng(seed)
    rows = x.iloc[np.sort(rng.choice(len(x), size=min(sample, len(x)), replace=False))]
    encoder = model.steps[0][1]
    encoded = np.asarray(encoder.transform(rows), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "LGBMClassifier":
            values = shap.TreeExplainer(classifier).shap_values(encoded)
        elif kind == "LogisticRegression":
            background = encoded[: min(SHAP_BACKGROUND, len(encoded))]
            values = shap.LinearExplainer(classifier, shap.maskers.Independent(background)).shap_values(encoded)
        else:
            log.info("no SHAP explainer for %s", kind)
            return None
    values = np.asarray(values[1] if isinstance(values, list) else values, dtype=np.float64)
    if values.ndim == 3:  # (rows, columns, classes)
        values = values[:, :, 1]
    sources = np.asarray(output_sources(encoder))
    return pd.DataFrame(values, columns=range(values.shape[1])).T.groupby(sources).sum().T


def feature_importance(values: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| per feature (columns ``feature``, ``mean_abs_shap``), most important first."""
    importance = values.abs().mean().sort_values(ascending=False)
    return pd.DataFrame({"feature": importance.index, "mean_abs_shap": importance.to_numpy()})


def group_importance(values: pd.DataFrame) -> pd.DataFrame:
    """Per group: ``features`` (count), ``mean_abs_shap`` (mean |sum of its features' SHAP values|),
    ``share`` (of the groups' total) and ``top_feature``; most important first."""
    groups = pd.Series([feature_group(str(c)) for c in values.columns], index=values.columns)
    per_feature = values.abs().mean()
    rows = []
    for group, members in groups.groupby(groups).groups.items():
        rows.append(
            {
                "group": group,
                "features": len(members),
                "mean_abs_shap": float(values[members].sum(axis=1).abs().mean()),
                "top_feature": str(per_feature[members].idxmax()),
            }
        )
    table = pd.DataFrame(rows).sort_values("mean_abs_shap", ascending=False, ignore_index=True)
    total = table["mean_abs_shap"].sum()
    table.insert(3, "share", table["mean_abs_shap"] / total if total > 0 else 0.0)
    return table
