"""Train a model when retraining is asked for; updates the ``champion`` asset when the gate promotes it.

Scheduled on ``retrain`` (``monitor_drift``, or ``clientml retrain``), runnable by hand. ``train`` handles the
pending requests of ``retrain_requests``: it trains with the configured trainer (ds by default) and the
champion gate, unless every request is about drift or labels on content a bundle was already trained on
("nothing new to learn"), and logs whether it trained, whether the gate promoted the model, and why.
``announce_champion`` updates ``champion`` (``score_clients`` listens to it) only on a promotion; otherwise it
is skipped.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task
from clientml_de.assets import CHAMPION_ASSET, RETRAIN_ASSET
from clientml_de.dag_support import default_args, models_param, warehouse_param


@dag(
    dag_id="train_model",
    schedule=RETRAIN_ASSET,
    catchup=False,
    tags=["clientml", "ds", "loop"],
    params={
        "warehouse_url": warehouse_param(),
        "models_dir": models_param(),
        "search_trials": Param(None, type=["null", "integer"], description="LightGBM search trials (ds default)"),
        "search_seconds": Param(None, type=["null", "number"], description="Search time box, s (ds default)"),
    },
    default_args=default_args(),
    doc_md=__doc__,
)
def train_model() -> None:
    @task
    def train(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from clientml_ds import tasks  # the work's heavy imports, when the task runs (not at parse time)

        assert params is not None
        return tasks.train_on_requests(
            params["warehouse_url"], params["models_dir"], params["search_trials"], params["search_seconds"]
        )

    @task(outlets=[CHAMPION_ASSET])
    def announce_champion(outcome: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        if not outcome["promoted"]:
            raise AirflowSkipException(f"no new champion: {outcome['outcome']}")
        announced = {"version": outcome["version"], "reason": outcome["decision"]}
        outlet_events[CHAMPION_ASSET].extra = announced
        return announced

    announce_champion(train())  # type: ignore[arg-type]  # Airflow passes the XComArg as its value


train_model()
