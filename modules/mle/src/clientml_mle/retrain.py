"""Retraining requests: the ``retrain_requests`` table, and the one rule deciding whether they train.

A request is a row of ``retrain_requests`` (request_id, requested_at, source, reason, monitor_run_id,
handled_at, outcome). ``monitor_drift`` writes one when the monitor says retrain (source ``drift``,
``labels``, or ``no_reference``: no champion, or a champion without a reference profile), ``clientml
retrain`` a ``manual`` one. What trains reads the pending ones (``handled_at`` null): the trainer service
(``clientml train --watch``, :mod:`clientml_mle.watch`) in compose, the ``train_model`` DAG in the embedded
pipeline (:func:`handle_requests`). Either marks them handled: ``handled_at`` and ``outcome`` (trained
which version and the gate's decision, "nothing new to learn", or the training's error) are written into
the request's row, so the table is the history of every request and what became of it.

The rule (:func:`decide`): a ``manual`` or ``no_reference`` request always trains (a user asked; or there is
no model the monitor can watch, which only a training can give); a ``drift`` or ``labels`` request trains
only when no bundle was trained on the content of ``feature_store`` as it is now. Content already trained
on has nothing new to teach: training on it again would make a model the gate already judged, so the
request is marked handled with "nothing new to learn". This is also what keeps the loop from running
forever when a drift persists after retraining.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from clientml_de.contract import FEATURE_STORE
from clientml_de.partitions import replace_partition
from clientml_de.warehouse import WarehouseError, connect

from clientml_mle.bundle import read_manifest
from clientml_mle.features import training_frame
from clientml_mle.pointers import BundleIntegrityError, list_versions
from clientml_mle.train import training_fingerprint
from clientml_mle.trainable import TrainingDataError

log = logging.getLogger(__name__)

RETRAIN_REQUESTS = "retrain_requests"
KEY_COLUMN = "request_id"
SCHEMA = pa.schema(
    [
        (KEY_COLUMN, pa.string()),
        ("requested_at", pa.timestamp("us")),  # UTC, without zone, like the other tables
        ("source", pa.string()),
        ("reason", pa.string()),
        ("monitor_run_id", pa.string()),
        ("handled_at", pa.timestamp("us")),
        ("outcome", pa.string()),
    ]
)
# A training's summary (``TrainResult.summary()``: ``version``, ``tracking.decision``, ...).
TrainFunction = Callable[[pd.DataFrame], Mapping[str, Any]]


class Source(StrEnum):
    """Why a training was asked for."""

    DRIFT = "drift"  # the monitor found drift on a feature the model relies on, or on its scores
    LABELS = "labels"  # labels arrived since the champion was trained
    NO_REFERENCE = "no_reference"  # nothing to monitor: no champion, or a champion without a reference profile
    MANUAL = "manual"  # a user (clientml retrain, or train_model triggered by hand)


# Sources that train even on content a bundle was trained on (module docstring).
FORCING = frozenset({Source.MANUAL, Source.NO_REFERENCE})


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class RetrainRequest:
    """One row of ``retrain_requests``; times in UTC without zone."""

    request_id: str
    requested_at: datetime
    source: Source
    reason: str
    monitor_run_id: str | None = None
    handled_at: datetime | None = None
    outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 text."""
        out = asdict(self)
        for name in ("requested_at", "handled_at"):
            out[name] = out[name].isoformat() + "Z" if out[name] is not None else None
        out["source"] = str(self.source)
        return out


def _write(warehouse_url: str, request: RetrainRequest) -> None:
    row = {**asdict(request), "source": str(request.source)}
    table = pa.Table.from_pylist([row], schema=SCHEMA)
    with connect(warehouse_url) as warehouse:
        replace_partition(warehouse, RETRAIN_REQUESTS, table, key=KEY_COLUMN, value=request.request_id)


def request_retraining(
    warehouse_url: str, source: Source | str, reason: str, *, monitor_run_id: str | None = None
) -> RetrainRequest:
    """Write a pending request and return it. A monitor run's request is ``monitor-<run id>``, so a retried
    task writes the same row again instead of a second one; any other gets a random id.

    Raises:
        ValueError: ``source`` is not one of :class:`Source`.
        clientml_de.warehouse.WarehouseError: the warehouse does not exist, has no ``feature_store``, or
            cannot be written.
    """
    request_id = f"monitor-{monitor_run_id}" if monitor_run_id else f"{source}-{uuid.uuid4().hex[:12]}"
    request = RetrainRequest(request_id, _now(), Source(source), reason, monitor_run_id)
    # A request only means something next to a feature_store to train on; checked read-only first, so that a
    # mistyped DuckDB path is an error instead of a new, empty warehouse holding the request.
    with connect(warehouse_url, read_only=True) as warehouse:
        if not warehouse.has_table(FEATURE_STORE):
            raise WarehouseError(
                f"warehouse {warehouse.redacted_url} has no {FEATURE_STORE} table: nothing to retrain on "
                "(run the data pipeline first)"
            )
    _write(warehouse_url, request)
    log.info("retraining requested (%s): %s [%s]", request.source, reason, request_id)
    return request


