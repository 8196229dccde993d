"""Batch scoring: every unlabeled client of ``feature_store`` with a bundle, to a CSV file.

:func:`score_unlabeled` is the one scoring step; :func:`score` writes it to CSV (``clientml score``) and
:func:`clientml_mle.predictions.score_to_warehouse` to the ``predictions`` table (the ``score_clients`` DAG).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.files import atomic_file

from clientml_mle.bundle import Bundle, load_bundle
from clientml_mle.features import unlabeled_rows
from clientml_mle.pointers import LATEST_FILE

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("client_id", "probability", "label")


@dataclass(frozen=True, eq=False)
class Scored:
    """The unlabeled clients' rows (each client's newest ``feature_store`` row, by ``client_id``), the bundle
    that scored them, and per row the probability of label 1 and the label at the bundle's threshold."""

    bundle: Bundle = field(repr=False)
    rows: pd.DataFrame = field(repr=False)
    probability: npt.NDArray[np.float64] = field(repr=False)
    label: npt.NDArray[np.int64] = field(repr=False)


def score_unlabeled(warehouse_url: str, models_dir: Path | str, *, pointer: str = LATEST_FILE) -> Scored:
    """Score each unlabeled client with the bundle ``pointer`` names in ``models_dir`` (verified before use).

    Raises:
        clientml_mle.pointers.BundleIntegrityError: the bundle fails its checks.
        FileNotFoundError: no such models directory, or no bundle behind the pointer.
        clientml_de.warehouse.WarehouseError: the warehouse or ``feature_store`` cannot be read.
    """
    bundle = load_bundle(models_dir, pointer=pointer)
    rows = unlabeled_rows(warehouse_url)
    proba = bundle.predict_proba(rows)
    return Scored(bundle, rows, proba, (proba >= bundle.threshold).astype(np.int64))


def write_csv_atomically(frame: pd.DataFrame, out: Path) -> None:
    """Write ``frame`` to ``out`` (UTF-8, ``\\n`` line ends) whole or not at all (:func:`atomic_file`)."""
    with atomic_file(out) as handle:
        frame.to_csv(handle, index=False, lineterminator="\n", encoding="utf-8")


def score(warehouse_url: str, models_dir: Path | str, out: Path | str, *, pointer: str = LATEST_FILE) -> int:
    """Score each unlabeled client (its newest feature_store row) with the LATEST bundle of ``models_dir``.

    ``pointer="CHAMPION"`` uses the bundle the champion gate last promoted instead.
    Writes ``client_id,probability,label`` (label at the bundle's threshold) to ``out`` atomically and
    returns the number of rows written. Raises as :func:`score_unlabeled`.
    """
    scored = score_unlabeled(warehouse_url, models_dir, pointer=pointer)
    result = pd.DataFrame(
        {
            "client_id": scored.rows["client_id"].astype(str).to_numpy(),
            "probability": scored.probability,
            "label": scored.label,
        },
        columns=list(OUTPUT_COLUMNS),
    )
    write_csv_atomically(result, Path(out))
    log.info("scored %d clients with bundle %s into %s", len(result), scored.bundle.version, out)
    return len(result)
