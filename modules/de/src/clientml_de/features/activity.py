"""Activity features: what a client's sales strictly before its as-of date say.

:func:`aggregates` reduces the sales to a few relations of internal aggregates (names starting with
``_``), each with one row per ``(client_id, as_of_date)`` that has activity; :func:`columns` turns them,
left-joined to the clients, into the feature_store columns documented in ``modules/de/README.md``
("feature_store columns").

A day range ``(newest, oldest]`` is the sales dated from ``oldest`` days before the as-of date up to,
not including, ``newest`` days before it: the window of the last W days is ``(0, W]`` and the period
before the last P days is ``(P, 2P]``. Ratios are null, never infinite, when their denominator is 0 or
null.

Each sale is grouped once by how long before the as-of date it is (the bucket between two consecutive
range boundaries), once by category, once by channel and once by day; the windows and periods are then
sums of buckets, and the per-value columns a pivot, over relations a tenth of the size or less. Measured
faster on DuckDB and PostgreSQL than one grouping with a filtered aggregate per range, value and window
(``modules/de/README.md``, "What it costs"), and it grows little with more windows or values.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from clientml_de.contract import KEY_COLUMNS
from clientml_de.features.plan import FeaturePlan, slug

MONEY = "decimal(38, 6)"
# A sum of counts, as the engines type it (DuckDB HUGEINT, PostgreSQL NUMERIC): typed so, the final cast
# to int64 is emitted, where Ibis drops a cast to the type it believes a column has already.
_COUNT_SUM = "decimal(38, 0)"
_KEYS = list(KEY_COLUMNS)


def ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """``numerator / denominator`` as float64; null when the denominator is 0 or null (never inf or NaN)."""
    return numerator.cast("float64") / denominator.cast("float64").nullif(0.0)


def _ranges(plan: FeaturePlan) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The day ranges whose sales are counted, and those whose spend is summed (see the module docstring)."""
    knobs = plan.config.features
    windows = {(0, w) for w in knobs.windows_days}
    periods = {(0, p) for p in knobs.periods_days} | {(p, 2 * p) for p in knobs.periods_days}
    return sorted(windows | periods | {(0, knobs.mix_window_days)}), sorted(windows | periods)


def _sales_before(sales: ir.Table, keys: ir.Table, boundaries: list[int], mix_days: int) -> ir.Table:
    """The sales of each key dated strictly before its as-of date, with ``sale_day``, ``amount`` (money),
    ``_in_mix`` (within the mix window) and ``_bucket``: i for ``(boundaries[i-1], boundaries[i]]`` days
    before the as-of date (from 0), ``len(boundaries)`` for older sales."""
    activity = sales.select(
        "client_id",
        "product_category",
        "sales_channel",
        "discount",
        sale_day=sales.sale_date.date(),
        amount=(sales.quantity.cast("float64") * sales.unit_price * (1 - sales.discount)).cast(MONEY),
    )
    # The first day of each range, once per client: comparing every sale with a date is cheap on every
    # engine, where date minus interval per sale (a timestamp in DuckDB) or a day difference (numerics in
    # PostgreSQL) is not.
    starts = {days: f"_since_{days}" for days in sorted({*boundaries, mix_days})}
    keyed = keys.mutate(
        **{name: (keys.as_of_date - ibis.interval(days=days)).cast("date") for days, name in starts.items()}
    )
    joined = activity.join(keyed, "client_id")
    joined = joined.filter(joined.sale_day < joined.as_of_date)
    bucket = ibis.cases(
        *((joined.sale_day >= joined[starts[b]], i) for i, b in enumerate(boundaries)), else_=len(boundaries)
    )
    return joined.select(
        *_KEYS,
        "product_category",
        "sales_channel",
        "discount",
        "sale_day",
        "amount",
        _bucket=bucket,
        _in_mix=joined.sale_day >= joined[starts[mix_days]],
    )


