"""Fixtures of the mle tests: a generated feature_store on DuckDB, a throwaway MLflow store, a trained model.

Everything is written under pytest's tmp directories: never into the repository's ``modules/ds/models``
nor into ``.clientml``.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from clientml_de.tasks import run_all
from clientml_mle.estimators import EstimatorFactory, default_estimator
from clientml_mle.features import training_frame
from clientml_mle.schema import FeatureSpec
from clientml_mle.tracking import MlflowTracker
from clientml_mle.train import TrainResult, train
from clientml_synthetic import generate
from serve_fixtures import serve_world  # noqa: F401  (a fixture: conftest makes it visible to every test here)
from sklearn.pipeline import Pipeline

N_CLIENTS = 2000
SEED = 1


def estimator(specs: list[FeatureSpec]) -> Pipeline:
    """The default estimator on one thread: LightGBM's threads only slow small fits on a busy machine."""
    return default_estimator(specs, n_jobs=1)


@pytest.fixture(scope="session")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source")
    generate(out, n_clients=N_CLIENTS, seed=SEED, progress=False)
    return out


def build_warehouse(source: Path, directory: Path) -> str:
    """Load the generated CSVs into a new DuckDB warehouse and build feature_store; return its URL."""
    url = f"duckdb:///{directory / 'wh.duckdb'}"
    run_all(str(source / "clients.csv"), str(source / "sales.csv"), url)
    return url


@pytest.fixture(scope="session")
def warehouse_url(source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_warehouse(source_dir, tmp_path_factory.mktemp("warehouse"))


@pytest.fixture(scope="session")
def session_frame(warehouse_url: str) -> pd.DataFrame:
    return training_frame(warehouse_url)


@pytest.fixture
def frame(session_frame: pd.DataFrame) -> pd.DataFrame:
    """The labeled training rows (a copy each test may change)."""
    copy = session_frame.copy()
    copy.attrs = dict(session_frame.attrs)
    return copy


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the session (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracker(tracking_uri: str, tmp_path: Path) -> MlflowTracker:
    """A tracker with a registered model name of its own, so tests do not share champions."""
    return MlflowTracker(
        tracking_uri,
        model_name=f"test-{uuid.uuid4().hex[:10]}",
        experiment="clientml-tests",
        artifact_location=tmp_path.parent / "mlartifacts",
    )


@pytest.fixture(name="estimator")
def estimator_fixture() -> EstimatorFactory:
    return estimator


@pytest.fixture(scope="session")
def trained(session_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The default model trained once (no tracking), in a session models directory (read-only use)."""
    models = tmp_path_factory.mktemp("models")
    return train(estimator, session_frame, seed=SEED, models_dir=models)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings defaults point into the test's tmp dir, never into the repository."""
    monkeypatch.setenv("CLIENTML_MODELS_DIR", str(tmp_path / "default-models"))
    monkeypatch.setenv("CLIENTML_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'default-mlflow.db'}")
    monkeypatch.setenv("CLIENTML_MLFLOW_ARTIFACTS_DIR", str(tmp_path / "default-mlartifacts"))
    monkeypatch.setenv("CLIENTML_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'default-wh.duckdb'}")
    monkeypatch.setenv("CLIENTML_TRAIN_N_JOBS", "1")
    monkeypatch.delenv("CLIENTML_API_KEY", raising=False)
    yield
