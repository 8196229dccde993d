"""Build ``feature_store`` once both loads have succeeded; updates the ``feature_store`` asset."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from clientml_de.assets import CLIENTS_ASSET, FEATURE_STORE_ASSET, SALES_ASSET
from clientml_de.dag_support import dag_params, default_args


@dag(
    dag_id="process_data",
    schedule=(CLIENTS_ASSET & SALES_ASSET),
    catchup=False,
    tags=["clientml", "de"],
    params=dag_params(),
    default_args=default_args(),
    doc_md=__doc__,
)
def process_data() -> None:
    @task(outlets=[FEATURE_STORE_ASSET])
    def build_feature_store(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from clientml_de import tasks  # the work's heavy imports, when the task runs (not at parse time)

        assert params is not None
        return tasks.build_features(params["warehouse_url"], params["dataset_config"])

    build_feature_store()


process_data()
