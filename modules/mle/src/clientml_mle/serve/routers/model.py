"""``GET /v1/model``: what the served model is and what it expects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from clientml_mle.serve.api_models import ModelInfo
from clientml_mle.serve.deps import ReadyModelDep, StateDep
from clientml_mle.serve.routers import ERRORS, json_response

router = APIRouter(prefix="/v1", tags=["model"])


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump is not None else value


def _jsonable_time(value: Any) -> Any:
    iso = getattr(value, "isoformat", None)
    return iso() if iso is not None else value


@router.get("/model", summary="The served model", responses={200: {"model": ModelInfo}, **ERRORS})
async def model_info(state: StateDep, model: ReadyModelDep) -> Response:
    """The model's identity, metrics, features, record limit and verified fast path, when it was loaded
    into this process (pid, start time: a swap keeps them), and the bundle refused (``ModelInfo``)."""
    served = model.served
    assert served is not None  # ReadyModelDep answered 503 otherwise
    predictor = served.predictor
    manifest = served.manifest
    created = getattr(manifest, "created_at", None)
    training = getattr(manifest, "training_data", None)
    refused = model.refused
    return json_response(
        {
            "name": predictor.name,
            "version": predictor.version,
            "loaded_at": served.loaded_at.isoformat(),
            "process": {"pid": state.pid, "started_at": state.started_at.isoformat()},
            "refused": refused.to_dict() if refused is not None else None,
            "threshold": predictor.threshold,
            "metrics": _jsonable(getattr(manifest, "metrics", {})),
            "features": [
                {
                    "name": f.name,
                    "type": f.type,
                    "nullable": f.name not in predictor.validator.null_refused,
                    "nulls_in_training": f.nullable,
                    "categories": list(f.categories) if f.categories is not None else None,
                }
                for f in predictor.features
            ],
            "created_at": _jsonable_time(created),
            "training_data": _jsonable(training),
            "predictor": {"kind": predictor.kind, "verified": predictor.verified},
            "max_records": state.max_records,
        }
    )
