"""The reference profile: the distributions a bundle's model was trained on, which drift is measured against.

``reference_profile.json`` is written into every bundle at training (:func:`clientml_mle.train.publish_bundle`,
which both trainers call), listed and hashed in the manifest like every file. It holds no client row:

- per feature of the bundle's schema, over the training rows: the null rate and
  - numbers and integers: the deciles of the non-null values as bin edges (duplicates removed, so a value
    shared by many rows is one edge) and the share of the non-null values in each bin
    (:class:`NumericBins`: ``(-inf, e0], (e0, e1], ..., (e_last, inf)``);
  - categories and booleans (``"false"``/``"true"``): the shares of the :data:`TOP_CATEGORIES` most frequent
    values and of all the others together (:class:`CategoryShares`);
  - the feature's share of the model's importance (:mod:`clientml_mle.monitor.importance`);
- the model's scores (P(label = 1)) on the test rows, in :data:`SCORE_EDGES` bins (fixed tenths of [0, 1]);
- row counts, the creation time and the format (:data:`PROFILE_FORMAT`).

The same binning code (:meth:`NumericBins.shares`, :meth:`CategoryShares.shares`) bins the current data when
monitoring, so reference and current are always cut the same way.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clientml_mle.manifest import FeatureSpec, FeatureType

PROFILE_FORMAT = "clientml-reference-profile/1"
# Deciles: ten bins of about equal reference mass, the usual binning of PSI (Siddiqi 2006, ch. 8).
QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))
# Categories kept by name; the rest share one "other" bin (a long tail of rare values adds noise, not signal).
TOP_CATEGORIES = 20
# The score's bins: fixed tenths of [0, 1], so that scores of two models compare bin for bin.
SCORE_EDGES = QUANTILES
BOOLEAN_VALUES = {0.0: "false", 1.0: "true"}

FloatArray = npt.NDArray[np.float64]


class ProfileError(ValueError):
    """A reference profile that cannot be read (malformed, or another format)."""


class NumericBins(BaseModel):
    """Bins of a number: ``edges`` are the inner cut points (increasing); bin ``i`` is ``(edges[i-1], edges[i]]``,
    the first ``(-inf, edges[0]]``, the last ``(edges[-1], inf)``. ``proportions`` (one more than the edges,
    summing to 1) are the reference's shares of its non-null values; empty when it had none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edges: list[float]
    proportions: list[float]

    @model_validator(mode="after")
    def _consistent(self) -> NumericBins:
        if self.proportions and len(self.proportions) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 1} proportions")
        if any(b <= a for a, b in itertools.pairwise(self.edges)):
            raise ValueError("bin edges must increase")
        return self

    @classmethod
    def of(cls, values: FloatArray, edges: Sequence[float] | None = None) -> NumericBins:
        """The bins of the non-null ``values``: at ``edges``, or at their deciles (deduplicated)."""
        present = values[~np.isnan(values)]
        if edges is None:
            edges = [float(e) for e in np.unique(np.quantile(present, QUANTILES))] if len(present) else []
        bins = cls(edges=list(edges), proportions=[])
        return bins.model_copy(update={"proportions": bins.shares(present).tolist() if len(present) else []})

    def shares(self, values: FloatArray) -> FloatArray:
        """The share of the non-null ``values`` in each bin (zeros when there is none)."""
        present = values[~np.isnan(values)]
        counts = np.bincount(np.searchsorted(self.edges, present, side="left"), minlength=len(self.edges) + 1)
        return counts / counts.sum() if counts.sum() else counts.astype(np.float64)

    def labels(self) -> list[str]:
        """A readable label of each bin, e.g. ``<= 3``, ``(3, 7.5]``, ``> 7.5``."""
        if not self.edges:
            return ["all"]
        cuts = [f"{e:.4g}" for e in self.edges]
        inner = [f"({a}, {b}]" for a, b in itertools.pairwise(cuts)]
        return [f"<= {cuts[0]}", *inner, f"> {cuts[-1]}"]


