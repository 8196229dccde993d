"""The prediction API's contract, route by route, in process (FastAPI's TestClient)."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from clientml_de.settings import get_settings
from clientml_mle.serve.app import create_app
from clientml_mle.serve.config import ServeConfig, create_app_from_config
from clientml_mle.serve.logging import ACCESS_LOGGER
from fastapi.testclient import TestClient
from serve_fixtures import ServeWorld

API_KEY = "s3cret-key"


@pytest.fixture(scope="module")
def client(serve_world: ServeWorld) -> Iterator[TestClient]:
    app = create_app(serve_world.bundle, warehouse_url=serve_world.warehouse_url)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def secured(serve_world: ServeWorld) -> Iterator[TestClient]:
    app = create_app(serve_world.bundle, api_key=API_KEY)
    with TestClient(app) as test_client:
        yield test_client


def predict(client: TestClient, records: list[dict[str, Any]], **params: Any) -> Any:
    return client.post("/v1/predict", json={"records": records}, params=params)


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["detail"]]


# --- /v1/predict -------------------------------------------------------------------------------


def test_predictions_equal_the_bundle_on_feature_store_rows(client: TestClient, serve_world: ServeWorld) -> None:
    records = serve_world.records(500)
    response = predict(client, records)
    assert response.status_code == 200
    body = response.json()
    got = np.array([p["probability"] for p in body["predictions"]])
    expected = serve_world.reference(records)
    assert np.max(np.abs(got - expected)) <= 1e-9
    labels = [p["label"] for p in body["predictions"]]
    assert labels == (expected >= serve_world.bundle.threshold).astype(int).tolist()
    manifest = serve_world.bundle.manifest
    assert body["model"] == {"name": manifest.name, "version": manifest.version}
    assert body["threshold"] == manifest.threshold


def test_every_feature_store_row_is_a_valid_record(client: TestClient, serve_world: ServeWorld) -> None:
    records = serve_world.records()
    assert len(records) > 1000
    response = predict(client, records)
    assert response.status_code == 200, response.text[:500]
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    assert np.max(np.abs(got - serve_world.reference(records))) <= 1e-9


def test_request_id_is_echoed_or_generated(client: TestClient, serve_world: ServeWorld) -> None:
    records = serve_world.records(1)
    given = client.post("/v1/predict", json={"records": records}, headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assert given.json()["request_id"] == "abc-123"
    generated = predict(client, records)
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    bad = client.post("/v1/predict", json={"records": records}, headers={"X-Request-ID": "bad id\twith space"})
    assert bad.headers["x-request-id"] != "bad id\twith space"


def test_unknown_category_is_encoded_like_the_encoder(client: TestClient, serve_world: ServeWorld) -> None:
    records = serve_world.records(3)
    for record in records:
        record["region"] = "atlantis"
        record["segment"] = ""
    response = predict(client, records)
    assert response.status_code == 200
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    assert np.max(np.abs(got - serve_world.reference(records))) <= 1e-9


def test_nulls_and_integral_floats(client: TestClient, serve_world: ServeWorld) -> None:
    specs = {f.name: f for f in serve_world.bundle.manifest.features}
    record = serve_world.records(1)[0]
    integer = next(n for n, f in specs.items() if f.type == "integer")
    # A null is a missing value in any feature, whether or not training saw one (manifest `nullable`).
    assert any(not f.nullable for f in specs.values())
    with_nulls = [{**record, name: None} for name in specs] + [dict.fromkeys(specs)]
    as_float = {**record, integer: 3.0}
    response = predict(client, [*with_nulls, as_float])
    assert response.status_code == 200, response.text
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    assert np.max(np.abs(got - serve_world.reference([*with_nulls, as_float]))) <= 1e-9

    rejected = predict(client, [record, {**record, integer: 2.5}])
    assert rejected.status_code == 422
    assert fields(rejected) == [f"records.1.{integer}"]


def _bad_bodies(record: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    missing = {k: v for k, v in record.items() if k != "age_years"}
    return [
        ("missing feature", orjson.dumps({"records": [record, missing]}), "records.1.age_years"),
        ("wrong type", orjson.dumps({"records": [{**record, "age_years": "41"}]}), "records.0.age_years"),
        ("bool as number", orjson.dumps({"records": [{**record, "age_years": True}]}), "records.0.age_years"),
        ("number as category", orjson.dumps({"records": [{**record, "region": 3}]}), "records.0.region"),
        (
            "unknown field",
            orjson.dumps({"records": [record, record, {**record, "shoe_size": 43}]}),
            "records.2.shoe_size",
        ),
        ("empty records", b'{"records": []}', "records"),
        ("records missing", b"{}", "records"),
        ("records not a list", b'{"records": {"a": 1}}', "records"),
        ("record not an object", orjson.dumps({"records": [record, [1, 2]]}), "records.1"),
        ("extra top-level field", orjson.dumps({"records": [record], "model": "x"}), "model"),
        ("body not an object", b"[1, 2]", "body"),
        ("malformed JSON", b'{"records": [', "body"),
        ("empty body", b"", "body"),
        ("NaN literal", b'{"records": [{"age_years": NaN}]}', "body"),
    ]


def test_bad_requests_get_422_naming_the_field(client: TestClient, serve_world: ServeWorld) -> None:
    record = serve_world.records(1)[0]
    for case, body, field in _bad_bodies(record):
        response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, case
        payload = response.json()
        assert payload["detail"][0]["field"] == field, (case, payload)
        assert field in payload["error"], case
        assert "Traceback" not in response.text


def test_too_many_records_is_413_naming_the_limit(serve_world: ServeWorld) -> None:
    app = create_app(serve_world.bundle, max_records=5)
    with TestClient(app) as small:
        response = predict(small, serve_world.records(1) * 6)
        assert response.status_code == 413
        assert "limit 5" in response.json()["error"]
        assert fields(response) == ["records"]
        assert predict(small, serve_world.records(5)).status_code == 200
        huge = b'{"records": [' + b" " * (2 << 20) + b"]}"
        too_big = small.post("/v1/predict", content=huge)
        assert too_big.status_code == 413
        assert "bytes > limit" in too_big.json()["error"]
        assert fields(too_big) == ["body"]
        clients = small.post("/v1/predict/clients", content=b'{"client_ids": ["' + b"x" * (2 << 20) + b'"]}')
        assert clients.status_code == 413


def test_ten_thousand_records_in_one_call(client: TestClient, serve_world: ServeWorld) -> None:
    records = (serve_world.records() * 6)[:10_000]
    response = predict(client, records)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 10_000
    assert predict(client, records + records[:1]).status_code == 413


def test_explain_returns_top_contributions(client: TestClient, serve_world: ServeWorld) -> None:
    records = serve_world.records(20)
    response = predict(client, records, explain="true")
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    names = set(serve_world.feature_names)
    reference = _reference_contributions(serve_world, records)
    for i, prediction in enumerate(predictions):
        top = prediction["contributions"]
        assert len(top) == 5
        assert {c["feature"] for c in top} <= names
        magnitudes = [abs(c["contribution"]) for c in top]
        assert magnitudes == sorted(magnitudes, reverse=True)
        for c in top:
            assert c["contribution"] == pytest.approx(reference[i][c["feature"]], abs=1e-9)
            assert c["value"] == records[i][c["feature"]]
        # Nothing outside the top 5 is larger.
        assert (
            min(magnitudes)
            >= max(abs(v) for k, v in reference[i].items() if k not in {c["feature"] for c in top}) - 1e-12
        )
    too_many = predict(client, serve_world.records(1) * 1001, explain="true")
    assert too_many.status_code == 413 and "limited to 1000" in too_many.json()["error"]
    plain = predict(client, records).json()["predictions"]
    assert "contributions" not in plain[0]
    assert [p["probability"] for p in plain] == [p["probability"] for p in predictions]


@pytest.mark.parametrize("value", ["true", "1", "YES", "on", "false", "0", "off", "maybe", "", "2"])
def test_explain_is_parsed_as_fastapi_parses_it(client: TestClient, serve_world: ServeWorld, value: str) -> None:
    """/v1/predict reads the parameter itself (no dependency on the hot path); /v1/predict/clients leaves
    it to FastAPI: both answer the same status, the same located error, and explain the same way."""
    ids = serve_world.store["client_id"].tolist()[:1]
    ours = client.post("/v1/predict", params={"explain": value}, json={"records": serve_world.records_of(ids)})
    fastapis = client.post("/v1/predict/clients", params={"explain": value}, json={"client_ids": ids})
    assert ours.status_code == fastapis.status_code
    if ours.status_code == 422:
        assert ours.json()["detail"] == fastapis.json()["detail"]
        assert ours.json()["detail"][0]["field"] == "explain"
    else:
        explained = ["contributions" in r for r in (ours.json()["predictions"][0], fastapis.json()["predictions"][0])]
        assert explained[0] == explained[1]


def _reference_contributions(world: ServeWorld, records: list[dict[str, Any]]) -> list[dict[str, float]]:
    """pred_contrib on the pipeline's own transform, one-hot columns summed by their feature names."""
    pipeline = world.bundle.model
    transformer, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    matrix = transformer.transform(world.bundle.feature_frame(records))
    contrib = classifier.booster_.predict(np.asarray(matrix, dtype=float), pred_contrib=True)
    out_names = list(transformer.get_feature_names_out())
    by_source = []
    for row in contrib:
        totals = dict.fromkeys(world.feature_names, 0.0)
        for name, value in zip(out_names, row[:-1], strict=True):
            step, column = name.split("__", 1)
            source = column if step != "onehot" else next(f for f in world.feature_names if column.startswith(f + "_"))
            totals[source] += float(value)
        by_source.append(totals)
    # The contributions add up to the raw score.
    raw = classifier.booster_.predict(np.asarray(matrix, dtype=float), raw_score=True)
    assert np.allclose(contrib.sum(axis=1), raw)
    return by_source


