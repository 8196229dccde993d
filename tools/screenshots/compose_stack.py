"""The system as docker-compose runs it, brought up with the compose test's harness
(:class:`clientml_testkit.compose.Stack`): ``up``, then hands-off until the loads, ``process_data``, the first
champion, the API and the first drift report are there; ``down --volumes`` afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from clientml_testkit.compose import Stack, stack_settings, wait_for

from screenshots.system import System

PROJECT = "clientml-screenshots"
UP_TIMEOUT_S = 900.0


def _succeeded(stack: Stack, dag_id: str) -> dict[str, Any] | None:
    runs = stack.dag_runs(dag_id)
    if runs and runs[0]["state"] == "failed":
        raise RuntimeError(f"{dag_id} run {runs[0]['dag_run_id']} failed:\n{stack.logs('airflow-scheduler')}")
    return runs[0] if runs and runs[0]["state"] == "success" else None


def _unlabeled_client(stack: Stack) -> str:
    query = "SELECT client_id FROM feature_store WHERE label IS NULL ORDER BY client_id LIMIT 1"
    return stack.exec("postgres", "psql", "-U", "warehouse", "-d", "warehouse", "-tAc", query).strip()


@contextlib.contextmanager
def compose_system(work: Path, clients: int, docker: dict[str, str]) -> Iterator[System]:
    """``docker compose up`` from the repository's compose file; yields once the first loop has run."""
    stack = Stack.create(docker, work / ".env", stack_settings(work, clients))
    stack.project = PROJECT
    try:
        stack.compose("build", timeout_s=1800)
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "600", timeout_s=UP_TIMEOUT_S)
        process = wait_for("process_data succeeded", lambda: _succeeded(stack, "process_data"), UP_TIMEOUT_S)
        wait_for("monitor_drift succeeded", lambda: _succeeded(stack, "monitor_drift"), UP_TIMEOUT_S, poll_s=5)
        api = stack.url("API_PORT", "")
        wait_for("the API ready", lambda: httpx.get(f"{api}/health/ready", timeout=10).status_code == 200, 300)
        reports = sorted(Path(stack.settings["CLIENTML_REPORTS_DIR"]).glob("*.html"))
        yield System(
            airflow=stack.url("AIRFLOW_PORT", ""),
            airflow_password=stack.settings["AIRFLOW_ADMIN_PASSWORD"],
            mlflow=stack.url("MLFLOW_PORT", ""),
            api=api,
            models_dir=Path(stack.settings["CLIENTML_MODELS_DIR"]),
            drift_report=reports[-1],
            process_data_run=str(process["dag_run_id"]),
            client_id=_unlabeled_client(stack),
        )
    finally:
        stack.compose("down", "--volumes", "--timeout", "20", check=False)
