"""The feature_store table: profile, declared extra, activity and derived columns, one Ibis expression.

The columns are documented in ``modules/de/README.md`` ("feature_store columns").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from clientml_de.config import DatasetConfig
from clientml_de.contract import BOOKKEEPING_COLUMNS, FEATURE_STORE, KEY_COLUMNS, LABEL_COLUMN, ColumnType
from clientml_de.features import activity
from clientml_de.features.derived import derived_columns
from clientml_de.features.plan import FeatureBuildError, FeaturePlan, plan
from clientml_de.warehouse import Warehouse

PROFILE_CATEGORIES = ("gender", "region", "segment", "acquisition_channel")

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


def _check_extra_names(extras: list[str], computed: Iterable[str], config: DatasetConfig) -> None:
    """An extra column's feature (``extras``, in the config's order) may not take the name of a computed
    feature, which would replace it without a word. Raises FeatureBuildError naming the config line."""
    taken = {name.casefold() for name in computed}
    for index, (extra, feature) in enumerate(zip(config.extra_columns, extras, strict=True)):
        if feature.casefold() in taken:
            raise FeatureBuildError(
                f"{config.where('extra_columns', index)}: extra column {extra.name!r} becomes the feature "
                f"{feature!r}, which feature_store computes from the sales: rename the column"
            )


def feature_table(clients: ir.Table, sales: ir.Table, plan: FeaturePlan, created_at: datetime) -> ir.Table:
    """The feature_store rows for the given clients and sales (see the package docstring).

    Raises:
        clientml_de.features.derived.DerivedFeatureError: a derived feature of the config cannot be computed.
    """
    as_of = clients.observation_date
    if plan.default_as_of is not None:
        as_of = ibis.coalesce(as_of, ibis.literal(plan.default_as_of))
    base = clients.mutate(as_of_date=as_of)
    table = base
    for index, part in enumerate(activity.aggregates(sales, base.select(*KEY_COLUMNS), plan)):
        # Each part repeats the key: suffixed, then left out by the final select.
        table = table.left_join(part, list(KEY_COLUMNS), rname=f"{{name}}_{index}")

    keys: dict[str, ir.Value] = {
        "client_id": base.client_id,
        "as_of_date": base.as_of_date,
        LABEL_COLUMN: base.label,
    }
    features: dict[str, ir.Value] = {
        "age_years": (base.as_of_date.delta(base.birth_date, unit="day").cast("float64") / 365.25),
        "tenure_days": base.as_of_date.delta(base.signup_date, unit="day").cast("int64"),
    }
    for name in PROFILE_CATEGORIES:
        features[name] = base[name]
    features["annual_income"] = base.annual_income
    extras = []
    for extra in plan.config.extra_columns:
        name, column = extra_feature(extra.name, extra.type, base[extra.name], base.as_of_date)
        features[name] = column
        extras.append(name)
    computed = activity.columns(table, base.as_of_date, plan)
    _check_extra_names(extras, ["age_years", "tenure_days", *computed], plan.config)
    features.update(computed)
    features.update(derived_columns(features, {*keys, *BOOKKEEPING_COLUMNS}, plan.config))
    return table.select(
        **keys,
        **features,
        feature_set_version=ibis.literal(plan.version),
        created_at=ibis.literal(created_at, type="timestamp"),
    )


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
