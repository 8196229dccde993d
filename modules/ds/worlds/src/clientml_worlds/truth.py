"""The reference of the quality benchmark: the best ROC-AUC any model can reach on a world's labeled clients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score


def best_achievable_auc(labels: npt.ArrayLike, p_true: npt.ArrayLike) -> float:
    """ROC-AUC of ``p_true`` against the drawn ``labels`` (0 / 1, same length): no model ranks these rows better.

    ``p_true`` is the probability each label was drawn with, so no score does better in expectation; on a
    finite subset a model can beat it by chance, which is why a gap is reported with its interval.
    Raises ValueError when ``labels`` does not hold both 0 and 1.
    """
    y = np.asarray(labels)
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError(f"labels must hold both 0 and 1, got {sorted(np.unique(y).tolist())}")
    return float(roc_auc_score(y, np.asarray(p_true, dtype=np.float64)))


def labeled_truth(world_dir: Path) -> pd.DataFrame:
    """The labeled clients of a written world: columns ``client_id`` (str), ``label`` (int 0/1), ``p_true`` (float).

    One row per labeled client of ``clients.csv``, in its order, joined to ``ground_truth.csv``.
    """
    clients = pd.read_csv(world_dir / "clients.csv", usecols=["client_id", "label"], dtype={"client_id": str})
    truth = pd.read_csv(world_dir / "ground_truth.csv", dtype={"client_id": str, "p_true": np.float64})
    labeled = clients[clients.label.notna()].astype({"label": np.int64})
    return labeled.merge(truth, on="client_id", how="left", validate="one_to_one")
