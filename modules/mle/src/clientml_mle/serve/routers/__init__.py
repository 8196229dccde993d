"""The API's routers: predict, model, health, metrics."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from clientml_mle.serve.api_models import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing API key (when the server has one)",
        403: "Invalid API key",
        413: "Too many records or too large a body; the message names the limit",
        422: "Invalid request; every error names its field, e.g. records.3.age_years",
        503: "Model not ready, or no feature store for this server",
    }.items()
}


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response serialised with orjson (numpy arrays and scalars allowed)."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status_code, media_type="application/json")