def pending_requests(warehouse_url: str) -> list[RetrainRequest]:
    """The requests not handled yet, oldest first; none while the table does not exist.

    Raises what the warehouse raises when it cannot be read.
    """
    with connect(warehouse_url, read_only=True) as warehouse:
        if not warehouse.has_table(RETRAIN_REQUESTS):
            return []
        table = warehouse.table(RETRAIN_REQUESTS)
        rows = table.filter(table.handled_at.isnull()).order_by(["requested_at", KEY_COLUMN]).to_pyarrow().to_pylist()
    return [RetrainRequest(**{**row, "source": Source(row["source"])}) for row in rows]


def mark_handled(warehouse_url: str, requests: Sequence[RetrainRequest], outcome: str) -> None:
    """Record ``outcome`` and the time in each request's row (one atomic replacement per request)."""
    handled_at = _now()
    for request in requests:
        _write(warehouse_url, replace(request, handled_at=handled_at, outcome=outcome))


def trained_version(models_dir: Path, fingerprint: str) -> str | None:
    """The newest bundle of ``models_dir`` whose manifest records content ``fingerprint``, or ``None``.

    A bundle whose manifest cannot be read or verified is skipped, with a warning.
    """
    for version in reversed(list_versions(models_dir)):
        try:
            manifest = read_manifest(models_dir / version)
        except BundleIntegrityError as exc:
            log.warning("skipping bundle %s when looking for trained content: %s", version, exc)
            continue
        if manifest.training_data.fingerprint == fingerprint:
            return version
    return None


def decide(pending: Sequence[RetrainRequest], already: str | None) -> tuple[bool, str]:
    """Whether to train now, and why (module docstring). ``already`` says how the current content was
    handled before (e.g. "bundle V was trained on this content"), ``None`` when it is new content."""
    forcing = [r for r in pending if r.source in FORCING]
    if forcing:
        return True, f"{forcing[0].source} request: {forcing[0].reason}"
    if already is None:
        return True, "new feature_store content"
    return False, f"nothing new to learn: {already}"


def describe_training(summary: Mapping[str, Any]) -> tuple[str, bool | None, str | None]:
    """A training summary in words, whether the gate promoted it (``None``: no gate, tracking off) and why."""
    decision = (summary.get("tracking") or {}).get("decision") or {}
    version = summary.get("version")
    if not decision:
        return f"trained bundle {version} (tracking off: no champion decision)", None, None
    promoted = bool(decision.get("promoted"))
    verdict = "promoted" if promoted else "not promoted"
    return f"trained bundle {version}, {verdict}: {decision.get('reason')}", promoted, decision.get("reason")


@dataclass(frozen=True)
class RetrainOutcome:
    """What :func:`handle_requests` did: whether it trained and why, the requests it handled, and for a
    training the version and the champion gate's decision (``promoted`` ``None``: no gate)."""

    trained: bool
    reason: str
    outcome: str
    requests: list[str]
    version: str | None = None
    promoted: bool | None = None
    decision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def handle_requests(warehouse_url: str, models_dir: Path, train: TrainFunction) -> RetrainOutcome:
    """Handle the pending requests once: train with ``train`` on ``feature_store``'s labeled rows when
    :func:`decide` says so, and mark every one of them handled with the outcome.

    With no pending request (a training asked for by hand, e.g. ``train_model`` triggered in the UI), one
    ``manual`` request is written first, so that the table keeps a trace of every training it caused.

    Labeled rows too few to train on (:class:`~clientml_mle.trainable.TrainingDataError`) are an outcome
    ("not trained: ..."), not an error. Raises what else ``train`` raises (the requests are then marked
    handled with the error: a request that fails is not tried again) and what the warehouse raises.
    """
    pending = pending_requests(warehouse_url) or [
        request_retraining(warehouse_url, Source.MANUAL, "a training asked for without a pending request")
    ]
    ids = [r.request_id for r in pending]
    frame = training_frame(warehouse_url)
    fingerprint = training_fingerprint(frame)
    version = trained_version(Path(models_dir), fingerprint)
    already = f"bundle {version} was trained on this content" if version else None
    train_now, why = decide(pending, already)
    if not train_now:
        log.info("%d retraining request(s): %s", len(pending), why)
        mark_handled(warehouse_url, pending, why)
        return RetrainOutcome(False, why, why, ids)
    log.info("training for %d retraining request(s): %s", len(pending), why)
    try:
        summary = train(frame)
    except TrainingDataError as exc:
        # Too few labels is the data's state, not a fault of the loop: the loads and the scoring stand, and
        # the next drop with more labels trains.
        outcome = f"not trained: {exc}"
        log.warning("%s", outcome)
        mark_handled(warehouse_url, pending, outcome)
        return RetrainOutcome(False, why, outcome, ids)
    except Exception as exc:
        mark_handled(warehouse_url, pending, f"training failed: {exc}")
        raise
    outcome, promoted, decision = describe_training(summary)
    log.info("%s", outcome)
    mark_handled(warehouse_url, pending, outcome)
    return RetrainOutcome(True, why, outcome, ids, str(summary.get("version")), promoted, decision)
