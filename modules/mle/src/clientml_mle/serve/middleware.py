"""One pure-ASGI middleware for every request: request id, body-size guard (from the ``Content-Length``
header; the body dependency also counts streamed bytes), metrics and the access log. The API key is a
dependency of the protected routers (:func:`clientml_mle.serve.deps.require_api_key`).

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request overhead to a few microseconds.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientml_mle.serve.logging import ACCESS_LOGGER
from clientml_mle.serve.metrics import request_metrics

access_log = logging.getLogger(ACCESS_LOGGER)

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class ServingMiddleware:
    """Wraps the FastAPI app (see the module docstring)."""

    def __init__(self, app: ASGIApp, body_limit: Callable[[], int] | None = None) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, REQUEST_ID_HEADER)
        request_id = given.decode() if given is not None and _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            if self.body_limit is not None:
                declared = _header(scope, b"content-length")
                limit = self.body_limit()
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    msg = f"request body too large: {int(declared)} bytes > limit {limit} bytes"
                    detail = [{"field": "body", "loc": ["body"], "type": "body_too_large", "msg": msg}]
                    await _error(send_wrapper, 413, msg, request_id, detail)
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            requests, latency = request_metrics(method, template, str(status))
            requests.inc()
            latency.observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": template,
                    "path": scope["path"],
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 3),
                    "n_records": state.get("n_records"),
                },
            )


async def _error(
    send: Send, status: int, message: str, request_id: str, detail: list[dict[str, Any]] | None = None
) -> None:
    body = orjson.dumps({"error": message, "detail": detail, "request_id": request_id})
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
