"""The FastAPI app: ``create_app`` (a bundle object or a models directory; the server's workers call it
through :func:`clientml_mle.serve.config.create_app_from_config`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clientml_mle.serve.api_models import ClientsRequest
from clientml_mle.serve.config import DEFAULT_MAX_RECORDS
from clientml_mle.serve.deps import ServeState, request_id, require_api_key
from clientml_mle.serve.fastpath import BundleLike, VerifiedPredictor
from clientml_mle.serve.middleware import ServingMiddleware
from clientml_mle.serve.reload import ModelWatcher
from clientml_mle.serve.routers import docs, health, json_response, metrics, model, predict
from clientml_mle.serve.schemas import InvalidRequestError, RequestSchema, error_entry

log = logging.getLogger(__name__)


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    text = getter() if getter is not None else str(value)
    return text or None


def create_app(
    bundle: BundleLike | None = None,
    *,
    models_dir: Path | str | None = None,
    reload_poll_s: float = 0.0,
    warehouse_url: str | None = None,
    api_key: Any = None,
    max_records: int = DEFAULT_MAX_RECORDS,
    metrics_dir: Path | None = None,
) -> FastAPI:
    """The prediction API for a loaded ``bundle``, or for the bundle of ``models_dir`` (a bundle's own
    directory, or a models directory: its CHAMPION bundle, else its LATEST).

    A given ``bundle`` is compiled and verified now (UnsupportedModelError or VerificationError is raised
    if the fast path does not match it). With ``models_dir`` the bundle is loaded in the background after
    startup (:class:`~clientml_mle.serve.reload.ModelWatcher`): ``/health/live`` answers at once and
    ``/health/ready`` turns 200 once the hashes are checked and the fast path is verified (or reports why
    not). With ``reload_poll_s`` > 0 a models directory's pointer is reread that often and a new version
    swapped in without a restart; the watching stops with the app. ``api_key`` (str or SecretStr)
    protects every route but /health/*; ``metrics_dir`` is prometheus-client's multiprocess directory
    (None: this process's metrics only). Raises ValueError unless exactly one of ``bundle`` and
    ``models_dir`` is given.
    """
    if (bundle is None) == (models_dir is None):
        raise ValueError("give exactly one of bundle and models_dir")
    key = _secret(api_key)
    state = ServeState(
        max_records=max_records,
        warehouse_url=warehouse_url or None,
        models_dir=Path(models_dir) if models_dir is not None else None,
        api_key=key,
        metrics_dir=metrics_dir,
    )
    watcher = None
    if bundle is not None:
        state.install(bundle)
    else:
        assert state.models_dir is not None
        watcher = ModelWatcher(state, state.models_dir, reload_poll_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                # Joining blocks for up to a couple of seconds: not on the event loop.
                await asyncio.to_thread(watcher.stop)

    app = FastAPI(
        title="clientml prediction API",
        version="1",
        summary="Scores clients with the verified model bundle",
        lifespan=lifespan,
        # Served by the docs router instead, behind the API key like every route but /health/*.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.serve = state
    protected = [Security(require_api_key)] if key is not None else []
    for router in (predict.router, model.router, metrics.router, docs.router):
        app.include_router(router, dependencies=protected)
    app.include_router(health.router)
    _install_error_handlers(app)
    app.add_middleware(ServingMiddleware, body_limit=lambda: state.max_body_bytes)
    _install_openapi(app, state)
    return app


def _error_body(request: Request, message: str, errors: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"error": message, "detail": errors or None, "request_id": request_id(request)}


def _install_error_handlers(app: FastAPI) -> None:
    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidRequestError)
        return json_response(_error_body(request, exc.message, exc.errors), exc.status)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for error in exc.errors():
            loc = [p for p in error.get("loc", ()) if p not in ("body",)]
            if loc and loc[0] == "query":
                loc = loc[1:]
            errors.append(error_entry(loc or ["body"], str(error.get("type")), str(error.get("msg"))))
        if errors and errors[0]["type"] == "json_invalid":
            errors[0]["field"], errors[0]["loc"] = "body", ["body"]
        fields = ", ".join(e["field"] for e in errors[:5])
        return json_response(_error_body(request, f"invalid request ({fields})", errors), 422)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        response = json_response(_error_body(request, str(exc.detail), None), exc.status_code)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return json_response(_error_body(request, "internal error (see the server log)", None), 500)

    app.add_exception_handler(InvalidRequestError, on_invalid)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)


def _install_openapi(app: FastAPI, state: ServeState) -> None:
    """Add the request models the routes parse themselves to OpenAPI: ``PredictRequest`` (generated from
    the feature specs of the model served, rebuilt when another is swapped in) and ``ClientsRequest``."""
    original = app.openapi
    built_for: VerifiedPredictor | None = None

    def openapi() -> dict[str, Any]:
        nonlocal built_for
        predictor = state.predictor
        if app.openapi_schema is not None and predictor is not None and predictor is built_for:
            return app.openapi_schema
        app.openapi_schema = None  # FastAPI's own openapi() would return the document of the previous model
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ClientsRequest"] = ClientsRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        if predictor is not None:
            request = RequestSchema(predictor.features, state.max_records, predictor.validator.null_refused)
            components.update(request.components())
        else:
            components["PredictRequest"] = {
                "type": "object",
                "description": "The model is not loaded yet: its feature schema appears here once it is.",
            }
        app.openapi_schema, built_for = schema, predictor
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
