"""The evaluation report of a trained model: ``report.html`` (Jinja2) and its PNG figures.

Everything is computed on the held-out test rows, with the final model and the threshold chosen on the
training rows: ROC and precision-recall curves with 95% bootstrap bands, the calibration curve and Brier
score, the confusion matrix at the threshold, the lift by decile, global feature importance (mean
absolute SHAP value on a sample, per feature and per feature group: :mod:`clientml_ds.importance`), the
comparison table of the candidates (CV mean ± std), and, when the true probabilities are known (generated
data), the best achievable ROC-AUC on the same test rows and the model's gap to it
(:func:`clientml_ds.compare.ground_truth_comparison`). Figures use matplotlib's object API on the Agg
canvas (no display, no global state).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_mle.evaluate import Evaluation
from clientml_mle.schema import FeatureSpec
from matplotlib.figure import Figure
from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_curve
from sklearn.pipeline import Pipeline

from clientml_ds.importance import feature_importance, group_importance, shap_values

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# Bootstrap resamples of the ROC/PR bands: enough for a smooth 95% band, cheap next to the fit.
CURVE_BOOTSTRAP = 200
# Features shown in the importance plot (the full table is in the report's HTML).
TOP_FEATURES = 20
DPI = 110  # PNG resolution of the plots
REPORT_HTML = "report.html"


# --- statistics ----------------------------------------------------------------------------------------


def _band(curves: Sequence[FloatArray], level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    stack = np.vstack(curves)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stack, [tail, 100 - tail], axis=0)
    return np.asarray(low), np.asarray(high)


def curve_bands(
    y: IntArray, proba: FloatArray, *, n_boot: int = CURVE_BOOTSTRAP, seed: int = 0
) -> dict[str, FloatArray]:
    """ROC (TPR on an FPR grid) and PR (precision on a recall grid) curves with 95% bootstrap bands."""
    grid = np.linspace(0, 1, 101)
    rng = np.random.default_rng(seed)

    def roc_on_grid(yy: IntArray, pp: FloatArray) -> FloatArray:
        fpr, tpr, _ = roc_curve(yy, pp)
        return np.interp(grid, fpr, tpr)

    def pr_on_grid(yy: IntArray, pp: FloatArray) -> FloatArray:
        precision, recall, _ = precision_recall_curve(yy, pp)
        # recall decreases along the arrays; interpolated precision = best precision at recall >= r.
        envelope = np.maximum.accumulate(precision)
        return np.interp(grid, recall[::-1], envelope[::-1])

    rocs, prs = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        yy, pp = y[idx], proba[idx]
        if yy.min() == yy.max():
            continue
        rocs.append(roc_on_grid(yy, pp))
        prs.append(pr_on_grid(yy, pp))
    roc_low, roc_high = _band(rocs)
    pr_low, pr_high = _band(prs)
    return {
        "grid": grid,
        "roc": roc_on_grid(y, proba),
        "roc_low": roc_low,
        "roc_high": roc_high,
        "pr": pr_on_grid(y, proba),
        "pr_low": pr_low,
        "pr_high": pr_high,
    }


# --- figures -------------------------------------------------------------------------------------------


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _curve_with_band(bands: Mapping[str, FloatArray], curve: str, label: str) -> tuple[Figure, Any]:
    """A figure with the ``curve`` (``roc`` or ``pr``) on ``bands["grid"]`` and its 95% bootstrap band."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    grid = bands["grid"]
    ax.fill_between(grid, bands[f"{curve}_low"], bands[f"{curve}_high"], alpha=0.25, label="95% bootstrap band")
    ax.plot(grid, bands[curve], lw=2, label=label)
    return fig, ax


def plot_roc(bands: Mapping[str, FloatArray], metrics: Evaluation, path: Path) -> Path:
    """ROC curve of the test rows with its bootstrap band and the chance diagonal, saved as a PNG."""
    fig, ax = _curve_with_band(bands, "roc", f"model (AUC {metrics.roc_auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test rows)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(bands: Mapping[str, FloatArray], metrics: Evaluation, path: Path) -> Path:
    """Precision-recall curve of the test rows with its bootstrap band and the positive rate, as a PNG."""
    fig, ax = _curve_with_band(bands, "pr", f"model (AP {metrics.pr_auc:.3f})")
    ax.axhline(metrics.positive_rate, ls="--", c="grey", lw=1, label="positive rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (test rows)", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_calibration(y: IntArray, proba: FloatArray, path: Path, bins: int = 10) -> Path:
    """Reliability diagram on quantile bins (equal counts), with the Brier score and a histogram."""
    edges = np.unique(np.quantile(proba, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, proba, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"b": which, "p": proba, "y": y}).groupby("b").mean()
    fig = Figure(figsize=(5, 5.5))
    ax, hist = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    ax.plot(frame["p"], frame["y"], marker="o", label="model")
    brier = brier_score_loss(y, proba)
    ax.set(ylabel="observed positive rate", title=f"Calibration (test rows), Brier {brier:.4f}")
    ax.legend(loc="upper left")
    hist.hist(proba, bins=40, range=(0, 1), color="C0", alpha=0.7)
    hist.set(xlabel="predicted probability", ylabel="rows")
    return _save(fig, path)


def plot_confusion(metrics: Evaluation, path: Path) -> Path:
    cm = metrics.confusion_matrix
    matrix = np.array([[cm.tn, cm.fp], [cm.fn, cm.tp]])
    fig = Figure(figsize=(4.2, 3.8))
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        share = value / matrix.sum()
        color = "white" if value > matrix.max() / 2 else "black"
        ax.text(j, i, f"{value:,}\n{share:.1%}", ha="center", va="center", color=color)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["0", "1"],
        yticklabels=["0", "1"],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion matrix at threshold {metrics.threshold:.3f}",
    )
    return _save(fig, path)


def plot_lift(metrics: Evaluation, path: Path) -> Path:
    lift = pd.DataFrame(metrics.to_dict()["lift_by_decile"])
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    ax.bar(lift["decile"], lift["lift"].astype(float), color="C0", label="lift")
    ax.plot(lift["decile"], lift["cumulative_lift"].astype(float), marker="o", c="C1", label="cumulative lift")
    ax.axhline(1, ls="--", c="grey", lw=1)
    ax.set(xlabel="decile of predicted risk (1 = highest)", ylabel="lift", title="Lift by decile (test rows)")
    ax.set_xticks(lift["decile"])
    ax.legend()
    return _save(fig, path)


def plot_importance(importance: pd.DataFrame, path: Path, top: int = TOP_FEATURES) -> Path:
    head = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.3 * len(head) + 1.2))
    ax = fig.add_subplot()
    ax.barh(head["feature"], head["mean_abs_shap"], color="C0")
    ax.set(xlabel="mean |SHAP value| (log-odds)", title="SHAP importance (test sample)")
    return _save(fig, path)


