"""Load the sales file into the warehouse; updates the ``sales`` asset.

Client ids are checked against ``clients``; retries give a concurrently running client load time to
finish first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from clientml_de import tasks
from clientml_de.assets import SALES_ASSET
from clientml_de.settings import get_settings

_settings = get_settings()


@dag(
    dag_id="load_sales_data",
    schedule=None,
    catchup=False,
    tags=["clientml", "de"],
    params={
        "sales_source": Param(_settings.sales_source or "", type="string", description="Path or URI"),
        "warehouse_url": Param("", type="string", description="Empty: connection or environment"),
        "dataset_config": Param(str(_settings.dataset_config or ""), type="string"),
    },
    default_args={"retries": _settings.task_retries, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def load_sales_data() -> None:
    @task(outlets=[SALES_ASSET])
    def load(params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert params is not None
        return tasks.load_sales(params["sales_source"], params["warehouse_url"], params["dataset_config"])

    load()


load_sales_data()
