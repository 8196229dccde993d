"""The warehouse side of monitoring: the ``drift_report`` table it writes, the ``predictions`` it reads.

``drift_report``: one row per feature per run, plus one row for the score distribution (``feature`` =
``"__score__"``, ``kind`` = ``"score"``, no null rates nor importance), columns :data:`DRIFT_REPORT_SCHEMA`.
A run's rows are replaced in one step (:func:`clientml_de.partitions.replace_partition`, key ``run_id``):
a rerun with the same ``run_id`` replaces its rows, other runs are kept.

``predictions`` (written by the batch-scoring DAG): the probabilities of the champion's version, from its
latest scoring (the newest ``scored_at``), are the current score distribution when there are any.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from clientml_de.partitions import replace_partition
from clientml_de.warehouse import connect

from clientml_mle.monitor.result import FeatureDrift, MonitorResult
from clientml_mle.predictions import PREDICTIONS

DRIFT_REPORT = "drift_report"
_PREDICTION_COLUMNS = ("probability", "model_version")

DRIFT_REPORT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("model_version", pa.string()),
        ("feature", pa.string()),  # "__score__" for the score distribution
        ("kind", pa.string()),  # number, integer, category, boolean, score
        ("statistic", pa.string()),  # "psi": what ``value`` is
        ("value", pa.float64()),  # null when it could not be computed (the message says why)
        ("js_distance", pa.float64()),
        ("null_rate_reference", pa.float64()),
        ("null_rate_current", pa.float64()),
        ("importance", pa.float64()),  # share of the model's importance, in [0, 1]
        ("relied_on", pa.bool_()),
        ("drifted", pa.bool_()),
        ("message", pa.string()),
        ("created_at", pa.timestamp("us")),  # the run's time, UTC
    ]
)


def drift_rows(result: MonitorResult, created_at: datetime) -> pa.Table:
    """The ``drift_report`` rows of a run: its features, then the score distribution (when compared)."""
    compared: list[FeatureDrift] = [*result.features, *([result.score_drift] if result.score_drift else [])]
    naive_utc = created_at.replace(tzinfo=None)
    rows = [
        {
            "run_id": result.run_id,
            "model_version": result.model_version,
            "feature": d.feature,
            "kind": d.kind,
            "statistic": d.statistic,
            "value": d.value,
            "js_distance": d.js_distance,
            "null_rate_reference": d.null_rate_reference,
            "null_rate_current": d.null_rate_current,
            "importance": d.importance,
            "relied_on": d.relied_on,
            "drifted": d.drifted,
            "message": d.message,
            "created_at": naive_utc,
        }
        for d in compared
    ]
    return pa.Table.from_pylist(rows, schema=DRIFT_REPORT_SCHEMA)


def write_drift_report(warehouse_url: str, result: MonitorResult, created_at: datetime) -> int:
    """Replace the run's rows of ``drift_report`` (created when missing); the number of rows written.

    Raises what :func:`~clientml_de.partitions.replace_partition` raises (the table is then unchanged).
    """
    rows = drift_rows(result, created_at)
    with connect(warehouse_url) as warehouse:
        replace_partition(warehouse, DRIFT_REPORT, rows, key="run_id", value=result.run_id)
    return rows.num_rows


def read_predictions(warehouse_url: str, model_version: str) -> npt.NDArray[np.float64] | None:
    """The probabilities of ``model_version``'s latest scoring in ``predictions`` (the newest ``scored_at``),
    or None when the table, its columns or rows of that version are not there."""
    with connect(warehouse_url, read_only=True) as warehouse:
        if not warehouse.has_table(PREDICTIONS):
            return None
        table = warehouse.table(PREDICTIONS)
        if not set(_PREDICTION_COLUMNS) <= set(table.columns):
            return None
        mine = table.filter(table.model_version == model_version)
        if "scored_at" in table.columns:
            mine = mine.filter(mine.scored_at == mine.scored_at.max())
        probabilities = mine.select(p=mine.probability.cast("float64")).to_pyarrow().column("p")
    scores = np.asarray(probabilities.to_numpy(zero_copy_only=False), dtype=np.float64)
    scores = scores[~np.isnan(scores)]
    return scores if len(scores) else None
