"""Reading the Prometheus text exposition of ``/metrics`` in the serving tests: samples by name and
labels, the score histogram of a model version, the unknown-category counter, what a histogram of given
scores must show."""

from __future__ import annotations

import math

import numpy as np
from clientml_mle.serve.metrics import SCORE_BUCKETS
from prometheus_client.parser import text_string_to_metric_families

SCORE = "clientml_prediction_score"
UNKNOWN = "clientml_unknown_categories_total"
BOUNDS = [*SCORE_BUCKETS, math.inf]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition but the creation times: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def score_counts(text: str, version: str) -> dict[str, float]:
    """The score histogram of ``version``: its cumulative buckets by ``le``, ``_count`` and ``_sum``."""
    out = {}
    for (name, labels), value in samples(text).items():
        found = dict(labels)
        if name.startswith(SCORE) and found.get("model_version") == version:
            out[found.get("le", name.removeprefix(SCORE + "_"))] = value
    return out


def unknown_counts(text: str) -> dict[str, float]:
    return {dict(labels)["feature"]: value for (name, labels), value in samples(text).items() if name == UNKNOWN}


def expected_buckets(probabilities: list[float]) -> dict[str, float]:
    """Cumulative bucket counts as Prometheus defines them: le=b counts the values <= b."""
    values = np.array(probabilities)
    return {_le(bound): float((values <= bound).sum()) for bound in BOUNDS}


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(bound)


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}
