"""Evaluation of a binary classifier's probabilities on held-out rows, and the threshold rule.

:func:`evaluate` gives an :class:`Evaluation`: ROC-AUC and PR-AUC (average precision) with bootstrap 95%
confidence intervals, log-loss, Brier score, accuracy/F1/precision/recall and the confusion matrix at the
decision threshold, a 10-bin calibration table and the lift by decile. Everything is deterministic for a
seed. ``Evaluation.to_dict()`` is the JSON form (the bundle manifest's ``metrics`` and ``evaluation.json``)
and ``Evaluation.scalar_metrics()`` the numbers MLflow logs; their keys are the field names.

Sources: ROC-AUC and average precision are scikit-learn's ``roc_auc_score`` and
``average_precision_score`` (AP = sum over thresholds of (R_n - R_{n-1}) P_n, no interpolation); the
intervals are percentile bootstrap intervals (Efron, B. & Tibshirani, R. J., *An Introduction to the
Bootstrap*, Chapman & Hall 1993, ch. 13); log-loss is scikit-learn's ``log_loss`` (mean negative
log-likelihood, natural log) and the Brier score ``brier_score_loss`` (mean of (p - y)^2; Brier 1950).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)

FloatArray = npt.NDArray[np.float64]
N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
CALIBRATION_BINS = 10
LIFT_GROUPS = 10
# Probabilities are clipped to [EPS, 1 - EPS] for the log-loss (a 0 or 1 would make it infinite).
LOG_LOSS_EPS = 1e-15
# Metrics that are scalars, logged to MLflow as they are.
SCALAR_METRICS = (
    "n_rows",
    "positive_rate",
    "roc_auc",
    "roc_auc_ci95_low",
    "roc_auc_ci95_high",
    "pr_auc",
    "pr_auc_ci95_low",
    "pr_auc_ci95_high",
    "log_loss",
    "brier",
    "threshold",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "top_decile_lift",
)


@dataclass(frozen=True)
class ConfusionMatrix:
    """Row counts at the threshold: true/false negatives and positives (predicted 1 when p >= threshold)."""

    tn: int
    fp: int
    fn: int
    tp: int


@dataclass(frozen=True)
class CalibrationBin:
    """One equal-width bin of predicted probability: its rows' mean prediction and observed positive rate."""

    bin_low: float
    bin_high: float
    count: int
    mean_predicted: float | None  # None for an empty bin
    observed_rate: float | None


@dataclass(frozen=True)
class DecileLift:
    """One tenth of the rows by predicted probability (decile 1 = highest scores).

    ``lift`` = the decile's positive rate / the overall positive rate; ``cumulative_lift`` the same for
    deciles 1..d together; ``cumulative_capture`` = share of all positives in deciles 1..d.
    """

    decile: int
    count: int
    min_probability: float | None
    positive_rate: float
    lift: float | None
    cumulative_lift: float | None
    cumulative_capture: float | None


@dataclass(frozen=True)
class BootstrapSettings:
    """How the confidence intervals were computed: resamples, their seed and the confidence level."""

    n: int
    seed: int
    level: float


