"""Worlds built from the inputs in ``cases/`` (copies of reported faults, each with its README): a DuckDB
warehouse loaded by the pipeline's tasks, and a model trained on it or given.

The test modules import this file by path (the suite runs with ``--import-mode=importlib``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from clientml_de.tasks import run_all
from clientml_mle.estimators import default_estimator
from clientml_mle.features import training_frame
from clientml_mle.schema import FeatureSpec
from clientml_mle.serve.app import create_app
from clientml_mle.train import train
from fastapi.testclient import TestClient
from serve_fixtures import ServeWorld, make_world
from sklearn.pipeline import Pipeline

CASES = Path(__file__).resolve().parent / "cases"


def case_body(case: str, name: str) -> dict[str, Any]:
    """A request body of a case (``cases/<case>/<name>``), parsed."""
    body: dict[str, Any] = json.loads((CASES / case / name).read_text(encoding="utf-8"))
    return body


def load_warehouse(directory: Path, clients: Path, sales: Path, dataset_config: Path | None = None) -> str:
    """Load the sources into a new DuckDB warehouse under ``directory`` and build feature_store; its URL."""
    url = f"duckdb:///{directory / 'wh.duckdb'}"
    run_all(str(clients), str(sales), url, str(dataset_config) if dataset_config is not None else None)
    return url


def _estimator(specs: list[FeatureSpec]) -> Pipeline:
    return default_estimator(specs, n_jobs=1)


def trained_world(directory: Path, clients: Path, sales: Path, dataset_config: Path | None = None) -> ServeWorld:
    """A warehouse of the sources and the default model trained on its feature_store."""
    url = load_warehouse(directory, clients, sales, dataset_config)
    result = train(_estimator, training_frame(url), seed=0, models_dir=directory / "models")
    return make_world(Path(result.bundle_path), url)


@contextmanager
def serving(world: ServeWorld, **options: Any) -> Iterator[TestClient]:
    """A test client of the API serving the world's bundle with its warehouse."""
    with TestClient(create_app(world.bundle, warehouse_url=world.warehouse_url, **options)) as client:
        yield client


def by_ids(client: TestClient, ids: list[str]) -> Any:
    """``POST /v1/predict/clients`` of these ids."""
    return client.post("/v1/predict/clients", json={"client_ids": ids})


def probabilities(response: Any) -> np.ndarray:
    """The probabilities of a 200 prediction response, in order."""
    assert response.status_code == 200, response.text
    return np.array([p["probability"] for p in response.json()["predictions"]])


def error_fields(response: Any) -> list[str]:
    """The ``field`` of every error of a 4xx response."""
    return [e["field"] for e in response.json()["detail"]]
