"""The whole system in docker-compose, from scratch: build, `up`, hands-off from the source files to a served
champion, the unlabeled clients scored and drift watched in Airflow, a second data drop retrained and swapped in
without a restart, a manual retraining request, three faults, then `down`.

Run by ``make compose-test`` (part of ``make test``). The tests run in file order on one stack (module
fixture); each phase's duration is printed and kept in ``.bench/compose.json`` with the images' sizes and
the stack's memory. Needs a Docker engine, or root to start the private one (tools/docker/engine.sh).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from clientml_testkit.compose import (
    ROOT,
    Phases,
    Stack,
    docker_engine,
    memory_now,
    memory_peaks,
    stack_settings,
    use_standins,
    wait_for,
)
from clientml_testkit.fixtures import IN_CI

pytestmark = pytest.mark.compose

LOADS = ("load_client_data", "load_sales_data")
FIRST_CLIENTS, SECOND_CLIENTS = 2000, 3000
MEMORY_BUDGET_BYTES = 8 * 1024**3
PHASES = Phases()
FIGURES: dict[str, Any] = {"phases_s": PHASES.seconds}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_write_figures)
        with PHASES.phase("engine"):
            env = cleanup.enter_context(docker_engine())
        stack = Stack.create(env, tmp / ".env", stack_settings(tmp, FIRST_CLIENTS))
        cleanup.callback(lambda: stack.compose("down", "--volumes", "--timeout", "20", check=False))
        with PHASES.phase("base images"):
            if IN_CI or env.get("CLIENTML_COMPOSE_STANDINS") == "1":
                use_standins(env)
        with PHASES.phase("build"):
            stack.compose("build", timeout_s=1800)
        with memory_peaks(env) as peaks:
            yield stack
        FIGURES["peak_memory_mib"] = {name: round(mib) for name, mib in sorted(peaks.items()) if stack.project in name}
        with PHASES.phase("down"):
            stack.compose("down", "--volumes", "--timeout", "20")


def _write_figures() -> None:
    out = ROOT / ".bench" / "compose.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2))
    print(f"[compose-test] figures: {json.dumps(FIGURES)}", flush=True)


def _succeeded(stack: Stack, dag_id: str, after: int = 0) -> dict[str, Any] | None:
    """The DAG's run number ``after`` + 1 once it succeeded; AssertionError if it failed."""
    runs = stack.dag_runs(dag_id)
    if len(runs) <= after:
        return None
    run = runs[after]
    assert run["state"] != "failed", f"{dag_id} run {run['dag_run_id']} failed:\n{stack.logs('airflow-scheduler')}"
    return run if run["state"] == "success" else None


def _model(stack: Stack) -> dict[str, Any]:
    response = httpx.get(stack.url("API_PORT", "/v1/model"), timeout=10)
    response.raise_for_status()
    model: dict[str, Any] = response.json()
    return model


def _ready(stack: Stack) -> bool:
    return httpx.get(stack.url("API_PORT", "/health/ready"), timeout=10).status_code == 200


def _predict_client(stack: Stack, client_id: str) -> httpx.Response:
    return httpx.post(stack.url("API_PORT", "/v1/predict/clients"), json={"client_ids": [client_id]}, timeout=30)


def _champion_version(stack: Stack) -> str | None:
    pointer = Path(stack.settings["CLIENTML_MODELS_DIR"]) / "CHAMPION"
    return pointer.read_text().strip() if pointer.is_file() else None


def _sql(stack: Stack, query: str) -> str:
    """One value (or rows, ``|``-separated) from the warehouse database."""
    return stack.exec("postgres", "psql", "-U", "warehouse", "-d", "warehouse", "-tAc", query).strip()


def _pending_requests(stack: Stack) -> int:
    """Retraining requests the trainer has not handled yet (none while no request was ever made)."""
    if _sql(stack, "SELECT to_regclass('retrain_requests') IS NOT NULL") != "t":
        return 0
    return int(_sql(stack, "SELECT count(*) FROM retrain_requests WHERE handled_at IS NULL"))


