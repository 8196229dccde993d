"""Client ids reach the warehouse as data, never as SQL text, and never cause a 5xx: an id that cannot be
one (empty, a control character, over 256 characters) is a 422 naming ``client_ids.<index>``, any other
string is looked up as itself (``not_found`` when absent). Case ``api-control-char-client-id``."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from clientml_de.settings import get_settings
from clientml_mle.serve.api_models import MAX_CLIENT_ID_CHARS
from fastapi.testclient import TestClient
from serve_cases import CASES, error_fields, serving
from serve_fixtures import ServeWorld

# Strings no client id can be: 422 naming the index.
IMPOSSIBLE = {
    "NUL": "\x00",
    "NUL inside": "C0000001\x00",
    "newline": "C0000001\n",
    "tab": "C1\tC2",
    "escape sequence": "\x1b[2J",
    "DEL": "\x7f",
    "C1 control": "\x85",
    "empty": "",
    "too long": "x" * (MAX_CLIENT_ID_CHARS + 1),
}
# Odd strings that can be ids: looked up as themselves, and absent.
ODD = [
    "C0000001' OR '1'='1",
    "'; DROP TABLE feature_store; --",
    '"client_id"',
    "C000000_",
    "C%",
    "\\",
    "é😀",
    "\u202ertl",
    " C0000001",
    "C0000001 ",
    "x" * MAX_CLIENT_ID_CHARS,
]


@pytest.fixture(scope="module")
def client(serve_world: ServeWorld) -> Iterator[TestClient]:
    with serving(serve_world) as test_client:
        yield test_client


def test_case_api_control_char_client_id(client: TestClient) -> None:
    body = (CASES / "api-control-char-client-id" / "body.json").read_bytes()
    response = client.post("/v1/predict/clients", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["client_ids.0"]
    assert response.json()["detail"][0]["type"] == "client_id_control_character"
    assert "select" not in response.text.lower() and "feature_store" not in response.text
    assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize("value", list(IMPOSSIBLE.values()), ids=list(IMPOSSIBLE))
def test_an_id_that_cannot_exist_is_refused_naming_its_index(
    client: TestClient, serve_world: ServeWorld, value: str
) -> None:
    known = serve_world.store["client_id"].iloc[0]
    response = client.post("/v1/predict/clients", json={"client_ids": [known, value, known]})
    assert response.status_code == 422
    assert error_fields(response) == ["client_ids.1"]
    assert set(response.json()) == {"error", "detail", "request_id"}


def test_odd_ids_are_looked_up_as_themselves(client: TestClient, serve_world: ServeWorld) -> None:
    known = serve_world.store["client_id"].iloc[:2].tolist()
    response = client.post("/v1/predict/clients", json={"client_ids": [known[0], *ODD, known[1]]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["client_id"] for p in body["predictions"]] == known
    assert body["not_found"] == ODD
    # Nothing was executed: the store still answers with every client.
    everyone = serve_world.store["client_id"].tolist()
    assert len(client.post("/v1/predict/clients", json={"client_ids": everyone}).json()["predictions"]) == len(everyone)


def test_a_failing_warehouse_is_503_without_its_message(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(url: str, ids: list[str]) -> None:
        raise RuntimeError('Parser Error: syntax error at or near "x" in SELECT * FROM feature_store WHERE ...')

    monkeypatch.setattr("clientml_mle.features.latest_rows", broken)
    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/v1/predict/clients", json={"client_ids": ["C0000001"]}, headers={"X-Request-ID": "r-9"}
        )
    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"error", "detail", "request_id"} and body["request_id"] == "r-9"
    assert "SELECT" not in response.text and "Parser Error" not in response.text and "Traceback" not in response.text
    assert "r-9" in caplog.text and "Parser Error" in caplog.text  # the details are in the server log


def test_lookups_succeed_while_another_process_reads_the_duckdb_file(
    client: TestClient, serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A notebook or a scoring job holding the warehouse read-only must not make the API answer 503. A
    # read-write open would wait for the holder (up to the lock timeout, short here) and then fail.
    monkeypatch.setenv("CLIENTML_WAREHOUSE_LOCK_TIMEOUT_S", "2")
    get_settings.cache_clear()
    path = serve_world.warehouse_url.removeprefix("duckdb://")
    hold = "import sys, time, duckdb\ncon = duckdb.connect(sys.argv[1], read_only=True)\nprint('holding', flush=True)\ntime.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        response = client.post("/v1/predict/clients", json={"client_ids": ["C0000001", "C0000002"]})
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) + len(response.json()["not_found"]) == 2
    finally:
        holder.kill()
        holder.wait(timeout=10)
