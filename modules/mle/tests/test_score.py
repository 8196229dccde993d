"""Batch scoring of the unlabeled clients."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_mle.bundle import load_bundle
from clientml_mle.features import unlabeled_rows
from clientml_mle.pointers import BundleIntegrityError
from clientml_mle.score import score
from clientml_mle.train import TrainResult


def test_score_writes_one_row_per_unlabeled_client(
    warehouse_url: str, source_dir: Path, trained: TrainResult, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "scores.csv"
    rows = score(warehouse_url, trained.bundle_path.parent, out)

    clients = pd.read_csv(source_dir / "clients.csv", dtype={"client_id": str})
    expected = set(clients.loc[clients["label"].isna(), "client_id"])
    written = pd.read_csv(out, dtype={"client_id": str})
    assert list(written.columns) == ["client_id", "probability", "label"]
    assert rows == len(written) == len(expected) > 0
    assert set(written["client_id"]) == expected and written["client_id"].is_unique
    assert written["probability"].between(0, 1).all()
    bundle = load_bundle(trained.bundle_path)
    assert (written["label"] == (written["probability"] >= bundle.threshold).astype(int)).all()
    features = unlabeled_rows(warehouse_url)
    np.testing.assert_allclose(written["probability"], bundle.predict_proba(features), rtol=1e-12)
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv"], "no temporary file left"


def test_score_refuses_a_tampered_bundle_and_keeps_the_old_output(
    warehouse_url: str, trained: TrainResult, tmp_path: Path
) -> None:
    models = Path(shutil.copytree(trained.bundle_path.parent, tmp_path / "models"))
    out = tmp_path / "scores.csv"
    out.write_text("previous\n")
    (models / trained.version / "model.skops").write_bytes(b"not a model")
    with pytest.raises(BundleIntegrityError, match=r"model\.skops"):
        score(warehouse_url, models, out)
    assert out.read_text() == "previous\n"


def test_score_without_a_model(warehouse_url: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such models directory"):
        score(warehouse_url, tmp_path / "empty", tmp_path / "scores.csv")
