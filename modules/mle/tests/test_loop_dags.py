"""The monitoring loop's DAGs of mle (``score_clients``, ``monitor_drift``): integrity (thin files, schedules,
assets) and real ``dag.test()`` runs on the session's generated warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from clientml_de.pipeline import DagFolder, load_dags, run_dag
from clientml_de.warehouse import connect
from clientml_mle import dags as mle_dags
from clientml_mle import loop
from clientml_mle.pointers import CHAMPION_FILE, set_pointer
from clientml_mle.predictions import PREDICTIONS
from clientml_mle.retrain import RETRAIN_REQUESTS, pending_requests
from clientml_mle.train import TrainResult
from clientml_testkit.dags import heavy_imports, migrate_airflow

pytestmark = pytest.mark.airflow

FOLDER = DagFolder("mle", Path(mle_dags.__file__).parent, ("score_clients", "monitor_drift"))


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    migrate_airflow()
    return load_dags([FOLDER])


@pytest.fixture
def models(trained: TrainResult, tmp_path: Path) -> Path:
    """A models directory holding the session's bundle, without a champion yet."""
    return Path(shutil.copytree(trained.bundle_path.parent, tmp_path / "models"))


def test_dag_files_import_no_heavy_module() -> None:
    modules = [f"clientml_mle.dags.{name}" for name in FOLDER.dag_ids]
    assert heavy_imports(modules) == {name: [] for name in modules}


def test_schedules_and_assets(dags: dict[str, Any]) -> None:
    score = dags["score_clients"]
    condition = score.timetable.asset_condition
    assert condition.__class__.__name__ == "AssetAny"
    assert sorted(asset.name for asset in condition.objects) == ["champion", "feature_store"]
    tasks = {task.task_id: task for task in score.tasks}
    assert set(tasks) == {"wait_for_champion", "score", "publish"}
    assert [outlet.name for outlet in tasks["publish"].outlets] == ["predictions"]
    assert tasks["publish"].trigger_rule == "none_failed"  # emits even when score is skipped (no champion)

    monitor = dags["monitor_drift"]
    assert monitor.timetable.asset_condition.name == "predictions"
    tasks = {task.task_id: task for task in monitor.tasks}
    assert set(tasks) == {"monitor", "request_retraining"}
    assert [outlet.name for outlet in tasks["request_retraining"].outlets] == ["retrain"]
    assert tasks["monitor"].outlets == []


def test_score_clients_writes_predictions_with_the_champion_and_skips_without(
    dags: dict[str, Any], url: str, models: Path, trained: TrainResult
) -> None:
    conf = {"warehouse_url": url, "models_dir": str(models), "wait_for_champion": False}
    run = run_dag(dags["score_clients"], conf)
    assert run.skipped == ("score",) and run.emitted == ("predictions",)  # the monitor still runs after it
    assert run.outputs["publish"]["rows"] == 0 and "no champion model yet" in run.outputs["publish"]["skipped"]
    with connect(url, read_only=True) as warehouse:
        assert not warehouse.has_table(PREDICTIONS)

    set_pointer(models, trained.version, CHAMPION_FILE)
    run = run_dag(dags["score_clients"], conf)
    assert run.skipped == () and run.emitted == ("predictions",)
    written = run.outputs["score"]
    assert written["model_version"] == trained.version and written["rows"] > 0
    assert run.outputs["publish"] == written
    with connect(url, read_only=True) as warehouse:
        assert warehouse.table(PREDICTIONS).count().execute() == written["rows"]


def _stand_in(retrain: bool, reasons: list[str]) -> Any:
    """A run_monitor that decides as told: the DAG's wiring is what is tested with it."""

    def run_monitor(warehouse_url: str, models_dir: Path, *, report_dir: Path | None, run_id: str | None) -> Any:
        drift = SimpleNamespace(feature="spend_total", drifted=retrain, relied_on=True)
        return SimpleNamespace(
            run_id=run_id,
            model_version="v1",
            drifted=retrain,
            reasons=reasons,
            features=[drift],
            score_drift=None,
            report_path=None,
            labels_changed=False,
            retrain=retrain,
        )

    return run_monitor


def test_monitor_drift_asks_for_retraining_only_when_the_monitor_says_so(
    dags: dict[str, Any], url: str, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = {"warehouse_url": url, "models_dir": str(models), "report_dir": ""}
    monkeypatch.setattr(loop, "run_monitor", _stand_in(False, []))
    run = run_dag(dags["monitor_drift"], conf)
    assert run.skipped == ("request_retraining",) and run.emitted == ()
    assert run.outputs["monitor"]["retrain"] is False
    with connect(url, read_only=True) as warehouse:
        assert not warehouse.has_table(RETRAIN_REQUESTS)

    monkeypatch.setattr(loop, "run_monitor", _stand_in(True, ["PSI 0.45 on spend_total"]))
    run = run_dag(dags["monitor_drift"], conf)
    assert run.skipped == () and run.emitted == ("retrain",)
    decision = run.outputs["monitor"]
    assert decision["run_id"] == run.run_id and decision["drifted_features"] == ["spend_total"]
    [request] = pending_requests(url)
    assert request.source == "drift" and request.reason == "PSI 0.45 on spend_total"
    assert (
        request.monitor_run_id == run.run_id and run.outputs["request_retraining"]["request_id"] == request.request_id
    )


def test_monitor_drift_with_the_champion_on_the_data_it_was_trained_on(
    dags: dict[str, Any], url: str, models: Path, trained: TrainResult, tmp_path: Path
) -> None:
    set_pointer(models, trained.version, CHAMPION_FILE)
    conf = {"warehouse_url": url, "models_dir": str(models), "wait_for_champion": False}
    run_dag(dags["score_clients"], conf)
    run = run_dag(dags["monitor_drift"], {**conf, "report_dir": str(tmp_path / "reports")})

    decision = run.outputs["monitor"]
    assert decision["run_id"] == run.run_id and decision["model_version"] == trained.version
    assert not decision["drifted"] and not decision["retrain"], decision["reasons"]
    assert run.skipped == ("request_retraining",) and run.emitted == ()
    assert Path(decision["report_path"]).parent == tmp_path / "reports" and Path(decision["report_path"]).is_file()
    with connect(url, read_only=True) as warehouse:
        report = warehouse.table("drift_report").to_pandas()
    assert set(report["run_id"]) == {run.run_id} and len(report) > 1
