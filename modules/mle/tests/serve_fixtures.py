"""Helpers and fixtures of the serving tests (``test_serve_*``).

The bundle and the warehouse come from the mle suite's session fixtures (``conftest.py``: ``trained``,
a default model trained on a generated 2,000-client feature_store, and ``warehouse_url``), so the model
is trained once for the whole suite; everything lives in pytest's tmp directories.

The test modules import it plainly: the tests directory is on pytest's ``pythonpath`` (``pyproject.toml``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clientml_de.warehouse import connect
from clientml_mle.bundle import Bundle, load_bundle
from clientml_mle.features import latest_rows
from clientml_mle.pointers import CHAMPION_FILE, set_pointer
from clientml_mle.train import TrainResult, publish_bundle


@dataclass(frozen=True)
class ServeWorld:
    """A warehouse with a feature_store, a models dir holding one bundle, and the loaded bundle."""

    warehouse_url: str
    models_dir: Path
    bundle: Bundle
    store: pd.DataFrame  # every client's latest feature_store row, as clientml_mle.features reads it

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.bundle.manifest.features]

    def records(self, n: int | None = None, start: int = 0) -> list[dict[str, Any]]:
        """feature_store rows as JSON records: the features only (no key, label or bookkeeping)."""
        rows = self.store.iloc[start : None if n is None else start + n][self.feature_names]
        return rows.astype(object).where(rows.notna(), None).to_dict(orient="records")

    def records_of(self, client_ids: list[str]) -> list[dict[str, Any]]:
        """The feature_store rows of these clients, in this order, as JSON records (like :meth:`records`)."""
        rows = self.store.set_index("client_id").loc[client_ids, self.feature_names]
        return rows.astype(object).where(rows.notna(), None).to_dict(orient="records")

    def reference(self, records: list[dict[str, Any]]) -> Any:
        """The bundle's own probabilities (sklearn Pipeline on a DataFrame)."""
        return self.bundle.predict_proba(self.bundle.feature_frame(records))


def all_client_ids(warehouse_url: str) -> list[str]:
    warehouse = connect(warehouse_url)
    try:
        ids = warehouse.table("feature_store").select("client_id").distinct().to_pandas()["client_id"]
    finally:
        warehouse.close()
    return sorted(str(c) for c in ids)


def make_world(bundle_path: Path, warehouse_url: str) -> ServeWorld:
    store = latest_rows(warehouse_url, all_client_ids(warehouse_url))
    return ServeWorld(warehouse_url, bundle_path.parent, load_bundle(bundle_path), store)


@pytest.fixture(scope="session")
def serve_world(trained: Any, warehouse_url: str) -> ServeWorld:
    return make_world(Path(trained.bundle_path), warehouse_url)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """An empty models directory (where a test publishes bundles for a server to watch)."""
    directory = tmp_path / "models"
    directory.mkdir()
    return directory


@pytest.fixture(scope="session")
def bundle_versions(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three bundles of the trained model at thresholds 0.5, 0.1 and 0.9 (three versions, the labels
    telling them apart), in a staging directory: :func:`publish` copies them where a server watches."""
    staging = tmp_path_factory.mktemp("staged-bundles")
    return [
        publish_bundle(replace(trained.fitted, threshold=threshold), trained.evaluation, staging)
        for threshold in (0.5, 0.1, 0.9)
    ]


def publish(models_dir: Path, bundle_dir: Path, pointer: str = CHAMPION_FILE, *, tamper: bool = False) -> str:
    """Copy a bundle into ``models_dir`` (with a byte of its model changed when ``tamper``), then move
    ``pointer`` to it, as a trainer would (the bundle complete before the pointer names it); its version."""
    target = models_dir / bundle_dir.name
    if not target.exists():
        shutil.copytree(bundle_dir, target)
    if tamper:
        model = target / "model.skops"
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    set_pointer(models_dir, target.name, pointer)
    return target.name
