"""What the tests of the trainer service and of the retraining loop share: a cheap train function that
writes real bundles, and SQL run on a warehouse to change its feature_store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from clientml_de.warehouse import connect
from clientml_mle.estimators import make_encoder
from clientml_mle.schema import FeatureSpec
from clientml_mle.train import train
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline


def execute(url: str, sql: str) -> None:
    """Run ``sql`` on the warehouse (a writer: it waits while a reader holds the DuckDB file)."""
    with connect(url) as warehouse:
        warehouse.con.raw_sql(sql)


def dummy(specs: list[FeatureSpec]) -> Pipeline:
    return Pipeline([("encode", make_encoder(specs)), ("model", DummyClassifier())])


class Trainer:
    """A cheap train function: mle's ``train`` with a dummy model (a real bundle and manifest), counted."""

    def __init__(self, models_dir: Path, error: Exception | None = None) -> None:
        self.models_dir, self.error, self.calls = models_dir, error, 0

    def __call__(self, frame: pd.DataFrame) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return train(dummy, frame, models_dir=self.models_dir, threshold=0.5, n_boot=20).summary()
