"""``GET /metrics``: Prometheus text format (see :mod:`clientml_mle.serve.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clientml_mle.serve.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