def _bundles(stack: Stack) -> list[str]:
    models = Path(stack.settings["CLIENTML_MODELS_DIR"])
    return sorted(p.name for p in models.iterdir() if (p / "manifest.json").is_file())


def test_up_runs_the_three_dags_hands_off(stack: Stack) -> None:
    start = time.monotonic()
    with PHASES.phase("up (to every service started)"):
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "600", timeout_s=900)
    assert httpx.get(stack.url("AIRFLOW_PORT", "/api/v2/monitor/health"), timeout=10).status_code == 200
    with PHASES.phase("loads and process_data"):
        runs = {dag: wait_for(f"{dag} succeeded", partial(_succeeded, stack, dag), 600) for dag in LOADS}
        process = wait_for("process_data succeeded", lambda: _succeeded(stack, "process_data"), 600)
    assert all(run["run_type"] == "scheduled" for run in runs.values())  # nobody triggered them
    assert process["run_type"] == "asset_triggered"
    loaded = stack.xcom("load_client_data", runs["load_client_data"]["dag_run_id"], "load")
    count = stack.exec(
        "postgres", "psql", "-U", "warehouse", "-d", "warehouse", "-tAc", "SELECT count(*) FROM feature_store"
    )
    assert int(count) == loaded["rows_loaded"] > 0
    FIGURES["up_to_feature_store_s"] = round(time.monotonic() - start, 1)
    with PHASES.phase("training and serving"):
        wait_for("a champion bundle", lambda: _champion_version(stack), 900, poll_s=5)
        wait_for("the API ready", lambda: _ready(stack), 300)
    FIGURES["up_to_first_prediction_s"] = round(time.monotonic() - start, 1)


def test_the_champion_is_tracked_registered_and_served(stack: Stack) -> None:
    champion = _champion_version(stack)
    assert champion in _bundles(stack)
    name = "clientml-classifier"
    mlflow = stack.url("MLFLOW_PORT", "/api/2.0/mlflow")
    alias = httpx.get(f"{mlflow}/registered-models/alias", params={"name": name, "alias": "champion"}, timeout=10)
    alias.raise_for_status()
    run_id = alias.json()["model_version"]["run_id"]
    run = httpx.get(f"{mlflow}/runs/get", params={"run_id": run_id}, timeout=10).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    assert _model(stack)["version"] == champion


