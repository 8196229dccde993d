"""Fixtures of the de tests: small hand-written sources, generated data, a DuckDB warehouse.

The shared fixtures (``postgres_url``, ``worlds``, ``real_data`` ...) come from ``clientml_testkit.fixtures``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig
from clientml_de.warehouse import Warehouse, connect
from clientml_testkit.data import Worlds
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, write_csv


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    """A small valid clients/sales pair."""
    return (
        write_csv(tmp_path / "src" / "clients.csv", CLIENT_HEADER, GOOD_CLIENTS),
        write_csv(tmp_path / "src" / "sales.csv", SALES_HEADER, GOOD_SALES),
    )


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = connect(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    yield warehouse
    warehouse.close()


@pytest.fixture
def default_config() -> DatasetConfig:
    return DatasetConfig()


@pytest.fixture(scope="session")
def generated_small(worlds: Worlds) -> Path:
    """2,000 generated clients with 2% bad rows, shared by the tests that only read them."""
    return worlds.source(2_000, 11, bad_rows=0.02)


WarehouseFactory = Callable[[str], Warehouse]
