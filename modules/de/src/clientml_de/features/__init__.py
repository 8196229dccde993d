"""The feature definition: one Ibis expression that DuckDB, PostgreSQL and Spark all execute.

``feature_store`` has one row per client and as-of date. A client's as-of date is its
``observation_date``, else the dataset's as-of date (from the dataset config, else the day after the
latest sale, else, when no sale is loaded at all, the day after the latest signup). Activity features
only use sales dated strictly before the as-of date.
The columns are documented in ``modules/de/README.md`` ("feature_store columns").

By family: :mod:`.plan` (the data-dependent choices and the feature-set version), :mod:`.activity`
(sales: windows, adjacent periods, gaps, mix, recency per category and channel), :mod:`.derived` (the
dataset config's expressions), :mod:`.table` (the whole row, and its atomic replacement).
"""

from clientml_de.features.derived import DerivedFeatureError
from clientml_de.features.plan import FEATURE_CODE_VERSION, FeatureBuildError, FeaturePlan, plan, slug
from clientml_de.features.table import (
    EXTRA_FEATURE_TYPES,
    PROFILE_CATEGORIES,
    build_feature_store,
    extra_feature,
    feature_table,
    keep_created_at,
)

__all__ = [
    "EXTRA_FEATURE_TYPES",
    "FEATURE_CODE_VERSION",
    "PROFILE_CATEGORIES",
    "DerivedFeatureError",
    "FeatureBuildError",
    "FeaturePlan",
    "build_feature_store",
    "extra_feature",
    "feature_table",
    "keep_created_at",
    "plan",
    "slug",
]
