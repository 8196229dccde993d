"""What the DAG files share: their params, default arguments and the failure callback (the mle and ds
modules' DAGs use it too).

The DAG processor imports this module every time it parses a DAG file, so it must stay light: Airflow's
Task SDK and the standard library only, and no settings are read at parse time (Airflow's best practices:
no expensive top-level code). The work itself (ibis, DuckDB, the settings) is imported by the task
callables when a task runs; an empty param means "from the settings" then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param

# A failed load is retried: the sales load checks client ids against ``clients``, so a retry gives a client
# load that runs at the same time the chance to finish first. The embedded runner sets 0 on its DAG objects.
TASK_RETRIES = 2
# The loads re-read their source files once a day; when a load DAG is first unpaused (a new installation)
# it runs at once instead of waiting for midnight, which is what makes `docker compose up` hands-off.
# New files dropped in place are picked up by the next daily run, or at once by triggering the loads.
LOAD_SCHEDULE = "@daily"
# XCom key under which a failed task keeps the error that failed it (see record_failure).
FAILURE_XCOM_KEY = "error"


def describe_error(error: BaseException) -> str:
    """One line naming the error: ``"<ExceptionType>: <message>"``."""
    return f"{type(error).__name__}: {error}"


def record_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback``: keep the error of the failed task as its XCom :data:`FAILURE_XCOM_KEY`.

    Airflow records only the state of a failed task instance; the XCom puts the message where the
    embedded runner (:func:`clientml_de.pipeline.run_pipeline`) and the Airflow UI can read it. Called
    only once the last retry has failed (Airflow clears a task's XComs when it starts a new try).
    """
    error = context.get("exception")
    if error is not None:
        context["ti"].xcom_push(key=FAILURE_XCOM_KEY, value=describe_error(error))


def default_args() -> dict[str, Any]:
    """The tasks' default arguments: :data:`TASK_RETRIES` retries a minute apart, and :func:`record_failure`."""
    return {
        "retries": TASK_RETRIES,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": record_failure,
    }


def load_schedule() -> CronTriggerTimetable:
    """The load DAGs' timetable: :data:`LOAD_SCHEDULE` (UTC), and a first run as soon as they are unpaused."""
    return CronTriggerTimetable(LOAD_SCHEDULE, timezone="UTC", run_immediately=True)


def setting_param(description: str) -> Param:
    """A text param that defaults to empty, which means "from the Airflow connection or the ``CLIENTML_*``
    settings" when the task runs, so parsing a DAG file reads no settings. Every module's DAGs use it."""
    return Param("", type="string", description=description)


def warehouse_param() -> Param:
    """The ``warehouse_url`` param every DAG has (:func:`setting_param`)."""
    return setting_param("Empty: connection or CLIENTML_* settings")


def models_param() -> Param:
    """The ``models_dir`` param of the monitoring loop's DAGs (:func:`setting_param`)."""
    return setting_param("Models directory; empty: CLIENTML_MODELS_DIR")


def dag_params(source_param: str | None = None) -> dict[str, Param]:
    """The de DAGs' params: the source (``clients_source``/``sales_source``, if given), warehouse and dataset
    config, each a :func:`setting_param` (resolved by :mod:`clientml_de.tasks`)."""
    params: dict[str, Param] = {}
    if source_param is not None:
        params[source_param] = setting_param("Path or URI; empty: CLIENTML_* settings")
    params["warehouse_url"] = warehouse_param()
    params["dataset_config"] = setting_param("YAML path; empty: CLIENTML_* settings")
    return params
