"""The benchmark's pandas reference computes what the pipeline computes, so ``make bench-etl`` compares
like with like: same rows loaded / quarantined / deduplicated, same feature_store keys and values."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.contract import BOOKKEEPING_COLUMNS
from clientml_de.features import build_feature_store
from clientml_de.load import load_source
from clientml_de.warehouse import Warehouse, connect
from clientml_testkit.data import Worlds

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "bench" / "pandas_reference.py"
RELATIVE_TOLERANCE = 1e-9


def _import_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clientml_bench_pandas_reference", REFERENCE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return _import_reference()


@pytest.fixture(scope="module")
def data(worlds: Worlds) -> Path:
    return worlds.source(2_000, 5, bad_rows=0.02)


@pytest.fixture(scope="module")
def pipeline_run(
    data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict[str, int]], pd.DataFrame]:
    """Load both files and build feature_store on a fresh DuckDB warehouse, as the pipeline does."""
    config = DatasetConfig()
    warehouse: Warehouse = connect(f"duckdb:///{tmp_path_factory.mktemp('bench-ref-wh') / 'wh.duckdb'}")
    try:
        counts = {}
        for spec, name in ((config.clients_spec(), "clients"), (config.sales_spec(), "sales")):
            summary = load_source(str(data / f"{name}.csv"), spec, warehouse)
            counts[name] = {
                "rows_read": summary.rows_read,
                "rows_loaded": summary.rows_loaded,
                "rows_rejected": summary.rows_rejected,
                "duplicates": summary.duplicates,
            }
        build_feature_store(warehouse, config)
        features = warehouse.table("feature_store").to_pandas()
    finally:
        warehouse.close()
    return counts, features


@pytest.fixture(scope="module")
def reference_run(reference: ModuleType, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return reference.run(data / "clients.csv", data / "sales.csv", tmp_path_factory.mktemp("bench-ref-out"))


def test_same_row_accounting(pipeline_run: tuple[dict[str, dict[str, int]], pd.DataFrame], reference_run: Any) -> None:
    counts, _ = pipeline_run
    assert counts["clients"] == reference_run.clients.counts
    assert counts["sales"] == reference_run.sales.counts
    # The data has bad rows and duplicates of both kinds, so the comparison exercises the rules.
    for name in ("clients", "sales"):
        assert counts[name]["rows_rejected"] > 0
        assert counts[name]["duplicates"] > 0


def test_same_feature_values(pipeline_run: tuple[dict[str, dict[str, int]], pd.DataFrame], reference_run: Any) -> None:
    _, ours = pipeline_run
    theirs: pd.DataFrame = reference_run.features
    assert sorted(theirs.columns) == sorted(c for c in ours.columns if c not in BOOKKEEPING_COLUMNS)
    assert len(ours) == len(theirs) == 2_000
    ours = ours.sort_values("client_id").reset_index(drop=True)
    theirs = theirs.sort_values("client_id").reset_index(drop=True)
    assert ours["client_id"].tolist() == theirs["client_id"].tolist()
    assert (pd.to_datetime(ours["as_of_date"]) == pd.to_datetime(theirs["as_of_date"])).all()

    categorical = {"client_id", "as_of_date", "gender", "region", "segment", "acquisition_channel"}
    mismatches = {}
    for column in theirs.columns:
        if column in categorical:
            same = ours[column].fillna("<null>").astype(str) == theirs[column].fillna("<null>").astype(str)
        else:
            a = pd.to_numeric(ours[column]).astype("float64")
            b = pd.to_numeric(theirs[column]).astype("float64")
            same = (a.isna() & b.isna()) | np.isclose(a, b, rtol=RELATIVE_TOLERANCE, atol=0.0)
        if not same.all():
            mismatches[column] = int((~same).sum())
    assert not mismatches, f"columns differing between the pipeline and the pandas reference: {mismatches}"
    # Not a vacuous comparison: activity features are populated for most clients.
    assert ours["n_sales_365d"].astype("int64").gt(0).mean() > 0.5
    assert theirs["avg_sale_value"].notna().mean() > 0.5