# --- /v1/predict/clients -----------------------------------------------------------------------


def test_predict_clients_by_id(client: TestClient, serve_world: ServeWorld) -> None:
    ids = serve_world.store["client_id"].tolist()[:5]
    response = client.post("/v1/predict/clients", json={"client_ids": [ids[3], "nobody", *ids[:3], ids[0]]})
    assert response.status_code == 200
    body = response.json()
    assert body["not_found"] == ["nobody"]
    assert [p["client_id"] for p in body["predictions"]] == [ids[3], *ids[:3]]
    by_id = {p["client_id"]: p for p in body["predictions"]}
    records = serve_world.records(4)
    expected = serve_world.reference(records)
    for i, cid in enumerate(ids[:4]):
        assert by_id[cid]["probability"] == pytest.approx(expected[i], abs=1e-9)
        assert by_id[cid]["as_of_date"] == str(serve_world.store["as_of_date"].iloc[i])[:10]
    explained = client.post("/v1/predict/clients", params={"explain": "true"}, json={"client_ids": ids[:2]})
    assert len(explained.json()["predictions"][0]["contributions"]) == 5


def test_predict_clients_errors(client: TestClient, serve_world: ServeWorld) -> None:
    assert client.post("/v1/predict/clients", json={"client_ids": []}).status_code == 422
    wrong = client.post("/v1/predict/clients", json={"client_ids": "C1"})
    assert wrong.status_code == 422 and fields(wrong) == ["client_ids"]
    extra = client.post("/v1/predict/clients", json={"client_ids": ["C1"], "x": 1})
    assert extra.status_code == 422 and fields(extra) == ["x"]
    nobody = client.post("/v1/predict/clients", json={"client_ids": ["nobody"]})
    assert nobody.status_code == 200 and nobody.json()["predictions"] == []
    app = create_app(serve_world.bundle)  # no warehouse
    with TestClient(app) as no_store:
        response = no_store.post("/v1/predict/clients", json={"client_ids": ["C1"]})
        assert response.status_code == 503
        assert "no feature store" in response.json()["error"]


