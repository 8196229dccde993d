"""ROC-AUCs of several scores of the same rows, with paired bootstrap intervals.

Scores of the same rows (a model, the true probabilities of generated data, a baseline, the out-of-fold
predictions of several cross-validation repetitions) are compared on the *same* resamples of the rows,
so the interval of a difference (a gap to the best achievable) or of a mean (over repetitions) accounts
for their correlation: the percentile bootstrap (Efron & Tibshirani 1993, ch. 13) over rows, each resample
scored from weights in O(n) (:func:`fast_auc`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LEVEL = 0.95
N_BOOT = 1000


def fast_auc(y: IntArray, score: FloatArray, weights: FloatArray | None = None) -> float:
    """ROC-AUC (ties count half) of a weighted sample, in O(n) after one ``np.unique``."""
    _, group = np.unique(score, return_inverse=True)
    w = np.ones(len(y)) if weights is None else weights
    n_groups = int(group.max()) + 1
    pos = np.bincount(group, weights=w * y, minlength=n_groups)
    neg = np.bincount(group, weights=w * (1 - y), minlength=n_groups)
    below = np.cumsum(neg) - neg
    total = pos.sum() * neg.sum()
    return float((pos * (below + 0.5 * neg)).sum() / total) if total > 0 else float("nan")


def bootstrap_aucs(
    y: IntArray, scores: Mapping[str, FloatArray], *, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[dict[str, float], pd.DataFrame]:
    """The ROC-AUC of each score of the rows ``y`` (0/1, shape ``(n,)``; each score shape ``(n,)``), and
    the AUCs of each on the same ``n_boot`` resamples of the rows: a frame ``(resamples, scores)``.
    Resamples holding a single label are skipped (their AUC is undefined)."""
    rng = np.random.default_rng(seed)
    point = {name: fast_auc(y, s) for name, s in scores.items()}
    rows = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)
        if (w * y).sum() == 0 or (w * (1 - y)).sum() == 0:
            continue
        rows.append([fast_auc(y, s, w) for s in scores.values()])
    return point, pd.DataFrame(rows, columns=list(scores), dtype=np.float64)


def interval(values: pd.Series | Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``values`` (NaN, NaN when there are none)."""
    data = np.asarray(values, dtype=np.float64)
    if not len(data):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(data, [tail, 100 - tail])
    return float(low), float(high)


def ground_truth_comparison(
    client_ids: Sequence[str],
    y: IntArray,
    proba: FloatArray,
    ground_truth: pd.DataFrame,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """The model's ROC-AUC beside the best achievable one (AUC of ``p_true``) on the same test rows.

    ``gap`` is best achievable minus model (positive: the model ranks worse than the truth), with its
    paired interval; on a finite test set a model can beat the truth by chance, so the gap can be < 0.
    """
    truth = ground_truth.assign(client_id=ground_truth["client_id"].astype(str)).set_index("client_id")["p_true"]
    p_true = pd.Series(list(client_ids), dtype=object).map(truth).to_numpy(dtype=np.float64)
    known = ~np.isnan(p_true)
    if known.sum() == 0 or len(np.unique(y[known])) < 2:
        raise ValueError("the ground truth covers none (or only one label) of the test rows")
    yk = y[known]
    point, boot = bootstrap_aucs(yk, {"model": proba[known], "best": p_true[known]}, n_boot=n_boot, seed=seed)
    best_low, best_high = interval(boot["best"])
    gap_low, gap_high = interval(boot["best"] - boot["model"])
    return {
        "rows": int(known.sum()),
        "rows_without_truth": int((~known).sum()),
        "best_achievable_roc_auc": float(roc_auc_score(yk, p_true[known])),
        "best_achievable_ci95_low": best_low,
        "best_achievable_ci95_high": best_high,
        "model_roc_auc": float(roc_auc_score(yk, proba[known])),
        "gap": point["best"] - point["model"],
        "gap_ci95_low": gap_low,
        "gap_ci95_high": gap_high,
    }
