"""The smoke test after a deploy or a rollback: the API at its URL is ready, serves the deployed bundle,
and answers one prediction with it.

During a rolling deployment the old tasks answer until the new ones pass the load balancer's check, so
the test waits (up to ``timeout_s``) until ``/health/ready`` answers 200 and ``/v1/model`` and the
prediction both name the expected version. The record sent is built from ``/v1/model``'s features: null
where the model accepts one, else a value of the feature's type, so it fits any bundle.
"""

from __future__ import annotations

from typing import Any

import httpx
from clientml_deploy.errors import DeployError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

POLL_S = 5.0
_VALUES = {"number": 0.0, "integer": 0, "boolean": False}


class _NotYetError(Exception):
    """The API does not (yet) serve the expected version; the message says what it answered."""


def smoke_test(url: str, api_key: str, version: str, timeout_s: float) -> dict[str, Any]:
    """Wait until ``url`` serves ``version``, then return its prediction for one record.

    Raises DeployError with the last answer when that does not happen within ``timeout_s`` seconds.
    """
    with httpx.Client(base_url=url.rstrip("/"), headers={"X-API-Key": api_key}, timeout=15) as client:
        retrying = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(POLL_S),
            retry=retry_if_exception_type((_NotYetError, httpx.HTTPError)),
            reraise=True,
        )
        try:
            prediction: dict[str, Any] = retrying(_check, client, version)
        except (_NotYetError, httpx.HTTPError) as exc:
            raise DeployError(f"smoke test of {url}: not serving {version} after {timeout_s:.0f} s: {exc}") from None
    print(f"smoke test of {url}: ready, serving {version}, prediction {prediction}", flush=True)
    return prediction


def _check(client: httpx.Client, version: str) -> dict[str, Any]:
    ready = client.get("/health/ready")
    if ready.status_code != 200:
        raise _NotYetError(f"/health/ready answered {ready.status_code}: {ready.text[:300]}")
    model = _json(client.get("/v1/model"))
    if model["version"] != version:
        raise _NotYetError(f"/v1/model serves {model['version']}")
    record = {f["name"]: None if f["nullable"] else _value(f) for f in model["features"]}
    answer = _json(client.post("/v1/predict", json={"records": [record]}))
    [prediction] = answer["predictions"]
    if answer["model"]["version"] != version:
        raise _NotYetError(f"/v1/predict answered with {answer['model']['version']}")
    if not 0.0 <= prediction["probability"] <= 1.0:
        raise DeployError(f"/v1/predict answered a probability of {prediction['probability']}")
    return dict(prediction)


def _value(feature: dict[str, Any]) -> Any:
    if feature["type"] == "category":
        return feature["categories"][0] if feature["categories"] else "unknown"
    return _VALUES[feature["type"]]


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        request = f"{response.request.method} {response.request.url.path}"
        raise _NotYetError(f"{request} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body
