"""``/health/live`` (the process answers) and ``/health/ready`` (the model is loaded and verified)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clientml_mle.serve.deps import StateDep
from clientml_mle.serve.routers import json_response

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="Liveness: the process answers")
async def live() -> Response:
    """200 as long as the process answers."""
    return json_response({"status": "alive"})


@router.get(
    "/ready",
    summary="Readiness: the bundle is loaded, its hashes checked and the fast path verified",
    responses={503: {"description": "Waiting for a bundle, loading, or failed (the reason says why)"}},
)
async def ready(state: StateDep) -> Response:
    """200 with the model and its verification report once ready; 503 with the status and reason before.
    Both show ``refused``: the bundle the pointer names that this worker would not serve, or null."""
    model = state.model
    refused = model.refused.to_dict() if model.refused is not None else None
    if model.served is not None:
        predictor = model.served.predictor
        return json_response(
            {
                "status": "ready",
                "model": {"name": predictor.name, "version": predictor.version},
                "verified": predictor.verified,
                "refused": refused,
            }
        )
    return json_response({"status": model.status, "reason": model.reason, "refused": refused}, status_code=503)
