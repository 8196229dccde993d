"""Retraining requests (:mod:`clientml_mle.retrain`): the table's bookkeeping on DuckDB and PostgreSQL, the rule,
and one handling as the ``train_model`` DAG does it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import ibis
import pytest
from clientml_de.warehouse import WarehouseError, connect
from clientml_mle.pointers import list_versions
from clientml_mle.retrain import (
    RetrainRequest,
    Source,
    decide,
    handle_requests,
    mark_handled,
    pending_requests,
    request_retraining,
)
from clientml_mle.trainable import TrainingDataError
from loop_support import Trainer


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_requests_are_pending_until_handled(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if engine == "duckdb" else request.getfixturevalue("postgres_url")
    with connect(url) as warehouse:
        assert warehouse.con.list_tables() is not None  # the database exists, without the table
    assert pending_requests(url) == []
    with pytest.raises(WarehouseError, match="has no feature_store table: nothing to retrain on"):
        request_retraining(url, Source.MANUAL, "too early")
    with connect(url) as warehouse:
        warehouse.con.create_table("feature_store", schema=ibis.schema({"client_id": "string"}))
    drift = request_retraining(url, "drift", "PSI 0.31 on spend_total", monitor_run_id="manual__2026-12-01")
    again = request_retraining(url, "drift", "PSI 0.31 on spend_total", monitor_run_id="manual__2026-12-01")
    manual = request_retraining(url, Source.MANUAL, "asked for by hand")
    assert drift.request_id == again.request_id == "monitor-manual__2026-12-01"  # a retried task: one request
    assert manual.request_id.startswith("manual-") and manual.monitor_run_id is None
    pending = pending_requests(url)
    assert [(r.request_id, r.source, r.reason) for r in pending] == [
        (again.request_id, Source.DRIFT, "PSI 0.31 on spend_total"),
        (manual.request_id, Source.MANUAL, "asked for by hand"),
    ]
    assert isinstance(pending[0].requested_at, datetime) and pending[0].handled_at is None

    mark_handled(url, pending[:1], "nothing new to learn: bundle X was trained on this content")
    assert [r.request_id for r in pending_requests(url)] == [manual.request_id]
    with pytest.raises(ValueError, match="'sideways' is not a valid Source"):
        request_retraining(url, "sideways", "?")


def _request(source: Source) -> RetrainRequest:
    return RetrainRequest(f"{source}-1", datetime(2026, 12, 1), source, f"why {source}")


@pytest.mark.parametrize(
    ("sources", "already", "trains", "why"),
    [
        ([Source.DRIFT], None, True, "new feature_store content"),
        (
            [Source.DRIFT, Source.LABELS],
            "bundle V was trained on this content",
            False,
            "nothing new to learn: bundle V",
        ),
        ([Source.DRIFT, Source.MANUAL], "bundle V was trained on this content", True, "manual request: why manual"),
        ([Source.NO_REFERENCE], "bundle V was trained on this content", True, "no_reference request: why no_ref"),
        ([], None, True, "new feature_store content"),
    ],
    ids=["drift-new-content", "drift-trained-content", "manual-forces", "no-reference-forces", "no-request"],
)
def test_the_rule(sources: list[Source], already: str | None, trains: bool, why: str) -> None:
    decided, reason = decide([_request(s) for s in sources], already)
    assert decided is trains and reason.startswith(why)


def test_a_request_for_a_warehouse_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo.duckdb"
    with pytest.raises(WarehouseError, match="does not exist"):
        request_retraining(f"duckdb:///{missing}", Source.MANUAL, "by hand")
    assert not missing.exists()


def test_handle_requests_trains_once_per_content_unless_asked(url: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    trainer = Trainer(models)
    request_retraining(url, Source.DRIFT, "PSI 0.4 on the scores", monitor_run_id="one")
    first = handle_requests(url, models, trainer)
    assert first.trained and first.reason == "new feature_store content" and first.requests == ["monitor-one"]
    assert first.version == list_versions(models)[0] and first.promoted is None  # the stub trains without a gate
    assert pending_requests(url) == []

    request_retraining(url, Source.DRIFT, "PSI 0.4 on the scores", monitor_run_id="two")
    second = handle_requests(url, models, trainer)
    assert not second.trained and trainer.calls == 1
    assert second.outcome == f"nothing new to learn: bundle {first.version} was trained on this content"

    third = handle_requests(url, models, trainer)  # nothing pending: a training asked for by hand
    assert third.trained and third.reason.startswith("manual request") and trainer.calls == 2

    trainer.error = TrainingDataError("feature_store has 3 labeled rows of label 1: too few")
    request_retraining(url, Source.MANUAL, "again")
    fourth = handle_requests(url, models, trainer)  # too few labels: an outcome, not a failure
    assert not fourth.trained and fourth.outcome == "not trained: feature_store has 3 labeled rows of label 1: too few"
    assert pending_requests(url) == []

    trainer.error = RuntimeError("out of disk")
    request_retraining(url, Source.MANUAL, "and again")
    with pytest.raises(RuntimeError, match="out of disk"):
        handle_requests(url, models, trainer)
    assert pending_requests(url) == []  # a failed request is not tried again: its outcome says why
