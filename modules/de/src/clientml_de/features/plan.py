"""The data-dependent choices of one feature build, and the feature-set version that covers them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import ibis
import ibis.expr.types as ir

from clientml_de.config import DatasetConfig
from clientml_de.warehouse import Warehouse

# Bump when the meaning of a feature changes; the version also covers the dataset's feature knobs.
FEATURE_CODE_VERSION = 3  # 3: windows, adjacent periods, per-value recency, gaps, derived features


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
            "derived": [d.model_dump(mode="json") for d in self.config.derived_features],
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
