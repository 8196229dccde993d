"""The API fuzzed from its own OpenAPI document with schemathesis, in process (the ASGI app), with an API
key and a warehouse so that every route does its real work: seeded and bounded (``MAX_EXAMPLES`` cases
per operation and mode, derandomized), no response may be a 5xx, and every 4xx body must have the
documented error shape ``{"error", "detail", "request_id"}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from clientml_mle.serve.app import create_app
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from serve_fixtures import ServeWorld

API_KEY = "fuzz-key"
MAX_EXAMPLES = 50
OPERATIONS = {
    "GET /health/live",
    "GET /health/ready",
    "GET /metrics",
    "GET /v1/model",
    "POST /v1/predict",
    "POST /v1/predict/clients",
}
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def api(serve_world: ServeWorld) -> Any:
    """The schemathesis schema of an app with an API key and the suite's warehouse."""
    app = create_app(serve_world.bundle, warehouse_url=serve_world.warehouse_url, api_key=API_KEY)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"X-API-Key": API_KEY})


def check_response(response: Any) -> None:
    """No 5xx; a 4xx has the documented error body (``detail`` a list of located errors, or null)."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    if status >= 400:
        body = response.json()
        assert set(body) == {"error", "detail", "request_id"}, body
        assert isinstance(body["error"], str) and body["error"]
        assert isinstance(body["request_id"], str) and body["request_id"]
        assert body["detail"] is None or all({"field", "loc", "type", "msg"} <= set(e) for e in body["detail"])
        assert "Traceback" not in response.text and "SELECT" not in response.text


def _fuzz(
    api: Any, mode: GenerationMode, headers: dict[str, str], checked: Callable[[Any], None]
) -> dict[str, set[int]]:
    """Run every operation's cases through ``checked``: operation label -> the statuses it answered."""
    seen: dict[str, set[int]] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        if not mode.is_positive and not (len(operation.body) or len(operation.query)):
            continue  # nothing to make invalid (the key header is given)
        statuses = seen.setdefault(f"{operation.method.upper()} {operation.path}", set())
        strategy = operation.as_strategy(generation_mode=mode, headers=headers)

        _run(strategy, statuses, checked)
    return seen


def _run(strategy: Any, statuses: set[int], checked: Callable[[Any], None]) -> None:
    @FUZZ_SETTINGS
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call()
        statuses.add(response.status_code)
        checked(response)

    run()


def test_fuzzing_valid_requests_finds_no_error(api: Any) -> None:
    seen = _fuzz(api, GenerationMode.POSITIVE, {"X-API-Key": API_KEY}, check_response)
    assert set(seen) == OPERATIONS
    # Valid records and ids are scored (an unknown id is in not_found, still 200).
    assert seen["POST /v1/predict"] <= {200, 413} and seen["POST /v1/predict/clients"] <= {200, 413}


def test_fuzzing_invalid_requests_gets_4xx_with_the_error_body(api: Any) -> None:
    seen = _fuzz(api, GenerationMode.NEGATIVE, {"X-API-Key": API_KEY}, check_response)
    assert set(seen) == {"POST /v1/predict", "POST /v1/predict/clients"}
    assert all(422 in statuses for statuses in seen.values())


def test_fuzzing_without_the_key_is_refused_with_the_error_body(api: Any) -> None:
    def refused(response: Any) -> None:
        check_response(response)
        assert response.status_code in (401, 403) or "/health/" in response.request.url

    assert set(_fuzz(api, GenerationMode.POSITIVE, {}, refused)) == OPERATIONS
