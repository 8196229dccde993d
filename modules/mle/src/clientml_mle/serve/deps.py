"""The app's shared state (the loaded bundle and its verified predictor) and the route dependencies.

Routes declare what they need as parameters: ``state: StateDep``, ``predictor: PredictorDep`` (503 until
the model is verified), ``payload: JsonBody`` (the size-guarded, orjson-parsed body); the protected
routers carry :func:`require_api_key` (``X-API-Key``, FastAPI's ``APIKeyHeader`` scheme).
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from clientml_mle.serve.fastpath import BundleLike, VerifiedPredictor, compile_bundle, verify
from clientml_mle.serve.schemas import InvalidRequestError, error_entry, invalid

log = logging.getLogger(__name__)

# Bytes a record may take on average in a request body (beyond that: 413 before parsing).
BYTES_PER_FEATURE = 128
BYTES_PER_RECORD = 64
BODY_SLACK = 1 << 20

API_KEY_HEADER_NAME = "X-API-Key"


@dataclass(frozen=True)
class _Served:
    """What one install serves, swapped in at once."""

    bundle: BundleLike
    predictor: VerifiedPredictor


@dataclass
class ServeState:
    """What the routes share: the configuration, then (once loaded and verified) the bundle and predictor."""

    max_records: int
    warehouse_url: str | None = None
    models_dir: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    metrics_dir: Path | None = None
    status: str = "loading"  # loading | ready | failed
    reason: str | None = None
    _served: _Served | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        """Whether a verified predictor serves."""
        return self.status == "ready"

    @property
    def bundle(self) -> BundleLike | None:
        """The served bundle, once installed."""
        return self._served.bundle if self._served is not None else None

    @property
    def predictor(self) -> VerifiedPredictor | None:
        """The served predictor, once installed."""
        return self._served.predictor if self._served is not None else None

    @property
    def max_body_bytes(self) -> int:
        """The largest request body accepted (413 above): a generous size for ``max_records`` records."""
        n_features = len(self.predictor.features) if self.predictor is not None else 100
        return BODY_SLACK + self.max_records * (BYTES_PER_RECORD + BYTES_PER_FEATURE * n_features)

    def install(self, bundle: BundleLike) -> VerifiedPredictor:
        """Compile and verify the bundle's fast path, then serve it: the API becomes ready.

        Raises UnsupportedModelError or VerificationError (the state is then unchanged).
        """
        predictor = verify(compile_bundle(bundle, self.max_records), bundle)
        self.activate(bundle, predictor)
        report = predictor.verified
        log.info(
            "model %s %s ready: fast path verified on %d records (max |diff| %.3g)",
            predictor.name,
            predictor.version,
            report["records"],
            report["max_abs_diff"],
        )
        return predictor

    def activate(self, bundle: BundleLike, predictor: VerifiedPredictor) -> None:
        """Serve ``predictor`` (of ``bundle``). Raises TypeError for anything but a VerifiedPredictor:
        compiled candidates, or any other object, never serve."""
        if not isinstance(predictor, VerifiedPredictor):
            kind = type(predictor).__name__
            raise TypeError(f"only a VerifiedPredictor (from fastpath.verify) can serve, not a {kind}")
        served = _Served(bundle, predictor)
        with self._lock:
            self._served = served
            self.status, self.reason = "ready", None

    def load(self) -> None:
        """Load, verify and install the bundle of ``models_dir``; a failure is kept as the reason."""
        from clientml_mle.bundle import load_bundle

        assert self.models_dir is not None
        try:
            self.install(load_bundle(self.models_dir))
        except Exception as exc:
            with self._lock:
                self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("the model could not be loaded; the API stays not ready")


# --- dependencies -----------------------------------------------------------------------------------------


async def get_state(request: Request) -> ServeState:
    """The app's :class:`ServeState` (set by ``create_app``)."""
    state: ServeState = request.app.state.serve
    return state


StateDep = Annotated[ServeState, Depends(get_state)]


async def get_predictor(state: StateDep) -> VerifiedPredictor:
    """The verified predictor; InvalidRequestError 503 while the model is loading, or failed to."""
    predictor = state.predictor
    if predictor is None or not state.ready:
        reason = state.reason or "the model is still loading"
        raise InvalidRequestError(503, f"model not ready: {reason}", [])
    return predictor


PredictorDep = Annotated[VerifiedPredictor, Depends(get_predictor)]

API_KEY_HEADER = APIKeyHeader(
    name=API_KEY_HEADER_NAME, auto_error=False, description="The server's API key (every route but /health/*)"
)


async def require_api_key(state: StateDep, given: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
    """The router dependency of the protected routes: HTTPException 401 without an ``X-API-Key`` header,
    403 with a wrong one (compared in constant time); nothing when the server has no key."""
    if state.api_key is None:
        return
    if not given:
        raise HTTPException(
            401,
            f"missing API key: send it in the {API_KEY_HEADER_NAME} header",
            headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER_NAME}"'},
        )
    if not hmac.compare_digest(given.encode(), state.api_key.encode()):
        raise HTTPException(403, "invalid API key")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything larger than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> InvalidRequestError:
    msg = f"request body too large: {size} bytes > limit {limit} bytes"
    return InvalidRequestError(413, msg, [error_entry(["body"], "body_too_large", msg)])


def parse_json(body: bytes) -> Any:
    """The body parsed with orjson; InvalidRequestError 422 (``json_invalid``) when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"malformed JSON: {exc}" if body.strip() else "empty body: expected a JSON object"
        raise invalid([error_entry(["body"], "json_invalid", msg)]) from None


async def json_body(request: Request, state: StateDep) -> Any:
    """The request body parsed with orjson (not FastAPI's body model: a 10,000-record batch is validated
    column by column), after the size guard: InvalidRequestError 413 when too large, 422 when not JSON."""
    return parse_json(await read_body(request, state.max_body_bytes))


JsonBody = Annotated[Any, Depends(json_body)]


def request_id(request: Request) -> str:
    """The request's id (``X-Request-ID``, or generated by the middleware)."""
    return str(getattr(request.state, "request_id", "") or "")
