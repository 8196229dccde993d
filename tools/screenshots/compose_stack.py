"""The system as docker-compose runs it, brought up with the compose test's harness
(:class:`clientml_testkit.compose.Stack`): ``up``, then hands-off until the loads, ``process_data``, the first
champion, the API and the first drift report are there; ``down --volumes`` afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from clientml_testkit.compose import ROOT, Stack, use_standins, wait_for
from clientml_testkit.servers import free_port

from screenshots.system import System

PROJECT = "clientml-screenshots"
# The UIs are published on loopback only; Airflow on the README's port.
AIRFLOW_PORT = "8082"
UP_TIMEOUT_S = 900.0
PASSWORDS = (
    "POSTGRES_PASSWORD",
    "WAREHOUSE_DB_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_JWT_SECRET",
)


def _settings(work: Path, clients: int) -> dict[str, str]:
    """The stack's .env: .env.example's values with fresh secrets, folders under ``work``, free ports."""
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    folders = {
        name: work / name.removeprefix("CLIENTML_").removesuffix("_DIR").lower()
        for name in ("CLIENTML_SOURCES_DIR", "CLIENTML_MODELS_DIR", "CLIENTML_REPORTS_DIR")
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        **example,
        **{name: secrets.token_hex(12) for name in PASSWORDS},
        **{name: str(folder) for name, folder in folders.items()},
        "CLIENTML_SAMPLE_CLIENTS": str(clients),
        "AIRFLOW_PORT": AIRFLOW_PORT,
        "MLFLOW_PORT": str(free_port()),
        "API_PORT": str(free_port()),
    }


def _succeeded(stack: Stack, dag_id: str) -> dict[str, Any] | None:
    runs = stack.dag_runs(dag_id)
    if runs and runs[0]["state"] == "failed":
        raise RuntimeError(f"{dag_id} run {runs[0]['dag_run_id']} failed:\n{stack.logs('airflow-scheduler')}")
    return runs[0] if runs and runs[0]["state"] == "success" else None


def _unlabeled_client(stack: Stack) -> str:
    query = "SELECT client_id FROM feature_store WHERE label IS NULL ORDER BY client_id LIMIT 1"
    return stack.exec("postgres", "psql", "-U", "warehouse", "-d", "warehouse", "-tAc", query).strip()


@contextlib.contextmanager
def compose_system(work: Path, clients: int, docker: dict[str, str], standins: bool) -> Iterator[System]:
    """``docker compose up`` from the repository's compose file; yields once the first loop has run."""
    if standins:
        use_standins(docker)
    stack = Stack.create(docker, work / ".env", _settings(work, clients))
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
