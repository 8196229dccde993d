"""What every part of the fast path shares: the bundle it serves, its two errors, the probe constants."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clientml_mle.serve.schemas import FeatureLike, RecordValidator

if TYPE_CHECKING:  # the API imports this module without pandas (a stored fast path needs none)
    import pandas as pd

# A category no model has seen: probes the encoders' handling of unseen values.
UNSEEN_CATEGORY = "\x00clientml-unseen-category"
# The largest |fast - bundle.predict_proba| verification accepts.
VERIFY_TOLERANCE = 1e-9


class UnsupportedModelError(Exception):
    """The bundle's model cannot be served (not a classifier pipeline, or one the API cannot honour)."""


class VerificationError(Exception):
    """Even the literal path disagrees with the bundle's own prediction: the API must not serve it."""


class BundleLike(Protocol):
    """What serving needs of ``clientml_mle.bundle.Bundle``."""

    @property
    def manifest(self) -> Any: ...
    @property
    def model(self) -> Any: ...
    def predict_proba(self, frame: pd.DataFrame) -> Any:  # P(label=1) per row, shape (n,)
        ...


def dense(matrix: Any) -> np.ndarray:
    """A transformer's output (dense, or scipy sparse) as a float64 ndarray of the same shape."""
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What compilation and verification both know of the served model (from the bundle's manifest)."""

    name: str
    version: str
    threshold: float  # label 1 where P(label = 1) >= threshold
    features: tuple[FeatureLike, ...]  # in model order
    validator: RecordValidator  # of records of these features, at most max_records per call
    model_type: str  # e.g. LGBMClassifier, CalibratedClassifierCV(LogisticRegression)

    def spec_fields(self) -> dict[str, Any]:
        """The :class:`ModelSpec` fields alone, by name (to build another kind of ModelSpec from this one)."""
        return {f.name: getattr(self, f.name) for f in fields(ModelSpec)}
