"""The reference profile in the bundle: its content, its hash, older bundles without one, the binning, and
the importance shares of each model kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_mle.bundle import load_bundle
from clientml_mle.estimators import make_encoder
from clientml_mle.manifest import PROFILE_FILE
from clientml_mle.monitor.importance import importance_shares
from clientml_mle.monitor.profile import (
    PROFILE_FORMAT,
    QUANTILES,
    TOP_CATEGORIES,
    CategoryShares,
    NumericBins,
    ProfileError,
    ReferenceProfile,
)
from clientml_mle.schema import FeatureSpec
from clientml_mle.train import TrainResult, publish_bundle, split_rows
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

SEED = 1  # conftest's: the session model's split


def test_the_profile_describes_the_training_rows_and_the_test_scores(trained: TrainResult, frame: pd.DataFrame) -> None:
    bundle = load_bundle(trained.bundle_path)
    assert PROFILE_FILE in bundle.manifest.files
    profile = bundle.reference_profile
    assert profile is not None and profile.format == PROFILE_FORMAT
    split = split_rows(frame, test_size=0.2, seed=SEED)  # the session model's split, drawn again
    assert profile.rows == len(split.train_pos) and profile.scores.rows == len(split.test_pos)
    assert [f.name for f in profile.features] == bundle.feature_names
    x = split.x_train
    spend = profile.feature("spend_90d")
    assert spend is not None and spend.bins is not None and spend.null_rate == 0
    expected_edges = np.unique(np.quantile(x["spend_90d"].dropna(), QUANTILES))
    np.testing.assert_allclose(spend.bins.edges, expected_edges)
    assert len(spend.bins.edges) < len(QUANTILES)  # a third of the clients spent nothing: one edge at 0
    assert sum(spend.bins.proportions) == pytest.approx(1.0)
    age = profile.feature("age_years")
    assert age is not None and age.null_rate == pytest.approx(x["age_years"].isna().mean())
    segment = profile.feature("segment")
    assert segment is not None and segment.categories is not None and segment.bins is None
    shares = x["segment"].value_counts(normalize=True)
    assert segment.categories.values == list(shares.index)
    np.testing.assert_allclose(segment.categories.proportions, [*shares.to_numpy(), 0.0])
    scores = bundle.predict_proba(split.x_test)
    np.testing.assert_allclose(profile.scores.bins.proportions, NumericBins.of(scores, QUANTILES).proportions)
    # LightGBM's gain, added back from the one-hot columns: every feature has a share, they sum to 1.
    assert profile.importance_source.startswith("LightGBM total gain")
    assert sum(f.importance for f in profile.features) == pytest.approx(1.0)
    # The generator's label is driven by recency and the sales of the last 30-365 days
    # (clientml_synthetic.labels.label_logit), so the model leans on a sales feature, not on a profile column.
    top = max(profile.features, key=lambda f: f.importance)
    profile_columns = {
        "age_years",
        "annual_income",
        "tenure_days",
        "gender",
        "region",
        "segment",
        "acquisition_channel",
    }
    assert top.name not in profile_columns and top.name in bundle.feature_names, top.name


def test_a_bundle_without_a_profile_still_loads(trained: TrainResult, tmp_path: Path) -> None:
    old = publish_bundle(trained.fitted, trained.evaluation, tmp_path)  # no split: as before profiles existed
    assert not (old / PROFILE_FILE).exists()
    bundle = load_bundle(old)
    assert bundle.reference_profile is None
    x = bundle.feature_frame([{"segment": "consumer", "tenure_days": 100}])
    np.testing.assert_array_equal(bundle.predict_proba(x), trained.model.predict_proba(x)[:, 1])


def test_the_profile_file_name_is_reserved(trained: TrainResult, tmp_path: Path) -> None:
    note = tmp_path / "note.json"
    note.write_text("{}")
    with pytest.raises(ValueError, match=r"'reference_profile\.json' clashes"):
        publish_bundle(trained.fitted, trained.evaluation, tmp_path / "m", extra_files={PROFILE_FILE: note})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "not valid JSON"),
        (b'{"format": "clientml-reference-profile/9"}', "format 'clientml-reference-profile/9', this code reads"),
        (json.dumps({"format": PROFILE_FORMAT, "rows": 1}).encode(), "not a valid reference profile"),
    ],
)
def test_an_unreadable_profile_is_refused_by_name(content: bytes, message: str) -> None:
    with pytest.raises(ProfileError, match=f"reference_profile.json: {message}"):
        ReferenceProfile.from_json(content)


def test_numeric_bins_are_right_closed_and_open_ended() -> None:
    values = np.array([0.0] * 50 + list(range(1, 51)) + [np.nan] * 10)
    bins = NumericBins.of(values)
    assert bins.edges[0] == 0.0 and len(bins.edges) == len(set(bins.edges))  # the deciles at 0 are one edge
    assert bins.proportions[0] == pytest.approx(0.5)  # every 0 in (-inf, 0]
    assert sum(bins.proportions) == pytest.approx(1.0)  # nulls are not binned: the null rate is apart
    beyond = bins.shares(np.array([-5.0, 1000.0, np.nan]))
    assert beyond[0] == beyond[-1] == 0.5
    assert bins.labels()[0] == "<= 0" and bins.labels()[-1].startswith("> ")
    assert NumericBins.of(np.array([np.nan, np.nan])).proportions == []
    with pytest.raises(ValueError, match="edges must increase"):
        NumericBins(edges=[1.0, 1.0], proportions=[0.5, 0.0, 0.5])


def test_category_shares_keep_the_top_values_and_one_other_bin() -> None:
    values = pd.Series([f"c{i:02d}" for i in range(30) for _ in range(30 - i)] + [None] * 5, dtype=object)
    shares = CategoryShares.of(values)
    assert len(shares.values) == TOP_CATEGORIES and shares.values[:2] == ["c00", "c01"]
    assert len(shares.proportions) == TOP_CATEGORIES + 1 and sum(shares.proportions) == pytest.approx(1.0)
    rare = sum(30 - i for i in range(TOP_CATEGORIES, 30)) / sum(30 - i for i in range(30))
    assert shares.proportions[-1] == pytest.approx(rare)
    assert shares.shares(pd.Series(["c00", "never seen", None]))[[0, -1]].tolist() == [0.5, 0.5]


def _fit(classifier: object, x: pd.DataFrame, y: np.ndarray, specs: list[FeatureSpec], numeric: object) -> Pipeline:
    return Pipeline([("encode", make_encoder(specs, numeric=numeric)), ("model", classifier)]).fit(x, y)


def test_importance_shares_of_each_model_kind() -> None:
    rng = np.random.default_rng(0)
    n = 600
    x = pd.DataFrame(
        {
            "signal": rng.normal(size=n) * 100,  # a large scale: the standardised coefficient must not care
            "noise": rng.normal(size=n),
            "group": rng.choice(["a", "b"], size=n).astype(object),
        }
    )
    x.loc[::7, "signal"] = np.nan
    y = ((np.nan_to_num(x["signal"].to_numpy()) / 100 + rng.normal(scale=0.5, size=n)) > 0).astype(int)
    specs = [
        FeatureSpec(name="signal", type="number"),
        FeatureSpec(name="noise", type="number"),
        FeatureSpec(name="group", type="category", categories=["a", "b"]),
    ]
    imputed = Pipeline([("impute", SimpleImputer(add_indicator=True)), ("scale", StandardScaler())])
    linear = _fit(LogisticRegression(), x, y, specs, imputed)
    shares, source = importance_shares(linear, x, specs)
    assert source.startswith("|coefficient|") and shares["signal"] > 0.8
    assert sum(shares.values()) == pytest.approx(1.0)
    calibrated = _fit(CalibratedClassifierCV(LogisticRegression(), cv=3, ensemble=False), x, y, specs, imputed)
    shares, source = importance_shares(calibrated, x, specs)
    assert source.startswith("|coefficient|") and shares["signal"] > 0.8
    dummy = _fit(DummyClassifier(), x, y, specs, "passthrough")
    shares, source = importance_shares(dummy, x, specs)
    assert source.startswith("uniform") and shares == pytest.approx(dict.fromkeys(shares, 1 / 3))
