"""The framework's ceiling for ``bench_serve.py``: a bare FastAPI endpoint answering a constant, served
exactly as ``clientml serve`` serves the API (uvicorn, the same workers, options and JSON logging).

    python modules/mle/bench/bare_app.py PORT WORKERS

``POST /v1/predict`` ignores its body and answers a fixed single-record prediction (the size of the API's
answer), ``GET /health/ready`` answers 200. No middleware, no dependencies, no validation: what remains
is uvicorn, Starlette's routing and FastAPI's request handling.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from clientml_mle.serve.logging import log_config
from fastapi import FastAPI, Response

# What the API answers to one record (the same size on the wire: only the values are made up).
ANSWER = orjson.dumps(
    {
        "model": {"name": "clientml-classifier", "version": "20261130T000000.000000Z-000000000000"},
        "threshold": 0.25,
        "request_id": "0" * 32,
        "predictions": [{"probability": 0.12345678901234567, "label": 0}],
    }
)

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/v1/predict")
async def predict() -> Response:
    """The constant answer (the body is not read)."""
    return Response(ANSWER, media_type="application/json")


@app.get("/health/ready")
async def ready() -> Response:
    """Always ready: nothing to load."""
    return Response(b'{"status":"ready"}', media_type="application/json")


def main(argv: list[str]) -> None:
    """Serve :data:`app` on 127.0.0.1:PORT with WORKERS processes (what ``run_server`` sets up)."""
    import uvicorn

    port, workers = int(argv[0]), int(argv[1])
    uvicorn.run(
        "bare_app:app",
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_config=log_config("INFO"),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
