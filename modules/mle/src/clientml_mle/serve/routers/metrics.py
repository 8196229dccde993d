"""``GET /metrics``: Prometheus text format (see :mod:`clientml_mle.serve.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clientml_mle.serve.deps import StateDep
from clientml_mle.serve.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """The Prometheus text exposition (summed over the workers in multiprocess mode)."""
    body, content_type = exposition(state.metrics_dir)
    return Response(body, media_type=content_type)
