"""The feature definition: one Ibis expression that DuckDB, PostgreSQL and Spark all execute.

``feature_store`` has one row per client and as-of date. A client's as-of date is its
``observation_date``, else the dataset's as-of date (from the dataset config, else the day after the
latest sale, else, when no sale is loaded at all, the day after the latest signup). Activity features
only use sales dated strictly before the as-of date.
The columns are documented in ``modules/de/README.md`` ("feature_store columns").

Money is summed as DECIMAL so that every engine, in any aggregation order, gives the same value.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from clientml_de.config import DatasetConfig
from clientml_de.contract import BOOKKEEPING_COLUMNS, FEATURE_STORE, KEY_COLUMNS, LABEL_COLUMN, ColumnType
from clientml_de.warehouse import Warehouse

PROFILE_CATEGORIES = ("gender", "region", "segment", "acquisition_channel")
# Bump when the meaning of a feature changes; the version also covers the dataset's feature knobs.
FEATURE_CODE_VERSION = 2  # 2: a boolean extra column stays boolean (was 0/1)
_MONEY = "decimal(38, 6)"


class FeatureBuildError(Exception):
    """The inputs do not allow a feature_store to be built (e.g. no as-of date can be determined)."""


@dataclass(frozen=True)
class FeaturePlan:
    """Data-dependent choices of one build (which categories get share columns, the as-of default)."""

    default_as_of: date | None
    categories: tuple[str, ...]
    channels: tuple[str, ...]
    config: DatasetConfig

    @property
    def version(self) -> str:
        spec = {
            "code": FEATURE_CODE_VERSION,
            "features": self.config.features.model_dump(mode="json"),
            "extras": [c.model_dump(mode="json") for c in self.config.extra_columns],
            "categories": self.categories,
            "channels": self.channels,
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return f"fs{FEATURE_CODE_VERSION}-{digest}"


def slug(value: str) -> str:
    """A column-name-safe form of a category value."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")[:40] or "blank"


def _top_values(sales: ir.Table, column: str, limit: int) -> tuple[str, ...]:
    if limit == 0:
        return ()
    present = sales.filter(sales[column].notnull())
    counts = present.group_by(column).aggregate(n=present.count()).order_by([ibis.desc("n"), column]).limit(limit)
    values = counts.to_pyarrow()[column].to_pylist()
    seen: set[str] = set()
    unique = []
    for value in values:
        if slug(value) not in seen:  # two values with the same slug would collide as column names
            seen.add(slug(value))
            unique.append(value)
    return tuple(unique)


def plan(warehouse: Warehouse, config: DatasetConfig) -> FeaturePlan:
    """Decide the data-dependent parts of the feature set from the loaded tables."""
    clients, sales = warehouse.table("clients"), warehouse.table("sales")
    default_as_of = config.as_of_date
    if default_as_of is None:
        latest = sales.sale_date.max().to_pyarrow().as_py()
        if latest is not None:
            default_as_of = (latest.date() if isinstance(latest, datetime) else latest) + timedelta(days=1)
    if default_as_of is None:  # no sale loaded (none in the file, or all quarantined): still reproducible
        latest_signup = clients.signup_date.max().to_pyarrow().as_py()
        if latest_signup is not None:
            default_as_of = latest_signup + timedelta(days=1)
    if default_as_of is None and clients.observation_date.isnull().any().to_pyarrow().as_py():
        raise FeatureBuildError(
            "some clients have no observation_date, the dataset config sets no as_of_date and there are "
            "no sales or signups to derive one from: set as_of_date in the dataset config"
        )
    return FeaturePlan(
        default_as_of=default_as_of,
        categories=_top_values(sales, "product_category", config.features.top_categories),
        channels=_top_values(sales, "sales_channel", config.features.top_channels),
        config=config,
    )


# The warehouse type of the feature an extra column of each declared type becomes (see extra_feature).
EXTRA_FEATURE_TYPES: dict[ColumnType, str] = {
    ColumnType.CATEGORY: "string",
    ColumnType.NUMBER: "float64",
    ColumnType.INTEGER: "int64",
    ColumnType.DATE: "int64",
    ColumnType.BOOLEAN: "boolean",
}


