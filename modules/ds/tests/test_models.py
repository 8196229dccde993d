"""The candidate pipelines: their shape, a bundle round trip with identical predictions, unseen categories."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_ds.models import (
    build_candidate,
    calibrated,
    lgbm_pipeline,
    untrusted_types,
)
from clientml_mle.bundle import TRUSTED_TYPES, load_bundle, save_bundle
from clientml_mle.estimators import output_sources
from clientml_mle.features import feature_columns
from clientml_mle.schema import coerce_frame, infer_feature_specs
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

# What the logistic-regression and calibrated pipelines need beyond the bundle loader's allow-list
# (SimpleImputer keeps a numpy dtype; CalibratedClassifierCV holds sklearn-private calibrator classes).
EXTRA_TYPES = frozenset(
    {"numpy.dtype", "sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"}
)
CONFIGS = [
    ("dummy", {}, None, None),
    ("logreg", {"C": 0.5}, None, None),
    ("logreg", {"C": 0.5}, "balanced", "sigmoid"),
    ("lightgbm", {"n_estimators": 60, "num_leaves": 7}, None, None),
    ("lightgbm", {"n_estimators": 60, "num_leaves": 7}, None, "isotonic"),
]


@pytest.fixture(scope="module")
def data(small_frame: pd.DataFrame) -> tuple[list, pd.DataFrame, np.ndarray, pd.DataFrame]:
    rows = small_frame.iloc[:1200]
    rows.attrs = dict(small_frame.attrs)
    specs = infer_feature_specs(rows, feature_columns(small_frame))
    x = coerce_frame(rows, specs)
    y = rows["label"].to_numpy().astype(np.int64)
    held_out = coerce_frame(small_frame.iloc[1200:1500], specs)
    return specs, x, y, held_out


@pytest.mark.parametrize(("kind", "params", "weights", "calibration"), CONFIGS)
def test_bundle_round_trip_gives_identical_predictions(
    data: tuple, tmp_path: Path, kind: str, params: dict, weights: str | None, calibration: str | None
) -> None:
    specs, x, y, held_out = data
    model = build_candidate(kind, specs, params, class_weight=weights, calibration=calibration, seed=3)
    assert [name for name, _ in model.steps] == ["encode", "model"]
    encoder = model.steps[0][1]
    assert isinstance(encoder, ColumnTransformer)
    onehot = encoder.transformers[0][1]
    assert isinstance(onehot, OneHotEncoder) and onehot.handle_unknown == "ignore"
    if calibration:
        assert isinstance(model.steps[-1][1], CalibratedClassifierCV)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    path = save_bundle(
        tmp_path,
        model,
        specs,
        0.3,
        {"roc_auc": 0.5},
        {"table": "t", "rows": len(x), "fingerprint": "f"},
        "rt",
        trusted_types=TRUSTED_TYPES | EXTRA_TYPES,
    )
    bundle = load_bundle(path, trusted_types=TRUSTED_TYPES | EXTRA_TYPES)
    expected = model.predict_proba(held_out)[:, 1]
    np.testing.assert_array_equal(bundle.predict_proba(held_out), expected)
    records = held_out.head(20).to_dict("records")
    np.testing.assert_array_equal(bundle.predict_proba(bundle.feature_frame(records)), expected[:20])
    np.testing.assert_array_equal(bundle.encoder.transform(held_out), encoder.transform(held_out))


@pytest.mark.parametrize("kind", ["logreg", "lightgbm"])
def test_a_category_never_seen_in_training_is_scored(data: tuple, kind: str) -> None:
    specs, x, y, held_out = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_candidate(kind, specs, {"n_estimators": 60} if kind == "lightgbm" else {}).fit(x, y)
    row = held_out.head(5).copy()
    unseen = row.assign(segment="a-segment-never-seen", acquisition_channel="carrier-pigeon")
    null = row.assign(segment=None, acquisition_channel=None)
    proba_unseen = model.predict_proba(unseen)[:, 1]
    assert np.isfinite(proba_unseen).all() and ((proba_unseen > 0) & (proba_unseen < 1)).all()
    # An unseen value encodes as all zeros, exactly like a null.
    np.testing.assert_array_equal(proba_unseen, model.predict_proba(null)[:, 1])


def test_output_sources_trace_every_encoded_column(data: tuple) -> None:
    specs, x, y, _ = data
    for kind in ("logreg", "lightgbm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_candidate(kind, specs).fit(x, y)
        encoder = model.steps[0][1]
        sources = output_sources(encoder)
        assert len(sources) == encoder.transform(x.head(3)).shape[1]
        assert set(sources) <= {s.name for s in specs}
        segment = next(s for s in specs if s.name == "segment")
        assert sources.count("segment") == len(segment.categories or [])


def test_deployability_follows_the_bundle_allow_list(data: tuple) -> None:
    specs, x, y, _ = data
    assert untrusted_types(lgbm_pipeline(specs, params={"n_estimators": 5}), x, y, TRUSTED_TYPES) == []
    assert untrusted_types(build_candidate("logreg", specs), x, y, TRUSTED_TYPES | EXTRA_TYPES) == []
    wrapped = calibrated(lgbm_pipeline(specs, params={"n_estimators": 5}), "sigmoid")
    assert set(untrusted_types(wrapped, x, y, TRUSTED_TYPES)) <= EXTRA_TYPES
    assert untrusted_types(wrapped, x, y, TRUSTED_TYPES | EXTRA_TYPES) == []
