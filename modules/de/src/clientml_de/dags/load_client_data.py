"""Load the clients file into the warehouse; updates the ``clients`` asset."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from clientml_de.assets import CLIENTS_ASSET
from clientml_de.dag_support import dag_params, default_args, load_schedule


@dag(
    dag_id="load_client_data",
    schedule=load_schedule(),
    catchup=False,
    tags=["clientml", "de"],
    params=dag_params("clients_source"),
    default_args=default_args(),
    doc_md=__doc__,
)
def load_client_data() -> None:
    @task(outlets=[CLIENTS_ASSET])
    def load(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from clientml_de import tasks  # the work's heavy imports, when the task runs (not at parse time)

        assert params is not None
        return tasks.load_clients(params["clients_source"], params["warehouse_url"], params["dataset_config"])

    load()


load_client_data()
