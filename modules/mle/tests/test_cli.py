"""``clientml train | score | serve`` end to end through the main app."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clientml_mle.bundle import load_bundle
from serve_fixtures import publish
from typer.testing import CliRunner

from clientml.cli import app


@pytest.mark.slow
def test_train_then_score(
    runner: CliRunner, warehouse_url: str, source_dir: Path, tracking_uri: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    args = ["train", "--warehouse", warehouse_url, "--models-dir", str(models), "--seed", "4", "--wait-timeout", "5"]
    result = runner.invoke(app, [*args, "--tracking-uri", tracking_uri, "--model-name", "cli-test-model"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert Path(summary["bundle"]).parent == models
    assert summary["metrics"]["roc_auc"] > 0.7
    assert summary["tracking"]["decision"]["promoted"] is True
    assert summary["tracking"]["registered_version"] == "1"
    assert load_bundle(models).version == summary["version"]

    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", "--warehouse", warehouse_url, "--models-dir", str(models), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    clients = pd.read_csv(source_dir / "clients.csv")
    assert scored["rows"] == int(clients["label"].isna().sum()) == len(pd.read_csv(out))
    assert scored["bundle_version"] == summary["version"]
    result = runner.invoke(
        app, ["score", "--warehouse", warehouse_url, "--models-dir", str(models), "--out", str(out), "--champion"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pointer"] == "CHAMPION"


@pytest.mark.slow
def test_train_without_tracking_uses_the_settings(runner: CliRunner, warehouse_url: str, tmp_path: Path) -> None:
    models = tmp_path / "from-env"
    result = runner.invoke(
        app,
        ["train", "--no-tracking"],
        env={"CLIENTML_WAREHOUSE_URL": warehouse_url, "CLIENTML_MODELS_DIR": str(models)},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tracking"] is None and Path(summary["bundle"]).parent == models
    # The output of `clientml train` (the ds trainer, the default): mle's summary, then ds's additions.
    assert list(summary) == [
        "bundle", "version", "name", "threshold", "metrics", "confusion_matrix", "training_data", "n_features", "tracking",
        "trainer", "selection", "split", "report", "ground_truth",
    ]  # fmt: skip
    assert list(summary["confusion_matrix"]) == ["tn", "fp", "fn", "tp"] and len(summary["metrics"]) == 16


def test_train_times_out_without_feature_store(runner: CliRunner, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    result = runner.invoke(
        app, ["train", "--warehouse", url, "--models-dir", str(tmp_path / "m"), "--wait-timeout", "0.2"]
    )
    assert result.exit_code == 1
    assert "feature_store" in result.stderr and "did not appear" in result.stderr
    assert not (tmp_path / "m").exists()


def test_score_without_a_model_fails_clearly(runner: CliRunner, warehouse_url: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["score", "--warehouse", warehouse_url, "--models-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 1 and "no such models directory" in result.stderr


def test_serve_calls_run_server(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("clientml_mle.serve.server")

    def run_server(**kwargs: Any) -> None:
        calls.append(kwargs)

    fake.run_server = run_server  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clientml_mle.serve.server", fake)
    monkeypatch.setenv("CLIENTML_API_KEY", "")
    monkeypatch.setenv("MY_KEY", "s3cret")
    result = runner.invoke(
        app, ["serve", "--models-dir", str(tmp_path), "--port", "9000", "--workers", "2", "--api-key-env", "MY_KEY"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "models_dir": tmp_path,
            "warehouse_url": None,
            "host": "127.0.0.1",
            "port": 9000,
            "workers": 2,
            "api_key": "s3cret",
        }
    ]
    assert os.environ["CLIENTML_API_KEY"] == ""  # the key is passed explicitly, not through the environment
    result = runner.invoke(app, ["serve", "--api-key-env", "ABSENT_VARIABLE"])
    assert result.exit_code == 1 and "ABSENT_VARIABLE" in result.stderr


@pytest.mark.parametrize("state", ["empty, not watched", "missing"])
def test_serve_without_a_model_fails_clearly(
    runner: CliRunner, tmp_path: Path, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A models directory that does not exist, or (with no watching to wait for one) holds no bundle.
    An empty directory that is watched is served: test_serve_server.py."""
    models = tmp_path / "models"
    if state.startswith("empty"):
        models.mkdir()
        monkeypatch.setenv("CLIENTML_RELOAD_POLL_S", "0")
    result = runner.invoke(app, ["serve", "--models-dir", str(models), "--port", "0"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert str(models) in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("named", ["the bundle", "a models directory, not watched"])
def test_serve_refuses_an_altered_bundle_at_once(
    runner: CliRunner, tmp_path: Path, bundle_versions: list[Path], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is served without watching (a bundle's own directory, or CLIENTML_RELOAD_POLL_S=0) has its
    hashes checked before the server starts."""
    models = tmp_path / "models"
    models.mkdir()
    version = publish(models, bundle_versions[0], tamper=True)
    if named != "the bundle":
        monkeypatch.setenv("CLIENTML_RELOAD_POLL_S", "0")
    path = models / version if named == "the bundle" else models
    result = runner.invoke(app, ["serve", "--models-dir", str(path), "--port", "0"])
    assert result.exit_code == 1
    assert "model.skops" in result.output and "Traceback" not in result.output


def test_score_with_an_empty_models_dir_says_there_is_no_model(
    runner: CliRunner, warehouse_url: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    result = runner.invoke(
        app, ["score", "--warehouse", warehouse_url, "--models-dir", str(models), "--out", str(tmp_path / "s.csv")]
    )
    assert result.exit_code == 1
    assert f"{models}: no model bundles in this directory" in result.output