def _by_range(joined: ir.Table, plan: FeaturePlan, boundaries: list[int]) -> ir.Table:
    """Counts, spend and discounts over every day range, totals, from one grouping by bucket."""
    knobs = plan.config.features
    buckets = joined.group_by([*_KEYS, "_bucket"]).aggregate(
        n=joined.count(),
        spend=joined.amount.sum(),
        discounted=joined.count(where=joined.discount > 0),
        discount_sum=joined.discount.cast(MONEY).sum(),
    )

    def within(newest: int, oldest: int) -> ir.BooleanValue:
        first = 0 if newest == 0 else boundaries.index(newest) + 1
        return buckets._bucket.between(first, boundaries.index(oldest))

    counted, summed = _ranges(plan)
    mix = within(0, knobs.mix_window_days)
    aggregates: dict[str, ir.Value] = {
        "_n_total": buckets.n.sum().cast(_COUNT_SUM),
        "_spend_total": buckets.spend.sum(),
        "_discount_sum_mix": buckets.discount_sum.sum(where=mix),
    }
    for newest, oldest in counted:
        aggregates[f"_n_{newest}_{oldest}"] = buckets.n.sum(where=within(newest, oldest)).cast(_COUNT_SUM)
    for newest, oldest in summed:
        aggregates[f"_spend_{newest}_{oldest}"] = buckets.spend.sum(where=within(newest, oldest))
    for w in knobs.windows_days:
        aggregates[f"_discounted_0_{w}"] = buckets.discounted.sum(where=within(0, w)).cast(_COUNT_SUM)
    return buckets.group_by(_KEYS).aggregate(**aggregates)


def _by_value(joined: ir.Table, plan: FeaturePlan, kind: str, column: str, values: tuple[str, ...]) -> ir.Table:
    """Per chosen value of ``column``: sales in the mix window and the latest day; distinct categories."""
    present = joined.filter(joined[column].notnull())
    grouped = present.group_by([*_KEYS, column]).aggregate(
        n_mix=present.count(where=present._in_mix), last_day=present.sale_day.max()
    )
    aggregates: dict[str, ir.Value] = {f"_distinct_{kind}_mix": grouped.count(where=grouped.n_mix > 0)}
    for value in values:
        is_value = grouped[column] == value
        aggregates[f"_{kind}_{slug(value)}_mix"] = grouped.n_mix.sum(where=is_value).cast(_COUNT_SUM)
        aggregates[f"_last_{kind}_{slug(value)}"] = grouped.last_day.max(where=is_value)
    return grouped.group_by(_KEYS).aggregate(**aggregates)


def _purchase_days(joined: ir.Table) -> ir.Table:
    """First, latest and previous (the one before the latest) purchase day, and how many days had one."""
    days = joined.select(*_KEYS, "sale_day").distinct()
    span = days.group_by(_KEYS).aggregate(
        _first_day=days.sale_day.min(), _last_day=days.sale_day.max(), _active_days=days.count()
    )
    earlier = days.join(span, _KEYS)
    earlier = earlier.filter(earlier.sale_day < earlier._last_day)
    previous = earlier.group_by(_KEYS).aggregate(_previous_day=earlier.sale_day.max())
    return span.left_join(previous, _KEYS).select(span, previous._previous_day)


def aggregates(sales: ir.Table, keyed: ir.Table, plan: FeaturePlan) -> list[ir.Table]:
    """Relations keyed by ``client_id, as_of_date`` (the keys of ``keyed`` with activity) of internal
    aggregates, for :func:`columns` once left-joined to the clients.

    ``sales`` is the warehouse's ``sales`` table. Only sales dated strictly before the row's as-of date
    are read. Money is summed as ``DECIMAL(38, 6)`` so that every engine, in any order, gives one value.
    """
    counted, _ = _ranges(plan)
    boundaries = sorted({oldest for _, oldest in counted})
    joined = _sales_before(sales, keyed, boundaries, plan.config.features.mix_window_days)
    return [
        _by_range(joined, plan, boundaries),
        _by_value(joined, plan, "cat", "product_category", plan.categories),
        _by_value(joined, plan, "chan", "sales_channel", plan.channels),
        _purchase_days(joined),
    ]


