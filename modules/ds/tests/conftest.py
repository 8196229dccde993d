"""Fixtures of the ds tests: a larger generated feature store and one model trained for the session.

The shared fixtures (``small_source``, ``small_warehouse``, ``worlds``, ``warehouse_url``, settings in the
test's tmp dir) come from ``clientml_testkit.fixtures``. Everything is written under pytest's tmp
directories, never into ``modules/ds/models`` nor ``.clientml``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from clientml_ds.select import SearchBudget
from clientml_ds.train import DsTrainResult, load_ground_truth, train_model
from clientml_mle.features import training_frame
from clientml_testkit.data import Worlds

# The quality test's data: 8,000 generated clients (about 6,800 labeled: 5,400 training and 1,360 test
# rows). See test_train.py for the tolerance this size allows.
N_CLIENTS = 8000
DATA_SEED = 3
TRAIN_SEED = 0
# The session model's search budget: small, trial-bound (the time box is far away).
BUDGET = SearchBudget(seconds=600, lightgbm_trials=8, logreg_trials=4)


@pytest.fixture(scope="session")
def source_dir(worlds: Worlds) -> Path:
    """The 8,000 generated clients (``warehouse_url`` is their feature_store)."""
    return worlds.source(N_CLIENTS, DATA_SEED)


@pytest.fixture(scope="session")
def frame(warehouse_url: str) -> pd.DataFrame:
    return training_frame(warehouse_url)


@pytest.fixture(scope="session")
def ground_truth(source_dir: Path) -> pd.DataFrame:
    return load_ground_truth(source_dir / "ground_truth.csv")


@pytest.fixture(scope="session")
def small_frame(small_warehouse: str) -> pd.DataFrame:
    return training_frame(small_warehouse)


@pytest.fixture(scope="session")
def trained(frame: pd.DataFrame, ground_truth: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> DsTrainResult:
    """The ds training job run once on the 8,000-client data (no MLflow), read-only for the tests."""
    models = tmp_path_factory.mktemp("models")
    return train_model(frame, models_dir=models, seed=TRAIN_SEED, budget=BUDGET, ground_truth=ground_truth)
