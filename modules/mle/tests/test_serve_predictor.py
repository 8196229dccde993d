"""The fast path: compilation of the pipeline, the compiled trees, verification, fallbacks, and every kind of
final estimator the data-science module may bundle, served through ``create_app``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clientml_mle.bundle import TRUSTED_TYPES, Bundle, load_bundle, save_bundle
from clientml_mle.schema import coerce_frame, records_frame
from clientml_mle.serve.app import create_app
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
from clientml_mle.serve.fastpath.scorers import CalibratedFold
from clientml_mle.serve.schemas import InvalidRequestError
from fastapi.testclient import TestClient
from lightgbm import LGBMClassifier
from serve_fixtures import ServeWorld
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, PolynomialFeatures, StandardScaler
from sklearn.svm import LinearSVC

# Records with unseen categories are the point of several tests.
pytestmark = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")


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
                classifier or LGBMClassifier(n_estimators=40, num_leaves=7, verbose=-1, random_state=0, n_jobs=1),
            ),
        ]
    )
    pipeline.fit(coerce_frame(labeled, features), labeled["label"].astype(int))
    return StubBundle(pipeline, features)


def _verified(bundle: Any) -> VerifiedPredictor:
    return verify(compile_bundle(bundle), bundle)


def _check_equal(predictor: VerifiedPredictor, bundle: Any, records: list[dict[str, Any]]) -> None:
    got = predictor.predict_records(records)
    expected = bundle.predict_proba(bundle.feature_frame(records))
    assert np.max(np.abs(got - expected)) <= 1e-9


def _scaled() -> Pipeline:
    """The numeric branch of the ds module's linear models: median imputation with missing-value
    indicators (all-null features kept), then standardisation."""
    impute = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    return Pipeline([("impute", impute), ("scale", StandardScaler())])


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
    _check_equal(predictor, serve_world.bundle, records)
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
    _check_equal(predictor, serve_world.bundle, serve_world.records(300))


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
    _check_equal(predictor, serve_world.bundle, serve_world.records(100))


def test_zero_as_missing_is_not_compiled_but_served(serve_world: ServeWorld) -> None:
    classifier = LGBMClassifier(n_estimators=10, zero_as_missing=True, verbose=-1, random_state=0, n_jobs=1)
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), classifier)
    with pytest.raises(UnsupportedForestError, match="missing type"):
        Forest.from_booster(bundle.model.steps[-1][1].booster_)
    candidates = compile_bundle(bundle)
    assert candidates.scorers[0].kind == "lightgbm-booster"
    predictor = verify(candidates, bundle)
    _check_equal(predictor, bundle, serve_world.records(300))


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
    predictor = _verified(bundle)
    assert predictor.verified["encoder"] == "lookup-tables"
    records = serve_world.records(300)
    for record in records[::7]:
        record["region"] = "somewhere new"
    nullable = [f.name for f in bundle.features if f.type == "category" and f.nullable]
    for record in records[::11]:
        record.update(dict.fromkeys(nullable))
    _check_equal(predictor, bundle, records)


@pytest.mark.parametrize(
    ("numeric", "after"),
    [
        (StandardScaler(), None),  # nulls stay NaN: trees
        (Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), None),
        (_scaled(), None),
        (SimpleImputer(strategy="mean"), [("scale", StandardScaler())]),
    ],
    ids=["scaler", "imputer-then-scaler", "imputer-with-indicators-then-scaler", "scaler-after-the-encoder"],
)
def test_column_wise_numeric_steps_are_replayed_in_the_lookup(
    serve_world: ServeWorld, numeric: Any, after: list[tuple[str, Any]] | None
) -> None:
    classifier = LogisticRegression(max_iter=2000) if not isinstance(numeric, StandardScaler) else _lightgbm()
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
    _check_equal(predictor, bundle, records)


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
        numeric, classifier = Pipeline([("impute", SimpleImputer()), ("poly", PolynomialFeatures(2))]), _lightgbm()
    bundle = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), classifier, numeric)
    predictor = _verified(bundle)
    report = predictor.verified
    expected = "linear" if explainable else "compiled-trees"
    assert (report["encoder"], report["scorer"]) == ("pipeline-transform", expected)
    records = serve_world.records(200)
    _check_equal(predictor, bundle, records)
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
    _check_equal(predictor, serve_world.bundle, serve_world.records(100))


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
    no_proba = _fit(serve_world, OneHotEncoder(handle_unknown="ignore"), LinearSVC(), _scaled())
    with pytest.raises(UnsupportedModelError, match="predict_proba"):
        compile_bundle(no_proba)


def test_probe_records_are_valid_and_cover_every_category(serve_world: ServeWorld) -> None:
    candidates = compile_bundle(serve_world.bundle)
    cuts = probe_cuts(candidates)
    assert cuts  # the trees' thresholds, in raw feature values
    records = probe_records(candidates.features, 400, 0, cuts)
    candidates.validator.validate_records(records)  # no error
    for feature in candidates.features:
        seen = {r[feature.name] for r in records}
        if feature.type == "category":
            assert set(feature.categories or []) <= seen
            assert "unseen-value" in seen
        if feature.nullable:
            assert None in seen
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
    predictor = _verified(serve_world.bundle)
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
        state.activate(serve_world.bundle, candidates)  # type: ignore[arg-type]
    assert state.predictor is None and not state.ready
    predictor = verify(candidates, serve_world.bundle)
    fields = {f.name: getattr(predictor, f.name) for f in dataclasses.fields(predictor)}
    with pytest.raises(TypeError, match=r"only by clientml_mle\.serve\.fastpath\.verify"):
        VerifiedPredictor(**fields, seal=object())
    with pytest.raises(TypeError, match="only by"):
        dataclasses.replace(predictor, threshold=0.0, seal=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        predictor.threshold = 0.0  # type: ignore[misc]
    state.activate(serve_world.bundle, predictor)
    assert state.ready and state.predictor is predictor and state.bundle is serve_world.bundle


# --- every final estimator the ds module may bundle, served through create_app ------------------------

# Types of these models beyond bundle.TRUSTED_TYPES (skops): the calibration folds, the sigmoid calibrator
# and the imputer's dtype. The bundles are saved and loaded with them allowed explicitly.
CANDIDATE_TYPES = TRUSTED_TYPES | {
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "numpy.dtype",
}


def _lightgbm() -> LGBMClassifier:
    return LGBMClassifier(n_estimators=40, num_leaves=7, verbose=-1, random_state=0, n_jobs=1)


def _logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=3000)


@dataclass(frozen=True)
class Kind:
    """A final estimator, whether its numerics are imputed and scaled, and how it must be served."""

    make: Callable[[], Any]
    scaled: bool
    scorer: str
    explain: str | None


# Calibration as the ds module does it (one classifier refitted on all rows: ensemble=False) and with a
# classifier per fold (ensemble=True, the average of the folds).
KINDS = {
    "lightgbm": Kind(_lightgbm, False, "compiled-trees", "lightgbm-pred-contrib"),
    "lightgbm-scaled": Kind(_lightgbm, True, "compiled-trees", "lightgbm-pred-contrib"),
    "logistic-regression": Kind(_logistic, True, "linear", "linear-coef-times-value"),
    "calibrated-lightgbm-isotonic": Kind(
        lambda: CalibratedClassifierCV(_lightgbm(), method="isotonic", cv=3, ensemble=False),
        False,
        "calibrated(compiled-trees)",
        "calibrated-base(lightgbm-pred-contrib)",
    ),
    "calibrated-lightgbm-sigmoid": Kind(
        lambda: CalibratedClassifierCV(_lightgbm(), method="sigmoid", cv=3),
        False,
        "calibrated(compiled-trees)",
        "calibrated-base(lightgbm-pred-contrib)",
    ),
    "calibrated-logistic-isotonic": Kind(
        lambda: CalibratedClassifierCV(_logistic(), method="isotonic", cv=3),
        True,
        "calibrated(linear)",
        "calibrated-base(linear-coef-times-value)",
    ),
    "calibrated-logistic-sigmoid": Kind(
        lambda: CalibratedClassifierCV(_logistic(), method="sigmoid", cv=3, ensemble=False),
        True,
        "calibrated(linear)",
        "calibrated-base(linear-coef-times-value)",
    ),
    "dummy": Kind(DummyClassifier, False, "sklearn-predict-proba(DummyClassifier)", None),
}


@pytest.fixture(scope="module")
def kind_bundle(serve_world: ServeWorld, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Bundle]:
    """A verified bundle (save_bundle, then load_bundle, in a tmp models dir) per kind, built once."""
    built: dict[str, Bundle] = {}
    features = list(serve_world.bundle.manifest.features)
    categorical = [f.name for f in features if f.type == "category"]
    numbers = [f.name for f in features if f.type != "category"]
    labeled = serve_world.store[serve_world.store["label"].notna()]

    def build(name: str) -> Bundle:
        if name not in built:
            kind = KINDS[name]
            encode = ColumnTransformer(
                [
                    ("onehot", OneHotEncoder(handle_unknown="ignore"), categorical),
                    ("numeric", _scaled() if kind.scaled else "passthrough", numbers),
                ]
            )
            model = Pipeline([("encode", encode), ("model", kind.make())])
            model.fit(coerce_frame(labeled, features), labeled["label"].astype(int))
            models_dir = tmp_path_factory.mktemp(f"models-{name}")
            training = {"table": "feature_store", "rows": len(labeled), "fingerprint": "test"}
            save_bundle(models_dir, model, features, 0.3, {}, training, name, trusted_types=CANDIDATE_TYPES)
            built[name] = load_bundle(models_dir, trusted_types=CANDIDATE_TYPES)
        return built[name]

    return build


@pytest.fixture(scope="module", params=list(KINDS))
def served(
    request: pytest.FixtureRequest, kind_bundle: Callable[[str], Bundle]
) -> Iterator[tuple[Kind, Bundle, TestClient]]:
    bundle = kind_bundle(request.param)
    with TestClient(create_app(bundle)) as client:
        yield KINDS[request.param], bundle, client


def _log_odds(estimator: Any, matrix: np.ndarray) -> np.ndarray:
    """What a model's contributions add up to: LightGBM's raw score, a linear model's decision function,
    the mean over a CalibratedClassifierCV's folds of their base models'."""
    folds = getattr(estimator, "calibrated_classifiers_", None)
    if folds is not None:
        return np.mean([_log_odds(fold.estimator, matrix) for fold in folds], axis=0)
    if isinstance(estimator, LGBMClassifier):
        return np.asarray(estimator.booster_.predict(matrix, raw_score=True))
    return np.asarray(estimator.decision_function(matrix))


def test_every_kind_is_served_with_the_bundles_probabilities(
    served: tuple[Kind, Bundle, TestClient], serve_world: ServeWorld
) -> None:
    kind, bundle, client = served
    info = client.get("/v1/model").json()["predictor"]
    assert info["kind"] == kind.scorer
    assert info["verified"]["encoder"] == "lookup-tables" and info["verified"]["explain"] == kind.explain
    records = serve_world.records(500)
    response = client.post("/v1/predict", json={"records": records})
    assert response.status_code == 200
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    expected = bundle.predict_proba(bundle.feature_frame(records))
    assert np.max(np.abs(got - expected)) <= 1e-9
    assert [p["label"] for p in response.json()["predictions"]] == (expected >= 0.3).astype(int).tolist()
    # Records the feature store never holds: unseen categories, nulls in every nullable feature.
    nullable = {f.name: f.nullable for f in bundle.manifest.features}
    odd = [{**r, "region": "nowhere"} for r in records[:20]]
    odd += [{k: None if nullable[k] else v for k, v in r.items()} for r in records[:5]]
    response = client.post("/v1/predict", json={"records": odd})
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    assert np.max(np.abs(got - bundle.predict_proba(bundle.feature_frame(odd)))) <= 1e-9


def test_explain_per_kind(served: tuple[Kind, Bundle, TestClient], serve_world: ServeWorld) -> None:
    kind, bundle, client = served
    records = serve_world.records(20)
    response = client.post("/v1/predict", json={"records": records}, params={"explain": "true"})
    if kind.explain is None:
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == f"explain is not available for model type {type(bundle.model[-1]).__name__}"
        assert body["detail"][0]["type"] == "explain_unavailable"
        assert client.post("/v1/predict", json={"records": records}).status_code == 200
        return
    assert response.status_code == 200
    predictor = client.app.state.serve.predictor  # type: ignore[attr-defined]
    matrix = predictor.encode(predictor.validator.validate_records(records))
    per_feature, bias = predictor.contributions(matrix)
    # The contributions add up to the model's log-odds (for calibrated models: the fold base models' mean).
    assert np.allclose(per_feature.sum(axis=1) + bias, _log_odds(bundle.model[-1], matrix), atol=1e-9)
    names = [f.name for f in bundle.manifest.features]
    for i, prediction in enumerate(response.json()["predictions"]):
        top = prediction["contributions"]
        assert len(top) == 5
        magnitudes = [abs(c["contribution"]) for c in top]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert min(magnitudes) >= np.sort(np.abs(per_feature[i]))[-5] - 1e-12
        for c in top:
            assert c["contribution"] == pytest.approx(per_feature[i, names.index(c["feature"])], abs=1e-12)


def test_linear_contributions_are_coefficient_times_encoded_value(
    kind_bundle: Callable[[str], Bundle], serve_world: ServeWorld
) -> None:
    bundle = kind_bundle("logistic-regression")
    predictor = _verified(bundle)
    records = serve_world.records(10)
    encode, model = bundle.model[:-1], bundle.model[-1]
    matrix = np.asarray(encode.transform(bundle.feature_frame(records)), dtype=float)
    per_feature, bias = predictor.contributions(predictor.encode(predictor.validator.validate_records(records)))
    names = [f.name for f in bundle.manifest.features]
    expected = np.zeros_like(per_feature)
    for j, out in enumerate(encode.get_feature_names_out()):
        step, column = str(out).split("__", 1)
        column = column.removeprefix("missingindicator_")
        source = column if step != "onehot" else max((n for n in names if column.startswith(n + "_")), key=len)
        expected[:, names.index(source)] += model.coef_[0, j] * matrix[:, j]
    assert np.allclose(per_feature, expected, atol=1e-12)
    assert np.all(bias == model.intercept_[0])


def test_calibrated_folds_fall_back_to_the_literal_predict_proba(
    kind_bundle: Callable[[str], Bundle], serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = kind_bundle("calibrated-logistic-sigmoid")
    candidates = compile_bundle(bundle)
    monkeypatch.setattr(CalibratedFold, "predict", lambda self, x: np.zeros(x.shape[0]))
    predictor = verify(candidates, bundle)
    assert predictor.verified["scorer"] == "sklearn-predict-proba(CalibratedClassifierCV)"
    _check_equal(predictor, bundle, serve_world.records(100))
