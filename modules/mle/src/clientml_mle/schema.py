"""The feature schema a model expects, and the one conversion from records or frames to model input.

Training, batch scoring and the API all go through :func:`coerce_frame`, so a model always sees the same
representation: categorical features as ``object`` (str or ``None``), everything else as ``float64``
(booleans as 1.0/0.0, NaN when null).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from clientml_mle.features import FEATURE_TYPES_ATTR
from clientml_mle.manifest import FeatureSpec, FeatureType

# The spec is part of the manifest; exported here too, where training and scoring have always found it.

__all__ = ["FeatureSpec", "FeatureType", "coerce_frame", "infer_feature_specs", "records_frame"]


def _pandas_type(series: pd.Series) -> FeatureType:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    present = series.dropna()
    if series.dtype == object and len(present) and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "boolean"  # True/False with nulls: pandas keeps them as objects
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "category"


def infer_feature_specs(df: pd.DataFrame, feature_cols: Sequence[str]) -> list[FeatureSpec]:
    """The specs of ``feature_cols`` as seen in ``df`` (a training frame), in the given order.

    Types come from the warehouse schema when ``df`` was read by :mod:`clientml_mle.features`
    (``df.attrs["feature_types"]``), else from the pandas dtypes (bool, or True/False objects with nulls:
    ``boolean``; integers: ``integer``; other numbers: ``number``; anything else: ``category``). Raises
    KeyError naming a feature that is not a column of ``df``.
    """
    known: Mapping[str, str] = df.attrs.get(FEATURE_TYPES_ATTR, {})
    specs = []
    for name in feature_cols:
        if name not in df.columns:
            raise KeyError(f"feature {name!r} is not a column of the frame")
        series = df[name]
        kind = known.get(name) or _pandas_type(series)
        categories = None
        if kind == "category":
            categories = sorted({str(v) for v in series.dropna().tolist()})
        specs.append(
            FeatureSpec(
                name=name,
                type=kind,
                categories=categories,
                nullable=bool(series.isna().any()),
            )
        )
    return specs


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _category_column(values: pd.Series) -> pd.Series:
    def one(value: Any) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return values.map(one).astype(object)


_BOOLEAN_WORDS = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0}


def _numeric_column(values: pd.Series, spec: FeatureSpec) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numbers = values.astype(np.float64)
    else:
        if spec.type == "boolean":
            values = values.map(lambda v: _BOOLEAN_WORDS.get(str(v).lower(), v) if isinstance(v, str) else v)
        try:
            numbers = pd.to_numeric(values.map(lambda v: None if _is_missing(v) else v), errors="raise")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"feature {spec.name!r} ({spec.type}): {exc}") from None
        numbers = numbers.astype(np.float64)
    if spec.type == "boolean":
        wrong = numbers[numbers.notna() & (numbers != 0.0) & (numbers != 1.0)]
        if len(wrong):
            raise ValueError(f"feature {spec.name!r} (boolean): {wrong.iloc[0]!r} is not true/false or 1/0")
    return numbers


def coerce_frame(df: pd.DataFrame, features: Sequence[FeatureSpec]) -> pd.DataFrame:
    """The model input for ``df``: the features' columns, in order, with the model's dtypes.

    Columns absent from ``df`` become all-null (the models accept nulls); extra columns are dropped.
    Raises ``ValueError`` naming the feature when a numeric value is not a number, or a boolean's value
    is not true/false, 1/0 (or their words).
    """
    columns: dict[str, pd.Series] = {}
    for spec in features:
        absent = pd.Series([None] * len(df), index=df.index, dtype=object)
        values = df[spec.name] if spec.name in df.columns else absent
        if spec.type == "category":
            columns[spec.name] = _category_column(values)
        else:
            columns[spec.name] = _numeric_column(values, spec)
    return pd.DataFrame(columns, index=df.index)


def records_frame(records: Iterable[Mapping[str, Any]], features: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Records (dicts, e.g. parsed JSON) -> model input; missing keys are nulls, unknown keys ignored."""
    names = [spec.name for spec in features]
    raw = pd.DataFrame.from_records(list(records), columns=names)
    return coerce_frame(raw, features)
