"""The system without Docker: ``clientml pipeline`` runs the DAGs in-process into an Airflow metadata DB, then
Airflow's API server (the UI) reads that DB, ``mlflow server`` the demo's tracking store and ``clientml serve``
serves the champion, each on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clientml_de.pipeline import embedded_airflow_env
from clientml_de.settings import process_environment
from clientml_mle.features import unlabeled_rows
from clientml_testkit.servers import LOOPBACK, free_port, serving

from screenshots.system import AIRFLOW_ADMIN, System

BIN = Path(sys.executable).parent
SEED = "7"
SERVER_TIMEOUT_S = 300.0


def _run(command: list[str], env: dict[str, str], stdout: Path | None = None) -> None:
    print(f"$ {' '.join(command)}", flush=True)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(stdout.open("w")) if stdout is not None else None
        subprocess.run(command, env=env, stdout=out, check=True)


def _pipeline(work: Path, clients: int, env: dict[str, str]) -> dict[str, Any]:
    """Two small generated drops through ``clientml pipeline`` (ETL, then the loop: monitor, train, score), as
    ``make demo`` does: the second one's clients buy half as often, so its drift report shows drift. The second
    run's summary (the first one's is kept beside it)."""
    for drop, shift in (("first", ()), ("shifted", ("--shift", "activity"))):
        data, summary = work / drop, work / f"pipeline-{drop}.json"
        generate = [str(BIN / "clientml"), "generate", "--out", str(data), "--clients", str(clients), "--seed", SEED]
        _run([*generate, *shift], env)
        _run(
            [
                *(str(BIN / "clientml"), "pipeline", "--clients", str(data / "clients.csv")),
                *("--sales", str(data / "sales.csv"), "--warehouse", env["CLIENTML_WAREHOUSE_URL"]),
                *("--models-dir", str(work / "models"), "--airflow-home", str(work / "airflow")),
            ],
            env,
            stdout=summary,
        )
        result: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8"))
        failed = [run["dag_id"] for run in result["dag_runs"] if run["state"] != "success"]
        if failed:
            raise RuntimeError(f"clientml pipeline ({drop} drop): runs did not succeed: {failed}")
    summary.rename(work / "pipeline.json")
    return result


def _airflow_env(work: Path, base: dict[str, str], port: int, password: str) -> dict[str, str]:
    """The embedded runner's Airflow settings, plus what the UI needs: a login (SimpleAuthManager's
    passwords file) and the secret every component shares, on this port."""
    home = (work / "airflow").resolve()
    passwords = work / "airflow-passwords.json"
    passwords.write_text(json.dumps({AIRFLOW_ADMIN: password}), encoding="utf-8")
    return {
        **base,
        **embedded_airflow_env(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{port}/execution/",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


@contextlib.contextmanager
def embedded_system(work: Path, clients: int) -> Iterator[System]:
    """Run the pipeline, start the three servers; yield their URLs; stop them."""
    state = (work / "state").resolve()
    env = {
        **process_environment(),
        "CLIENTML_STATE_DIR": str(state),
        "CLIENTML_WAREHOUSE_URL": f"duckdb:///{state / 'warehouse.duckdb'}",
    }
    summary_file = work / "pipeline.json"
    # A run already in --work is reused (the Makefile clears it): it lets the pages be retaken in a minute.
    summary = (
        json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else _pipeline(work, clients, env)
    )
    airflow_port, mlflow_port, api_port = free_port(), free_port(), free_port()
    password = secrets.token_urlsafe(12)
    logs = work / "logs"
    with contextlib.ExitStack() as stack:
        servers = (
            (
                "airflow api-server",
                [str(BIN / "airflow"), "api-server", "--host", LOOPBACK, "--port", str(airflow_port), "--workers", "1"],
                airflow_port,
                "/api/v2/monitor/health",
                _airflow_env(work, env, airflow_port, password),
            ),
            (
                "mlflow server",
                [
                    *(str(BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(mlflow_port), "--workers", "1"),
                    *("--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}"),
                    *("--artifacts-destination", str(state / "mlartifacts")),
                ],
                mlflow_port,
                "/health",
                env,
            ),
            (
                "clientml serve",
                [
                    *(str(BIN / "clientml"), "serve", "--models-dir", str(work / "models")),
                    *("--warehouse", env["CLIENTML_WAREHOUSE_URL"], "--port", str(api_port)),
                ],
                api_port,
                "/health/ready",
                env,
            ),
        )
        for name, command, port, ready_path, server_env in servers:
            log = logs / f"{name.replace(' ', '-')}.log"
            stack.enter_context(
                serving(
                    command,
                    port=port,
                    ready_path=ready_path,
                    log=log,
                    env=server_env,
                    name=name,
                    timeout_s=SERVER_TIMEOUT_S,
                    ready_streak=3,
                )
            )
        process_data = [run["run_id"] for run in summary["dag_runs"] if run["dag_id"] == "process_data"]
        unlabeled = unlabeled_rows(env["CLIENTML_WAREHOUSE_URL"]).sort_values("client_id")
        yield System(
            airflow=f"http://{LOOPBACK}:{airflow_port}",
            airflow_password=password,
            mlflow=f"http://{LOOPBACK}:{mlflow_port}",
            api=f"http://{LOOPBACK}:{api_port}",
            models_dir=work / "models",
            drift_report=Path(summary["loop"]["drift"][-1]["report_path"]),
            process_data_run=str(process_data[-1]),
            client_id=str(unlabeled.iloc[0]["client_id"]),
        )
