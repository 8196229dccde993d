"""Fixtures of the monitoring tests: a champion in a models directory of the test's own, and a writable
copy of the generated warehouse (the session's is shared and read-only; the monitor writes ``drift_report``).

The test modules import it plainly: the tests directory is on pytest's ``pythonpath`` (``pyproject.toml``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from clientml_mle.train import TrainResult
from serve_fixtures import publish


def duckdb_path(url: str) -> Path:
    return Path("/" + url.removeprefix("duckdb://").lstrip("/"))


@pytest.fixture
def champion_models(trained: TrainResult, tmp_path: Path) -> Path:
    """A models directory whose CHAMPION is the suite's trained model (with its reference profile)."""
    models = tmp_path / "models"
    models.mkdir()
    publish(models, Path(trained.bundle_path))
    return models


@pytest.fixture
def writable_warehouse(warehouse_url: str, tmp_path: Path) -> str:
    """A writable copy of the generated warehouse (the data the champion was trained on)."""
    target = tmp_path / "wh.duckdb"
    shutil.copyfile(duckdb_path(warehouse_url), target)
    return f"duckdb:///{target}"


def execute(url: str, *statements: str) -> None:
    """Run SQL on a DuckDB warehouse file (to change its feature_store the way a new drop would)."""
    with duckdb.connect(str(duckdb_path(url))) as con:
        for statement in statements:
            con.execute(statement)


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(duckdb_path(url)), read_only=True) as con:
        return con.execute(sql).fetchall()
