"""Prometheus metrics of the API (``GET /metrics``).

- ``clientml_http_requests_total{method, route, status}``: requests;
- ``clientml_http_request_duration_seconds{method, route, status}``: latency histogram;
- ``clientml_predictions_total{label}``: predicted labels (0/1), both prediction routes;
- ``clientml_prediction_batch_records``: records per prediction request (histogram);
- ``clientml_prediction_score{model_version}``: the served P(label = 1) of every scored record, both
  prediction routes (histogram; ``le`` 0.1, 0.2, ..., 1.0, +Inf: ten bins of width 0.1 over [0, 1]);
- ``clientml_unknown_categories_total{feature}``: values of a categorical feature that are not among the
  categories of the model's training rows (the manifest's, which its one-hot encoder was fitted on; null
  is a missing value, not a category), both prediction routes.

``route`` is the route template (``/v1/predict``), or ``unmatched`` for unknown paths, and ``feature`` a
categorical feature of a served bundle (never the value seen), so the label sets stay bounded. With
several worker processes the server exports ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode, which the library reads at import in each worker) and gives the app the same
directory (``ServeConfig.metrics_dir``): any worker's ``/metrics`` then reports the sum over all workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

if TYPE_CHECKING:
    from clientml_mle.serve.schemas import FeatureLike

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # upper bounds; +Inf is added by the library


class BulkHistogram(Histogram):
    """A prometheus-client ``Histogram`` that can also observe a whole array at once (:meth:`observe_array`).

    ``Histogram.observe`` takes one value: a lock and a bucket search each, about 1 µs in one process and
    2.5 µs in multiprocess mode (an mmap write per value), so 9-25 ms for a 10,000-record batch. The
    library has no bulk call, and numpy's histogram cannot be fed to ``observe``; :meth:`observe_array`
    counts the array per bucket with numpy and adds each bucket's count and the sum once (60 µs for
    10,000 values). It writes the same per-bucket values ``observe`` writes (prometheus-client's
    ``_buckets`` and ``_sum``, which ``collect`` and the multiprocess collector read); a test checks that
    the exposition equals that of ``observe`` called value by value.
    """

    _bounds: np.ndarray

    def _metric_init(self) -> None:
        super()._metric_init()
        self._bounds = np.asarray(self._upper_bounds, dtype=np.float64)

    def observe_array(self, values: np.ndarray) -> None:
        """Observe every value of ``values`` (shape ``(n,)``), as ``n`` calls of ``observe`` would."""
        if values.size == 1:  # one record, the common request: observe() costs less than the numpy calls
            self.observe(float(values[0]))
            return
        self._raise_if_not_observable()
        # A value's bucket is the first bound >= it (observe's ``amount <= bound``); NaN sorts after +Inf,
        # into a slot zip() drops: no bucket, as with observe.
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds))
        self._sum.inc(float(values.sum()))
        for bucket, count in zip(self._buckets, counts.tolist(), strict=False):
            if count:
                bucket.inc(count)


REQUESTS = Counter("clientml_http_requests", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "clientml_http_request_duration_seconds",
    "HTTP request latency (first byte in to last byte out)",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter("clientml_predictions", "Predictions served, by predicted label", ["label"])
BATCH_RECORDS = Histogram("clientml_prediction_batch_records", "Records per prediction request", buckets=BATCH_BUCKETS)
SCORES = BulkHistogram(
    "clientml_prediction_score",
    "Served P(label = 1) of every scored record, by model version",
    ["model_version"],
    buckets=SCORE_BUCKETS,
)
UNKNOWN_CATEGORIES = Counter(
    "clientml_unknown_categories",
    "Categorical values not among the model's training categories, by feature",
    ["feature"],
)


def exposition(metrics_dir: Path | None = None) -> tuple[bytes, str]:
    """The metrics text and its content type: this process's, or with ``metrics_dir`` (multiprocess
    mode) the sum over every worker writing there."""
    if metrics_dir is not None:
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry, path=str(metrics_dir))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# The labelled children, looked up once: ``labels()`` takes a lock and builds a key at every call, a few
# microseconds a request on the hot path. (The metrics are created at import, so are their children.)
_PREDICTED = {label: PREDICTIONS.labels(label) for label in ("0", "1")}


@dataclass(frozen=True)
class ModelMetrics:
    """The prediction metrics of one served model, its labelled children looked up once (at install):
    the score histogram of its version, and per categorical feature its training categories (and null)
    with that feature's unknown-category counter."""

    scores: BulkHistogram
    categories: tuple[tuple[str, frozenset[str | None], Counter], ...]

    @classmethod
    def of(cls, version: str, features: Sequence[FeatureLike]) -> ModelMetrics:
        """The metrics of the model ``version`` of these feature specs (the manifest's, in model order)."""
        categories = tuple(
            (f.name, frozenset([None, *(f.categories or ())]), UNKNOWN_CATEGORIES.labels(f.name))
            for f in features
            if f.type == "category"
        )
        return cls(SCORES.labels(version), categories)

    def record(
        self, probabilities: np.ndarray, labels_one: int, categorical: Mapping[str, Sequence[str | None]]
    ) -> None:
        """Count one request's predictions: ``probabilities`` (shape ``(n,)``), ``labels_one`` of them
        label 1, and the request's categorical columns (each of length ``n``, str or None by feature)."""
        total = len(probabilities)
        if labels_one:
            _PREDICTED["1"].inc(labels_one)
        if total - labels_one:
            _PREDICTED["0"].inc(total - labels_one)
        BATCH_RECORDS.observe(total)
        self.scores.observe_array(probabilities)
        for name, known, counter in self.categories:
            column = categorical[name]
            # issuperset scans in C and stops at the first unknown value: the common case costs one pass.
            if not known.issuperset(column):
                counter.inc(total - sum(map(known.__contains__, column)))


def request_metrics(method: str, route: str, status: str) -> tuple[Counter, Histogram]:
    """The request counter and latency histogram of one (method, route, status), looked up once each (the
    label set is bounded: routes are templates, or ``unmatched``)."""
    key = (method, route, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = _REQUEST_CHILDREN[key] = (REQUESTS.labels(*key), LATENCY.labels(*key))
    return children


_REQUEST_CHILDREN: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
