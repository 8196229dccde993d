"""A training that gates in a process of its own, for the race test of the champion gate (test_tracking.py).

Started with the ``spawn`` method (MLflow's database connections, LightGBM's threads and pytest's state are
not safe to fork). Each process trains on the same frame, publishes its bundle into the shared models
directory, then gates through a tracker that, right after reading the champion, waits (up to
``READ_WAIT_S``) for the other process to have read it too: without serialisation both would read the same
champion (none) and both would promote; with it, the second reads only once the first has decided.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pandas as pd
from clientml_mle.estimators import default_estimator
from clientml_mle.schema import FeatureSpec
from clientml_mle.tracking import MlflowTracker
from clientml_mle.train import evaluate_model, fit, publish_bundle, split_rows, track_and_gate
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

READ_WAIT_S = 5.0


def uninformative(specs: list[FeatureSpec]) -> Pipeline:
    """A model that predicts the base rate for everyone (ROC-AUC 0.5)."""
    numeric = [s.name for s in specs if s.type != "category"]
    encoder = ColumnTransformer([("numeric", "passthrough", numeric)])
    return Pipeline([("encoder", encoder), ("classifier", DummyClassifier(strategy="prior"))])


def strong(specs: list[FeatureSpec]) -> Pipeline:
    return default_estimator(specs, n_jobs=1)


class RacingTracker(MlflowTracker):
    """A tracker whose champion read waits for the other racer's (a barrier with a timeout)."""

    def __init__(self, barrier: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier

    def champion_version(self) -> Any | None:
        version = super().champion_version()
        # Broken (timed out): the other racer is not reading now, it waits for the lock.
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=READ_WAIT_S)
        return version


def race(
    kind: str, frame: pd.DataFrame, models_dir: Path, tracker: dict[str, Any], start: Any, read: Any, out: Any
) -> None:
    """Train ``kind`` ("weak" or "strong"), wait at ``start`` for the other racer, then gate; put the result."""
    split = split_rows(frame, seed=0)
    fitted = fit(strong if kind == "strong" else uninformative, split, seed=0)
    evaluation = evaluate_model(fitted, split, n_boot=100)
    bundle_dir = publish_bundle(fitted, evaluation, models_dir)
    start.wait(timeout=120)
    record = track_and_gate(
        RacingTracker(read, **tracker), split=split, fitted=fitted, evaluation=evaluation, bundle_dir=bundle_dir
    )
    out.put({"kind": kind, "bundle": bundle_dir.name, "version": record.registered_version, **record.to_dict()})
