"""The fast path on its own: compilation of the pipeline, the compiled trees, verification, fallbacks."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clientml_mle.schema import coerce_frame, records_frame
from clientml_mle.serve.forest import Forest, UnsupportedForestError
from clientml_mle.serve.predictor import (
    FastPredictor,
    UnsupportedModelError,
    VerificationError,
    probe_records,
    records_from_frame,
)
from clientml_mle.serve.schemas import InvalidRequestError
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def _load_fixtures() -> Any:
    """``serve_fixtures.py`` next to this file (the suite runs with ``--import-mode=importlib``)."""
    if "serve_fixtures" not in sys.modules:
        spec = importlib.util.spec_from_file_location("serve_fixtures", Path(__file__).with_name("serve_fixtures.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["serve_fixtures"] = module
        spec.loader.exec_module(module)
    return sys.modules["serve_fixtures"]


# Records with unseen categories are the point of several tests.
pytestmark = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")

serve_fixtures = _load_fixtures()
ServeWorld = serve_fixtures.ServeWorld
serve_world = serve_fixtures.serve_world


@dataclass
class StubBundle:
    """A bundle-like object around any fitted pipeline (what ``clientml_mle.bundle.Bundle`` offers)."""

    model: Pipeline
    features: list[Any]
    threshold: float = 0.5
    manifest: Any = field(init=False)

    def __post_init__(self) -> None:
        self.manifest = SimpleNamespace(name="stub", version="1", threshold=self.threshold, features=self.features)

    def feature_frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        return records_frame(records, self.features)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(coerce_frame(frame, self.features))[:, 1])


def _fit(world: ServeWorld, encoder: Any, classifier: Any | None = None, numeric: Any = "passthrough") -> StubBundle:
    features = list(world.bundle.manifest.features)
    categorical = [f.name for f in features if f.type == "category"]
    numbers = [f.name for f in features if f.type != "category"]
    labeled = world.store[world.store["label"].notna()]
    pipeline = Pipeline(
        [
            ("encoder", ColumnTransformer([("onehot", encoder, categorical), ("numeric", numeric, numbers)])),
            ("classifier", classifier or LGBMClassifier(n_estimators=40, num_leaves=7, verbose=-1, random_state=0)),
        ]
    )
    pipeline.fit(coerce_frame(labeled, features), labeled["label"].astype(int))
    return StubBundle(pipeline, features)


def _check_equal(predictor: FastPredictor, bundle: Any, records: list[dict[str, Any]]) -> None:
    got = predictor.predict_records(records)
    expected = bundle.predict_proba(bundle.feature_frame(records))
    assert np.max(np.abs(got - expected)) <= 1e-9


def test_the_bundle_compiles_to_trees_that_match_the_booster_exactly(serve_world: ServeWorld) -> None:
    predictor = FastPredictor.from_bundle(serve_world.bundle)
    assert predictor.kind == "compiled-trees"
    records = serve_world.records()
    matrix = predictor.encode(predictor.validator.validate_records(records))
    transformer = serve_world.bundle.model.steps[0][1]
    reference = np.asarray(transformer.transform(serve_world.bundle.feature_frame(records)), dtype=float)
    assert np.array_equal(matrix, reference, equal_nan=True)
    assert predictor.forest is not None
    raw = predictor.booster.predict(matrix, raw_score=True)
    assert np.array_equal(predictor.forest.raw(matrix), raw)
    _check_equal(predictor, serve_world.bundle, records)
    report = predictor.verify(serve_world.bundle)
    assert report["scorer"] == "compiled-trees" and report["max_abs_diff"] <= 1e-9


def test_booster_fallback_when_the_trees_cannot_be_compiled(
    serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(booster: Any) -> Forest:
        raise UnsupportedForestError("test")

    monkeypatch.setattr(Forest, "from_booster", classmethod(lambda cls, booster: refuse(booster)))
    predictor = FastPredictor.from_bundle(serve_world.bundle)
    assert predictor.kind == "lightgbm-booster"
    assert predictor.verify(serve_world.bundle)["scorer"] == "lightgbm-booster"
    _check_equal(predictor, serve_world.bundle, serve_world.records(300))


def test_compiled_trees_that_disagree_give_way_to_the_booster(
    serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = FastPredictor.from_bundle(serve_world.bundle)
    assert predictor.forest is not None
    monkeypatch.setattr(Forest, "predict", lambda self, x: np.full(x.shape[0], 0.5))
    assert predictor.verify(serve_world.bundle)["scorer"] == "lightgbm-booster"
    assert predictor.forest is None


def test_zero_as_missing_is_not_compiled_but_served(serve_world: ServeWorld) -> None:
    classifier = LGBMClassifier(n_estimators=10, zero_as_missing=True, verbose=-1, random_state=0)
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), classifier)
    with pytest.raises(UnsupportedForestError, match="missing type"):
        Forest.from_booster(bundle.model.steps[-1][1].booster_)
    predictor = FastPredictor.from_bundle(bundle)
    assert predictor.kind == "lightgbm-booster"
    predictor.verify(bundle)
    _check_equal(predictor, bundle, serve_world.records(300))


@pytest.mark.parametrize(
    "encoder",
    [
        OneHotEncoder(handle_unknown="ignore", drop="if_binary", sparse_output=True),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=200),
        OneHotEncoder(handle_unknown="ignore", max_categories=3, sparse_output=False),
    ],
    ids=["drop-if-binary-sparse", "infrequent", "max-categories"],
)
def test_other_encoder_settings_are_probed_exactly(serve_world: ServeWorld, encoder: OneHotEncoder) -> None:
    bundle = _fit(serve_world, encoder)
    predictor = FastPredictor.from_bundle(bundle)
    predictor.verify(bundle)
    records = serve_world.records(300)
    for record in records[::7]:
        record["region"] = "somewhere new"
    _check_equal(predictor, bundle, records)


def test_unsupported_pipelines_are_refused(serve_world: ServeWorld) -> None:
    scaled = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), numeric=StandardScaler())
    with pytest.raises(UnsupportedModelError, match="StandardScaler"):
        FastPredictor.from_bundle(scaled)
    strict = _fit(serve_world, OneHotEncoder(handle_unknown="error"))
    with pytest.raises(UnsupportedModelError, match="handle_unknown"):
        FastPredictor.from_bundle(strict)
    three_steps = StubBundle(
        Pipeline([("a", StandardScaler()), ("b", StandardScaler()), ("c", LGBMClassifier())]), scaled.features
    )
    with pytest.raises(UnsupportedModelError, match="Pipeline of exactly"):
        FastPredictor.from_bundle(three_steps)


def test_verification_catches_a_wrong_encoder_table(serve_world: ServeWorld) -> None:
    predictor = FastPredictor.from_bundle(serve_world.bundle)
    block = predictor.blocks[0]
    block.table[[0, 1]] = block.table[[1, 0]]  # swap two categories
    with pytest.raises(VerificationError, match="encoder differs"):
        predictor.verify(serve_world.bundle)


def test_probe_records_are_valid_and_cover_every_category(serve_world: ServeWorld) -> None:
    predictor = FastPredictor.from_bundle(serve_world.bundle)
    records = probe_records(
        predictor.features, predictor.booster, predictor.numeric_targets, predictor.validator, 400, 0
    )
    predictor.validator.validate_records(records)  # no error
    for feature in predictor.features:
        seen = {r[feature.name] for r in records}
        if feature.type == "category":
            assert set(feature.categories or []) <= seen
            assert "unseen-value" in seen
        if feature.nullable:
            assert None in seen


def test_records_from_frame_normalises_warehouse_values(serve_world: ServeWorld) -> None:
    features = list(serve_world.bundle.manifest.features)
    frame = serve_world.store.head(3).copy()
    frame["n_sales_30d"] = [Decimal(2), None, Decimal(5)]
    frame["age_years"] = [np.nan, 40.5, None]
    frame["gender"] = ["F", np.nan, None]
    records = records_from_frame(frame, features)
    assert [r["n_sales_30d"] for r in records] == [2.0, None, 5.0]
    assert [r["age_years"] for r in records] == [None, 40.5, None]
    assert [r["gender"] for r in records] == ["F", None, None]
    with pytest.raises(KeyError, match="region"):
        records_from_frame(frame.drop(columns=["region"]), features)


def test_in_process_api_validates(serve_world: ServeWorld) -> None:
    predictor = FastPredictor.from_bundle(serve_world.bundle)
    with pytest.raises(InvalidRequestError) as caught:
        predictor.predict_records([{"age_years": 1}])
    assert caught.value.status == 422
    with pytest.raises(InvalidRequestError) as too_many:
        predictor.predict_records(serve_world.records(1) * 10_001)
    assert too_many.value.status == 413
