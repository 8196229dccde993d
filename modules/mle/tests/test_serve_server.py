"""The API served for real: ``clientml serve`` (``run_server``: uvicorn, 2 worker processes) on 127.0.0.1,
over HTTP. The API key and the warehouse are given as options, so they reach the workers only through
the ``ServeConfig`` the server hands them; so does the pointer's polling period, in the test of a server
started on an empty models directory that then serves each new champion without a restart."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from clientml_testkit.servers import free_port, serving
from serve_fixtures import ServeWorld, publish
from serve_metrics_text import delta, expected_buckets, score_counts, unknown_counts

API_KEY = "server-test-key"
KEY_VARIABLE = "SERVE_TEST_API_KEY"
WORKERS = 2
STARTUP_TIMEOUT_S = 90.0
WORKER_READY = "ready: fast path verified"  # each worker logs it once its bundle is loaded and verified
# A real server with two worker processes: its start alone takes several seconds.
pytestmark = pytest.mark.slow


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without the serving variables a test sets through options, plus ``variables``."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **variables}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "CLIENTML_API_KEY", "CLIENTML_WAREHOUSE_URL"):
        env.pop(name, None)
    return env


def serve_command(models_dir: Path, port: int, *options: str) -> list[str]:
    """``clientml serve`` of ``models_dir`` on ``port`` with WORKERS workers."""
    serve = ["serve", "--models-dir", str(models_dir), "--port", str(port), "--workers", str(WORKERS)]
    return [str(Path(sys.executable).with_name("clientml")), *serve, *options]


@pytest.fixture(scope="module")
def server(serve_world: ServeWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The server on a free port, every worker ready; its output goes to the log file."""
    port = free_port()
    log_file = tmp_path_factory.mktemp("server") / "server.log"
    env = clean_environment(**{KEY_VARIABLE: API_KEY})
    options = ["--warehouse", serve_world.warehouse_url, "--api-key-env", KEY_VARIABLE]
    args = serve_command(serve_world.models_dir, port, *options)
    ready = (WORKER_READY, WORKERS)
    with serving(
        args, port=port, ready_path="/health/ready", ready_log=ready, log=log_file, env=env, timeout_s=STARTUP_TIMEOUT_S
    ):
        yield f"http://127.0.0.1:{port}", log_file


def test_predict_over_http(server: tuple[str, Path], serve_world: ServeWorld) -> None:
    base, _ = server
    records = serve_world.records(50)
    headers = {"X-API-Key": API_KEY, "X-Request-ID": "http-test-1"}
    with httpx.Client(base_url=base, timeout=10) as client:
        response = client.post("/v1/predict", json={"records": records}, headers=headers)
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "http-test-1"
        got = np.array([p["probability"] for p in response.json()["predictions"]])
        assert np.max(np.abs(got - serve_world.reference(records))) <= 1e-9

        assert client.post("/v1/predict", json={"records": records}).status_code == 401
        assert client.get("/health/live").status_code == 200
        bad = client.post("/v1/predict", content=b'{"records": [{"age_years": "x"}]}', headers=headers)
        assert bad.status_code == 422
        assert "records.0.age_years" in {e["field"] for e in bad.json()["detail"]}

        ids = serve_world.store["client_id"].tolist()[:3]
        by_id = client.post("/v1/predict/clients", json={"client_ids": [*ids, "nobody"]}, headers=headers)
        assert by_id.status_code == 200
        assert by_id.json()["not_found"] == ["nobody"]
        assert len(by_id.json()["predictions"]) == 3


def _counter(text: str, route: str, status: str) -> float:
    pattern = rf'clientml_http_requests_total\{{method="POST",route="{re.escape(route)}",status="{status}"\}} (\S+)'
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_sum_all_workers(server: tuple[str, Path], serve_world: ServeWorld) -> None:
    base, _ = server
    headers = {"X-API-Key": API_KEY}
    version = serve_world.bundle.manifest.version
    feature = next(f.name for f in serve_world.bundle.manifest.features if f.type == "category")
    record = serve_world.records(1)
    unseen = [{**record[0], feature: "never-seen-in-training"}]
    before_text = httpx.get(f"{base}/metrics", headers=headers).text
    before = _counter(before_text, "/v1/predict", "200")
    served = []
    for i in range(30):  # a new connection per request, so both workers serve some
        response = httpx.post(f"{base}/v1/predict", json={"records": unseen if i < 4 else record}, headers=headers)
        assert response.status_code == 200
        served.append(response.json()["predictions"][0]["probability"])
    text = httpx.get(f"{base}/metrics", headers=headers).text
    assert _counter(text, "/v1/predict", "200") - before == 30
    assert "clientml_predictions_total" in text
    assert "clientml_http_request_duration_seconds_bucket" in text
    scores = delta(score_counts(text, version), score_counts(before_text, version))
    assert scores.pop("count") == 30 and scores.pop("sum") == pytest.approx(sum(served))
    assert scores == expected_buckets(served)
    assert delta(unknown_counts(text), unknown_counts(before_text))[feature] == 4


