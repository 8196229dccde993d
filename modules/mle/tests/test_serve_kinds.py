"""Every kind of final estimator the data-science module may bundle (LightGBM, logistic regression,
``CalibratedClassifierCV`` of either, anything else with ``predict_proba``), saved as a bundle and served
through ``create_app``: probabilities, explanations and fallbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from clientml_mle.bundle import TRUSTED_TYPES, Bundle, load_bundle, save_bundle
from clientml_mle.manifest import FASTPATH_FILE
from clientml_mle.schema import coerce_frame
from clientml_mle.serve.app import create_app
from clientml_mle.serve.fastpath import compile_bundle, verify
from clientml_mle.serve.fastpath.scorers import CalibratedFold
from clientml_mle.serve.reload import load_predictor
from fastapi.testclient import TestClient
from lightgbm import LGBMClassifier
from serve_fixtures import ServeWorld
from serve_models import check_equal, lightgbm, scaled_numerics, verified
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

# Records with unseen categories are the point of several tests.
pytestmark = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")

# Types of these models beyond bundle.TRUSTED_TYPES (skops): the calibration folds, the sigmoid calibrator
# and the imputer's dtype. The bundles are saved and loaded with them allowed explicitly.
CANDIDATE_TYPES = TRUSTED_TYPES | {
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "numpy.dtype",
}


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
    "lightgbm": Kind(lightgbm, False, "compiled-trees", "lightgbm-pred-contrib"),
    "lightgbm-scaled": Kind(lightgbm, True, "compiled-trees", "lightgbm-pred-contrib"),
    "logistic-regression": Kind(_logistic, True, "linear", "linear-coef-times-value"),
    "calibrated-lightgbm-isotonic": Kind(
        lambda: CalibratedClassifierCV(lightgbm(), method="isotonic", cv=3, ensemble=False),
        False,
        "calibrated(compiled-trees)",
        "calibrated-base(lightgbm-pred-contrib)",
    ),
    "calibrated-lightgbm-sigmoid": Kind(
        lambda: CalibratedClassifierCV(lightgbm(), method="sigmoid", cv=3),
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
                    ("numeric", scaled_numerics() if kind.scaled else "passthrough", numbers),
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
    # Records the feature store never holds: unseen categories, a null in each feature (whether or not
    # training saw one), nulls everywhere.
    names = [f.name for f in bundle.manifest.features]
    odd = [{**r, "region": "nowhere"} for r in records[:20]]
    odd += [{**records[i], name: None} for i, name in enumerate(names)] + [dict.fromkeys(names)]
    response = client.post("/v1/predict", json={"records": odd})
    assert response.status_code == 200, response.text
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
    predictor = verified(bundle)
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
    check_equal(predictor, bundle, serve_world.records(100))


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_is_served_from_its_stored_fast_path(
    name: str, kind_bundle: Callable[[str], Bundle], serve_world: ServeWorld
) -> None:
    """The stages stored in the bundle at training rebuild without the model and score as the model does;
    a model whose fast path needs the model itself (the literal predict_proba) has none stored."""
    bundle = kind_bundle(name)
    _, predictor = load_predictor(bundle.path, 10_000)
    stored = (bundle.path / FASTPATH_FILE).is_file()
    assert stored == (name != "dummy")
    assert predictor.verified["source"] == ("stored" if stored else "compiled")
    assert (predictor.kind, predictor.explain_kind) == (KINDS[name].scorer, KINDS[name].explain)
    records = serve_world.records(200)
    check_equal(predictor, bundle, records)
    if predictor.explain_kind is not None:
        matrix = predictor.encode(predictor.validator.validate_records(records))
        compiled = verified(bundle)
        np.testing.assert_array_equal(predictor.contributions(matrix)[0], compiled.contributions(matrix)[0])
