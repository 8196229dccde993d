"""Batch scoring: every unlabeled client of ``feature_store`` with the newest bundle, to a CSV file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from clientml_de.files import atomic_file

from clientml_mle.bundle import load_bundle
from clientml_mle.features import unlabeled_rows
from clientml_mle.pointers import LATEST_FILE

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("client_id", "probability", "label")


def write_csv_atomically(frame: pd.DataFrame, out: Path) -> None:
    """Write ``frame`` to ``out`` (UTF-8, ``\\n`` line ends) whole or not at all (:func:`atomic_file`)."""
    with atomic_file(out) as handle:
        frame.to_csv(handle, index=False, lineterminator="\n", encoding="utf-8")


def score(warehouse_url: str, models_dir: Path | str, out: Path | str, *, pointer: str = LATEST_FILE) -> int:
    """Score each unlabeled client (its newest feature_store row) with the LATEST bundle of ``models_dir``.

    ``pointer="CHAMPION"`` uses the bundle the champion gate last promoted instead.
    Writes ``client_id,probability,label`` (label at the bundle's threshold) to ``out`` atomically and
    returns the number of rows written. The bundle is verified before use.
    """
    bundle = load_bundle(models_dir, pointer=pointer)
    rows = unlabeled_rows(warehouse_url)
    proba = bundle.predict_proba(rows)
    result = pd.DataFrame(
        {
            "client_id": rows["client_id"].astype(str).to_numpy(),
            "probability": proba,
            "label": (proba >= bundle.threshold).astype(np.int64),
        },
        columns=list(OUTPUT_COLUMNS),
    )
    write_csv_atomically(result, Path(out))
    log.info("scored %d clients with bundle %s into %s", len(result), bundle.version, out)
    return len(result)
