"""A new champion served without a restart (in process): the API waits for a first bundle, swaps in each
version the models directory's pointer names, refuses an altered one while the current one keeps serving,
and stops its watching promptly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clientml_mle.bundle import load_bundle
from clientml_mle.pointers import LATEST_FILE
from clientml_mle.serve import reload
from clientml_mle.serve.app import create_app
from clientml_mle.serve.deps import ModelStatus, Refusal, Served, ServeState
from clientml_mle.serve.reload import STOP_TIMEOUT_S
from fastapi.testclient import TestClient
from serve_fixtures import ServeWorld, publish
from serve_models import verified

POLL_S = 0.05
TIMEOUT_S = 60.0  # loading and verifying a bundle takes about a second, more on a busy machine


def wait_for(client: TestClient, path: str, done: Callable[[Any], bool]) -> Any:
    """The first response of ``GET path`` for which ``done(response)`` holds (AssertionError after TIMEOUT_S)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        response = client.get(path)
        if done(response):
            return response
        assert time.monotonic() < deadline, f"{path} still answers {response.status_code} {response.text[:500]}"
        time.sleep(POLL_S)


def serving(client: TestClient, version: str) -> Any:
    """``/v1/model`` once it reports ``version``."""
    return wait_for(client, "/v1/model", lambda r: r.status_code == 200 and r.json()["version"] == version).json()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every bundle directory the watcher loads, in order (a test asks for it before ``client``)."""
    calls: list[Path] = []
    original = reload.read_bundle

    def spy(path: Path) -> Any:
        calls.append(Path(path))
        return original(path)

    monkeypatch.setattr(reload, "read_bundle", spy)
    return calls


@pytest.fixture
def client(models: Path, serve_world: ServeWorld) -> Iterator[TestClient]:
    """The API on an empty models directory, rereading its pointer every POLL_S seconds."""
    app = create_app(models_dir=models, reload_poll_s=POLL_S, warehouse_url=serve_world.warehouse_url)
    with TestClient(app) as test_client:
        yield test_client


def test_waits_for_a_champion_then_swaps_versions_in_the_same_process(
    loads: list[Path], client: TestClient, models: Path, bundle_versions: list[Path], serve_world: ServeWorld
) -> None:
    assert client.get("/health/live").status_code == 200
    waiting = client.get("/health/ready")
    assert waiting.status_code == 503
    assert waiting.json() == {
        "status": "waiting",
        "reason": f"waiting for a champion bundle in {models}: no CHAMPION or LATEST pointer yet",
        "refused": None,
    }
    assert client.post("/v1/predict", json={"records": serve_world.records(1)}).status_code == 503

    first = serving(client, publish(models, bundle_versions[0]))
    assert client.get("/health/ready").json()["model"]["version"] == first["version"]

    second_version = publish(models, bundle_versions[1])
    second = serving(client, second_version)
    assert second["process"] == first["process"]  # same pid, same start: no restart
    assert second["loaded_at"] > first["loaded_at"]
    assert (second["threshold"], second["refused"]) == (0.1, None)
    records = serve_world.records(20)
    body = client.post("/v1/predict", json={"records": records}).json()
    assert body["model"]["version"] == second_version and body["threshold"] == 0.1
    assert [p["label"] for p in body["predictions"]] == [int(p["probability"] >= 0.1) for p in body["predictions"]]
    by_id = client.post("/v1/predict/clients", json={"client_ids": serve_world.store["client_id"].tolist()[:2]})
    assert by_id.json()["model"]["version"] == second_version
    # The request model documented follows the served model too.
    assert client.get("/openapi.json").status_code == 200
    assert [p.name for p in loads] == [first["version"], second_version]


def test_an_altered_bundle_is_refused_once_and_the_old_one_keeps_serving(
    loads: list[Path], client: TestClient, models: Path, bundle_versions: list[Path], serve_world: ServeWorld
) -> None:
    good = serving(client, publish(models, bundle_versions[0]))
    bad_version = publish(models, bundle_versions[2], tamper=True)
    refused = wait_for(client, "/v1/model", lambda r: r.json()["refused"] is not None).json()
    assert refused["version"] == good["version"] and refused["loaded_at"] == good["loaded_at"]
    assert refused["refused"]["version"] == bad_version
    assert "BundleIntegrityError" in refused["refused"]["reason"] and "model.skops" in refused["refused"]["reason"]
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["refused"] == refused["refused"]
    response = client.post("/v1/predict", json={"records": serve_world.records(3)})
    assert response.status_code == 200 and response.json()["model"]["version"] == good["version"]

    time.sleep(20 * POLL_S)  # many polls: the refused version is not loaded again while the pointer stays
    assert [p.name for p in loads] == [good["version"], bad_version]
    # The pointer moves back to the served version: nothing refused stands. Then onward: loaded again.
    publish(models, bundle_versions[0])
    wait_for(client, "/v1/model", lambda r: r.json()["refused"] is None)
    publish(models, bundle_versions[2])
    assert wait_for(client, "/v1/model", lambda r: r.json()["refused"] is not None).json()["version"] == good["version"]
    assert [p.name for p in loads] == [good["version"], bad_version, bad_version]


def test_a_refused_first_bundle_keeps_the_api_not_ready_and_watching(
    client: TestClient, models: Path, bundle_versions: list[Path]
) -> None:
    bad_version = publish(models, bundle_versions[2], tamper=True)
    failed = wait_for(client, "/health/ready", lambda r: r.json()["status"] == "failed")
    assert failed.status_code == 503
    body = failed.json()
    assert body["reason"].startswith(f"{bad_version} refused: BundleIntegrityError")
    assert body["refused"]["version"] == bad_version
    assert client.get("/v1/model").status_code == 503
    serving(client, publish(models, bundle_versions[1]))
    assert client.get("/health/ready").json()["refused"] is None


def test_latest_is_served_until_a_champion_exists(
    client: TestClient, models: Path, bundle_versions: list[Path]
) -> None:
    serving(client, publish(models, bundle_versions[0], LATEST_FILE))
    champion = publish(models, bundle_versions[1])
    serving(client, champion)
    publish(models, bundle_versions[2], LATEST_FILE)  # a newer bundle the gate did not promote
    time.sleep(20 * POLL_S)
    assert client.get("/v1/model").json()["version"] == champion


def test_a_pointer_naming_no_bundle_is_refused(client: TestClient, models: Path, bundle_versions: list[Path]) -> None:
    version = publish(models, bundle_versions[0])
    serving(client, version)
    (models / "CHAMPION").write_text("20990101T000000.000000Z-0123456789ab\n")
    refused = wait_for(client, "/health/ready", lambda r: r.json()["refused"] is not None).json()["refused"]
    assert refused == {
        "version": "20990101T000000.000000Z-0123456789ab",
        "reason": f"CHAMPION names 20990101T000000.000000Z-0123456789ab, which is not a bundle in {models}",
    }
    (models / "CHAMPION").write_text("not a version\n")
    refused = wait_for(client, "/health/ready", lambda r: r.json()["refused"]["version"] is None).json()["refused"]
    assert "is not a bundle version" in refused["reason"]
    assert client.get("/v1/model").json()["version"] == version


def test_shutdown_does_not_wait_for_a_load_in_progress(
    models: Path, bundle_versions: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow_load(path: Path, max_records: int) -> Any:
        started.set()
        release.wait(TIMEOUT_S)
        raise RuntimeError("released at the end of the test")

    monkeypatch.setattr(reload, "load_predictor", slow_load)
    publish(models, bundle_versions[0])
    try:
        with TestClient(create_app(models_dir=models, reload_poll_s=POLL_S)) as client:
            assert started.wait(TIMEOUT_S)
            assert client.get("/health/ready").json()["status"] == "loading"
            begin = time.monotonic()
        assert time.monotonic() - begin < STOP_TIMEOUT_S + 1.5
    finally:
        release.set()  # the abandoned load ends


def test_an_idle_watcher_stops_at_once(models: Path) -> None:
    before = set(threading.enumerate())
    app = create_app(models_dir=models, reload_poll_s=30.0)
    with TestClient(app) as client:
        # The state starts as "loading" until the watcher's first look, which may come after this request.
        wait_for(client, "/health/ready", lambda r: r.json()["status"] == "waiting")
        threads = [t for t in set(threading.enumerate()) - before if t.name == "clientml-model-watcher"]
        assert len(threads) == 1
        begin = time.monotonic()
    assert time.monotonic() - begin < 1.0
    assert not threads[0].is_alive()


class SwappingState(ServeState):
    """A state whose ``model`` changes after its first read (``first`` says which of two comes first; the
    test resets ``reads`` before each request): a route that reads it again within a request gets the
    other model, as it would if a swap landed between its two reads."""

    models: tuple[ModelStatus, ModelStatus]
    first: int = 0
    reads: int = 0

    def __getattribute__(self, name: str) -> Any:
        if name != "model":
            return object.__getattribute__(self, name)
        self.reads += 1
        return self.models[self.first if self.reads == 1 else 1 - self.first]


def test_every_route_reads_the_served_model_once_per_request(
    serve_world: ServeWorld, bundle_versions: list[Path]
) -> None:
    bundles = [load_bundle(path) for path in bundle_versions[1:]]  # thresholds 0.1 and 0.9
    app = create_app(bundles[0])
    state = SwappingState(max_records=100)
    state.models = (
        ModelStatus("ready", None, Served(bundles[0].manifest, verified(bundles[0]), datetime.now(UTC)), None),
        ModelStatus(
            "ready", None, Served(bundles[1].manifest, verified(bundles[1]), datetime.now(UTC)), Refusal("v", "r")
        ),
    )
    app.state.serve = state
    refused = [None, {"version": "v", "reason": "r"}]
    records = serve_world.records(50)

    def request(first: int, method: str, path: str, **kwargs: Any) -> Any:
        state.first, state.reads = first, 0
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    with TestClient(app) as client:
        for first, bundle in enumerate(bundles):
            body = request(first, "post", "/v1/predict", json={"records": records})
            assert (body["model"]["version"], body["threshold"]) == (bundle.version, bundle.threshold)
            labels = [p["label"] for p in body["predictions"]]
            assert labels == [int(p["probability"] >= bundle.threshold) for p in body["predictions"]]
            info = request(first, "get", "/v1/model")
            assert (info["version"], info["threshold"], info["refused"]) == (
                bundle.version,
                bundle.threshold,
                refused[first],
            )
            ready = request(first, "get", "/health/ready")
            assert (ready["model"]["version"], ready["refused"]) == (bundle.version, refused[first])
