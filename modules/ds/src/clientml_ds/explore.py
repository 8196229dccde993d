"""Exploration of ``feature_store``: the analysis and plotting code behind ``notebooks/eda.ipynb``.

Every ``plot_*`` function writes one PNG (matplotlib's object API on the Agg canvas, so it runs headless
and in parallel) and returns its path; every table function returns a DataFrame. The leakage checks:

- :func:`single_feature_auc`: the ROC-AUC of each feature on its own (numbers ranked as they are, with
  nulls as their own lowest value; categories through an out-of-fold target-rate encoding), folded to
  ``max(auc, 1 - auc)``. A feature above :data:`LEAKAGE_AUC` (0.95) is flagged as a possible disguised
  label: real predictors of client behaviour are rarely that good alone;
- :func:`point_in_time_check`: recounts, from the warehouse's ``sales`` table, each feature row's sales
  strictly before its ``as_of_date`` and on/after it, and checks that ``n_sales_total`` equals the count
  before (so no sale on or after the as-of date was used) and that ``days_since_last_sale >= 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from clientml_de.contract import FEATURE_STORE, LABEL_COLUMN
from clientml_mle.features import FEATURE_TYPES_ATTR, feature_columns
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

LEAKAGE_AUC = 0.95
DPI = 100
ACTIVITY_FEATURES = (
    "days_since_last_sale",
    "n_sales_90d",
    "n_sales_365d",
    "spend_365d",
    "n_sales_ratio_90d",
    "tenure_days",
)
SEGMENT_COLUMNS = ("segment", "region", "acquisition_channel")
Z95 = 1.959964


# --- tables ---------------------------------------------------------------------------------------------


def feature_types(df: pd.DataFrame) -> dict[str, str]:
    """Feature name -> ``category``/``integer``/``number``/``boolean`` (warehouse types when known)."""
    known: dict[str, str] = dict(df.attrs.get(FEATURE_TYPES_ATTR, {}))
    out = {}
    for name in feature_columns(df):
        if name in known:
            out[name] = known[name]
        elif pd.api.types.is_numeric_dtype(df[name]):
            out[name] = "number"
        else:
            out[name] = "category"
    return out


def numeric_features(df: pd.DataFrame) -> list[str]:
    return [n for n, t in feature_types(df).items() if t != "category"]


def categorical_features(df: pd.DataFrame) -> list[str]:
    return [n for n, t in feature_types(df).items() if t == "category"]


def overview(df: pd.DataFrame, unlabeled: int | None = None) -> pd.DataFrame:
    """One-column table: rows, clients, positive rate, as-of dates, features by type, all-null features."""
    types = pd.Series(feature_types(df))
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce")
    dates = pd.to_datetime(df["as_of_date"]) if "as_of_date" in df.columns else pd.Series([], dtype="datetime64[ns]")
    rows: dict[str, Any] = {
        "labeled rows": len(df),
        "distinct clients": int(df["client_id"].nunique()) if "client_id" in df.columns else len(df),
        "positives": int(labels.sum()),
        "positive rate": round(float(labels.mean()), 4),
        "distinct as_of_date": int(dates.nunique()),
        "as_of_date range": f"{pd.Timestamp(dates.min()):%Y-%m-%d} .. {pd.Timestamp(dates.max()):%Y-%m-%d}"
        if len(dates)
        else "",
    }
    if unlabeled is not None:
        rows["unlabeled clients (to score)"] = unlabeled
    for kind, count in types.value_counts().sort_index().items():
        rows[f"{kind} features"] = int(count)
    empty = [c for c in types.index if df[c].isna().all()]
    rows["all-null features"] = ", ".join(empty) if empty else "none"
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)})


def missing_table(df: pd.DataFrame) -> pd.DataFrame:
    """Share of nulls per feature (features with any null), highest first."""
    share = df[feature_columns(df)].isna().mean()
    share = share[share > 0].sort_values(ascending=False)
    return pd.DataFrame({"feature": share.index, "missing_share": share.to_numpy()})


def label_rate_by(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows, positives and label rate per value of ``column`` (nulls as "(null)"), with a Wilson 95% CI."""
    values = df[column].astype(object).where(df[column].notna(), "(null)")
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce")
    grouped = labels.groupby(values).agg(["count", "sum"]).rename(columns={"count": "rows", "sum": "positives"})
    n, k = grouped["rows"].to_numpy(dtype=float), grouped["positives"].to_numpy(dtype=float)
    rate = k / n
    centre = (rate + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * np.sqrt(rate * (1 - rate) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    out = grouped.assign(rate=rate, ci95_low=centre - half, ci95_high=centre + half)
    out.index.name = column
    return out.sort_values("rows", ascending=False).reset_index()


def binned_label_rate(df: pd.DataFrame, column: str, bins: int = 10) -> pd.DataFrame:
    """Label rate per quantile bin of a numeric feature (nulls as their own bin, first)."""
    values = pd.to_numeric(df[column], errors="coerce")
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce")
    known = values.notna()
    rows = []
    if (~known).any():
        rows.append({"bin": "null", "x": np.nan, "rows": int((~known).sum()), "rate": float(labels[~known].mean())})
    if known.sum() > 0:
        codes = pd.qcut(values[known].rank(method="first"), q=min(bins, int(known.sum())), labels=False)
        for code, idx in values[known].groupby(codes).groups.items():
            rows.append(
                {
                    "bin": f"q{int(str(code)) + 1}",
                    "x": float(values[idx].median()),
                    "rows": len(idx),
                    "rate": float(labels[idx].mean()),
                }
            )
    return pd.DataFrame(rows)


def single_feature_auc(df: pd.DataFrame, *, seed: int = 0, folds: int = 5) -> pd.DataFrame:
    """Each feature's ROC-AUC alone, as ``max(auc, 1 - auc)``, and whether it exceeds :data:`LEAKAGE_AUC`."""
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce").to_numpy().astype(np.int64)
    types = feature_types(df)
    rows = []
    for name, kind in types.items():
        series = df[name]
        if series.isna().all():
            continue
        if kind == "category":
            score = _oof_target_rate(series, labels, seed=seed, folds=folds)
        else:
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            finite = values[~np.isnan(values)]
            score = np.where(np.isnan(values), finite.min() - 1.0, values)
        auc = 0.5 if np.unique(score).size < 2 else float(roc_auc_score(labels, score))
        rows.append({"feature": name, "type": kind, "auc": max(auc, 1 - auc), "direction": "+" if auc >= 0.5 else "-"})
    out = pd.DataFrame(rows).sort_values("auc", ascending=False).reset_index(drop=True)
    out["flagged"] = out["auc"] > LEAKAGE_AUC
    return out


def _oof_target_rate(series: pd.Series, labels: np.ndarray, *, seed: int, folds: int) -> np.ndarray:
    """Out-of-fold positive rate of each row's category (so a unique id cannot score itself)."""
    values = series.astype(object).where(series.notna(), "(null)").to_numpy()
    score = np.full(len(values), labels.mean(), dtype=np.float64)
    k = int(min(folds, np.bincount(labels, minlength=2).min()))
    if k < 2:
        return score
    for tr, va in StratifiedKFold(k, shuffle=True, random_state=seed).split(values, labels):
        rates = pd.Series(labels[tr]).groupby(values[tr]).mean()
        score[va] = pd.Series(values[va]).map(rates).fillna(labels[tr].mean()).to_numpy()
    return score


@dataclass(frozen=True)
class PointInTimeReport:
    """What :func:`point_in_time_check` found."""

    feature_rows: int
    sales_rows: int
    sales_before_as_of: int
    sales_on_or_after_as_of: int
    rows_with_count_mismatch: int
    rows_with_recency_below_one_day: int

    @property
    def ok(self) -> bool:
        return self.rows_with_count_mismatch == 0 and self.rows_with_recency_below_one_day == 0

    def to_frame(self) -> pd.DataFrame:
        values = {**asdict(self), "ok": self.ok}
        return pd.DataFrame({"value": pd.Series(values, dtype=object)})


def point_in_time_check(warehouse_url: str, table: str = FEATURE_STORE) -> PointInTimeReport:
    """Recount sales around each feature row's as-of date in the warehouse (see the module docstring)."""
    from clientml_de.warehouse import connect

    warehouse = connect(warehouse_url, read_only=True)
    try:
        fs = warehouse.table(table)
        keys = fs.select("client_id", "as_of_date", "n_sales_total", "days_since_last_sale").to_pandas()
        sales = warehouse.table("sales")
        activity = sales.select("client_id", sale_day=sales.sale_date.date())
        joined = activity.join(fs.select("client_id", "as_of_date"), "client_id")
        before = joined.sale_day < joined.as_of_date
        counts = (
            joined.group_by(["client_id", "as_of_date"])
            .aggregate(
                n_before=before.cast("int64").sum(),
                n_after=(~before).cast("int64").sum(),
            )
            .to_pandas()
        )
        n_sales = int(sales.count().to_pyarrow().as_py())
    finally:
        warehouse.close()
    keys["as_of_date"] = pd.to_datetime(keys["as_of_date"])
    counts["as_of_date"] = pd.to_datetime(counts["as_of_date"])
    merged = keys.merge(counts, on=["client_id", "as_of_date"], how="left")
    n_before = merged["n_before"].fillna(0).astype(np.int64)
    n_after = merged["n_after"].fillna(0).astype(np.int64)
    used = pd.to_numeric(merged["n_sales_total"], errors="coerce").fillna(0).astype(np.int64)
    recency = pd.to_numeric(merged["days_since_last_sale"], errors="coerce")
    return PointInTimeReport(
        feature_rows=len(merged),
        sales_rows=n_sales,
        sales_before_as_of=int(n_before.sum()),
        sales_on_or_after_as_of=int(n_after.sum()),
        rows_with_count_mismatch=int((used != n_before).sum()),
        rows_with_recency_below_one_day=int((recency < 1).sum()),
    )


# --- figures ----------------------------------------------------------------------------------------------


def _save(fig: Figure, path: Path | str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    return out


def plot_missing(df: pd.DataFrame, path: Path | str) -> Path:
    table = missing_table(df)
    fig = Figure(figsize=(7, 0.28 * max(len(table), 1) + 1.3))
    ax = fig.add_subplot()
    if len(table):
        ax.barh(table["feature"][::-1], table["missing_share"][::-1], color="C3")
        ax.set(xlim=(0, 1), xlabel="share of rows with a null")
    else:
        ax.text(0.5, 0.5, "no missing values", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("Missing values by feature")
    return _save(fig, path)


def plot_numeric_distributions(
    df: pd.DataFrame, path: Path | str, columns: Sequence[str] | None = None, max_columns: int = 12
) -> Path:
    """Histograms of numeric features by label (log1p scale for long-tailed non-negative features)."""
    cols = [c for c in (columns or numeric_features(df)) if df[c].notna().any()][:max_columns]
    labels = pd.to_numeric(df[LABEL_COLUMN], errors="coerce")
    ncols = 3
    nrows = max(1, -(-len(cols) // ncols))
    fig = Figure(figsize=(4 * ncols, 2.8 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, col in zip(axes, cols, strict=False):
        values = pd.to_numeric(df[col], errors="coerce")
        finite = values.dropna()
        skewed = len(finite) and finite.min() >= 0 and finite.quantile(0.99) > 20 * max(finite.median(), 1e-9)
        shown = np.log1p(values) if skewed else values
        for label, color in ((0, "C0"), (1, "C3")):
            part = shown[labels == label].dropna()
            if len(part):
                ax.hist(part, bins=30, alpha=0.5, density=True, color=color, label=f"label {label}")
        ax.set_title(f"log1p({col})" if skewed else col, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(cols) :]:
        ax.set_axis_off()
    if cols:
        axes[0].legend(fontsize=7)
    fig.suptitle("Distributions by label (density)")
    return _save(fig, path)


def plot_label_rates(df: pd.DataFrame, path: Path | str, columns: Sequence[str] | None = None) -> Path:
    """Label rate (with Wilson 95% CI) per value of each categorical column; the dashed line is overall."""
    wanted = columns or [c for c in SEGMENT_COLUMNS if c in df.columns and df[c].notna().any()]
    cols = list(wanted) or [c for c in categorical_features(df) if df[c].notna().any()][:3]
    overall = float(pd.to_numeric(df[LABEL_COLUMN], errors="coerce").mean())
    fig = Figure(figsize=(4.5 * max(len(cols), 1), 3.6))
    axes = np.atleast_1d(fig.subplots(1, max(len(cols), 1))).ravel()
    for ax, col in zip(axes, cols, strict=False):
        table = label_rate_by(df, col).head(15)
        x = np.arange(len(table))
        err = np.vstack([table["rate"] - table["ci95_low"], table["ci95_high"] - table["rate"]])
        ax.bar(x, table["rate"], yerr=err, capsize=3, color="C0")
        ax.axhline(overall, ls="--", c="grey", lw=1)
        ax.set_xticks(x, table[col].astype(str), rotation=35, ha="right", fontsize=8)
        ax.set(title=f"label rate by {col}", ylabel="label rate")
    if not cols:
        axes[0].text(0.5, 0.5, "no categorical segment columns", ha="center", va="center")
        axes[0].set_axis_off()
    return _save(fig, path)


def plot_activity_vs_label(df: pd.DataFrame, path: Path | str, columns: Sequence[str] | None = None) -> Path:
    """Label rate per decile of each activity feature (nulls as a separate point at the left)."""
    cols = [c for c in (columns or ACTIVITY_FEATURES) if c in df.columns and df[c].notna().any()]
    ncols = 3
    nrows = max(1, -(-len(cols) // ncols))
    fig = Figure(figsize=(4.2 * ncols, 3 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    overall = float(pd.to_numeric(df[LABEL_COLUMN], errors="coerce").mean())
    for ax, col in zip(axes, cols, strict=False):
        table = binned_label_rate(df, col)
        known = table[table["bin"] != "null"]
        ax.plot(known["x"], known["rate"], marker="o")
        nulls = table[table["bin"] == "null"]
        if len(nulls) and len(known):
            ax.scatter(
                [known["x"].min()], nulls["rate"], marker="x", c="C3", label=f"null ({int(nulls['rows'].iloc[0])})"
            )
            ax.legend(fontsize=7)
        ax.axhline(overall, ls="--", c="grey", lw=1)
        ax.set(title=col, ylabel="label rate", xlabel="decile median")
        ax.title.set_fontsize(9)
    for ax in axes[len(cols) :]:
        ax.set_axis_off()
    if not cols:
        axes[0].text(0.5, 0.5, "no activity features with values", ha="center", va="center")
    fig.suptitle("Activity features vs the label (label rate per decile)")
    return _save(fig, path)


def plot_correlations(df: pd.DataFrame, path: Path | str, max_columns: int = 30) -> Path:
    """Spearman correlations between the numeric features (constant and all-null ones left out)."""
    cols = [c for c in numeric_features(df) if df[c].nunique(dropna=True) > 1][:max_columns]
    corr = df[cols].apply(pd.to_numeric, errors="coerce").corr(method="spearman") if cols else pd.DataFrame()
    size = max(4.0, 0.32 * len(cols) + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    if len(cols):
        image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
        ax.set_yticks(range(len(cols)), cols, fontsize=7)
        fig.colorbar(image, ax=ax, shrink=0.7)
    ax.set_title("Spearman correlation of numeric features")
    return _save(fig, path)


def strong_correlations(df: pd.DataFrame, threshold: float = 0.9) -> pd.DataFrame:
    """Pairs of numeric features with |Spearman| >= ``threshold`` (redundant for a linear model)."""
    cols = [c for c in numeric_features(df) if df[c].nunique(dropna=True) > 1]
    corr = df[cols].corr(method="spearman").to_numpy()
    pairs = [
        {"a": a, "b": cols[j], "spearman": float(corr[i, j])}
        for i, a in enumerate(cols)
        for j in range(i + 1, len(cols))
        if abs(corr[i, j]) >= threshold
    ]
    return pd.DataFrame(pairs, columns=["a", "b", "spearman"])


def plot_single_feature_auc(table: pd.DataFrame, path: Path | str, top: int = 25) -> Path:
    head = table.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.28 * max(len(head), 1) + 1.3))
    ax = fig.add_subplot()
    colors = ["C3" if f else "C0" for f in head["flagged"]]
    ax.barh(head["feature"], head["auc"], color=colors)
    ax.axvline(LEAKAGE_AUC, ls="--", c="C3", lw=1, label=f"leakage flag ({LEAKAGE_AUC})")
    ax.set(xlim=(0.5, 1.0), xlabel="ROC-AUC of the feature alone (max(auc, 1 - auc))")
    ax.set_title("Single-feature AUC (leakage check)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