def plot_groups(groups: pd.DataFrame, path: Path) -> Path:
    """Mean |SHAP| of each feature group (:func:`clientml_ds.importance.group_importance`) as bars."""
    rows = groups.iloc[::-1]
    fig = Figure(figsize=(7, 0.35 * len(rows) + 1.2))
    ax = fig.add_subplot()
    ax.barh([f"{g} ({n})" for g, n in zip(rows["group"], rows["features"], strict=True)], rows["mean_abs_shap"])
    ax.set(xlabel="mean |sum of the group's SHAP values| (log-odds)", title="SHAP importance by feature group")
    return _save(fig, path)


def plot_candidates(table: Sequence[Mapping[str, Any]], path: Path) -> Path:
    names = [r["name"] for r in table]
    fig = Figure(figsize=(6.5, 0.4 * len(names) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    colors = ["C2" if r["winner"] else ("C7" if not r["deployable"] else "C0") for r in table]
    ax.barh(y, [r["roc_auc_mean"] for r in table], xerr=[r["roc_auc_std"] for r in table], color=colors)
    ax.set_yticks(y, names)
    low = min(r["roc_auc_mean"] - r["roc_auc_std"] for r in table)
    ax.set(xlim=(max(0.0, low - 0.02), 1.0), xlabel="CV ROC-AUC (mean ± std over folds)", title="Candidates")
    ax.invert_yaxis()
    return _save(fig, path)


# --- the report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportData:
    """What the report shows; everything about the test rows comes from the final model."""

    name: str
    model: Pipeline
    features: list[FeatureSpec]
    threshold: float
    metrics: Evaluation
    x_test: pd.DataFrame
    y_test: IntArray
    proba_test: FloatArray
    selection: Mapping[str, Any]
    split: Mapping[str, Any]
    training_data: Mapping[str, Any]
    ground_truth: Mapping[str, Any] | None = None
    seed: int = 0


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if np.isfinite(value) else "-"
    return html.escape(str(value))


def write_report(data: ReportData, out_dir: Path) -> dict[str, Path]:
    """Write ``report.html``, its PNGs and ``report.json`` into ``out_dir``; return name -> path."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    out_dir.mkdir(parents=True, exist_ok=True)
    y, p, m = data.y_test, data.proba_test, data.metrics
    metrics = m.to_dict()
    figures: dict[str, Path] = {}
    bands = curve_bands(y, p, seed=data.seed)
    figures["roc.png"] = plot_roc(bands, m, out_dir / "roc.png")
    figures["pr.png"] = plot_pr(bands, m, out_dir / "pr.png")
    figures["calibration.png"] = plot_calibration(y, p, out_dir / "calibration.png")
    figures["confusion_matrix.png"] = plot_confusion(m, out_dir / "confusion_matrix.png")
    figures["lift.png"] = plot_lift(m, out_dir / "lift.png")
    table = list(data.selection.get("candidates", []))
    if table:
        figures["candidates.png"] = plot_candidates(table, out_dir / "candidates.png")
    values = shap_values(data.model, data.x_test, seed=data.seed)
    importance = feature_importance(values) if values is not None else None
    groups = group_importance(values) if values is not None else None
    if importance is not None and groups is not None and len(importance):
        figures["feature_importance.png"] = plot_importance(importance, out_dir / "feature_importance.png")
        figures["feature_groups.png"] = plot_groups(groups, out_dir / "feature_groups.png")

    env = Environment(loader=PackageLoader("clientml_ds", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["fmt"] = _fmt
    summary = {
        "name": data.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": data.threshold,
        "metrics": {k: v for k, v in metrics.items() if not isinstance(v, list | dict)},
        "confusion_matrix": metrics["confusion_matrix"],
        "lift_by_decile": metrics["lift_by_decile"],
        "selection": data.selection,
        "split": data.split,
        "training_data": data.training_data,
        "ground_truth": data.ground_truth,
        "feature_importance": importance.to_dict("records") if importance is not None else None,
        "feature_group_importance": groups.to_dict("records") if groups is not None else None,
        "final_model": str(data.model.steps[-1][1]),
    }
    page = env.get_template("report.html.j2").render(
        r=summary,
        figures=list(figures),
        importance=(importance.head(TOP_FEATURES).to_dict("records") if importance is not None else []),
        groups=(groups.to_dict("records") if groups is not None else []),
        n_features=len(data.features),
    )
    (out_dir / REPORT_HTML).write_text(page, encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, default=_json_default), encoding="utf-8")
    written = {name: path for name, path in figures.items()}
    written[REPORT_HTML] = out_dir / REPORT_HTML
    written["report.json"] = out_dir / "report.json"
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