def test_json_access_log(server: tuple[str, Path], serve_world: ServeWorld) -> None:
    base, log_file = server
    headers = {"X-API-Key": API_KEY, "X-Request-ID": "log-line-check"}
    httpx.post(f"{base}/v1/predict", json={"records": serve_world.records(2)}, headers=headers)
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in log_file.read_bytes().splitlines() if b"log-line-check" in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == 1
    entry = orjson.loads(lines[0])
    assert entry["route"] == "/v1/predict"
    assert entry["status"] == 200
    assert entry["n_records"] == 2
    assert entry["latency_ms"] > 0


def test_every_worker_has_the_configured_key_and_warehouse(server: tuple[str, Path], serve_world: ServeWorld) -> None:
    """Both workers started, and each answers with the key and the feature store given as options."""
    base, log_file = server
    started = set(re.findall(rb"Started server process \[(\d+)\]", log_file.read_bytes()))
    assert len(started) == WORKERS
    ids = serve_world.store["client_id"].tolist()[:2]
    for _ in range(12):  # a new connection per request, so both workers answer some
        with httpx.Client(base_url=base, timeout=10) as fresh:
            assert fresh.get("/v1/model", headers={"X-API-Key": "wrong"}).status_code == 403
            response = fresh.post("/v1/predict/clients", json={"client_ids": ids}, headers={"X-API-Key": API_KEY})
            assert response.status_code == 200, response.text
            assert [p["client_id"] for p in response.json()["predictions"]] == ids


def models_of_every_worker(base: str, version: str) -> dict[int, dict[str, object]]:
    """``/v1/model`` of each worker (by pid) once every one of them serves ``version``."""
    seen: dict[int, dict[str, object]] = {}
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while len(seen) < WORKERS or any(body["version"] != version for body in seen.values()):
        assert time.monotonic() < deadline, f"not every worker serves {version}: {seen}"
        response = httpx.get(f"{base}/v1/model", timeout=10)  # a new connection: either worker may answer
        if response.status_code == 200:
            body = response.json()
            seen[body["process"]["pid"]] = body
        else:
            time.sleep(0.1)
    return seen


def test_a_new_champion_is_served_without_a_restart(tmp_path: Path, bundle_versions: list[Path]) -> None:
    """Started on an empty models directory, each worker turns ready on the first champion and swaps in
    the next one in the same process; SIGTERM then ends the server in seconds."""
    models = tmp_path / "models"
    models.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_environment(CLIENTML_RELOAD_POLL_S="0.2")
    log_file = tmp_path / "server.log"
    command = serve_command(models, port)
    with serving(
        command, port=port, ready_path="/health/live", log=log_file, env=env, timeout_s=STARTUP_TIMEOUT_S
    ) as process:
        waiting = httpx.get(f"{base}/health/ready", timeout=10)
        assert waiting.status_code == 503
        assert waiting.json()["reason"].startswith(f"waiting for a champion bundle in {models.resolve()}")

        before = models_of_every_worker(base, publish(models, bundle_versions[0]))
        after = models_of_every_worker(base, publish(models, bundle_versions[1]))
        assert after.keys() == before.keys()  # the same worker processes
        for pid, body in after.items():
            assert body["process"] == before[pid]["process"]
            assert str(body["loaded_at"]) > str(before[pid]["loaded_at"])
        assert log_file.read_text().count("model swapped without a restart") == WORKERS

        os.killpg(process.pid, signal.SIGTERM)
        stopping = time.monotonic()
        process.wait(timeout=30)
        assert time.monotonic() - stopping < 10
