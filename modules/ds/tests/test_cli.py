"""``clientml train`` runs the ds training by default; ``clientml score`` uses the champion."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from clientml_mle.pointers import read_pointer
from typer.testing import CliRunner

from clientml.cli import app

FAST = ["--search-trials", "2", "--search-seconds", "120", "--wait-timeout", "5"]


@pytest.mark.slow
def test_train_with_tracking_then_score_with_the_champion(
    runner: CliRunner, small_warehouse: str, small_source: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    tracking = ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--model-name", "ds-cli-test"]
    truth = ["--ground-truth", str(small_source / "ground_truth.csv")]
    result = runner.invoke(
        app,
        ["train", "--warehouse", small_warehouse, "--models-dir", str(models), *tracking, *truth, *FAST],
        env={"CLIENTML_MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts")},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["trainer"] == "clientml_ds"
    assert summary["tracking"]["decision"]["promoted"] is True
    assert Path(summary["report"]).is_file()
    assert summary["ground_truth"]["best_achievable_roc_auc"] > summary["ground_truth"]["model_roc_auc"] - 0.05
    assert summary["selection"]["searches"]["lightgbm"]["n_trials_done"] == 2
    assert read_pointer(models, "CHAMPION") == summary["version"]

    out = tmp_path / "scores.csv"
    result = runner.invoke(
        app, ["score", "--warehouse", small_warehouse, "--models-dir", str(models), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["pointer"] == "CHAMPION" and scored["bundle_version"] == summary["version"]
    clients = pd.read_csv(small_source / "clients.csv")
    assert scored["rows"] == int(clients["label"].isna().sum()) == len(pd.read_csv(out))


@pytest.mark.slow
def test_without_a_champion_score_fails_clearly_unless_latest(
    runner: CliRunner, small_warehouse: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    result = runner.invoke(
        app, ["train", "--warehouse", small_warehouse, "--models-dir", str(models), "--no-tracking", *FAST]
    )
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)["version"]
    assert read_pointer(models, "CHAMPION") is None

    out = tmp_path / "scores.csv"
    args = ["score", "--warehouse", small_warehouse, "--models-dir", str(models), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "no champion model yet" in result.stderr and "--latest" in result.stderr and version in result.stderr
    assert not out.exists()
    result = runner.invoke(app, [*args, "--latest"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bundle_version"] == version


def test_the_mle_baseline_trainer_is_still_available(runner: CliRunner, small_warehouse: str, tmp_path: Path) -> None:
    args = ["train", "--warehouse", small_warehouse, "--models-dir", str(tmp_path), "--no-tracking"]
    result = runner.invoke(app, [*args, "--trainer", "default"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "trainer" not in summary and summary["metrics"]["roc_auc"] > 0.7
    bad = runner.invoke(app, ["train", "--warehouse", small_warehouse, "--trainer", "sklearn"])
    assert bad.exit_code == 1 and "--trainer must be" in bad.stderr
