"""A plain pandas reference implementation of the ETL, written only for ``make bench-etl``.

It exists so that the benchmark can say how much faster the real pipeline (DuckDB / PostgreSQL, see
``clientml_de.load`` and ``clientml_de.features``) is than what a competent analyst would write by hand.
It is **not** part of the product: nothing imports it except the benchmark and the test that proves it
computes the same thing (``modules/de/tests/test_pandas_reference.py``).

What it does, the way such a script usually looks: ``pd.read_csv`` every column as text, check every
row against the source-data contract with vectorised pandas (no per-row Python loops), drop exact
duplicate rows, quarantine rule-breaking rows with their line number and reason, then compute the same
``feature_store`` columns as :func:`clientml_de.features.feature_table` for the default
``DatasetConfig`` (windows 30/60/90/180/365/730 days, periods 90 and 365 days, top-8 category and top-5
channel shares over 365 days and recencies, gaps between purchase days, as-of date = observation_date,
else the day after the latest valid sale) with ``merge`` and ``groupby``.
The result is written to Parquet (features) and CSV (quarantined rows); unlike the pipeline it does not
persist the typed ``clients`` and ``sales`` tables, which favours pandas in the comparison.

Known differences from the pipeline, none of which the generated data exercises: line numbers assume
one physical line per record; malformed lines (wrong field count, stray or unclosed quotes) are skipped
or absorbed by the CSV reader instead of being quarantined, and bytes that are not UTF-8 are not located;
whole numbers written ``2.0`` or ``1e3`` and the money limits on ``quantity`` and ``unit_price`` are not
applied; dates outside pandas' nanosecond range (years 1677-2262) are rejected; the
``feature_set_version`` / ``created_at`` bookkeeping columns are not produced.

Run: ``python modules/de/bench/pandas_reference.py --clients clients.csv --sales sales.csv --out DIR``;
it prints a JSON summary with the time of each stage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from clientml_de.contract import CLIENTS, SALES

WINDOWS = (30, 60, 90, 180, 365, 730)
PERIODS = (90, 365)
MIX = 365
TOP_CATEGORIES = 8
TOP_CHANNELS = 5
PROFILE_CATEGORIES = ("gender", "region", "segment", "acquisition_channel")

CLIENT_COLUMNS = tuple(column.name for column in CLIENTS.columns)
SALES_COLUMNS = tuple(column.name for column in SALES.columns)
_DATE = r"\d{4}-\d{2}-\d{2}"
_ISO_TIMESTAMP = _DATE + r"([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
_INTEGER = r"[+-]?\d+"


@dataclass
class Checked:
    """One validated file: typed valid rows, quarantined rows and the accounting."""

    valid: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int
    duplicates: int

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "rows_loaded": len(self.valid),
            "rows_rejected": len(self.rejected),
            "duplicates": self.duplicates,
        }


@dataclass
class Result:
    clients: Checked
    sales: Checked
    features: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Reading and validation
# --------------------------------------------------------------------------------------------------


def read_raw(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Every column as text, exactly as read; ``_line`` is the line number (header = line 1)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="warn")
    raw.columns = raw.columns.str.strip()
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: required column(s) missing: {', '.join(missing)}")
    raw["_line"] = np.arange(2, len(raw) + 2)
    return raw


class _Rules:
    """Collects (failing-rows mask, reason) pairs for one file and turns them into a quarantine."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.rows = rows
        self.problems: list[tuple[pd.Series, str]] = []

    def text(self, column: str) -> pd.Series:
        """Trimmed text; a column absent from the file reads as all empty."""
        if column not in self.rows.columns:
            return pd.Series("", index=self.rows.index)
        return self.rows[column].str.strip()

    def check(self, failing: pd.Series, reason: str) -> None:
        self.problems.append((failing, reason))

    def required(self, column: str) -> pd.Series:
        text = self.text(column)
        self.check(text == "", f"{column}: required value is empty")
        return text.where(text != "")

    def category(self, column: str) -> pd.Series:
        text = self.text(column)
        return text.where(text != "")

    def date(self, column: str, required: bool = False) -> pd.Series:
        text = self.text(column)
        if required:
            self.check(text == "", f"{column}: required value is empty")
        parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        parsed = parsed.where(text.str.fullmatch(_DATE))
        self.check((text != "") & parsed.isna(), f"{column}: not a calendar date in YYYY-MM-DD form")
        return parsed

    def timestamp(self, column: str) -> pd.Series:
        text = self.text(column)
        self.check(text == "", f"{column}: required value is empty")
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)
        parsed = parsed.where(text.str.fullmatch(_ISO_TIMESTAMP))
        self.check((text != "") & parsed.isna(), f"{column}: not an ISO 8601 date or timestamp")
        return parsed

    def number(
        self,
        column: str,
        required: bool = False,
        low: float | None = None,
        high: float | None = None,
        integer: bool = False,
    ) -> pd.Series:
        text = self.text(column)
        if required:
            self.check(text == "", f"{column}: required value is empty")
        value = pd.to_numeric(text, errors="coerce")
        if integer:
            value = value.where(text.str.fullmatch(_INTEGER))
            self.check((text != "") & value.isna(), f"{column}: not a whole number")
        else:
            self.check((text != "") & ~np.isfinite(value), f"{column}: not a finite number")
        if low is not None:
            self.check(value < low, f"{column}: must be >= {low:g}")
        if high is not None:
            self.check(value > high, f"{column}: must be <= {high:g}")
        return value

    def label(self, column: str) -> pd.Series:
        text = self.text(column)
        self.check(~text.isin(["", "0", "1"]), f"{column}: must be 0, 1 or empty")
        return pd.to_numeric(text.where(text.isin(["0", "1"])))

    def unique(self, key: pd.Series, column: str) -> None:
        """Among rows that pass every other rule, the first one keeps the key."""
        ok = ~self.failing()
        self.check(ok & key.where(ok).duplicated(keep="first"), f"{column}: duplicate value")

    def failing(self) -> pd.Series:
        failing = pd.Series(False, index=self.rows.index)
        for mask, _ in self.problems:
            failing |= mask
        return failing

    def quarantine(self, source_file: str) -> pd.DataFrame:
        failing = self.failing()
        bad = self.rows[failing]
        reasons = pd.Series("", index=bad.index)
        for mask, reason in self.problems:
            hit = mask[failing]
            reasons[hit] = reasons[hit] + np.where(reasons[hit] == "", "", "; ") + reason
        data_columns = [c for c in bad.columns if c != "_line"]
        return pd.DataFrame(
            {
                "source_file": source_file,
                "line_number": bad["_line"],
                "raw_record": bad[data_columns].to_json(orient="records", lines=True).splitlines() if len(bad) else [],
                "reason": reasons,
            }
        )