def test_a_prediction_by_client_id_equals_clientml_score(stack: Stack) -> None:
    output = stack.exec("trainer", "clientml", "score", "--out", "/tmp/scores.csv")
    assert json.loads(output)["bundle_version"] == _champion_version(stack)
    rows = list(csv.DictReader(stack.exec("trainer", "cat", "/tmp/scores.csv").splitlines()))
    row = rows[len(rows) // 2]
    response = _predict_client(stack, row["client_id"])
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["probability"] == pytest.approx(float(row["probability"]), abs=1e-9)


def test_the_loop_scores_every_unlabeled_client_and_watches_drift(stack: Stack) -> None:
    with PHASES.phase("score_clients (after the first champion) and monitor_drift"):
        score = wait_for("score_clients succeeded", lambda: _succeeded(stack, "score_clients"), 900, poll_s=5)
        monitor = wait_for("monitor_drift succeeded", lambda: _succeeded(stack, "monitor_drift"), 600, poll_s=5)
    # feature_store started score_clients, which waited for the trainer's first champion; predictions, monitor_drift.
    assert score["run_type"] == monitor["run_type"] == "asset_triggered"
    champion = _champion_version(stack)
    versions = _sql(stack, "SELECT model_version, count(*) FROM predictions GROUP BY model_version")
    unlabeled = _sql(stack, "SELECT count(*) FROM feature_store WHERE label IS NULL")
    assert versions == f"{champion}|{unlabeled}" and int(unlabeled) > 0
    missing = "SELECT count(*) FROM feature_store f LEFT JOIN predictions p USING (client_id) WHERE f.label IS NULL"
    assert _sql(stack, f"{missing} AND p.client_id IS NULL") == "0"  # every unlabeled client, once
    run_id = monitor["dag_run_id"].replace("'", "''")
    assert int(_sql(stack, f"SELECT count(*) FROM drift_report WHERE run_id = '{run_id}'")) > 0
    assert list(Path(stack.settings["CLIENTML_REPORTS_DIR"]).glob("*.html")), "no HTML drift report"


def _drop_new_sources(stack: Stack, tmp: Path) -> None:
    """A new data set, generated, whose labels mean the opposite of the first one's (a concept drift the
    champion cannot follow, so the gate must promote the new model), moved into the sources folder by
    rename (the loads never see a half-written file)."""
    staged = tmp / "second"
    command = [str(Path(sys.executable).with_name("clientml")), "generate", "--out", str(staged)]
    subprocess.run([*command, "--clients", str(SECOND_CLIENTS), "--seed", "8"], check=True, capture_output=True)
    with (staged / "clients.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))
    for row in rows:
        row["label"] = {"0": "1", "1": "0"}.get(row["label"], row["label"])
    with (staged / "clients.flipped.csv").open("w", newline="") as flipped:
        writer = csv.DictWriter(flipped, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    sources = Path(stack.settings["CLIENTML_SOURCES_DIR"])
    for name, staged_file in (("clients.csv", "clients.flipped.csv"), ("sales.csv", "sales.csv")):
        shutil.copy(staged / staged_file, sources / f".{name}.new")
        (sources / f".{name}.new").rename(sources / name)


def test_a_new_drop_retrains_and_survives_a_killed_scheduler(stack: Stack, tmp_path: Path) -> None:
    served, bundles = _model(stack), _bundles(stack)
    _drop_new_sources(stack, tmp_path)
    with PHASES.phase("second drop: loads with the scheduler killed and restarted"):
        run_ids = {dag: stack.trigger(dag) for dag in LOADS}

        def running() -> bool:
            return "running" in stack.task_states("load_sales_data", run_ids["load_sales_data"])

        # Kill while a load runs (or, if it already ended, right away: the restarted scheduler must cope).
        try:
            wait_for("load_sales_data running", running, 60, poll_s=0.5)
            FIGURES["scheduler_killed_while"] = "a load task was running"
        except TimeoutError:
            FIGURES["scheduler_killed_while"] = "no task was running"
        stack.compose("kill", "airflow-scheduler")
        stack.compose("up", "--detach", "--wait", "airflow-scheduler", timeout_s=600)
        for dag in LOADS:
            wait_for(f"{dag} second run", partial(_succeeded, stack, dag, after=1), 900, poll_s=5)
        wait_for("process_data second run", lambda: _succeeded(stack, "process_data", after=1), 600, poll_s=5)
    with PHASES.phase("second training"):
        wait_for("a second bundle", lambda: len(_bundles(stack)) > len(bundles) or None, 900, poll_s=5)
        # The bundle is written before the gate decides: wait for the decision (the old champion's labels no
        # longer hold, so a gate that keeps it is wrong and this times out).
        champion = wait_for(
            "the gate to promote the new bundle",
            lambda: (version := _champion_version(stack)) != served["version"] and version,
            300,
        )
        wait_for("the API on the new champion", lambda: _model(stack)["version"] == champion, 300)
    after = _model(stack)
    # The same server process: a swap, not a restart.
    assert (after["process"]["pid"], after["process"]["started_at"]) == (
        served["process"]["pid"],
        served["process"]["started_at"],
    )
    with PHASES.phase("second drop: scored, monitored, every retrain request handled"):
        wait_for("score_clients second run", lambda: _succeeded(stack, "score_clients", after=1), 600, poll_s=5)
        wait_for("monitor_drift second run", lambda: _succeeded(stack, "monitor_drift", after=1), 600, poll_s=5)
        wait_for("the trainer to handle every retrain request", lambda: _pending_requests(stack) == 0, 300, poll_s=5)


def test_a_manual_retrain_request_is_handled_by_the_trainer(stack: Stack) -> None:
    bundles = _bundles(stack)
    with PHASES.phase("manual retrain request: the trainer trains again"):
        made = json.loads(stack.exec("trainer", "clientml", "retrain", "--request-only", "--reason", "compose test"))
        request_id = made["request"]["request_id"].replace("'", "''")
        query = f"SELECT outcome FROM retrain_requests WHERE request_id = '{request_id}' AND handled_at IS NOT NULL"
        outcome = wait_for("the manual request handled", lambda: _sql(stack, query) or None, 600, poll_s=5)
    # The same content as the last training: a manual request trains anyway, and the gate decides.
    assert outcome.startswith("trained bundle "), outcome
    assert len(_bundles(stack)) == len(bundles) + 1


def test_a_warehouse_outage_fails_lookups_clearly_and_recovers(stack: Stack) -> None:
    row = json.loads(
        stack.exec(
            "postgres",
            "psql",
            "-U",
            "warehouse",
            "-d",
            "warehouse",
            "-tAc",
            "SELECT row_to_json(f) FROM feature_store f ORDER BY client_id LIMIT 1",
        )
    )
    client_id = row["client_id"]
    record = {spec["name"]: row[spec["name"]] for spec in _model(stack)["features"]}
    api_started = stack.container_started_at("api")
    with PHASES.phase("warehouse outage (20 s) and recovery"):
        stack.compose("stop", "postgres")
        try:
            failed = _predict_client(stack, client_id)
            assert failed.status_code == 503, failed.text
            assert "warehouse" in failed.json()["error"]
            by_record = httpx.post(stack.url("API_PORT", "/v1/predict"), json={"records": [record]}, timeout=30)
            assert by_record.status_code == 200, by_record.text
            time.sleep(20)
        finally:
            stack.compose("start", "postgres")
        wait_for("lookups back", lambda: _predict_client(stack, client_id).status_code == 200, 120)
        wait_for("Airflow healthy again", lambda: _airflow_healthy(stack), 300)
    assert stack.container_started_at("api") == api_started


def _airflow_healthy(stack: Stack) -> bool:
    response = httpx.get(stack.url("AIRFLOW_PORT", "/api/v2/monitor/health"), timeout=10)
    health = response.json() if response.status_code == 200 else {}
    return all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))


def test_a_restarted_api_serves_the_same_champion(stack: Stack) -> None:
    champion = _model(stack)["version"]
    with PHASES.phase("API restart to ready"):
        stack.compose("restart", "api")
        wait_for("the API ready again", lambda: _ready(stack), 300)
    assert _model(stack)["version"] == champion


def test_the_stack_fits_its_memory_budget(stack: Stack) -> None:
    config = stack.config()
    limits = {name: int(service.get("mem_limit", 0)) for name, service in config["services"].items()}
    assert all(limits.values()), f"services without a memory limit: {[n for n, v in limits.items() if not v]}"
    FIGURES["memory_limits_mib"] = {name: limit // 2**20 for name, limit in limits.items()}
    FIGURES["memory_limits_total_mib"] = sum(limits.values()) // 2**20
    assert sum(limits.values()) <= MEMORY_BUDGET_BYTES
    time.sleep(30)  # idle: nothing triggered, the trainer and the API watching
    idle = memory_now(stack.env)
    FIGURES["idle_memory_mib"] = {name: round(mib) for name, mib in sorted(idle.items())}
    FIGURES["idle_memory_total_mib"] = round(sum(idle.values()))
    images = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}\t{{.Size}}", "clientml/*"],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    FIGURES["image_sizes"] = images.strip().splitlines()
    print(f"[compose-test] images:\n{images}", flush=True)


def test_the_committed_env_example_is_valid_and_a_missing_secret_is_named(stack: Stack, tmp_path: Path) -> None:
    example = Stack(env=stack.env, env_file=ROOT / ".env.example", project="clientml-config-check")
    assert set(example.config()["services"]) >= {"postgres", "airflow-apiserver", "trainer", "api", "mlflow"}
    without = tmp_path / ".env"
    without.write_text(
        "".join(
            line + "\n" for line in example.env_file.read_text().splitlines() if "WAREHOUSE_DB_PASSWORD" not in line
        )
    )
    result = Stack(env=stack.env, env_file=without, project="clientml-config-check").compose("config", check=False)
    assert result.returncode != 0
    assert "set WAREHOUSE_DB_PASSWORD in .env" in result.stderr
