"""A warehouse outage: ``/v1/predict/clients`` answers 503 while the warehouse cannot be queried and
recovers by itself when it is back (every lookup opens its own connection); ``/v1/predict`` is unaffected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clientml_mle.serve.app import create_app
from clientml_testkit.data import load_sources
from clientml_testkit.localpg import LocalPostgres
from clientml_testkit.servers import free_port
from fastapi.testclient import TestClient
from serve_fixtures import ServeWorld

LOOKUP_FAILED = "feature store lookup failed: the warehouse could not be queried (details in the server log)"


def check_outage(client: TestClient, world: ServeWorld, ids: list[str]) -> None:
    """Lookups answer a clear 503; predictions from records, readiness and the model are unaffected."""
    failing = client.post("/v1/predict/clients", json={"client_ids": ids})
    assert failing.status_code == 503
    assert failing.json()["error"] == LOOKUP_FAILED
    records = client.post("/v1/predict", json={"records": world.records_of(ids)})
    assert records.status_code == 200 and len(records.json()["predictions"]) == len(ids)
    assert client.get("/health/ready").status_code == 200


def probabilities(response: Any) -> list[float]:
    assert response.status_code == 200, response.text
    return [p["probability"] for p in response.json()["predictions"]]


def test_a_closed_port_is_a_clear_503_and_records_still_score(
    serve_world: ServeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://user:hunter2@127.0.0.1:{free_port()}/warehouse"  # a port nobody listens on
    ids = serve_world.store["client_id"].tolist()[:3]
    with TestClient(create_app(serve_world.bundle, warehouse_url=url)) as client:
        check_outage(client, serve_world, ids)
        assert "hunter2" not in client.post("/v1/predict/clients", json={"client_ids": ids}).text
    assert "feature store lookup failed" in caplog.text  # the warehouse's own error is in the log


def test_lookups_recover_when_postgres_comes_back(
    serve_world: ServeWorld, source_dir: Path, restartable_postgres: LocalPostgres
) -> None:
    """The test's own PostgreSQL holds the same feature store; it is stopped, then started again."""
    url = restartable_postgres.url
    load_sources(url, source_dir)
    ids = serve_world.store["client_id"].tolist()[:3]
    with TestClient(create_app(serve_world.bundle, warehouse_url=url)) as client:
        before = probabilities(client.post("/v1/predict/clients", json={"client_ids": ids}))
        restartable_postgres.stop()
        check_outage(client, serve_world, ids)
        restartable_postgres.start()
        after = probabilities(client.post("/v1/predict/clients", json={"client_ids": ids}))
    assert after == before == pytest.approx(serve_world.reference(serve_world.records_of(ids)).tolist(), abs=1e-9)
