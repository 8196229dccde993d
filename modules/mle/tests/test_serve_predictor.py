"""The fast path: compilation of the pipeline, the compiled trees, verification and its fallbacks (every kind
of final estimator served through ``create_app``: ``test_serve_kinds.py``)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clientml_mle.schema import coerce_frame
from clientml_mle.serve.deps import ServeState
from clientml_mle.serve.fastpath import (
    UnsupportedModelError,
    VerificationError,
    VerifiedPredictor,
    compile_bundle,
    probe_cuts,
    probe_records,
    records_from_frame,
    verify,
)
from clientml_mle.serve.fastpath.forest import Forest, UnsupportedForestError
from clientml_mle.serve.schemas import InvalidRequestError
from lightgbm import LGBMClassifier
from serve_fixtures import ServeWorld
from serve_models import StubBundle, check_equal, lightgbm, scaled_numerics, verified
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, PolynomialFeatures, StandardScaler
from sklearn.svm import LinearSVC

# Records with unseen categories are the point of several tests.
pytestmark = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")


def _fit(
    world: ServeWorld,
    encoder: Any,
    classifier: Any | None = None,
    numeric: Any = "passthrough",
    after: list[tuple[str, Any]] | None = None,
) -> StubBundle:
    features = list(world.bundle.manifest.features)
    categorical = [f.name for f in features if f.type == "category"]
    numbers = [f.name for f in features if f.type != "category"]
    labeled = world.store[world.store["label"].notna()]
    pipeline = Pipeline(
        [
            ("encoder", ColumnTransformer([("onehot", encoder, categorical), ("numeric", numeric, numbers)])),
            *(after or []),
            (
                "classifier",
                classifier or lightgbm(),
            ),
        ]
    )
    pipeline.fit(coerce_frame(labeled, features), labeled["label"].astype(int))
    return StubBundle(pipeline, features)


# --- LightGBM, the compiled trees and their fallbacks ------------------------------------------------


def test_the_bundle_compiles_to_trees_that_match_the_booster_exactly(serve_world: ServeWorld) -> None:
    candidates = compile_bundle(serve_world.bundle)
    assert candidates.scorers[0].kind == "compiled-trees" and candidates.encoders[0].kind == "lookup-tables"
    predictor = verify(candidates, serve_world.bundle)
    assert predictor.kind == "compiled-trees" and predictor.encoder.kind == "lookup-tables"
    records = serve_world.records()
    matrix = predictor.encode(predictor.validator.validate_records(records))
    transformer = serve_world.bundle.model.steps[0][1]
    reference = np.asarray(transformer.transform(serve_world.bundle.feature_frame(records)), dtype=float)
    assert np.array_equal(matrix, reference, equal_nan=True)
    assert predictor.forest is not None
    raw = serve_world.bundle.model.steps[-1][1].booster_.predict(matrix, raw_score=True)
    assert np.array_equal(predictor.forest.raw(matrix), raw)
    check_equal(predictor, serve_world.bundle, records)
    report = predictor.verified
    assert report["scorer"] == "compiled-trees" and report["max_abs_diff"] <= 1e-9
    assert report["encoder"] == "lookup-tables" and report["explain"] == "lightgbm-pred-contrib"


def test_infinite_thresholds_of_the_dump_are_compiled_as_infinite() -> None:
    """LightGBM dumps a split of the numbers from the nulls with threshold 1e300; it is +inf."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (rng.random(400) < 0.5).astype(int)
    x[y == 1, 0] = np.nan
    booster = LGBMClassifier(n_estimators=5, min_child_samples=5, verbose=-1).fit(x, y).booster_
    assert booster.dump_model()["tree_info"][0]["tree_structure"]["threshold"] == 1e300
    probe = np.array([[1e301, 0.0], [np.inf, 0.0], [-1e301, 0.0], [5.0, 0.0], [np.nan, 0.0]])
    assert np.array_equal(Forest.from_booster(booster).raw(probe), booster.predict(probe, raw_score=True))