class CategoryShares(BaseModel):
    """The reference's most frequent values (most frequent first) and ``proportions``: their shares of the
    non-null values, then the share of every other value (one more than ``values``; empty when all null)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[str]
    proportions: list[float]

    @model_validator(mode="after")
    def _consistent(self) -> CategoryShares:
        if self.proportions and len(self.proportions) != len(self.values) + 1:
            raise ValueError(f"{len(self.values)} values need {len(self.values) + 1} proportions")
        return self

    @classmethod
    def of(cls, values: pd.Series) -> CategoryShares:
        """The shares of the non-null ``values`` (str), keeping the :data:`TOP_CATEGORIES` most frequent."""
        counts = values.dropna().value_counts(sort=False)
        # Most frequent first, ties by value, so the same rows always give the same profile.
        ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))[:TOP_CATEGORIES]
        shares = cls(values=[str(v) for v, _ in ranked], proportions=[])
        present = values.dropna()
        return shares.model_copy(update={"proportions": shares.shares(present).tolist() if len(present) else []})

    def shares(self, values: pd.Series) -> FloatArray:
        """The share of the non-null ``values`` per kept value, then of all the others (zeros when none)."""
        present = values.dropna().astype(str)
        position = {v: i for i, v in enumerate(self.values)}
        index = present.map(position).fillna(len(self.values)).to_numpy(dtype=np.int64)
        counts = np.bincount(index, minlength=len(self.values) + 1)
        return counts / counts.sum() if counts.sum() else counts.astype(np.float64)

    def labels(self) -> list[str]:
        return [*self.values, "(other)"]


class FeatureProfile(BaseModel):
    """One feature of the training rows: its null rate, its bins or category shares, its importance share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FeatureType
    null_rate: float = Field(ge=0, le=1)
    importance: float = Field(ge=0, le=1)
    bins: NumericBins | None = None  # numbers and integers
    categories: CategoryShares | None = None  # categories and booleans


class ScoreProfile(BaseModel):
    """The model's scores on the test rows, in fixed bins (:data:`SCORE_EDGES`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int
    bins: NumericBins


class ReferenceProfile(BaseModel):
    """``reference_profile.json`` (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = PROFILE_FORMAT
    created_at: datetime
    rows: int  # training rows profiled
    importance_source: str  # how the importance shares were obtained
    features: list[FeatureProfile]
    scores: ScoreProfile

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)

    def to_json(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, allow_nan=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str = "reference_profile.json") -> ReferenceProfile:
        """Parse ``data``; raises :class:`ProfileError` naming ``where`` when it is not a profile of this format."""
        try:
            raw: Any = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{where}: not valid JSON: {exc}") from None
        found = raw.get("format") if isinstance(raw, dict) else None
        if found != PROFILE_FORMAT:
            raise ProfileError(f"{where}: format {found!r}, this code reads {PROFILE_FORMAT!r}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ProfileError(f"{where}: not a valid reference profile: {exc}") from None


def category_values(values: pd.Series, spec: FeatureSpec) -> pd.Series:
    """A categorical or boolean column (as :func:`clientml_mle.schema.coerce_frame` gives it) as str or None."""
    if spec.type == "boolean":
        return values.map(BOOLEAN_VALUES).astype(object)
    return values.astype(object).where(values.notna(), None)


def profile_feature(values: pd.Series, spec: FeatureSpec, importance: float) -> FeatureProfile:
    """The profile of one coerced training column."""
    null_rate = float(values.isna().mean()) if len(values) else 0.0
    if spec.type in ("category", "boolean"):
        shares = CategoryShares.of(category_values(values, spec))
        return FeatureProfile(
            name=spec.name, type=spec.type, null_rate=null_rate, importance=importance, categories=shares
        )
    bins = NumericBins.of(values.to_numpy(dtype=np.float64))
    return FeatureProfile(name=spec.name, type=spec.type, null_rate=null_rate, importance=importance, bins=bins)


def build_profile(
    x_train: pd.DataFrame,
    features: Sequence[FeatureSpec],
    importance: dict[str, float],
    importance_source: str,
    test_scores: FloatArray,
    *,
    created_at: datetime | None = None,
) -> ReferenceProfile:
    """The profile of the training rows ``x_train`` (coerced to ``features``, shape ``(n, len(features))``),
    the importance shares (feature -> share in [0, 1]) and the model's scores on the test rows."""
    return ReferenceProfile(
        created_at=(created_at or datetime.now(UTC)).astimezone(UTC),
        rows=len(x_train),
        importance_source=importance_source,
        features=[profile_feature(x_train[s.name], s, importance.get(s.name, 0.0)) for s in features],
        scores=ScoreProfile(
            rows=len(test_scores), bins=NumericBins.of(np.asarray(test_scores, dtype=np.float64), SCORE_EDGES)
        ),
    )