@dataclass(frozen=True)
class Evaluation:
    """The test evaluation of a model's probabilities (see the module docstring for the definitions).

    Rates, AUCs, log-loss (nats) and Brier are unitless in [0, 1] (log-loss in [0, inf)); ``*_ci95_low``
    and ``*_ci95_high`` bound the percentile-bootstrap interval at ``bootstrap.level``; ``threshold`` is
    the probability at or above which the predicted label is 1, and accuracy, precision, recall, F1 and
    the confusion matrix are computed at it.
    """

    n_rows: int
    positive_rate: float
    roc_auc: float
    roc_auc_ci95_low: float
    roc_auc_ci95_high: float
    pr_auc: float
    pr_auc_ci95_low: float
    pr_auc_ci95_high: float
    log_loss: float
    brier: float
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    top_decile_lift: float
    confusion_matrix: ConfusionMatrix
    calibration: tuple[CalibrationBin, ...]
    lift_by_decile: tuple[DecileLift, ...]
    bootstrap: BootstrapSettings

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field by name, the tables as lists of objects (the manifest's ``metrics``)."""
        out = asdict(self)
        out["calibration"] = list(out["calibration"])
        out["lift_by_decile"] = list(out["lift_by_decile"])
        return out

    def scalar_metrics(self) -> dict[str, float]:
        """The scalar fields (:data:`SCALAR_METRICS`) as floats: what MLflow logs and ``clientml train`` prints."""
        return {name: float(getattr(self, name)) for name in SCALAR_METRICS if getattr(self, name) is not None}


def _as_arrays(y_true: Any, proba: Any) -> tuple[npt.NDArray[np.int64], FloatArray]:
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must be 1-d and of the same length")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError("labels must be 0 or 1")
    return y, p


def _ranked_metrics(pos: FloatArray, neg: FloatArray) -> tuple[float, float]:
    """ROC-AUC and average precision from positive/negative weights per distinct score (ascending).

    Exactly sklearn's ``roc_auc_score`` and ``average_precision_score`` for the weighted sample.
    """
    total_pos, total_neg = pos.sum(), neg.sum()
    below = np.cumsum(neg) - neg
    auc = float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))
    # Average precision: thresholds from the highest score down.
    tp = np.cumsum(pos[::-1])
    fp = np.cumsum(neg[::-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    ap = float((pos[::-1] * precision).sum() / total_pos)
    return auc, ap


def bootstrap_auc_ap(
    y_true: Any, proba: Any, *, n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (Efron & Tibshirani 1993) of ROC-AUC and PR-AUC (average precision).

    ``y_true`` (n,) 0/1 labels and ``proba`` (n,) scores. Resamples rows with replacement ``n_boot`` times
    (resamples with a single class are skipped); each resample is scored from per-score weights in O(n),
    with exactly sklearn's definitions. Returns ``{"roc_auc": (low, high), "pr_auc": (low, high)}``, the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles (NaN when no resample had both labels).

    Raises:
        ValueError: labels not 0/1, or shapes that differ.
    """
    y, p = _as_arrays(y_true, proba)
    _, group = np.unique(p, return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    positive = y.astype(np.float64)
    rng = np.random.default_rng(seed)
    aucs, aps = [], []
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)
        pos = np.bincount(group, weights=weights * positive, minlength=n_groups).astype(np.float64)
        neg = np.bincount(group, weights=weights * (1 - positive), minlength=n_groups).astype(np.float64)
        if pos.sum() == 0 or neg.sum() == 0:
            continue
        auc, ap = _ranked_metrics(pos, neg)
        aucs.append(auc)
        aps.append(ap)
    tail = (1 - level) / 2 * 100

    def interval(values: list[float]) -> tuple[float, float]:
        if not values:
            return float("nan"), float("nan")
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)

    return {"roc_auc": interval(aucs), "pr_auc": interval(aps)}


def choose_threshold(y_true: Any, proba: Any, rule: str | float = "max_f1") -> float:
    """The decision threshold: a fixed number, or ``"max_f1"`` (the probability that maximises F1).

    ``"max_f1"``: the score, among ``proba``'s distinct values, whose threshold maximises
    F1 = 2PR / (P + R) on these rows (sklearn's ``precision_recall_curve``; 0.5 when only one label is
    present). Call it on validation rows, never on the test rows the model is evaluated on.

    Raises:
        ValueError: a number outside [0, 1], or an unknown rule.
    """
    if not isinstance(rule, str):
        threshold = float(rule)
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold {threshold} is not a probability")
        return threshold
    if rule != "max_f1":
        raise ValueError(f"unknown threshold rule {rule!r} (use 'max_f1' or a number)")
    y, p = _as_arrays(y_true, proba)
    if y.min() == y.max():
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return float(thresholds[best])


def calibration_table(y: Any, p: Any, bins: int = CALIBRATION_BINS) -> list[CalibrationBin]:
    """Observed positive rate against mean predicted probability, in ``bins`` equal-width bins of [0, 1]."""
    y, p = _as_arrays(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        rows.append(
            CalibrationBin(
                bin_low=float(edges[b]),
                bin_high=float(edges[b + 1]),
                count=count,
                mean_predicted=float(p[mask].mean()) if count else None,
                observed_rate=float(y[mask].mean()) if count else None,
            )
        )
    return rows


def lift_table(y: Any, p: Any, groups: int = LIFT_GROUPS) -> list[DecileLift]:
    """Positive rate and lift per ``groups``-quantile of predicted probability (group 1 = highest scores).

    Rows are ordered by decreasing probability (stable, so ties keep row order) and cut into ``groups``
    groups of sizes differing by at most one (``np.array_split``).
    """
    y, p = _as_arrays(y, p)
    base = float(y.mean()) if len(y) else float("nan")
    order = np.argsort(-p, kind="stable")
    rows = []
    captured = 0
    total_pos = int(y.sum())
    seen = 0
    for i, idx in enumerate(np.array_split(order, groups), start=1):
        count = len(idx)
        positives = int(y[idx].sum())
        captured += positives
        seen += count
        rate = positives / count if count else float("nan")
        rows.append(
            DecileLift(
                decile=i,
                count=count,
                min_probability=float(p[idx].min()) if count else None,
                positive_rate=rate,
                lift=rate / base if base > 0 and count else None,
                cumulative_lift=(captured / seen) / base if base > 0 and seen else None,
                cumulative_capture=captured / total_pos if total_pos else None,
            )
        )
    return rows


def evaluate(y_true: Any, proba: Any, threshold: float, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Evaluation:
    """Every evaluation metric of probabilities ``proba`` (of label 1, shape (n,)) against ``y_true`` (n,).

    ROC-AUC and PR-AUC by scikit-learn, with percentile-bootstrap 95% intervals of ``n_boot`` resamples
    seeded by ``seed`` (:func:`bootstrap_auc_ap`); log-loss on probabilities clipped to
    [1e-15, 1 - 1e-15]; Brier; the predicted label is 1 when ``proba >= threshold``, and accuracy,
    precision = TP / (TP + FP), recall = TP / (TP + FN) and F1 = 2PR / (P + R) (0 when undefined) follow.

    Raises:
        ValueError: the rows do not hold both labels, labels are not 0/1, or the shapes differ.
    """
    y, p = _as_arrays(y_true, proba)
    if y.min() == y.max():
        raise ValueError("evaluation rows must contain both labels")
    predicted = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, predicted, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    intervals = bootstrap_auc_ap(y, p, n_boot=n_boot, seed=seed, level=CI_LEVEL)
    (roc_low, roc_high), (pr_low, pr_high) = intervals["roc_auc"], intervals["pr_auc"]
    lift = lift_table(y, p)
    return Evaluation(
        n_rows=len(y),
        positive_rate=float(y.mean()),
        roc_auc=float(roc_auc_score(y, p)),
        roc_auc_ci95_low=roc_low,
        roc_auc_ci95_high=roc_high,
        pr_auc=float(average_precision_score(y, p)),
        pr_auc_ci95_low=pr_low,
        pr_auc_ci95_high=pr_high,
        log_loss=float(log_loss(y, np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS), labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
        threshold=float(threshold),
        accuracy=(tp + tn) / len(y),
        precision=precision,
        recall=recall,
        f1=f1,
        top_decile_lift=lift[0].lift if lift[0].lift is not None else float("nan"),
        confusion_matrix=ConfusionMatrix(tn=tn, fp=fp, fn=fn, tp=tp),
        calibration=tuple(calibration_table(y, p)),
        lift_by_decile=tuple(lift),
        bootstrap=BootstrapSettings(n=n_boot, seed=seed, level=CI_LEVEL),
    )