def _split(raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop exact duplicate rows (the first copy is kept); return the rest and how many were dropped."""
    data_columns = [c for c in raw.columns if c != "_line"]
    duplicated = raw.duplicated(subset=data_columns, keep="first")
    return raw[~duplicated], int(duplicated.sum())


def validate_clients(path: Path) -> Checked:
    raw = read_raw(path, ("client_id", "signup_date"))
    rows, duplicates = _split(raw)
    rules = _Rules(rows)
    typed = pd.DataFrame(
        {
            "client_id": rules.required("client_id"),
            "signup_date": rules.date("signup_date", required=True),
            "birth_date": rules.date("birth_date"),
            **{name: rules.category(name) for name in PROFILE_CATEGORIES},
            "annual_income": rules.number("annual_income", low=0),
            "label": rules.label("label"),
            "observation_date": rules.date("observation_date"),
        }
    )
    rules.unique(typed["client_id"], "client_id")
    failing = rules.failing()
    return Checked(typed[~failing], rules.quarantine(str(path)), len(raw), duplicates)


def validate_sales(path: Path, client_ids: pd.Series) -> Checked:
    raw = read_raw(path, ("sale_id", "client_id", "sale_date", "product_category", "quantity", "unit_price"))
    rows, duplicates = _split(raw)
    rules = _Rules(rows)
    typed = pd.DataFrame(
        {
            "sale_id": rules.required("sale_id"),
            "client_id": rules.required("client_id"),
            "sale_date": rules.timestamp("sale_date"),
            "product_category": rules.required("product_category"),
            "quantity": rules.number("quantity", required=True, low=1, integer=True),
            "unit_price": rules.number("unit_price", required=True, low=0),
            "discount": rules.number("discount", low=0, high=1),
            "sales_channel": rules.category("sales_channel"),
        }
    )
    known = typed["client_id"].isin(client_ids)
    rules.check(typed["client_id"].notna() & ~known, "client_id: unknown, not in clients.client_id")
    rules.unique(typed["sale_id"], "sale_id")
    failing = rules.failing()
    valid = typed[~failing].copy()
    valid["discount"] = valid["discount"].fillna(0.0)
    return Checked(valid, rules.quarantine(str(path)), len(raw), duplicates)


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def slug(value: str) -> str:
    """A column-name-safe form of a category value (same rule as the pipeline)."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")[:40] or "blank"