# --- /v1/model, health, metrics, docs ----------------------------------------------------------


def test_model_info(client: TestClient, serve_world: ServeWorld) -> None:
    body = client.get("/v1/model").json()
    manifest = serve_world.bundle.manifest
    assert (body["name"], body["version"], body["threshold"]) == (manifest.name, manifest.version, manifest.threshold)
    assert body["metrics"]["roc_auc"] == manifest.metrics["roc_auc"]
    assert [f["name"] for f in body["features"]] == manifest.feature_names
    assert [f["type"] for f in body["features"]] == [f.type for f in manifest.features]
    region = next(f for f in body["features"] if f["name"] == "region")
    assert region["categories"] and region["type"] == "category"
    assert all(f["nullable"] for f in body["features"])  # what the API accepts; what training saw:
    assert [f["nulls_in_training"] for f in body["features"]] == [f.nullable for f in manifest.features]
    assert body["predictor"]["verified"]["max_abs_diff"] <= 1e-9
    assert body["max_records"] == 10_000


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_metrics(client: TestClient, serve_world: ServeWorld) -> None:
    predict(client, serve_world.records(3))
    client.post("/v1/predict", content=b"{")
    text = client.get("/metrics").text
    assert 'clientml_http_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert 'clientml_http_requests_total{method="POST",route="/v1/predict",status="422"}' in text
    assert (
        'clientml_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/v1/predict",status="200"}'
        in text
    )
    assert 'clientml_predictions_total{label="0"}' in text or 'clientml_predictions_total{label="1"}' in text
    client.get("/no/such/path")
    assert 'route="unmatched",status="404"' in client.get("/metrics").text


