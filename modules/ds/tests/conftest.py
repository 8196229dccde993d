"""Fixtures of the ds tests: generated feature stores on DuckDB and one model trained for the session.

Everything is written under pytest's tmp directories, never into ``modules/ds/models`` nor ``.clientml``.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from clientml_de.tasks import run_all
from clientml_ds.select import SearchBudget
from clientml_ds.train import DsTrainResult, load_ground_truth, train_model
from clientml_mle.features import training_frame
from clientml_synthetic import generate

# The quality test's data: 8,000 generated clients (about 6,800 labeled: 5,400 training and 1,360 test
# rows). See test_train.py for the tolerance this size allows.
N_CLIENTS = 8000
DATA_SEED = 3
SMALL_CLIENTS = 2000
SMALL_SEED = 1
TRAIN_SEED = 0
# The session model's search budget: small, trial-bound (the time box is far away).
BUDGET = SearchBudget(seconds=600, lightgbm_trials=8, logreg_trials=4)


def build_warehouse(source: Path, directory: Path) -> str:
    """Load the generated CSVs into a new DuckDB warehouse and build feature_store; return its URL."""
    url = f"duckdb:///{directory / 'wh.duckdb'}"
    run_all(str(source / "clients.csv"), str(source / "sales.csv"), url)
    return url


@pytest.fixture(scope="session")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source")
    generate(out, n_clients=N_CLIENTS, seed=DATA_SEED, progress=False)
    return out


@pytest.fixture(scope="session")
def warehouse_url(source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_warehouse(source_dir, tmp_path_factory.mktemp("warehouse"))


@pytest.fixture(scope="session")
def frame(warehouse_url: str) -> pd.DataFrame:
    return training_frame(warehouse_url)


@pytest.fixture(scope="session")
def ground_truth(source_dir: Path) -> pd.DataFrame:
    return load_ground_truth(source_dir / "ground_truth.csv")


@pytest.fixture(scope="session")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small-source")
    generate(out, n_clients=SMALL_CLIENTS, seed=SMALL_SEED, progress=False)
    return out


@pytest.fixture(scope="session")
def small_warehouse(small_source: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_warehouse(small_source, tmp_path_factory.mktemp("small-warehouse"))


@pytest.fixture(scope="session")
def small_frame(small_warehouse: str) -> pd.DataFrame:
    return training_frame(small_warehouse)


@pytest.fixture(scope="session")
def trained(frame: pd.DataFrame, ground_truth: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> DsTrainResult:
    """The ds training job run once on the 8,000-client data (no MLflow), read-only for the tests."""
    models = tmp_path_factory.mktemp("models")
    return train_model(frame, models_dir=models, seed=TRAIN_SEED, budget=BUDGET, ground_truth=ground_truth)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings defaults point into the test's tmp dir, never into the repository."""
    monkeypatch.setenv("CLIENTML_MODELS_DIR", str(tmp_path / "default-models"))
    monkeypatch.setenv("CLIENTML_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'default-mlflow.db'}")
    monkeypatch.setenv("CLIENTML_MLFLOW_ARTIFACTS_DIR", str(tmp_path / "default-mlartifacts"))
    monkeypatch.setenv("CLIENTML_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'default-wh.duckdb'}")
    monkeypatch.setenv("CLIENTML_TRAIN_N_JOBS", "1")
    monkeypatch.delenv("CLIENTML_TRAINER", raising=False)
    yield
