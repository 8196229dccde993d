"""The app's shared state (the served bundle and its verified predictor) and the route dependencies.

Routes declare what they need as parameters: ``state: StateDep``, ``model: ReadyModelDep`` (the model
serving the request, read once: 503 until a model is verified), ``payload: JsonBody`` (the size-guarded,
orjson-parsed body); the protected routers carry :func:`require_api_key` (``X-API-Key``, FastAPI's
``APIKeyHeader`` scheme).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.requests import ClientDisconnect

from clientml_mle.serve.fastpath import BundleLike, VerifiedPredictor, compile_bundle, verify
from clientml_mle.serve.fastpath.verify import SOURCE_STORED
from clientml_mle.serve.metrics import ModelMetrics
from clientml_mle.serve.schemas import InvalidRequestError, error_entry, invalid

log = logging.getLogger(__name__)

# Bytes a record may take on average in a request body (beyond that: 413 before parsing).
BYTES_PER_FEATURE = 128
BYTES_PER_RECORD = 64
BODY_SLACK = 1 << 20

API_KEY_HEADER_NAME = "X-API-Key"


@dataclass(frozen=True)
class Served:
    """One installed model: its bundle's manifest, its verified predictor, when it began to serve (UTC), and
    its prediction metrics (:class:`~clientml_mle.serve.metrics.ModelMetrics`).

    Not the bundle's model: once verified, the predictor holds all that serving needs (the model itself
    only where a literal stage serves), so the fitted pipeline is freed after verification.
    """

    manifest: Any  # the bundle's Manifest (what /v1/model shows)
    predictor: VerifiedPredictor
    loaded_at: datetime
    metrics: ModelMetrics = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The model's metric children, looked up once here rather than at every request.
        object.__setattr__(self, "metrics", ModelMetrics.of(self.predictor.version, self.predictor.features))


@dataclass(frozen=True)
class Refusal:
    """A bundle the server would not serve: the version the pointer named (None when the pointer itself was
    unreadable) and why (the load, hash or verification error)."""

    version: str | None
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        """``{"version", "reason"}``, as ``/v1/model`` and ``/health/ready`` show it."""
        return {"version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class ModelStatus:
    """What the API serves, or why nothing yet, and the bundle the pointer names if it was refused: one
    frozen object replaced as a whole, so that a request reading it once never sees half of a swap."""

    status: str = "loading"  # waiting | loading | ready | failed
    reason: str | None = None  # why not ready (None once ready)
    served: Served | None = None
    refused: Refusal | None = None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServeState:
    """What the routes share: the configuration, this process's identity, and the :class:`ModelStatus`
    (once loaded and verified: the bundle and predictor; swapped whole when a new champion is installed)."""

    max_records: int
    warehouse_url: str | None = None
    models_dir: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    metrics_dir: Path | None = None
    # Shown by /v1/model: a model swap keeps them, a process restart does not.
    pid: int = field(default_factory=os.getpid)
    started_at: datetime = field(default_factory=_now)
    model: ModelStatus = field(default_factory=ModelStatus)
    # Serialises the writers' read-modify-write of ``model`` (readers just read the attribute once).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        """Whether a verified predictor serves."""
        return self.model.served is not None

    @property
    def manifest(self) -> Any:
        """The served bundle's manifest, once installed (None before)."""
        served = self.model.served
        return served.manifest if served is not None else None

    @property
    def predictor(self) -> VerifiedPredictor | None:
        """The served predictor, once installed."""
        served = self.model.served
        return served.predictor if served is not None else None

    @property
    def max_body_bytes(self) -> int:
        """The largest request body accepted (413 above): a generous size for ``max_records`` records."""
        predictor = self.predictor
        n_features = len(predictor.features) if predictor is not None else 100
        return BODY_SLACK + self.max_records * (BYTES_PER_RECORD + BYTES_PER_FEATURE * n_features)

    def install(self, bundle: BundleLike) -> VerifiedPredictor:
        """Compile and verify the bundle's fast path, then serve it: the API becomes ready.

        Raises UnsupportedModelError or VerificationError (the state is then unchanged).
        """
        predictor = verify(compile_bundle(bundle, self.max_records), bundle)
        self.activate(bundle.manifest, predictor)
        return predictor

    def activate(self, manifest: Any, predictor: VerifiedPredictor) -> None:
        """Serve ``predictor`` (of the bundle of ``manifest``) from now on, in one swap: a request that
        already took the previous predictor finishes with it. Raises TypeError for anything but a
        VerifiedPredictor: compiled candidates, or any other object, never serve."""
        if not isinstance(predictor, VerifiedPredictor):
            kind = type(predictor).__name__
            raise TypeError(f"only a VerifiedPredictor (from fastpath.verify) can serve, not a {kind}")
        served = Served(manifest, predictor, _now())
        with self._lock:
            self.model = ModelStatus("ready", None, served, None)
        report = predictor.verified
        log.info(
            "model %s %s ready: fast path verified on %d records (max |diff| %.3g; %s)",
            predictor.name,
            predictor.version,
            report["records"],
            report["max_abs_diff"],
            "stored in the bundle" if report["source"] == SOURCE_STORED else "compiled from the model",
        )

    def not_ready(self, status: str, reason: str) -> None:
        """Say why nothing serves yet (``waiting``, ``loading``, ``failed``); no effect once a model serves
        (it keeps serving)."""
        with self._lock:
            if self.model.served is None:
                self.model = replace(self.model, status=status, reason=reason)

    def refuse(self, refusal: Refusal | None) -> None:
        """Record the bundle last refused (None: the pointer names nothing refused any more); before the
        first model, the API stays not ready (``failed``) with the refusal as the reason."""
        with self._lock:
            if self.model.served is None and refusal is not None:
                what = f"{refusal.version} refused" if refusal.version else "refused"
                self.model = ModelStatus("failed", f"{what}: {refusal.reason}", None, refusal)
            else:
                self.model = replace(self.model, refused=refusal)


# --- dependencies -----------------------------------------------------------------------------------------


async def get_state(request: Request) -> ServeState:
    """The app's :class:`ServeState` (set by ``create_app``)."""
    state: ServeState = request.app.state.serve
    return state


StateDep = Annotated[ServeState, Depends(get_state)]


async def get_model(state: StateDep) -> ModelStatus:
    """The model serving this request, read once (a swap meanwhile does not change it, and everything the
    route shows comes from this one read); InvalidRequestError 503 while none serves (waiting for a
    bundle, loading, or failed: the reason says which)."""
    model = state.model
    if model.served is None:
        reason = model.reason or "the model is still loading"
        raise InvalidRequestError(503, f"model not ready: {reason}", [])
    return model


ReadyModelDep = Annotated[ModelStatus, Depends(get_model)]


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
    """The request body, refusing (413) anything larger than ``limit`` bytes before reading it all.

    Reads the ASGI messages itself (what ``request.stream()`` does, without an async generator: a few
    microseconds of every request). Raises InvalidRequestError 413, or ClientDisconnect.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
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