def top_values(values: pd.Series, limit: int) -> list[str]:
    """The ``limit`` most frequent values (ties by value), one per slug."""
    counts = values.value_counts().rename("n").rename_axis("value").reset_index()
    counts = counts.sort_values(["n", "value"], ascending=[False, True]).head(limit)
    chosen: list[str] = []
    for value in counts["value"]:
        if slug(value) not in {slug(v) for v in chosen}:
            chosen.append(value)
    return chosen


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    numerator, denominator = numerator.astype("float64"), denominator.astype("float64")
    return numerator / denominator.where(denominator != 0)


def _per_value(recent: pd.DataFrame, s: pd.DataFrame, column: str, chosen: list[str]) -> pd.DataFrame:
    """Per client: sales of each chosen value in the mix window, days since its latest sale, distinct values."""
    counts = recent[recent[column].isin(chosen)].groupby(["client_id", column]).size().unstack(fill_value=0)
    latest = s[s[column].isin(chosen)].groupby(["client_id", column])["days_before"].min().unstack()
    out = pd.concat(
        [
            counts.reindex(columns=chosen, fill_value=0).add_prefix("n_"),
            latest.reindex(columns=chosen).add_prefix("since_"),
            recent.groupby("client_id")[column].nunique().rename("distinct"),
        ],
        axis=1,
    )
    return out


def _gaps(s: pd.DataFrame) -> pd.DataFrame:
    """Per client, over distinct purchase days: how many, and the gap between the latest two."""
    days = s[["client_id", "days_before"]].drop_duplicates().sort_values(["client_id", "days_before"])
    rank = days.groupby("client_id").cumcount()
    previous = days[rank == 1].set_index("client_id")["days_before"]
    return pd.DataFrame({"active_days": days.groupby("client_id").size(), "previous_before": previous})


