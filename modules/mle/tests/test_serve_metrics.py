"""The served model's Prometheus metrics: the score histogram (by model version) and the unknown-category
counter (by feature), through both prediction routes, in one process and in the multiprocess mode of a
server with several workers (the metrics of two processes summed by the exposition ``/metrics`` serves).

Metrics are process-wide and other tests predict too: every check compares ``/metrics`` before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clientml_mle.serve.app import create_app
from clientml_mle.serve.metrics import SCORE_BUCKETS, BulkHistogram, exposition
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from serve_fixtures import ServeWorld
from serve_metrics_text import delta, expected_buckets, samples, score_counts, unknown_counts


@pytest.fixture(scope="module")
def client(serve_world: ServeWorld) -> Iterator[TestClient]:
    app = create_app(serve_world.bundle, warehouse_url=serve_world.warehouse_url)
    with TestClient(app) as test_client:
        yield test_client


def categorical_features(world: ServeWorld) -> list[str]:
    return [f.name for f in world.bundle.manifest.features if f.type == "category"]


def test_score_histogram_and_unknown_categories_through_both_routes(
    client: TestClient, serve_world: ServeWorld
) -> None:
    version = serve_world.bundle.manifest.version
    moved, *others = categorical_features(serve_world)
    before = client.get("/metrics").text
    assert set(unknown_counts(before)) == {moved, *others}  # every categorical feature, from the install on

    records = serve_world.records(40)
    for record in records[:7]:
        record[moved] = "a-category-never-seen"
    records[7][moved] = None  # a missing value, not an unknown category
    batch = client.post("/v1/predict", json={"records": records})
    single = client.post("/v1/predict", json={"records": [{**records[0], moved: "another-unseen"}]})
    ids = serve_world.store["client_id"].tolist()[:5]
    by_id = client.post("/v1/predict/clients", json={"client_ids": [*ids, "nobody"]})
    refused = client.post("/v1/predict", json={"records": [{**records[1], "no_such_feature": 1}]})
    assert (batch.status_code, single.status_code, by_id.status_code, refused.status_code) == (200, 200, 200, 422)

    served = [p["probability"] for r in (batch, single, by_id) for p in r.json()["predictions"]]
    assert len(served) == 40 + 1 + 5  # the unknown id and the refused request score nothing
    after = client.get("/metrics").text
    change = delta(score_counts(after, version), score_counts(before, version))
    assert change.pop("count") == len(served)
    assert change.pop("sum") == pytest.approx(sum(served))
    assert change == expected_buckets(served)
    assert delta(unknown_counts(after), unknown_counts(before)) == {moved: 8.0, **dict.fromkeys(others, 0.0)}


def test_observe_array_equals_observe_value_by_value() -> None:
    values = np.concatenate(
        [[0.0, 0.1, 0.2, 0.30000000000000004, 1.0, 1.5, -0.2], np.random.default_rng(3).random(500)]
    )
    bulk_registry, one_registry = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram("score", "s", ["v"], buckets=SCORE_BUCKETS, registry=bulk_registry).labels("x")
    one = Histogram("score", "s", ["v"], buckets=SCORE_BUCKETS, registry=one_registry).labels("x")
    bulk.observe_array(values)
    bulk.observe_array(values[:1])  # a single value takes observe() itself
    bulk.observe_array(values[:0])
    for value in [*values.tolist(), values[0]]:
        one.observe(value)
    got, want = samples(generate_latest(bulk_registry).decode()), samples(generate_latest(one_registry).decode())
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == (pytest.approx(value) if key[0] == "score_sum" else value), key


# What one worker process records in multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before import).
WORKER = """
import json, sys
import numpy as np
from types import SimpleNamespace
from clientml_mle.serve.metrics import ModelMetrics

spec = json.loads(sys.argv[1])
features = [SimpleNamespace(name=name, type="category", categories=["a", "b"]) for name in ("f", "g")]
metrics = ModelMetrics.of("v-mp", features)
for probabilities, categorical in spec:
    metrics.record(np.array(probabilities), 0, categorical)
"""


def test_multiprocess_mode_sums_the_workers(tmp_path: Path) -> None:
    # Two "workers", a batch and single records each; the unknown values: "z", "y" (f) and "q" (g).
    workers: list[list[Any]] = [
        [
            [[0.05, 0.15, 0.95, 0.5], {"f": ["a", "z", "z", None], "g": ["b", "a", "a", "b"]}],
            [[0.1], {"f": ["y"], "g": ["a"]}],
        ],
        [[[0.99], {"f": ["a"], "g": ["q"]}], [[0.42, 0.43], {"f": ["b", "b"], "g": [None, "a"]}]],
    ]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for spec in workers:
        subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], env=env, check=True, timeout=120)
    text = exposition(tmp_path)[0].decode()
    served = [p for spec in workers for probabilities, _ in spec for p in probabilities]
    got = score_counts(text, "v-mp")
    assert got.pop("count") == len(served)
    assert got.pop("sum") == pytest.approx(sum(served))
    assert got == expected_buckets(served)
    assert unknown_counts(text) == {"f": 3.0, "g": 1.0}
