"""Fixtures of the mle tests: the training rows, a throwaway MLflow store, a trained model.

The generated data (``source_dir``: 2,000 clients; ``warehouse_url``: its feature_store on DuckDB) and
settings in the test's tmp dir come from ``clientml_testkit.fixtures``. Everything is written under
pytest's tmp directories: never into the repository's ``modules/ds/models`` nor into ``.clientml``.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest
from clientml_mle.estimators import EstimatorFactory, default_estimator
from clientml_mle.features import training_frame
from clientml_mle.schema import FeatureSpec
from clientml_mle.tracking import MlflowTracker
from clientml_mle.train import TrainResult, train
from monitor_support import champion_models, writable_warehouse  # noqa: F401  (fixtures of the monitoring tests)
from serve_fixtures import bundle_versions, models, serve_world  # noqa: F401  (fixtures: conftest makes them visible to every test here)
from sklearn.pipeline import Pipeline

SEED = 1


def estimator(specs: list[FeatureSpec]) -> Pipeline:
    """The default estimator on one thread: LightGBM's threads only slow small fits on a busy machine."""
    return default_estimator(specs, n_jobs=1)


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
def url(warehouse_url: str, tmp_path: Path) -> str:
    """A writable copy of the session's warehouse (feature_store of 2,000 generated clients)."""
    copy = tmp_path / "wh.duckdb"
    shutil.copyfile(warehouse_url.removeprefix("duckdb://"), copy)
    return f"duckdb:///{copy}"


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
    return train(estimator, session_frame, seed=SEED, models_dir=tmp_path_factory.mktemp("models"))
