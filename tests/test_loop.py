"""The monitoring loop closed in the embedded pipeline. Every DAG of the system parses and the assets chain them
(each asset a DAG waits for is one a DAG updates). Then as a user runs it: ``clientml pipeline`` on a first drop
trains and scores; the same drop again shows no drift and trains nothing; a drop whose activity moved shows
drift on the activity features and retrains; ``clientml retrain`` asks for a training by hand.

The tests of a module share one warehouse, models directory and MLflow store, in file order (each drop
follows the previous). The trainer is mle's baseline (``CLIENTML_TRAINER=default``, seconds instead of the ds
search's minutes): ``train_model`` with the ds trainer is tested in the ds module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clientml_de.pipeline import DE_DAGS, load_dags
from clientml_de.warehouse import connect
from clientml_mle.pointers import CHAMPION_FILE, read_pointer
from clientml_mle.predictions import PREDICTIONS
from clientml_mle.retrain import RETRAIN_REQUESTS
from clientml_testkit.dags import migrate_airflow
from clientml_testkit.data import Worlds

from clientml.loop import loop_folders

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

CLIENTML = Path(sys.executable).parent / "clientml"
N_CLIENTS, SEED = 2500, 21
# The profile features, which the activity shift leaves as they were (it moves the sales-derived ones).
PROFILE_FEATURES = {"gender", "region", "segment", "acquisition_channel", "annual_income", "age_years", "tenure_days"}


class Loop:
    """One warehouse, models directory and MLflow store, and ``clientml`` run on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"duckdb:///{root / 'warehouse.duckdb'}"
        self.models = root / "models"
        self.env = {
            **os.environ,
            "CLIENTML_STATE_DIR": str(root / "state"),
            "CLIENTML_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "CLIENTML_MLFLOW_ARTIFACTS_DIR": str(root / "mlartifacts"),
            "CLIENTML_TRAINER": "default",
            "CLIENTML_TRAIN_N_JOBS": "1",
        }

    def clientml(self, *args: str) -> dict[str, Any]:
        # The suite's Airflow home: its metadata database is created once, not per test.
        common = [
            "--warehouse",
            self.url,
            "--models-dir",
            str(self.models),
            "--airflow-home",
            os.environ["AIRFLOW_HOME"],
        ]
        result = subprocess.run(
            [str(CLIENTML), *args, *common], capture_output=True, text=True, env=self.env, cwd=self.root, check=False
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return dict(json.loads(result.stdout))

    def pipeline(self, source: Path) -> dict[str, Any]:
        return self.clientml("pipeline", "--clients", str(source / "clients.csv"), "--sales", str(source / "sales.csv"))

    def table(self, name: str) -> pd.DataFrame:
        with connect(self.url, read_only=True) as warehouse:
            return warehouse.table(name).to_pandas()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    return Loop(tmp_path_factory.mktemp("loop"))


def _dag_ids(summary: dict[str, Any]) -> list[str]:
    return [run["dag_id"] for run in summary["dag_runs"]]


def _unlabeled(source: Path) -> set[str]:
    clients = pd.read_csv(source / "clients.csv", dtype={"client_id": str})
    return set(clients.loc[clients["label"].isna(), "client_id"])


def _names(condition: Any) -> set[str]:
    """The asset names of a schedule's condition (an asset, or ``&``/``|`` of them)."""
    parts = getattr(condition, "objects", None)
    return set().union(*(_names(part) for part in parts)) if parts is not None else {condition.name}


def test_every_dag_parses_and_every_asset_a_dag_waits_for_is_one_a_dag_updates() -> None:
    migrate_airflow()
    dags = load_dags((DE_DAGS, *loop_folders()))
    assert list(dags) == [*DE_DAGS.dag_ids, "score_clients", "monitor_drift", "train_model"]
    produced = {outlet.name: dag_id for dag_id, dag in dags.items() for task in dag.tasks for outlet in task.outlets}
    awaited = {
        dag_id: _names(condition)
        for dag_id, dag in dags.items()
        if (condition := getattr(dag.timetable, "asset_condition", None)) is not None
    }
    assert awaited == {
        "process_data": {"clients", "sales"},
        "score_clients": {"feature_store", "champion"},
        "monitor_drift": {"predictions"},
        "train_model": {"retrain"},
    }
    assert {name: produced[name] for names in awaited.values() for name in names} == {
        "clients": "load_client_data",
        "sales": "load_sales_data",
        "feature_store": "process_data",
        "champion": "train_model",
        "predictions": "score_clients",
        "retrain": "monitor_drift",
    }


def test_a_first_drop_trains_a_champion_then_scores(loop: Loop, worlds: Worlds) -> None:
    source = worlds.source(N_CLIENTS, SEED)
    summary = loop.pipeline(source)

    assert _dag_ids(summary) == [
        *("load_client_data", "load_sales_data", "process_data"),
        *("score_clients", "monitor_drift", "train_model", "score_clients", "monitor_drift"),
    ]
    outcome = summary["loop"]
    first, after = outcome["drift"]
    assert first["retrain"] and first["model_version"] is None  # no champion yet: the monitor asks for one
    assert outcome["retrained"] and outcome["promoted"]
    champion = read_pointer(loop.models, CHAMPION_FILE)
    assert outcome["training"][0]["version"] == champion
    assert after["model_version"] == champion and not after["retrain"], after["reasons"]

    predictions = loop.table(PREDICTIONS)
    assert outcome["predictions"]["rows"] == len(predictions) == len(_unlabeled(source)) > 0
    assert set(predictions["client_id"]) == _unlabeled(source)
    assert set(predictions["model_version"]) == {champion}
    assert len(loop.table("drift_report")) > 0


def test_the_same_drop_again_shows_no_drift_and_trains_nothing(loop: Loop, worlds: Worlds) -> None:
    champion = read_pointer(loop.models, CHAMPION_FILE)
    summary = loop.pipeline(worlds.source(N_CLIENTS, SEED))

    assert _dag_ids(summary)[3:] == ["score_clients", "monitor_drift"]
    [decision] = summary["loop"]["drift"]
    assert not decision["drifted"] and not decision["retrain"], decision["reasons"]
    assert not summary["loop"]["retrained"] and read_pointer(loop.models, CHAMPION_FILE) == champion
    assert summary["loop"]["predictions"]["model_version"] == champion


def test_a_drop_whose_activity_moved_drifts_on_those_features_and_retrains(loop: Loop, worlds: Worlds) -> None:
    summary = loop.pipeline(worlds.source(N_CLIENTS, SEED, shift=("activity",)))

    assert "train_model" in _dag_ids(summary)
    decision = summary["loop"]["drift"][0]
    # The sales-derived features moved, the profile did not. Whether the run counts as drifted depends on the
    # model relying on them (their share of its importance); the labels moved with the activity either way.
    moved = set(decision["drifted_features"])
    assert any(name.startswith(("n_sales_", "spend_")) for name in moved), moved
    assert not moved & PROFILE_FEATURES, moved
    assert decision["retrain"] and (decision["drifted"] or decision["labels_changed"]), decision["reasons"]
    training = summary["loop"]["training"][0]
    assert training["trained"] and training["reason"] == "new feature_store content"
    assert summary["loop"]["retrained"]
    requests = loop.table(RETRAIN_REQUESTS).set_index("request_id")
    request = requests.loc[training["requests"][0]]
    assert request["source"] == ("drift" if decision["drifted"] else "labels")
    assert request["outcome"] == training["outcome"]


def test_clientml_retrain_trains_on_the_same_content_when_asked(loop: Loop) -> None:
    before = sorted(p.name for p in loop.models.iterdir() if p.is_dir())
    recorded = loop.clientml("retrain", "--request-only", "--reason", "for the record")
    assert recorded["request"]["source"] == "manual" and recorded["request"]["handled_at"] is None

    summary = loop.clientml("retrain", "--reason", "a new model, please")
    [training] = summary["loop"]["training"]
    assert training["trained"] and training["reason"].startswith("manual request")
    assert len(training["requests"]) == 2  # the one recorded before, and this one
    assert len([p for p in loop.models.iterdir() if p.is_dir()]) == len(before) + 1
    assert loop.table(RETRAIN_REQUESTS)["handled_at"].notna().all()
