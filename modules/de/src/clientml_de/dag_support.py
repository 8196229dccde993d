"""What the three DAG files share: their params, default arguments and the failure callback.

The DAG processor imports this module every time it parses a DAG file, so it must stay light: Airflow's
Task SDK, the standard library and :mod:`clientml_de.settings` only. The work itself (ibis, DuckDB, ...)
is imported by the task callables when a task runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import Param

from clientml_de.settings import get_settings

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
    """The tasks' default arguments: ``CLIENTML_TASK_RETRIES`` retries a minute apart, and :func:`record_failure`."""
    return {
        "retries": get_settings().task_retries,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": record_failure,
    }


def dag_params(source_param: str | None = None) -> dict[str, Param]:
    """The DAG params: the source (``clients_source``/``sales_source``, if given), warehouse and dataset config.

    An empty value means "from the Airflow connection or the ``CLIENTML_*`` environment" when the task runs.
    """
    settings = get_settings()
    params: dict[str, Param] = {}
    if source_param is not None:
        default = getattr(settings, source_param) or ""
        params[source_param] = Param(default, type="string", description="Path or URI")
    params["warehouse_url"] = Param("", type="string", description="Empty: connection or environment")
    params["dataset_config"] = Param(str(settings.dataset_config or ""), type="string")
    return params
