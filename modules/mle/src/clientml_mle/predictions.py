"""Batch scoring into the warehouse: the ``predictions`` table, one partition per model version.

:func:`score_to_warehouse` scores every client whose newest ``feature_store`` row is unlabeled with the
champion (:func:`clientml_mle.score.score_unlabeled`, the step ``clientml score`` writes to CSV) and replaces
that model version's rows of ``predictions`` in one atomic step (:func:`clientml_de.partitions.replace_partition`:
one transaction on DuckDB and PostgreSQL deletes the version's rows and inserts the new ones); the rows of
other versions stay, so a prediction can be traced to its bundle (``model_version``) and to the source load
that built its features (``feature_set_version``). Scoring the same ``feature_store`` again with the same
bundle gives the same rows but ``scored_at`` (the time of the run), in ``client_id`` order.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from clientml_de.contract import BOOKKEEPING_COLUMNS, KEY_COLUMNS
from clientml_de.partitions import replace_partition
from clientml_de.warehouse import connect

from clientml_mle.pointers import CHAMPION_FILE, require_pointer
from clientml_mle.score import score_unlabeled

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
VERSION_COLUMN = "model_version"
FEATURE_SET_COLUMN = BOOKKEEPING_COLUMNS[0]
# The table's columns: the client and the row of feature_store scored, P(label = 1), the label at the
# bundle's threshold, the bundle, the feature build, and when (UTC, without zone, like the other tables).
SCHEMA = pa.schema(
    [
        ("client_id", pa.string()),
        ("as_of_date", pa.date32()),
        ("probability", pa.float64()),
        ("label", pa.int64()),
        (VERSION_COLUMN, pa.string()),
        (FEATURE_SET_COLUMN, pa.string()),
        ("scored_at", pa.timestamp("us")),
    ]
)


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_to_warehouse` wrote: ``rows`` rows of ``model_version`` into ``table`` at
    ``scored_at`` (ISO 8601, UTC), from the feature builds ``feature_set_versions``."""

    table: str
    rows: int
    model_version: str
    feature_set_versions: list[str]
    scored_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_to_warehouse(warehouse_url: str, models_dir: Path | str, *, pointer: str = CHAMPION_FILE) -> ScoreSummary:
    """Score every unlabeled client with the bundle ``pointer`` names (the champion) into ``predictions``,
    replacing that model version's rows atomically and keeping the other versions' rows.

    Raises:
        clientml_mle.pointers.NoModelError: no bundle, or no champion yet: nothing is written.
        clientml_mle.pointers.BundleIntegrityError: the bundle fails its checks: nothing is written.
        clientml_de.warehouse.WarehouseError: the warehouse cannot be read or written (the table is then
            as it was), or a ``predictions`` table with other columns is in the way.
    """
    require_pointer(models_dir, pointer)
    scored = score_unlabeled(warehouse_url, models_dir, pointer=pointer)
    version = scored.bundle.version  # the bundle loaded, even if the pointer moved since it was read
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    rows = scored.rows
    table = pa.table(
        {
            "client_id": rows[KEY_COLUMNS[0]].astype(str).to_numpy(),
            "as_of_date": pd.to_datetime(rows[KEY_COLUMNS[1]]).dt.date.to_numpy(),
            "probability": scored.probability,
            "label": scored.label,
            VERSION_COLUMN: [version] * len(rows),
            FEATURE_SET_COLUMN: [None if pd.isna(v) else str(v) for v in rows[FEATURE_SET_COLUMN]],
            "scored_at": [scored_at] * len(rows),
        },
        schema=SCHEMA,
    ).sort_by("client_id")
    with connect(warehouse_url) as warehouse:
        replace_partition(warehouse, PREDICTIONS, table, key=VERSION_COLUMN, value=version)
    summary = ScoreSummary(
        table=PREDICTIONS,
        rows=table.num_rows,
        model_version=version,
        feature_set_versions=sorted({str(v) for v in table.column(FEATURE_SET_COLUMN).to_pylist() if v is not None}),
        scored_at=scored_at.isoformat(timespec="seconds") + "Z",
    )
    log.info("scored %d unlabeled clients with model version %s into %s", summary.rows, version, PREDICTIONS)
    return summary
