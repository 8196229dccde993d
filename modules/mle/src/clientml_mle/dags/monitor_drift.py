"""Compare the current ``feature_store`` and the fresh predictions with the champion's reference profile.

Scheduled on ``predictions`` (so the score distribution compared is the one ``score_clients`` just wrote),
runnable by hand. ``monitor`` writes the run's ``drift_report`` rows and HTML report and logs the decision
and its reasons; when the monitor says retrain (drift on a feature the model relies on or on the scores,
new labels, no champion or no reference profile), ``request_retraining`` records the request in
``retrain_requests`` and updates the ``retrain`` asset (``train_model`` listens to it); otherwise it is
skipped and nothing is emitted.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task
from clientml_de.assets import PREDICTIONS_ASSET, RETRAIN_ASSET
from clientml_de.dag_support import default_args, models_param, setting_param, warehouse_param


@dag(
    dag_id="monitor_drift",
    schedule=PREDICTIONS_ASSET,
    catchup=False,
    tags=["clientml", "mle", "loop"],
    params={
        "warehouse_url": warehouse_param(),
        "models_dir": models_param(),
        "report_dir": setting_param("Folder of the HTML reports; empty: CLIENTML_MONITOR_REPORT_DIR"),
    },
    default_args=default_args(),
    doc_md=__doc__,
)
def monitor_drift() -> None:
    @task
    def monitor(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
        from clientml_mle import loop  # the work's heavy imports, when the task runs (not at parse time)

        assert params is not None
        return loop.monitor(params["warehouse_url"], params["models_dir"], params["report_dir"], run_id)

    @task(outlets=[RETRAIN_ASSET])
    def request_retraining(
        decision: dict[str, Any], params: dict[str, Any] | None = None, outlet_events: Any = None
    ) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from clientml_mle import loop

        assert params is not None
        if not decision["retrain"]:
            raise AirflowSkipException(f"no retraining needed: {'; '.join(decision['reasons']) or 'no drift'}")
        request = loop.request_retraining_for(params["warehouse_url"], decision)
        outlet_events[RETRAIN_ASSET].extra = request
        return request

    request_retraining(monitor())  # type: ignore[arg-type]  # Airflow passes the XComArg as its value


monitor_drift()
