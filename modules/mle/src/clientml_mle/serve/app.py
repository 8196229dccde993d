"""The FastAPI app: ``create_app`` (a bundle object or a models directory) and ``create_app_from_env``
(the factory the server's workers call, configured by ``CLIENTML_*`` variables)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clientml_mle.serve.deps import ServeState, request_id
from clientml_mle.serve.middleware import ServingMiddleware
from clientml_mle.serve.predictor import BundleLike
from clientml_mle.serve.routers import health, json_response, metrics, model, predict
from clientml_mle.serve.schemas import InvalidRequestError, RequestSchema, error_entry

log = logging.getLogger(__name__)

# Set by run_server for its workers: the warehouse for /v1/predict/clients ("" means none).
SERVE_WAREHOUSE_ENV = "CLIENTML_SERVE_WAREHOUSE_URL"
DEFAULT_MAX_RECORDS = 10_000


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
    warehouse_url: str | None = None,
    api_key: Any = None,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> FastAPI:
    """The prediction API for a loaded ``bundle``, or for the newest bundle of ``models_dir``.

    A given ``bundle`` is compiled and verified now (an error is raised if the fast path does not match
    it). With ``models_dir`` the bundle is loaded in the background after startup: ``/health/live``
    answers at once and ``/health/ready`` turns 200 once the hashes are checked and the fast path is
    verified (or reports why not). ``api_key`` (str or SecretStr) protects every route but /health/*.
    """
    if (bundle is None) == (models_dir is None):
        raise ValueError("give exactly one of bundle and models_dir")
    state = ServeState(
        max_records=max_records,
        warehouse_url=warehouse_url or None,
        models_dir=Path(models_dir) if models_dir is not None else None,
    )
    if bundle is not None:
        state.install(bundle)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if state.models_dir is not None and state.predictor is None:
            task = asyncio.create_task(asyncio.to_thread(state.load))
        yield
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=5)

    app = FastAPI(
        title="clientml prediction API",
        version="1",
        summary="Scores clients with the verified model bundle",
        lifespan=lifespan,
    )
    app.state.serve = state
    for router in (predict.router, model.router, health.router, metrics.router):
        app.include_router(router)
    _install_error_handlers(app)
    app.add_middleware(ServingMiddleware, api_key=_secret(api_key), body_limit=lambda: state.max_body_bytes)
    _install_openapi(app, state, protected=_secret(api_key) is not None)
    return app


def create_app_from_env() -> FastAPI:
    """The app configured by the environment (``clientml_de.settings``, ``CLIENTML_*``).

    The feature store is ``CLIENTML_SERVE_WAREHOUSE_URL`` when set (``run_server`` sets it; empty means
    none), else ``CLIENTML_WAREHOUSE_URL`` when that variable is set, else none (the settings' default
    warehouse is not assumed to exist).
    """
    from clientml_de.settings import get_settings

    from clientml_mle.serve.logging import configure_logging

    configure_logging(os.environ.get("CLIENTML_LOG_LEVEL", "INFO"))
    settings = get_settings()
    if SERVE_WAREHOUSE_ENV in os.environ:
        warehouse: str | None = os.environ[SERVE_WAREHOUSE_ENV] or None
    else:
        warehouse = settings.warehouse_url if settings.warehouse_url_is_set else None
    return create_app(
        models_dir=settings.models_dir,
        warehouse_url=warehouse,
        api_key=settings.api_key,
        max_records=settings.max_records,
    )


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


def _install_openapi(app: FastAPI, state: ServeState, protected: bool) -> None:
    """Add the request model generated from the feature specs (and the API-key scheme) to OpenAPI."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None and state.predictor is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if state.predictor is not None:
            components.update(RequestSchema(state.predictor.features, state.max_records).components())
        else:
            components["PredictRequest"] = {
                "type": "object",
                "description": "The model is not loaded yet: its feature schema appears here once it is.",
            }
        if protected:
            schemes = schema["components"].setdefault("securitySchemes", {})
            schemes["APIKeyHeader"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            for path, operations in schema.get("paths", {}).items():
                if not path.startswith("/health/"):
                    for operation in operations.values():
                        operation["security"] = [{"APIKeyHeader": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
