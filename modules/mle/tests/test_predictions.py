"""Batch scoring into the warehouse (:mod:`clientml_mle.predictions`): every unlabeled client with the champion's
version, replaced per model version, the same rows again on a rerun, on DuckDB and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from clientml_de.partitions import replace_partition
from clientml_de.warehouse import connect
from clientml_mle.pointers import CHAMPION_FILE, NoModelError, set_pointer
from clientml_mle.predictions import PREDICTIONS, score_to_warehouse
from clientml_mle.score import score
from clientml_mle.train import TrainResult
from clientml_testkit.data import load_sources


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, warehouse_url: str, source_dir: Path, tmp_path: Path) -> str:
    """A writable warehouse holding the session's feature_store (2,000 generated clients)."""
    if request.param == "duckdb":
        copy = tmp_path / "wh.duckdb"
        shutil.copyfile(warehouse_url.removeprefix("duckdb://"), copy)
        return f"duckdb:///{copy}"
    postgres: str = request.getfixturevalue("postgres_url")
    load_sources(postgres, source_dir)
    return postgres


@pytest.fixture
def models(trained: TrainResult, tmp_path: Path) -> Path:
    """A models directory holding the session's bundle, without a champion yet."""
    return Path(shutil.copytree(trained.bundle_path.parent, tmp_path / "models"))


def _predictions(url: str) -> pd.DataFrame:
    with connect(url, read_only=True) as warehouse:
        frame = warehouse.table(PREDICTIONS).to_pandas()
    return frame.sort_values(["model_version", "client_id"]).reset_index(drop=True)


def test_every_unlabeled_client_is_scored_with_the_champion_and_a_rerun_gives_the_same_rows(
    url: str, models: Path, trained: TrainResult, source_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(NoModelError, match="no champion model yet"):
        score_to_warehouse(url, models)
    with connect(url, read_only=True) as warehouse:
        assert not warehouse.has_table(PREDICTIONS)  # nothing written without a champion
    set_pointer(models, trained.version, CHAMPION_FILE)

    summary = score_to_warehouse(url, models)
    first = _predictions(url)
    clients = pd.read_csv(source_dir / "clients.csv", dtype={"client_id": str})
    unlabeled = set(clients.loc[clients["label"].isna(), "client_id"])
    assert summary.rows == len(first) == len(unlabeled) > 0
    assert set(first["client_id"]) == unlabeled and first["client_id"].is_unique
    assert set(first["model_version"]) == {trained.version} == {summary.model_version}
    with connect(url, read_only=True) as warehouse:
        built = warehouse.table("feature_store").feature_set_version.execute().unique().tolist()
    assert set(first["feature_set_version"]) == set(built) == set(summary.feature_set_versions)
    # The same scoring step as `clientml score`'s CSV, with the same bundle.
    score(url, models, tmp_path / "s.csv", pointer=CHAMPION_FILE)
    merged = first.merge(
        pd.read_csv(tmp_path / "s.csv", dtype={"client_id": str}), on="client_id", suffixes=("", "_csv")
    )
    assert len(merged) == len(first)
    pd.testing.assert_series_equal(merged["probability"], merged["probability_csv"], check_names=False, rtol=1e-12)
    assert (merged["label"] == merged["label_csv"]).all()

    score_to_warehouse(url, models)  # the same feature_store again: the same rows, a later scored_at
    second = _predictions(url)
    pd.testing.assert_frame_equal(first.drop(columns="scored_at"), second.drop(columns="scored_at"))
    assert (second["scored_at"] >= first["scored_at"]).all()


def _write(url: str, frame: pd.DataFrame) -> None:
    """Replace ``frame``'s model version's rows of predictions with ``frame`` (rows a run could have left)."""
    with connect(url) as warehouse:
        schema = warehouse.table(PREDICTIONS).to_pyarrow().schema
        rows = pa.Table.from_pandas(frame, preserve_index=False).cast(schema)
        replace_partition(warehouse, PREDICTIONS, rows, key="model_version", value=frame["model_version"].iloc[0])


def test_a_run_replaces_its_version_and_keeps_the_others(url: str, models: Path, trained: TrainResult) -> None:
    set_pointer(models, trained.version, CHAMPION_FILE)
    score_to_warehouse(url, models)
    scored = _predictions(url)
    older = "20250101T000000.000000Z-000000000000"
    _write(url, scored.head(3).assign(model_version=older))  # what an older champion left
    # This version's rows plus a client who is no longer unlabeled, as a run on older features would have left.
    _write(url, pd.concat([scored, scored.head(1).assign(client_id="C-LABELED-SINCE")], ignore_index=True))

    score_to_warehouse(url, models)
    after = _predictions(url)
    assert (after["model_version"] == older).sum() == 3
    mine = after[after["model_version"] == trained.version]
    assert len(mine) == len(scored) and "C-LABELED-SINCE" not in set(mine["client_id"])
