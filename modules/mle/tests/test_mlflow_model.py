"""The registered model works with MLflow's own tools: ``mlflow.pyfunc.load_model`` on feature-store rows as
the warehouse gives them, ``mlflow models serve`` on the API's records, the same probabilities as the
bundle; the signature follows the manifest's types; an altered bundle is refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from clientml_mle.bundle import Bundle, load_bundle
from clientml_mle.estimators import default_estimator
from clientml_mle.mlflow_model import model_signature
from clientml_mle.pointers import BundleIntegrityError
from clientml_mle.schema import FeatureSpec
from clientml_mle.tracking import CHAMPION_ALIAS, MlflowTracker
from clientml_mle.train import TrainResult, train

SERVE_START_S = 90


@pytest.fixture(scope="module")
def registered(
    session_frame: pd.DataFrame, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, MlflowTracker]:
    """The default model trained once with tracking: the champion of a registered model of its own."""
    root = tmp_path_factory.mktemp("pyfunc")
    tracker = MlflowTracker(
        tracking_uri, model_name=f"pyfunc-{uuid.uuid4().hex[:8]}", experiment="pyfunc", artifact_location=root / "art"
    )
    one_thread = lambda specs: default_estimator(specs, n_jobs=1)  # noqa: E731
    result = train(one_thread, session_frame, seed=0, models_dir=root / "models", tracking=tracker, n_boot=50)
    assert result.decision is not None and result.decision.promoted
    return result, tracker


@pytest.fixture(scope="module")
def raw_rows(warehouse_url: str) -> pd.DataFrame:
    """feature_store as DuckDB gives it: BIGINT as int64, nullable BIGINT as Int64 with <NA>, dates, labels."""
    with duckdb.connect(warehouse_url.removeprefix("duckdb://"), read_only=True) as con:
        return con.sql("SELECT * FROM feature_store ORDER BY client_id LIMIT 300").df()


def _champion_uri(tracker: MlflowTracker) -> str:
    return f"models:/{tracker.model_name}@{CHAMPION_ALIAS}"


def _check(bundle: Bundle, rows: pd.DataFrame, probability: np.ndarray, label: np.ndarray) -> None:
    expected = bundle.predict_proba(rows)
    np.testing.assert_allclose(probability, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(label, (expected >= bundle.threshold).astype(np.int64))


def test_the_signature_follows_the_manifest_types() -> None:
    specs = [
        FeatureSpec(name="segment", type="category", categories=["a"]),
        FeatureSpec(name="income", type="number"),
        FeatureSpec(name="tenure_days", type="integer", nullable=False),
        FeatureSpec(name="days_since_last_sale", type="integer", nullable=True),
        FeatureSpec(name="active", type="boolean", nullable=False),
        FeatureSpec(name="verified", type="boolean", nullable=True),
        # "date" may not be a FeatureSpec type yet (the schema's own work): built without validation.
        FeatureSpec.model_construct(name="signup_date", type="date", categories=None, nullable=True),
    ]
    signature = model_signature(specs)
    assert [(c["name"], c["type"], c["required"]) for c in signature.inputs.to_dict()] == [
        ("segment", "string", False),
        ("income", "double", False),
        ("tenure_days", "long", False),
        ("days_since_last_sale", "any", False),  # MLflow's long cannot hold a null
        ("active", "boolean", False),
        ("verified", "any", False),  # MLflow's serve turns a null boolean into false
        ("signup_date", "datetime", False),
    ]
    assert [(c["name"], c["type"]) for c in signature.outputs.to_dict()] == [
        ("probability", "double"),
        ("label", "long"),
    ]


def test_the_champion_through_mlflow_pyfunc_takes_feature_store_rows(
    registered: tuple[TrainResult, MlflowTracker], raw_rows: pd.DataFrame
) -> None:
    result, tracker = registered
    assert raw_rows["tenure_days"].dtype == np.int64 and str(raw_rows["days_since_last_sale"].dtype) == "Int64"
    assert raw_rows["days_since_last_sale"].isna().any()
    mlflow.set_tracking_uri(tracker.tracking_uri)
    info = mlflow.models.get_model_info(_champion_uri(tracker))
    types = {c["name"]: c["type"] for c in info.signature.inputs.to_dict()}
    assert types["tenure_days"] == "long" and types["age_years"] == "double" and types["gender"] == "string"
    assert types["days_since_last_sale"] == "any"
    assert info.metadata["bundle_version"] == result.version

    pyfunc = mlflow.pyfunc.load_model(_champion_uri(tracker))
    out = pyfunc.predict(raw_rows)  # client_id, as_of_date, label, ... included: ignored
    assert list(out.columns) == ["probability", "label"] and len(out) == len(raw_rows)
    bundle = load_bundle(result.bundle_path)
    _check(bundle, raw_rows, out["probability"].to_numpy(), out["label"].to_numpy())
    # The records the API takes (JSON: nulls, missing keys), as a frame.
    records = json.loads(raw_rows.head(20).to_json(orient="records", date_format="iso"))
    del records[0]["segment"]
    frame = pd.DataFrame(records)
    out = pyfunc.predict(frame)
    _check(bundle, frame, out["probability"].to_numpy(), out["label"].to_numpy())
    with pytest.raises(mlflow.exceptions.MlflowException, match="age_years"):
        pyfunc.predict(frame.assign(age_years="old"))


def test_an_altered_bundle_in_the_mlflow_model_is_refused(
    registered: tuple[TrainResult, MlflowTracker], tmp_path: Path
) -> None:
    _, tracker = registered
    mlflow.set_tracking_uri(tracker.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(_champion_uri(tracker), dst_path=str(tmp_path)))
    model_file = next(local.rglob("model.skops"))
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"model\.skops: changed"):
        mlflow.pyfunc.load_model(str(local))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_serve(registered: tuple[TrainResult, MlflowTracker], tmp_path: Path) -> Iterator[str]:
    """``mlflow models serve`` of the champion, local environment, loopback only; yields its base URL."""
    _, tracker = registered
    port = _free_port()
    bin_dir = Path(sys.executable).parent  # MLflow starts `uvicorn` by name: this environment's
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracker.tracking_uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", _champion_uri(tracker), "--env-manager", "local"]
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port), "-w", "1"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_mlflow_models_serve_takes_the_api_records(
    registered: tuple[TrainResult, MlflowTracker], raw_rows: pd.DataFrame, mlflow_serve: str
) -> None:
    result, _ = registered
    records = json.loads(raw_rows.to_json(orient="records", date_format="iso"))
    assert any(r["days_since_last_sale"] is None for r in records)
    status, body = _post(mlflow_serve, {"dataframe_records": records})
    assert status == 200, body
    predictions = body["predictions"]
    assert list(predictions[0]) == ["probability", "label"]
    bundle = load_bundle(result.bundle_path)
    probability = np.array([p["probability"] for p in predictions])
    _check(bundle, raw_rows, probability, np.array([p["label"] for p in predictions]))
    status, body = _post(mlflow_serve, {"dataframe_records": [{**records[0], "age_years": "old"}]})
    assert status == 400 and "age_years" in body["message"]
