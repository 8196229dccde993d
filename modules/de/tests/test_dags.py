"""The three DAGs: integrity (ids, schedules, assets) and a real ``dag.test()`` run of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clientml_de import tasks
from clientml_de.pipeline import DAG_ORDER, load_dags, task_errors
from clientml_de.warehouse import connect
from clientml_testkit.dags import heavy_imports, migrate_airflow

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    migrate_airflow()
    return load_dags()


def test_dag_files_import_no_heavy_module() -> None:
    modules = [f"clientml_de.dags.{name}" for name in DAG_ORDER]
    assert heavy_imports(modules) == {name: [] for name in modules}


def test_dag_ids_and_no_import_errors(dags: dict[str, Any]) -> None:
    assert set(dags) == {"load_client_data", "load_sales_data", "process_data"}
    assert DAG_ORDER[-1] == "process_data"


def test_loads_run_daily_and_at_once_and_publish_their_asset(dags: dict[str, Any]) -> None:
    for dag_id, asset in (("load_client_data", "clients"), ("load_sales_data", "sales")):
        dag = dags[dag_id]
        timetable = dag.timetable
        assert timetable.__class__.__name__ == "CronTriggerTimetable", dag_id
        # A first run as soon as the DAG is unpaused, then one a day.
        assert (timetable.expression, timetable.run_immediately) == ("0 0 * * *", True), dag_id
        [task] = dag.tasks
        assert [outlet.name for outlet in task.outlets] == [asset]


def test_process_data_waits_for_both_assets(dags: dict[str, Any]) -> None:
    dag = dags["process_data"]
    condition = dag.timetable.asset_condition
    assert condition.__class__.__name__ == "AssetAll"
    assert sorted(asset.name for asset in condition.objects) == ["clients", "sales"]
    [task] = dag.tasks
    assert [outlet.name for outlet in task.outlets] == ["feature_store"]


def test_each_dag_runs_with_dag_test(dags: dict[str, Any], generated_small: Path, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'dagtest.duckdb'}"
    conf = {
        "clients_source": str(generated_small / "clients.csv"),
        "sales_source": str(generated_small / "sales.csv"),
        "warehouse_url": url,
        "dataset_config": "",
    }
    for dag_id in DAG_ORDER:
        dag = dags[dag_id]
        run = dag.test(run_conf={k: v for k, v in conf.items() if k in dag.params})
        assert str(run.state) == "success", dag_id

    warehouse = connect(url)
    clients = warehouse.table("clients").count().to_pyarrow().as_py()
    features = warehouse.table("feature_store").count().to_pyarrow().as_py()
    assert features == clients > 1_900
    warehouse.close()


def test_failing_load_fails_the_dag_run_and_keeps_its_error(dags: dict[str, Any], tmp_path: Path) -> None:
    dag = dags["load_client_data"]
    missing = tmp_path / "missing.csv"
    run = dag.test(
        run_conf={
            "clients_source": str(missing),
            "warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}",
            "dataset_config": "",
        }
    )
    assert str(run.state) == "failed"
    # The error travels through Airflow (the failed task's XCom), not through a module global.
    assert task_errors("load_client_data", run.run_id) == {"load": f"SourceError: {missing}: file not found"}
    assert not hasattr(tasks, "last_failure")
