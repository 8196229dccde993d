"""The ``train_model`` DAG: a thin file scheduled on ``retrain``, and a real ``dag.test()``: a request on new
content trains with the ds trainer and the champion gate and announces the champion; the same request on
the same content has nothing new to teach."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from clientml_de.pipeline import DagFolder, load_dags, run_dag
from clientml_ds import dags as ds_dags
from clientml_mle.pointers import CHAMPION_FILE, read_pointer
from clientml_mle.retrain import Source, pending_requests, request_retraining
from clientml_testkit.dags import heavy_imports, migrate_airflow

pytestmark = pytest.mark.airflow

FOLDER = DagFolder("ds", Path(ds_dags.__file__).parent, ("train_model",))


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    migrate_airflow()
    return load_dags([FOLDER])


def test_dag_file_imports_no_heavy_module() -> None:
    assert heavy_imports(["clientml_ds.dags.train_model"]) == {"clientml_ds.dags.train_model": []}


def test_schedule_and_assets(dags: dict[str, Any]) -> None:
    dag = dags["train_model"]
    assert dag.timetable.asset_condition.name == "retrain"
    tasks = {task.task_id: task for task in dag.tasks}
    assert set(tasks) == {"train", "announce_champion"}
    assert [outlet.name for outlet in tasks["announce_champion"].outlets] == ["champion"]
    assert tasks["train"].outlets == []


def test_train_model_trains_once_per_content_and_announces_a_champion(
    dags: dict[str, Any], small_warehouse: str, tmp_path: Path
) -> None:
    copy = tmp_path / "wh.duckdb"
    shutil.copyfile(small_warehouse.removeprefix("duckdb://"), copy)
    url, models = f"duckdb:///{copy}", tmp_path / "models"
    conf = {"warehouse_url": url, "models_dir": str(models), "search_trials": 2, "search_seconds": 120}
    request_retraining(url, Source.DRIFT, "PSI 0.3 on the scores", monitor_run_id="first")

    run = run_dag(dags["train_model"], conf)
    outcome = run.outputs["train"]
    assert outcome["trained"] and outcome["promoted"] and outcome["requests"] == ["monitor-first"]
    assert outcome["decision"] == "no champion yet: the first version becomes champion"
    assert read_pointer(models, CHAMPION_FILE) == outcome["version"]
    assert run.emitted == ("champion",) and run.outputs["announce_champion"]["version"] == outcome["version"]
    assert pending_requests(url) == []

    request_retraining(url, Source.DRIFT, "PSI 0.3 on the scores", monitor_run_id="second")
    run = run_dag(dags["train_model"], conf)
    assert not run.outputs["train"]["trained"]
    assert run.outputs["train"]["outcome"].startswith("nothing new to learn: bundle")
    assert run.skipped == ("announce_champion",) and run.emitted == ()