def build_features(clients: pd.DataFrame, sales: pd.DataFrame, as_of_date: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per client: the feature_store columns of the default dataset config."""
    if as_of_date is None and len(sales):
        as_of_date = sales["sale_date"].max().normalize() + pd.Timedelta(days=1)
    base = clients.copy()
    base["as_of_date"] = base["observation_date"].fillna(as_of_date)

    categories = top_values(sales["product_category"], TOP_CATEGORIES)
    channels = top_values(sales["sales_channel"].dropna(), TOP_CHANNELS)

    used = ["client_id", "sale_date", "product_category", "quantity", "unit_price", "discount", "sales_channel"]
    s = sales[used].merge(base[["client_id", "as_of_date"]], on="client_id")
    s["days_before"] = (s["as_of_date"] - s["sale_date"].dt.normalize()).dt.days
    s = s[s["days_before"] > 0].copy()  # only activity strictly before the as-of date
    # Money in whole millionths, summed exactly, as the pipeline's DECIMAL(38, 6).
    s["micros"] = np.round(s["quantity"] * s["unit_price"] * (1 - s["discount"]) * 1e6).astype("int64")
    ranges = {(0, w) for w in WINDOWS} | {(0, p) for p in PERIODS} | {(p, 2 * p) for p in PERIODS} | {(0, MIX)}
    for newest, oldest in ranges:
        hit = (s["days_before"] > newest) & (s["days_before"] <= oldest)
        s[f"n_{newest}_{oldest}"] = hit
        s[f"spend_{newest}_{oldest}"] = s["micros"].where(hit, 0)
        s[f"discounted_{newest}_{oldest}"] = hit & (s["discount"] > 0)
    in_mix = s["days_before"] <= MIX
    s["discount_in_mix"] = s["discount"].where(in_mix, 0.0)
    aggregations: dict[str, tuple[str, str]] = {
        "n_total": ("micros", "size"),
        "spend_total": ("micros", "sum"),
        "last_before": ("days_before", "min"),
        "first_before": ("days_before", "max"),
        "discount_sum": ("discount_in_mix", "sum"),
    }
    for newest, oldest in ranges:
        for kind in ("n", "spend", "discounted"):
            aggregations[f"{kind}_{newest}_{oldest}"] = (f"{kind}_{newest}_{oldest}", "sum")
    per_client = s.groupby("client_id").agg(**aggregations)
    recent = s[in_mix]
    per_client = per_client.join(_gaps(s))
    per_client = per_client.join(_per_value(recent, s, "product_category", categories).add_prefix("cat_"))
    per_client = per_client.join(_per_value(recent, s, "sales_channel", channels).add_prefix("chan_"))

    t = base.merge(per_client, left_on="client_id", right_index=True, how="left")

    def count(name: str) -> pd.Series:
        return t[name].fillna(0).astype("int64")

    def money(name: str) -> pd.Series:
        return t[name].fillna(0) / 1e6

    out = pd.DataFrame(
        {
            "client_id": t["client_id"],
            "as_of_date": t["as_of_date"],
            "label": t["label"],
            "age_years": (t["as_of_date"] - t["birth_date"]).dt.days / 365.25,
            "tenure_days": (t["as_of_date"] - t["signup_date"]).dt.days,
            **{name: t[name] for name in PROFILE_CATEGORIES},
            "annual_income": t["annual_income"],
            "n_sales_total": count("n_total"),
            "spend_total": money("spend_total"),
        }
    )
    for w in WINDOWS:
        out[f"n_sales_{w}d"] = count(f"n_0_{w}")
        out[f"spend_{w}d"] = money(f"spend_0_{w}")
        out[f"avg_sale_value_{w}d"] = _ratio(money(f"spend_0_{w}"), count(f"n_0_{w}"))
        out[f"discount_share_{w}d"] = _ratio(count(f"discounted_0_{w}"), count(f"n_0_{w}"))
    out["days_since_last_sale"] = t["last_before"]
    out["days_since_first_sale"] = t["first_before"]
    out["avg_sale_value"] = _ratio(money("spend_total"), count("n_total"))
    for p in PERIODS:
        last, before = f"0_{p}", f"{p}_{2 * p}"
        out[f"n_sales_prev_{p}d"] = count(f"n_{before}")
        out[f"spend_prev_{p}d"] = money(f"spend_{before}")
        out[f"n_sales_ratio_{p}d"] = _ratio(count(f"n_{last}"), count(f"n_{before}"))
        out[f"n_sales_diff_{p}d"] = count(f"n_{last}") - count(f"n_{before}")
        out[f"spend_ratio_{p}d"] = _ratio(t[f"spend_{last}"].fillna(0), t[f"spend_{before}"].fillna(0))
        out[f"spend_diff_{p}d"] = (t[f"spend_{last}"].fillna(0) - t[f"spend_{before}"].fillna(0)) / 1e6
    mean_gap = _ratio(t["first_before"] - t["last_before"], t["active_days"] - 1)
    last_gap = t["previous_before"] - t["last_before"]
    out["mean_gap_days"] = mean_gap
    out["last_gap_days"] = last_gap
    out["last_gap_vs_mean_gap"] = _ratio(last_gap, mean_gap)
    out["days_since_last_sale_vs_mean_gap"] = _ratio(t["last_before"], mean_gap)
    n_mix = count(f"n_0_{MIX}")
    out[f"distinct_categories_{MIX}d"] = count("cat_distinct")
    out[f"distinct_channels_{MIX}d"] = count("chan_distinct")
    out[f"avg_discount_{MIX}d"] = _ratio(t["discount_sum"].fillna(0), n_mix)
    for prefix, name, values in (("cat", "category", categories), ("chan", "channel", channels)):
        for value in values:
            out[f"share_{name}_{slug(value)}_{MIX}d"] = _ratio(count(f"{prefix}_n_{value}"), n_mix)
    for prefix, name, values in (("cat", "category", categories), ("chan", "channel", channels)):
        for value in values:
            out[f"days_since_last_{name}_{slug(value)}"] = t[f"{prefix}_since_{value}"]
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# The whole job
# --------------------------------------------------------------------------------------------------


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - started


def run(
    clients_path: Path,
    sales_path: Path,
    out_dir: Path | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Result:
    """Validate both files, build the features and (with ``out_dir``) write them out."""
    seconds: dict[str, float] = {}
    with _timed(seconds, "load_clients"):
        clients = validate_clients(clients_path)
    if on_stage:
        on_stage("load_clients")
    with _timed(seconds, "load_sales"):
        sales = validate_sales(sales_path, clients.valid["client_id"])
    if on_stage:
        on_stage("load_sales")
    with _timed(seconds, "build_features"):
        features = build_features(clients.valid, sales.valid)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            features.to_parquet(out_dir / "feature_store.parquet", index=False)
            pd.concat([clients.rejected, sales.rejected]).to_csv(out_dir / "rejected_rows.csv", index=False)
    if on_stage:
        on_stage("build_features")
    return Result(clients, sales, features, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=Path, required=True)
    parser.add_argument("--sales", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None, help="directory for feature_store.parquet")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.clients, args.sales, args.out)
    summary: dict[str, Any] = {
        "seconds": {**result.seconds, "total": time.perf_counter() - started},
        "clients": result.clients.counts,
        "sales": result.sales.counts,
        "feature_rows": len(result.features),
    }
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