def test_openapi_request_model_generated_from_specs(client: TestClient, serve_world: ServeWorld) -> None:
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["PredictRecord"]
    assert record["additionalProperties"] is False
    assert record["required"] == serve_world.feature_names
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["records"]["maxItems"] == 10_000
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/PredictRequest"
    for prop in record["properties"].values():  # a null is a missing value in any feature
        assert {"type": "null"} in prop["anyOf"]


def test_access_log_one_json_line_per_request(
    client: TestClient, serve_world: ServeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.post("/v1/predict", json={"records": serve_world.records(2)}, headers={"X-Request-ID": "log-1"})
    entries = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(entries) == 1
    entry = entries[0].__dict__
    assert entry["request_id"] == "log-1"
    assert (entry["route"], entry["status"], entry["n_records"]) == ("/v1/predict", 200, 2)
    assert entry["latency_ms"] > 0
    from clientml_mle.serve.logging import JsonFormatter

    line = JsonFormatter().format(entries[0])
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["request_id"] == "log-1" and parsed["msg"] == "request"


# --- auth ----------------------------------------------------------------------------------------


def test_auth(secured: TestClient, serve_world: ServeWorld) -> None:
    records = serve_world.records(1)
    assert secured.get("/health/live").status_code == 200
    assert secured.get("/health/ready").status_code == 200
    for method, path in [("post", "/v1/predict"), ("get", "/v1/model"), ("get", "/metrics"), ("get", "/openapi.json")]:
        kwargs: dict[str, Any] = {"json": {"records": records}} if method == "post" else {}
        missing = getattr(secured, method)(path, **kwargs)
        assert missing.status_code == 401, path
        assert "X-API-Key" in missing.json()["error"]
        wrong = getattr(secured, method)(path, headers={"X-API-Key": "nope"}, **kwargs)
        assert wrong.status_code == 403, path
        right = getattr(secured, method)(path, headers={"X-API-Key": API_KEY}, **kwargs)
        assert right.status_code == 200, path
    schema = secured.get("/openapi.json", headers={"X-API-Key": API_KEY}).json()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert schema["paths"]["/v1/predict"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in schema["paths"]["/health/live"]["get"]


def test_auth_off_without_a_key(client: TestClient) -> None:
    assert client.get("/v1/model").status_code == 200


def test_openapi_documents_the_api_key_scheme_on_protected_routes(secured: TestClient, client: TestClient) -> None:
    """FastAPI's APIKeyHeader dependency on the protected routers documents the scheme, nothing patched."""
    schema = secured.get("/openapi.json", headers={"X-API-Key": API_KEY}).json()
    assert schema["components"]["securitySchemes"] == {
        "APIKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "The server's API key (every route but /health/*)",
        }
    }
    operations = [(path, op) for path, ops in schema["paths"].items() for op in ops.values()]
    assert {path for path, _ in operations} >= {"/v1/predict", "/v1/predict/clients", "/v1/model", "/metrics"}
    for path, operation in operations:
        expected = None if path.startswith("/health/") else [{"APIKeyHeader": []}]
        assert operation.get("security") == expected, path
    # Both request bodies the routes parse themselves are documented.
    body = schema["paths"]["/v1/predict/clients"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/ClientsRequest"
    assert "client_ids" in schema["components"]["schemas"]["ClientsRequest"]["properties"]
    # An open server documents no scheme.
    open_schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in open_schema["components"]
    assert all("security" not in op for ops in open_schema["paths"].values() for op in ops.values())
    assert secured.get("/docs").status_code == 401
    # The key is checked before the body is read or parsed.
    assert secured.post("/v1/predict/clients", content=b"{").status_code == 401
    assert secured.post("/v1/predict", content=b"{", headers={"X-API-Key": "nope"}).status_code == 403
    assert "swagger" in secured.get("/docs", headers={"X-API-Key": API_KEY}).text.lower()


# --- loading and readiness -----------------------------------------------------------------------


def _wait_ready(client: TestClient, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/health/ready")
        if response.json()["status"] != "loading" or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_not_ready_until_a_bundle_loads(tmp_path: Path) -> None:
    app = create_app(models_dir=tmp_path / "empty")
    with TestClient(app) as not_ready:
        assert not_ready.get("/health/live").status_code == 200
        response = _wait_ready(not_ready)
        assert response.status_code == 503
        assert response.json()["status"] == "failed"
        assert "no such models directory" in response.json()["reason"]
        assert not_ready.post("/v1/predict", json={"records": [{}]}).status_code == 503
        assert not_ready.get("/v1/model").status_code == 503


def test_app_from_env_loads_in_the_background(serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' app: a ServeConfig built from the settings (``CLIENTML_*``), loaded after startup."""
    monkeypatch.setenv("CLIENTML_API_KEY", API_KEY)
    monkeypatch.setenv("CLIENTML_MAX_RECORDS", "7")
    # The workers' logging setup (stdout handlers) would leak into the rest of the session.
    monkeypatch.setattr("clientml_mle.serve.logging.configure_logging", lambda level="INFO": None)
    config = ServeConfig.from_settings(get_settings(), serve_world.models_dir)
    assert (config.api_key, config.max_records, config.warehouse_url) == (API_KEY, 7, get_settings().warehouse_url)
    assert API_KEY not in repr(config)
    app = create_app_from_config(dataclasses.replace(config, warehouse_url=None))
    with TestClient(app) as env_client:
        assert _wait_ready(env_client).status_code == 200
        headers = {"X-API-Key": API_KEY}
        info = env_client.get("/v1/model", headers=headers).json()
        assert info["version"] == serve_world.bundle.manifest.version
        assert info["max_records"] == 7
        response = env_client.post("/v1/predict", json={"records": serve_world.records(8)}, headers=headers)
        assert response.status_code == 413
        clients = env_client.post("/v1/predict/clients", json={"client_ids": ["x"]}, headers=headers)
        assert clients.status_code == 503


def test_a_fast_path_that_disagrees_never_becomes_ready(
    serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clientml_mle.serve.fastpath import VerificationError, VerifiedPredictor

    original = VerifiedPredictor.predict_matrix

    def off_by_a_bit(self: VerifiedPredictor, matrix: np.ndarray) -> np.ndarray:
        return original(self, matrix) + 1e-6

    monkeypatch.setattr(VerifiedPredictor, "predict_matrix", off_by_a_bit)
    with pytest.raises(VerificationError, match=r"differ from bundle\.predict_proba"):
        create_app(serve_world.bundle)
    app = create_app(models_dir=serve_world.models_dir)
    with TestClient(app) as failing:
        response = _wait_ready(failing)
        assert response.status_code == 503
        assert "VerificationError" in response.json()["reason"]


def test_probabilities_are_finite_and_bounded(client: TestClient, serve_world: ServeWorld) -> None:
    predictions = predict(client, serve_world.records(200)).json()["predictions"]
    assert all(0.0 <= p["probability"] <= 1.0 and math.isfinite(p["probability"]) for p in predictions)