def test_booster_fallback_when_the_trees_cannot_be_compiled(
    serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(booster: Any) -> Forest:
        raise UnsupportedForestError("test")

    monkeypatch.setattr(Forest, "from_booster", classmethod(lambda cls, booster: refuse(booster)))
    candidates = compile_bundle(serve_world.bundle)
    assert candidates.scorers[0].kind == "lightgbm-booster"
    predictor = verify(candidates, serve_world.bundle)
    assert predictor.verified["scorer"] == "lightgbm-booster"
    check_equal(predictor, serve_world.bundle, serve_world.records(300))


def test_compiled_trees_that_disagree_give_way_to_the_booster(
    serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidates = compile_bundle(serve_world.bundle)
    assert candidates.scorers[0].forest is not None  # type: ignore[attr-defined]
    monkeypatch.setattr(Forest, "predict", lambda self, x: np.full(x.shape[0], 0.5))
    predictor = verify(candidates, serve_world.bundle)
    assert predictor.verified["scorer"] == "lightgbm-booster"
    assert predictor.forest is None


def test_the_literal_predict_proba_is_the_last_resort(serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    candidates = compile_bundle(serve_world.bundle)
    monkeypatch.setattr(Forest, "predict", lambda self, x: np.full(x.shape[0], 0.5))
    monkeypatch.setattr(candidates.scorers[1], "booster", SimpleNamespace(predict=lambda x, **kw: x[:, 0] * 0))
    predictor = verify(candidates, serve_world.bundle)
    assert predictor.verified["scorer"] == "sklearn-predict-proba(LGBMClassifier)"
    check_equal(predictor, serve_world.bundle, serve_world.records(100))


def test_zero_as_missing_is_not_compiled_but_served(serve_world: ServeWorld) -> None:
    classifier = LGBMClassifier(n_estimators=10, zero_as_missing=True, verbose=-1, random_state=0, n_jobs=1)
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), classifier)
    with pytest.raises(UnsupportedForestError, match="missing type"):
        Forest.from_booster(bundle.model.steps[-1][1].booster_)
    candidates = compile_bundle(bundle)
    assert candidates.scorers[0].kind == "lightgbm-booster"
    predictor = verify(candidates, bundle)
    check_equal(predictor, bundle, serve_world.records(300))


# --- encoders ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoder",
    [
        OneHotEncoder(handle_unknown="ignore", drop="if_binary", sparse_output=True),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=200),
        OneHotEncoder(handle_unknown="ignore", max_categories=3, sparse_output=False),
        Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="missing", missing_values=None)),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        ),
    ],
    ids=["drop-if-binary-sparse", "infrequent", "max-categories", "imputed"],
)
def test_other_encoder_settings_are_probed_exactly(serve_world: ServeWorld, encoder: OneHotEncoder) -> None:
    bundle = _fit(serve_world, encoder)
    predictor = verified(bundle)
    assert predictor.verified["encoder"] == "lookup-tables"
    records = serve_world.records(300)
    for record in records[::7]:
        record["region"] = "somewhere new"
    nullable = [f.name for f in bundle.features if f.type == "category" and f.nullable]
    for record in records[::11]:
        record.update(dict.fromkeys(nullable))
    check_equal(predictor, bundle, records)


@pytest.mark.parametrize(
    ("numeric", "after"),
    [
        (StandardScaler(), None),  # nulls stay NaN: trees
        (Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), None),
        (scaled_numerics(), None),
        (SimpleImputer(strategy="mean"), [("scale", StandardScaler())]),
    ],
    ids=["scaler", "imputer-then-scaler", "imputer-with-indicators-then-scaler", "scaler-after-the-encoder"],
)
def test_column_wise_numeric_steps_are_replayed_in_the_lookup(
    serve_world: ServeWorld, numeric: Any, after: list[tuple[str, Any]] | None
) -> None:
    classifier = LogisticRegression(max_iter=2000) if not isinstance(numeric, StandardScaler) else lightgbm()
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), classifier, numeric, after)
    candidates = compile_bundle(bundle)
    assert candidates.encoders[0].kind == "lookup-tables"
    predictor = verify(candidates, bundle)
    report = predictor.verified
    expected = "linear" if isinstance(classifier, LogisticRegression) else "compiled-trees"
    assert (report["encoder"], report["scorer"]) == ("lookup-tables", expected)
    records = serve_world.records(300)
    matrix = predictor.encode(predictor.validator.validate_records(records))
    reference = bundle.model[:-1].transform(bundle.feature_frame(records))
    assert np.array_equal(matrix, np.asarray(reference, dtype=float), equal_nan=True)
    check_equal(predictor, bundle, records)


@pytest.mark.filterwarnings("ignore:Bins whose width:UserWarning")
@pytest.mark.parametrize("explainable", [True, False], ids=["bins-logistic", "interactions-lightgbm"])
def test_encoders_the_tables_cannot_reproduce_use_the_pipeline_transform(
    serve_world: ServeWorld, explainable: bool
) -> None:
    if explainable:
        bins = KBinsDiscretizer(n_bins=4, encode="onehot-dense", quantile_method="averaged_inverted_cdf")
        numeric = Pipeline([("impute", SimpleImputer()), ("bins", bins)])
        classifier: Any = LogisticRegression(max_iter=2000)
    else:
        numeric, classifier = Pipeline([("impute", SimpleImputer()), ("poly", PolynomialFeatures(2))]), lightgbm()
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), classifier, numeric)
    predictor = verified(bundle)
    report = predictor.verified
    expected = "linear" if explainable else "compiled-trees"
    assert (report["encoder"], report["scorer"]) == ("pipeline-transform", expected)
    records = serve_world.records(200)
    check_equal(predictor, bundle, records)
    matrix = predictor.encode(predictor.validator.validate_records(records[:5]))
    if explainable:  # every bin column traced back to its feature
        per_feature, bias = predictor.contributions(matrix)
        assert np.allclose(per_feature.sum(axis=1) + bias, bundle.model[-1].decision_function(matrix))
    else:  # a product of two features belongs to neither
        assert "cannot be traced" in str(predictor.explain_unavailable)
        with pytest.raises(InvalidRequestError) as caught:
            predictor.contributions(matrix)
        assert caught.value.status == 422


