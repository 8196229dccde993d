"""Records (JSON-like dicts) to and from DataFrames, and the probe records of verification."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clientml_mle.serve.fastpath.base import BundleLike
from clientml_mle.serve.schemas import FeatureLike

if TYPE_CHECKING:
    import pandas as pd


def records_from_frame(frame: pd.DataFrame, features: Sequence[FeatureLike]) -> list[dict[str, Any]]:
    """Feature-store rows as JSON-like records (floats, strings, None), ready for the validator.

    One record per row of ``frame``, with exactly the features' keys, in order. Raises KeyError naming
    the features ``frame`` has no column for.
    """
    import pandas as pd  # imported by the warehouse lookup that made ``frame`` already, not by the API

    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise KeyError(f"the feature store has no column(s) {missing} that the model needs")
    columns = []
    for feature in features:
        series = frame[feature.name]
        if feature.type == "category":
            values = series.astype(object).where(series.notna(), None).tolist()
        else:
            numbers = pd.to_numeric(series.astype(object).where(series.notna(), None), errors="coerce")
            array = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
            objects = array.astype(object)
            objects[np.isnan(array)] = None
            values = objects.tolist()
        columns.append(values)
    names = [f.name for f in features]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def reference_frame(bundle: BundleLike, records: list[dict[str, Any]], features: Sequence[FeatureLike]) -> Any:
    """The DataFrame the bundle's own path builds from records (``bundle.feature_frame`` when it has one):
    one row per record, one column per feature, numbers as float64 (NaN for null)."""
    import pandas as pd  # verification against the bundle's model only, which has imported it already

    builder = getattr(bundle, "feature_frame", None)
    if builder is not None:
        return builder(records)
    frame = pd.DataFrame.from_records(records, columns=[f.name for f in features])
    for feature in features:
        if feature.type != "category":
            frame[feature.name] = pd.to_numeric(frame[feature.name], errors="coerce").astype(np.float64)
    return frame


def baseline(feature: FeatureLike) -> Any:
    """A valid, ordinary value of the feature: the value of the features a probe record does not vary."""
    if feature.type == "category":
        return feature.categories[0] if feature.categories else "a"
    return 0


def probe_records(
    features: Sequence[FeatureLike],
    n: int,
    seed: int,
    cuts: Mapping[str, Sequence[float]] | None = None,
    null_refused: Collection[str] = (),
) -> list[dict[str, Any]]:
    """``n`` valid records reaching both sides of every cut (raw feature values, e.g. tree split
    thresholds), every category and unseen ones, and nulls in every feature but those of
    ``null_refused`` (the first record is null in all of them); the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    choices: dict[str, list[Any]] = {}
    for feature in features:
        if feature.type == "category":
            values: list[Any] = [*(feature.categories or []), "unseen-value", ""]
        else:
            points = list((cuts or {}).get(feature.name, []))
            if feature.type == "boolean":
                values = [0, 1, True, False]
            elif feature.type == "integer":
                values = sorted({math.floor(t) + d for t in points for d in (0, 1)} | {0})
                values += [int(v) for v in rng.integers(-10, 1000, 3)]
            else:
                values = [0.0, *points, *(float(np.nextafter(t, math.inf)) for t in points)]
                values += [float(v) for v in rng.normal(0, 100, 4)]
        if feature.name not in null_refused:  # whether or not training saw one (FeatureLike.nullable)
            values.append(None)
        choices[feature.name] = values
    # Each feature's column cycles through all its values (in random order), so each appears when n allows.
    columns = {}
    for name, values in choices.items():
        order = np.resize(np.arange(len(values)), n)
        rng.shuffle(order)
        columns[name] = [values[int(i)] for i in order]
    records = [{name: column[i] for name, column in columns.items()} for i in range(n)]
    if records:
        records[0] = {f.name: None if f.name not in null_refused else records[0][f.name] for f in features}
    return records


def null_variants(features: Sequence[FeatureLike]) -> list[dict[str, Any]]:
    """A baseline record, then one record per feature: the baseline with that feature null."""
    base = {f.name: baseline(f) for f in features}
    return [base, *({**base, f.name: None} for f in features)]
