"""Build ``feature_store`` once both loads have succeeded; updates the ``feature_store`` asset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from clientml_de import tasks
from clientml_de.assets import CLIENTS_ASSET, FEATURE_STORE_ASSET, SALES_ASSET
from clientml_de.settings import get_settings

_settings = get_settings()


@dag(
    dag_id="process_data",
    schedule=(CLIENTS_ASSET & SALES_ASSET),
    catchup=False,
    tags=["clientml", "de"],
    params={
        "warehouse_url": Param("", type="string", description="Empty: connection or environment"),
        "dataset_config": Param(str(_settings.dataset_config or ""), type="string"),
    },
    default_args={"retries": _settings.task_retries, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def process_data() -> None:
    @task(outlets=[FEATURE_STORE_ASSET])
    def build_feature_store(params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert params is not None
        return tasks.build_features(params["warehouse_url"], params["dataset_config"])

    build_feature_store()


process_data()