def columns(table: ir.Table, as_of: ir.DateValue, plan: FeaturePlan) -> dict[str, ir.Value]:
    """The activity columns of feature_store, from :func:`aggregates`' relations left-joined to the clients.

    A client without activity before its as-of date has 0 counts and spend, and null recencies, gaps and
    ratios.
    """
    knobs = plan.config.features

    def count(name: str) -> ir.IntegerValue:
        return ibis.coalesce(table[name], 0).cast("int64")

    def money(name: str) -> ir.NumericValue:
        return ibis.coalesce(table[name], 0)  # DECIMAL: differences stay exact before the float cast

    def days_since(name: str) -> ir.IntegerValue:
        return as_of.delta(table[name], unit="day").cast("int64")

    out: dict[str, ir.Value] = {
        "n_sales_total": count("_n_total"),
        "spend_total": money("_spend_total").cast("float64"),
    }
    for w in knobs.windows_days:
        out[f"n_sales_{w}d"] = count(f"_n_0_{w}")
        out[f"spend_{w}d"] = money(f"_spend_0_{w}").cast("float64")
        out[f"avg_sale_value_{w}d"] = ratio(money(f"_spend_0_{w}"), table[f"_n_0_{w}"])
        out[f"discount_share_{w}d"] = ratio(count(f"_discounted_0_{w}"), table[f"_n_0_{w}"])
    out["days_since_last_sale"] = days_since("_last_day")
    out["days_since_first_sale"] = days_since("_first_day")
    out["avg_sale_value"] = ratio(table._spend_total, table._n_total)
    for p in knobs.periods_days:
        last, before = f"0_{p}", f"{p}_{2 * p}"
        out[f"n_sales_prev_{p}d"] = count(f"_n_{before}")
        out[f"spend_prev_{p}d"] = money(f"_spend_{before}").cast("float64")
        out[f"n_sales_ratio_{p}d"] = ratio(count(f"_n_{last}"), table[f"_n_{before}"])
        out[f"n_sales_diff_{p}d"] = count(f"_n_{last}") - count(f"_n_{before}")
        out[f"spend_ratio_{p}d"] = ratio(money(f"_spend_{last}"), table[f"_spend_{before}"])
        out[f"spend_diff_{p}d"] = (money(f"_spend_{last}") - money(f"_spend_{before}")).cast("float64")
    # Gaps between distinct purchase days: the mean is the span over the number of gaps.
    mean_gap = ratio(days_since("_first_day") - days_since("_last_day"), table._active_days - 1)
    last_gap = table._last_day.delta(table._previous_day, unit="day").cast("int64")
    out["mean_gap_days"] = mean_gap
    out["last_gap_days"] = last_gap
    out["last_gap_vs_mean_gap"] = ratio(last_gap, mean_gap)
    out["days_since_last_sale_vs_mean_gap"] = ratio(days_since("_last_day"), mean_gap)
    m = knobs.mix_window_days
    n_mix = count(f"_n_0_{m}")
    out[f"distinct_categories_{m}d"] = count("_distinct_cat_mix")
    out[f"distinct_channels_{m}d"] = count("_distinct_chan_mix")
    out[f"avg_discount_{m}d"] = ratio(money("_discount_sum_mix"), n_mix)
    for kind, name, values in (("cat", "category", plan.categories), ("chan", "channel", plan.channels)):
        for value in values:
            out[f"share_{name}_{slug(value)}_{m}d"] = ratio(count(f"_{kind}_{slug(value)}_mix"), n_mix)
    for kind, name, values in (("cat", "category", plan.categories), ("chan", "channel", plan.channels)):
        for value in values:
            out[f"days_since_last_{name}_{slug(value)}"] = days_since(f"_last_{kind}_{slug(value)}")
    return out