def test_a_wrong_encoder_table_gives_way_to_the_pipeline_transform(serve_world: ServeWorld) -> None:
    candidates = compile_bundle(serve_world.bundle)
    block = candidates.encoders[0].blocks[0]  # type: ignore[attr-defined]
    block.table[[0, 1]] = block.table[[1, 0]]  # swap two categories
    predictor = verify(candidates, serve_world.bundle)
    report = predictor.verified
    assert report["encoder"] == "pipeline-transform" and report["scorer"] == "compiled-trees"
    check_equal(predictor, serve_world.bundle, serve_world.records(100))


def test_verification_fails_when_even_the_literal_path_disagrees(serve_world: ServeWorld) -> None:
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"))

    class Lying(StubBundle):
        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            return 1.0 - super().predict_proba(frame)

    liar = Lying(bundle.model, bundle.features)
    candidates = compile_bundle(liar)
    with pytest.raises(VerificationError, match="sklearn-predict-proba"):
        verify(candidates, liar)


def test_unservable_pipelines_are_refused(serve_world: ServeWorld) -> None:
    strict = _fit(serve_world, OneHotEncoder(handle_unknown="error"))
    with pytest.raises(UnsupportedModelError, match="handle_unknown"):
        compile_bundle(strict)
    alone = StubBundle(Pipeline([("c", LGBMClassifier())]), strict.features)
    with pytest.raises(UnsupportedModelError, match="Pipeline of encoding"):
        compile_bundle(alone)
    no_proba = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), LinearSVC(), scaled_numerics())
    with pytest.raises(UnsupportedModelError, match="predict_proba"):
        compile_bundle(no_proba)


def test_probe_records_are_valid_and_cover_every_category(serve_world: ServeWorld) -> None:
    candidates = compile_bundle(serve_world.bundle)
    cuts = probe_cuts(candidates)
    assert cuts  # the trees' thresholds, in raw feature values
    records = probe_records(candidates.features, 400, 0, cuts)
    candidates.validator.validate_records(records)  # no error
    assert set(records[0].values()) == {None}  # and one record of nulls only
    for feature in candidates.features:
        seen = {r[feature.name] for r in records}
        if feature.type == "category":
            assert set(feature.categories or []) <= seen
            assert "unseen-value" in seen
        assert None in seen  # a null in every feature, whether or not training saw one
        if feature.type == "number" and feature.name in cuts:
            assert seen & set(cuts[feature.name])


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
    predictor = verified(serve_world.bundle)
    with pytest.raises(InvalidRequestError) as caught:
        predictor.predict_records([{"age_years": 1}])
    assert caught.value.status == 422
    with pytest.raises(InvalidRequestError) as too_many:
        predictor.predict_records(serve_world.records(1) * 10_001)
    assert too_many.value.status == 413


def test_only_a_verified_predictor_can_serve(serve_world: ServeWorld) -> None:
    """Compiled candidates never reach the serving state; a VerifiedPredictor comes only from verify()."""
    candidates = compile_bundle(serve_world.bundle)
    state = ServeState(max_records=10)
    with pytest.raises(TypeError, match="only a VerifiedPredictor"):
        state.activate(serve_world.bundle.manifest, candidates)  # type: ignore[arg-type]
    assert state.predictor is None and not state.ready
    predictor = verify(candidates, serve_world.bundle)
    fields = {f.name: getattr(predictor, f.name) for f in dataclasses.fields(predictor)}
    with pytest.raises(TypeError, match=r"only by clientml_mle\.serve\.fastpath\.verify"):
        VerifiedPredictor(**fields, seal=object())
    with pytest.raises(TypeError, match="only by"):
        dataclasses.replace(predictor, threshold=0.0, seal=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        predictor.threshold = 0.0  # type: ignore[misc]
    state.activate(serve_world.bundle.manifest, predictor)
    assert state.ready and state.predictor is predictor and state.manifest is serve_world.bundle.manifest
