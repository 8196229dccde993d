"""Score every unlabeled client with the champion into the ``predictions`` table; updates the ``predictions`` asset.

Scheduled on ``feature_store`` (new features) or ``champion`` (a new champion, from ``train_model``); runnable by
hand. ``wait_for_champion`` waits, up to an hour, for a first champion when there is none yet (a trainer
service trains it; param ``wait_for_champion`` false: no wait, as in the embedded pipeline). With no champion,
``score`` is skipped and nothing is written; ``publish`` then still updates ``predictions`` (saying nothing was
scored), so that ``monitor_drift`` runs and asks for the first training.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from clientml_de.assets import CHAMPION_ASSET, FEATURE_STORE_ASSET, PREDICTIONS_ASSET
from clientml_de.dag_support import default_args, models_param, warehouse_param

CHAMPION_WAIT = timedelta(hours=1)


@dag(
    dag_id="score_clients",
    schedule=(FEATURE_STORE_ASSET | CHAMPION_ASSET),
    catchup=False,
    tags=["clientml", "mle", "loop"],
    params={
        "warehouse_url": warehouse_param(),
        "models_dir": models_param(),
        "wait_for_champion": Param(True, type="boolean", description="Wait for a first champion when none yet"),
    },
    default_args=default_args(),
    doc_md=__doc__,
)
def score_clients() -> None:
    @task.sensor(poke_interval=30, timeout=CHAMPION_WAIT.total_seconds(), mode="reschedule", soft_fail=True)
    def wait_for_champion(params: dict[str, Any] | None = None) -> bool:
        from clientml_mle import loop  # the work's heavy imports, when the task runs (not at parse time)

        assert params is not None
        return not params["wait_for_champion"] or loop.champion_problem(params["models_dir"]) is None

    @task
    def score(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from clientml_mle import loop
        from clientml_mle.pointers import NoModelError

        assert params is not None
        try:
            return loop.score_clients(params["warehouse_url"], params["models_dir"])
        except NoModelError as exc:
            raise AirflowSkipException(f"nothing scored: {exc}") from exc

    @task(outlets=[PREDICTIONS_ASSET], trigger_rule="none_failed")
    def publish(params: dict[str, Any] | None = None, ti: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        from clientml_mle import loop

        assert params is not None
        scored = ti.xcom_pull(task_ids="score") or {
            "rows": 0,
            "model_version": None,
            "skipped": loop.champion_problem(params["models_dir"]) or "no champion when score_clients ran",
        }
        outlet_events[PREDICTIONS_ASSET].extra = scored
        return dict(scored)

    wait_for_champion() >> score() >> publish()


score_clients()