def extra_feature(name: str, kind: ColumnType, column: ir.Value, as_of: ir.DateValue) -> tuple[str, ir.Value]:
    """The feature_store column ``(name, expression)`` of a declared extra client column.

    Every declared type keeps its meaning: a category stays a string, a number a float64, an integer an
    int64 and a boolean a boolean (null stays null). A date becomes ``days_since_<name>``: whole days
    from the date to the row's as-of date (int64; negative for a date after it, null for no date), since
    a model compares numbers, and a day count relative to the as-of date means the same at every as-of
    date. Raises ValueError for a type an extra column cannot have.
    """
    target = EXTRA_FEATURE_TYPES.get(kind)
    if target is None:
        raise ValueError(f"an extra column cannot have type {kind!r}")
    if kind is ColumnType.DATE:
        return f"days_since_{name}", as_of.delta(column, unit="day").cast(target)
    return name, column.cast(target)


def _ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    return numerator.cast("float64") / denominator.cast("float64").nullif(0.0)


def feature_table(clients: ir.Table, sales: ir.Table, plan: FeaturePlan, created_at: datetime) -> ir.Table:
    """The feature_store rows for the given clients and sales (see the module docstring)."""
    windows = plan.config.features.windows_days
    longest = windows[-1]
    as_of = clients.observation_date
    if plan.default_as_of is not None:
        as_of = ibis.coalesce(as_of, ibis.literal(plan.default_as_of))
    base = clients.mutate(as_of_date=as_of)

    activity = sales.select(
        "client_id",
        "product_category",
        "sales_channel",
        "discount",
        sale_day=sales.sale_date.date(),
        amount=(sales.quantity.cast("float64") * sales.unit_price * (1 - sales.discount)).cast(_MONEY),
    )
    keyed = base.select(*KEY_COLUMNS)
    joined = activity.join(keyed, "client_id")
    joined = joined.filter(joined.sale_day < joined.as_of_date)

    def in_window(days: int) -> ir.BooleanValue:
        # A date comparison, not a day difference: PostgreSQL computes differences in slow numerics.
        return joined.sale_day >= joined.as_of_date - ibis.interval(days=days)

    in_longest = in_window(longest)

    aggregates: dict[str, ir.Value] = {
        "n_sales_total": joined.count(),
        "spend_total": joined.amount.sum(),
        "_last_sale_day": joined.sale_day.max(),
        "_first_sale_day": joined.sale_day.min(),
        f"distinct_categories_{longest}d": joined.product_category.nunique(where=in_longest),
        f"_discounted_{longest}d": joined.count(where=in_longest & (joined.discount > 0)),
        f"_discount_sum_{longest}d": ibis.ifelse(in_longest, joined.discount.cast(_MONEY), 0).sum(),
    }
    for w in windows:
        aggregates[f"n_sales_{w}d"] = joined.count(where=in_window(w))
        aggregates[f"spend_{w}d"] = ibis.ifelse(in_window(w), joined.amount, 0).sum()
    for value in plan.categories:
        hit = in_longest & (joined.product_category == value).fill_null(False)
        aggregates[f"_cat_{slug(value)}"] = joined.count(where=hit)
    for value in plan.channels:
        # A NULL condition counts differently across engines: make it FALSE.
        hit = in_longest & (joined.sales_channel == value).fill_null(False)
        aggregates[f"_chan_{slug(value)}"] = joined.count(where=hit)
    per_client = joined.group_by(list(KEY_COLUMNS)).aggregate(**aggregates)

    table = base.left_join(per_client, list(KEY_COLUMNS))
    n_longest = ibis.coalesce(table[f"n_sales_{longest}d"], 0)
    columns: dict[str, ir.Value] = {
        "client_id": base.client_id,
        "as_of_date": base.as_of_date,
        LABEL_COLUMN: base.label,
        "age_years": (base.as_of_date.delta(base.birth_date, unit="day").cast("float64") / 365.25),
        "tenure_days": base.as_of_date.delta(base.signup_date, unit="day").cast("int64"),
    }
    for name in PROFILE_CATEGORIES:
        columns[name] = base[name]
    columns["annual_income"] = base.annual_income
    for extra in plan.config.extra_columns:
        name, column = extra_feature(extra.name, extra.type, base[extra.name], base.as_of_date)
        columns[name] = column
    columns["n_sales_total"] = ibis.coalesce(table.n_sales_total, 0).cast("int64")
    columns["spend_total"] = ibis.coalesce(table.spend_total, 0).cast("float64")
    for w in windows:
        columns[f"n_sales_{w}d"] = ibis.coalesce(table[f"n_sales_{w}d"], 0).cast("int64")
        columns[f"spend_{w}d"] = ibis.coalesce(table[f"spend_{w}d"], 0).cast("float64")
    columns["days_since_last_sale"] = base.as_of_date.delta(table._last_sale_day, unit="day").cast("int64")
    columns["days_since_first_sale"] = base.as_of_date.delta(table._first_sale_day, unit="day").cast("int64")
    columns["avg_sale_value"] = _ratio(table.spend_total, table.n_sales_total)
    for shorter, longer in itertools.pairwise(windows):
        # Rate in the recent window over the rate in the longer one: < 1 means slowing down.
        columns[f"trend_{shorter}d_vs_{longer}d"] = _ratio(
            table[f"n_sales_{shorter}d"].cast("float64") * longer,
            table[f"n_sales_{longer}d"].cast("float64") * shorter,
        )
    columns[f"distinct_categories_{longest}d"] = ibis.coalesce(table[f"distinct_categories_{longest}d"], 0).cast(
        "int64"
    )
    columns[f"discount_share_{longest}d"] = _ratio(table[f"_discounted_{longest}d"], n_longest)
    columns[f"avg_discount_{longest}d"] = _ratio(table[f"_discount_sum_{longest}d"], n_longest)
    for value in plan.categories:
        columns[f"share_category_{slug(value)}_{longest}d"] = _ratio(table[f"_cat_{slug(value)}"], n_longest)
    for value in plan.channels:
        columns[f"share_channel_{slug(value)}_{longest}d"] = _ratio(table[f"_chan_{slug(value)}"], n_longest)
    columns["feature_set_version"] = ibis.literal(plan.version)
    columns["created_at"] = ibis.literal(created_at, type="timestamp")
    return table.select(**columns)


