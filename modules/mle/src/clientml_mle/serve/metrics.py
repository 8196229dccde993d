"""Prometheus metrics of the API (``GET /metrics``).

- ``clientml_http_requests_total{method, route, status}``: requests;
- ``clientml_http_request_duration_seconds{method, route, status}``: latency histogram;
- ``clientml_predictions_total{label}``: predicted labels (0/1), both prediction routes;
- ``clientml_prediction_batch_records``: records per prediction request (histogram).

``route`` is the route template (``/v1/predict``), or ``unmatched`` for unknown paths, so the label set
stays bounded. With several worker processes the server exports ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode, which the library reads at import in each worker) and gives the
app the same directory (``ServeConfig.metrics_dir``): any worker's ``/metrics`` then reports the sum over
all workers.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's variable (set through clientml_de.settings)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000)

REQUESTS = Counter("clientml_http_requests", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "clientml_http_request_duration_seconds",
    "HTTP request latency (first byte in to last byte out)",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter("clientml_predictions", "Predictions served, by predicted label", ["label"])
BATCH_RECORDS = Histogram("clientml_prediction_batch_records", "Records per prediction request", buckets=BATCH_BUCKETS)


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


def record_predictions(labels_one: int, total: int) -> None:
    """Count one request's predictions: ``labels_one`` of label 1 out of ``total`` records."""
    if labels_one:
        _PREDICTED["1"].inc(labels_one)
    if total - labels_one:
        _PREDICTED["0"].inc(total - labels_one)
    BATCH_RECORDS.observe(total)


def request_metrics(method: str, route: str, status: str) -> tuple[Counter, Histogram]:
    """The request counter and latency histogram of one (method, route, status), looked up once each (the
    label set is bounded: routes are templates, or ``unmatched``)."""
    key = (method, route, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = _REQUEST_CHILDREN[key] = (REQUESTS.labels(*key), LATENCY.labels(*key))
    return children


_REQUEST_CHILDREN: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
