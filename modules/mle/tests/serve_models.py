"""Models and checks shared by the fast-path tests (``test_serve_predictor.py``, ``test_serve_kinds.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from clientml_mle.schema import coerce_frame, records_frame
from clientml_mle.serve.fastpath import VerifiedPredictor, compile_bundle, verify
from lightgbm import LGBMClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class StubBundle:
    """A bundle-like object around any fitted pipeline (what ``clientml_mle.bundle.Bundle`` offers)."""

    model: Pipeline
    features: list[Any]
    threshold: float = 0.5
    manifest: Any = field(init=False)

    def __post_init__(self) -> None:
        self.manifest = SimpleNamespace(name="stub", version="1", threshold=self.threshold, features=self.features)

    def feature_frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        return records_frame(records, self.features)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(coerce_frame(frame, self.features))[:, 1])


def verified(bundle: Any) -> VerifiedPredictor:
    """The bundle's fast path, compiled and verified."""
    return verify(compile_bundle(bundle), bundle)


def check_equal(predictor: VerifiedPredictor, bundle: Any, records: list[dict[str, Any]]) -> None:
    """The predictor's probabilities equal the bundle's own within 1e-9."""
    got = predictor.predict_records(records)
    expected = bundle.predict_proba(bundle.feature_frame(records))
    assert np.max(np.abs(got - expected)) <= 1e-9


def lightgbm() -> LGBMClassifier:
    """A small LightGBM classifier, one thread, deterministic."""
    return LGBMClassifier(n_estimators=40, num_leaves=7, verbose=-1, random_state=0, n_jobs=1)


def scaled_numerics() -> Pipeline:
    """The numeric branch of the ds module's linear models: median imputation with missing-value
    indicators (all-null features kept), then standardisation."""
    impute = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    return Pipeline([("impute", impute), ("scale", StandardScaler())])