def _loose(dtype: dt.DataType) -> dt.DataType:
    return dtype.copy(nullable=True)


def keep_created_at(new: ir.Table, old: ir.Table) -> ir.Table:
    """Rows whose content did not change keep their old ``created_at``, so a rebuild is a no-op."""
    content = [c for c in new.columns if c not in BOOKKEEPING_COLUMNS[1:]]
    if [c for c in old.columns if c != "created_at"] != content:
        return new
    if any(_loose(new[c].type()) != _loose(old[c].type()) for c in content):  # a changed type: all rows are new
        return new
    compared = [c for c in content if c not in KEY_COLUMNS]
    previous = old.select(*KEY_COLUMNS, _created=old.created_at, **{f"_old_{c}": old[c] for c in compared})
    joined = new.left_join(previous, list(KEY_COLUMNS))
    unchanged = ibis.and_(*(joined[c].identical_to(joined[f"_old_{c}"]) for c in compared))
    created = ibis.ifelse(unchanged, joined._created, joined.created_at)
    return joined.select(*[joined[c] for c in content], created_at=created)


def build_feature_store(warehouse: Warehouse, config: DatasetConfig, created_at: datetime | None = None) -> int:
    """Build ``feature_store`` from ``clients`` and ``sales`` and replace it atomically; return its rows."""
    feature_plan = plan(warehouse, config)
    stamp = (created_at or datetime.now()).replace(microsecond=0)
    new = feature_table(warehouse.table("clients"), warehouse.table("sales"), feature_plan, stamp)
    if warehouse.has_table(FEATURE_STORE):
        new = keep_created_at(new, warehouse.table(FEATURE_STORE))
    warehouse.replace_table(FEATURE_STORE, new)
    count = warehouse.table(FEATURE_STORE).count().to_pyarrow().as_py()
    return int(count)
