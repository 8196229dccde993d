"""Shared state of the app (the loaded bundle and its fast predictor) and the route dependencies."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from clientml_mle.serve.predictor import BundleLike, FastPredictor
from clientml_mle.serve.schemas import InvalidRequestError, RecordValidator

log = logging.getLogger(__name__)

# Bytes a record may take on average in a request body (beyond that: 413 before parsing).
BYTES_PER_FEATURE = 128
BYTES_PER_RECORD = 64
BODY_SLACK = 1 << 20


@dataclass
class ServeState:
    """What the routes share: settings, then (once loaded and verified) the bundle and predictor."""

    max_records: int
    warehouse_url: str | None = None
    models_dir: Path | None = None
    bundle: BundleLike | None = None
    predictor: FastPredictor | None = None
    # Validates feature-store rows for /v1/predict/clients: nulls accepted in every feature.
    store_validator: RecordValidator | None = None
    status: str = "loading"  # loading | ready | failed
    reason: str | None = None
    loaded_in_s: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def max_body_bytes(self) -> int:
        n_features = len(self.predictor.features) if self.predictor is not None else 100
        return BODY_SLACK + self.max_records * (BYTES_PER_RECORD + BYTES_PER_FEATURE * n_features)

    def install(self, bundle: BundleLike) -> FastPredictor:
        """Compile and verify the bundle's fast path; on success the API becomes ready."""
        started = time.perf_counter()
        predictor = FastPredictor.from_bundle(bundle, self.max_records)
        report = predictor.verify(bundle)
        lenient = [_nullable(f) for f in predictor.features]
        with self._lock:
            self.bundle, self.predictor = bundle, predictor
            self.store_validator = RecordValidator(lenient, self.max_records)
            self.status, self.reason = "ready", None
            self.loaded_in_s = time.perf_counter() - started
        log.info(
            "model %s %s ready: fast path verified on %d records (max |diff| %.3g)",
            predictor.name,
            predictor.version,
            report["records"],
            report["max_abs_diff"],
        )
        return predictor

    def load(self) -> None:
        """Load, verify and install the bundle of ``models_dir``; a failure is kept as the reason."""
        from clientml_mle.bundle import load_bundle

        assert self.models_dir is not None
        try:
            bundle = load_bundle(self.models_dir)
            self.install(bundle)
        except Exception as exc:
            with self._lock:
                self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("the model could not be loaded; the API stays not ready")


@dataclass(frozen=True)
class _NullableFeature:
    name: str
    type: str
    categories: Any
    nullable: bool = True


def _nullable(feature: Any) -> _NullableFeature:
    return _NullableFeature(feature.name, feature.type, feature.categories)


def get_state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def ready_predictor(state: ServeState) -> FastPredictor:
    """The predictor, or a 503 when the model is not (yet) loaded and verified."""
    if state.predictor is None or not state.ready:
        reason = state.reason or "the model is still loading"
        raise InvalidRequestError(503, f"model not ready: {reason}", [])
    return state.predictor


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")
