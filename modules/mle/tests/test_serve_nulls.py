"""Nulls in features: a null is a missing value, scored the way the model handles one, in ``/v1/predict``
and ``/v1/predict/clients`` alike, whether or not training saw a null there (the manifest's ``nullable``
records that, for monitoring). Case ``api-null-unseen-in-training``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clientml_mle.schema import coerce_frame
from clientml_mle.serve.app import create_app
from clientml_mle.serve.fastpath.verify import null_refused_features
from fastapi.testclient import TestClient
from serve_cases import CASES, by_ids, case_body, error_fields, load_warehouse, probabilities, serving
from serve_fixtures import ServeWorld, make_world
from serve_models import StubBundle
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NULL_CASE = "api-null-unseen-in-training"
# The optional profile columns of the contract, as features: each is empty for some client of the case.
OPTIONAL_PROFILE = ("age_years", "gender", "region", "segment", "acquisition_channel", "annual_income")


@pytest.fixture(scope="module")
def blank_world(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> ServeWorld:
    """The suite's model (trained on generated data: region, segment and acquisition_channel never
    empty) serving a warehouse whose client C0000004 has those three empty."""
    case = CASES / NULL_CASE
    directory = tmp_path_factory.mktemp("blank")
    url = load_warehouse(directory, case / "clients_with_blank_region.csv", case / "sales.csv")
    return make_world(Path(trained.bundle_path), url)


@pytest.fixture(scope="module")
def blank_client(blank_world: ServeWorld) -> Iterator[TestClient]:
    with serving(blank_world) as client:
        yield client


def test_case_api_null_unseen_in_training(blank_client: TestClient, blank_world: ServeWorld) -> None:
    manifest = {f.name: f for f in blank_world.bundle.manifest.features}
    unseen = ("region", "segment", "acquisition_channel")
    assert not any(manifest[name].nullable for name in unseen), "training was meant to see no null there"

    by_id = by_ids(blank_client, ["C0000004"])
    assert [p["client_id"] for p in by_id.json()["predictions"]] == ["C0000004"]
    row = case_body(NULL_CASE, "body_feature_store_row_C0000004.json")
    assert set(row["records"][0]) == set(blank_world.feature_names), "the case's body no longer matches the features"
    by_record = blank_client.post("/v1/predict", json=row)
    assert probabilities(by_record).tolist() == pytest.approx(probabilities(by_id).tolist(), abs=1e-12)

    region_null = case_body(NULL_CASE, "body_region_null.json")
    got = probabilities(blank_client.post("/v1/predict", json=region_null))
    assert np.max(np.abs(got - blank_world.reference(region_null["records"]))) <= 1e-9

    info = {f["name"]: f for f in blank_client.get("/v1/model").json()["features"]}
    assert all(info[name]["nullable"] and not info[name]["nulls_in_training"] for name in unseen)


def test_rows_with_nulls_score_alike_by_id_and_by_record(blank_client: TestClient, blank_world: ServeWorld) -> None:
    store = blank_world.store
    with_nulls = store[store[blank_world.feature_names].isna().any(axis=1)]
    null_features = {name for name in blank_world.feature_names if with_nulls[name].isna().any()}
    assert set(OPTIONAL_PROFILE) <= null_features
    ids = with_nulls["client_id"].tolist()
    by_id = by_ids(blank_client, ids)
    assert by_id.json()["not_found"] == []
    order = [p["client_id"] for p in by_id.json()["predictions"]]
    records = blank_world.records_of(order)
    expected = blank_world.reference(records)
    assert np.max(np.abs(probabilities(by_id) - expected)) <= 1e-9
    by_record = blank_client.post("/v1/predict", json={"records": records})
    assert np.max(np.abs(probabilities(by_record) - expected)) <= 1e-9


def test_ids_that_look_like_numbers_are_distinct_clients(blank_client: TestClient) -> None:
    response = by_ids(blank_client, ["007", "0007", "7", "07"])
    assert [p["client_id"] for p in response.json()["predictions"]] == ["007", "0007", "7"]
    assert response.json()["not_found"] == ["07"]


def _bare_logistic(world: ServeWorld) -> Any:
    """A model that cannot score some nulls: the numeric features training never saw null in go to a
    LogisticRegression as they are (the others are imputed, the categories one-hot encoded)."""
    features = list(world.bundle.manifest.features)
    labeled = world.store[world.store["label"].notna()]
    categorical = [f.name for f in features if f.type == "category"]
    imputed = [f.name for f in features if f.type != "category" and f.nullable]
    bare = [f.name for f in features if f.type != "category" and not f.nullable]
    encode = ColumnTransformer(
        [
            ("onehot", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("imputed", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), imputed),
            ("bare", StandardScaler(), bare),  # NaN passes a scaler unchanged, and the regression refuses it
        ]
    )
    model = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=1000))])
    model.fit(coerce_frame(labeled, features), labeled["label"].astype(int))
    return StubBundle(model, features), set(bare)


def test_a_model_that_cannot_score_a_null_refuses_it_there_only(serve_world: ServeWorld) -> None:
    bundle, bare = _bare_logistic(serve_world)
    assert bare and null_refused_features(bundle, bundle.features) == bare
    record = serve_world.records(1)[0]
    with TestClient(create_app(bundle)) as client:
        info = {f["name"]: f for f in client.get("/v1/model").json()["features"]}
        assert {name for name, f in info.items() if not f["nullable"]} == bare
        assert sorted(bare) == client.get("/v1/model").json()["predictor"]["verified"]["null_refused"]
        name = sorted(bare)[0]
        refused = client.post("/v1/predict", json={"records": [record, {**record, name: None}]})
        assert refused.status_code == 422 and error_fields(refused) == [f"records.1.{name}"]
        assert refused.json()["detail"][0]["type"] == "null_not_allowed"
        kept = [f.name for f in bundle.features if f.name not in bare]
        others = [{**record, other: None} for other in kept]
        got = probabilities(client.post("/v1/predict", json={"records": others}))
        assert np.max(np.abs(got - bundle.predict_proba(bundle.feature_frame(others)))) <= 1e-9
        schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictRecord"]["properties"]
        assert "anyOf" not in schema[name] and {"type": "null"} in schema[kept[0]]["anyOf"]
