"""Fixtures of the serving tests: a small feature store and a bundle trained on it (in tmp dirs).

Imported by the ``test_serve_*`` modules (``from serve_fixtures import *`` style, via pytest's
``pytest_plugins``-free approach: each test module imports the fixtures it uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

N_CLIENTS = 2000


@dataclass(frozen=True)
class ServeWorld:
    """A warehouse with a feature_store, a models dir with one bundle, and the loaded bundle."""

    warehouse_url: str
    models_dir: Path
    bundle: Any
    store: pd.DataFrame  # the whole feature_store, as clientml_mle.features reads it

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.bundle.manifest.features]

    def records(self, n: int | None = None) -> list[dict[str, Any]]:
        """feature_store rows as JSON records (minus key, label and bookkeeping)."""
        rows = self.store if n is None else self.store.head(n)
        frame = rows[self.feature_names].astype(object).where(rows[self.feature_names].notna(), None)
        return frame.to_dict(orient="records")


def build_world(root: Path, n_clients: int = N_CLIENTS, seed: int = 1) -> ServeWorld:
    from clientml_de.config import DatasetConfig
    from clientml_de.features import build_feature_store
    from clientml_de.generate import generate
    from clientml_de.load import load_source
    from clientml_de.warehouse import connect
    from clientml_mle.bundle import load_bundle
    from clientml_mle.features import latest_rows, training_frame
    from clientml_mle.train import default_estimator, train

    data = root / "data"
    generate(data, n_clients=n_clients, seed=seed)
    url = f"duckdb:///{root / 'wh.duckdb'}"
    warehouse = connect(url)
    try:
        config = DatasetConfig()
        load_source(str(data / "clients.csv"), config.clients_spec(), warehouse)
        load_source(str(data / "sales.csv"), config.sales_spec(), warehouse)
        build_feature_store(warehouse, config)
    finally:
        warehouse.close()
    models_dir = root / "models"
    train(default_estimator, training_frame(url), models_dir=models_dir, tracking=None, n_boot=20, seed=seed)
    bundle = load_bundle(models_dir)
    ids = [f"C{i:07d}" for i in range(n_clients * 2)]
    store = latest_rows(url, ids)
    return ServeWorld(url, models_dir, bundle, store)


@pytest.fixture(scope="session")
def serve_world(tmp_path_factory: pytest.TempPathFactory) -> ServeWorld:
    return build_world(tmp_path_factory.mktemp("serve"))
