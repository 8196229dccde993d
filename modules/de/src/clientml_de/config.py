"""Per-dataset declarations (YAML); the runtime settings are :mod:`clientml_de.settings`.

A dataset config declares what differs between datasets (extra client columns,
the as-of date, feature windows) so that no code changes are needed for a new dataset.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clientml_de.contract import CLIENTS, EXTRA_COLUMN_TYPES, SALES, Column, ColumnType, TableSpec

# A letter first: names starting with "_" are the loader's own (``_line``, ``_c1`` ...).
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ExtraColumn(BaseModel):
    """A dataset-specific client column and its type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ColumnType
    min_value: float | None = None
    max_value: float | None = None

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                f"extra column name {value!r} is not a plain identifier (a letter, then letters, digits or _)"
            )
        return value

    @field_validator("type")
    @classmethod
    def _allowed_type(cls, value: ColumnType) -> ColumnType:
        if value not in EXTRA_COLUMN_TYPES:
            allowed = ", ".join(t.value for t in EXTRA_COLUMN_TYPES)
            raise ValueError(f"type {value.value!r} is not allowed for an extra column (allowed: {allowed})")
        return value


class FeatureConfig(BaseModel):
    """Knobs of the feature definition; they are part of the feature-set version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows_days: tuple[int, ...] = (30, 90, 365)
    # Share features are made for the most frequent values only, so the schema stays bounded.
    top_categories: int = Field(default=8, ge=0, le=50)
    top_channels: int = Field(default=5, ge=0, le=20)

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w < 1 for w in value) or len(set(value)) != len(value):
            raise ValueError("windows_days must be distinct positive day counts")
        return tuple(sorted(value))


class DatasetConfig(BaseModel):
    """What a dataset declares beyond the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    as_of_date: date | None = None
    extra_columns: tuple[ExtraColumn, ...] = ()
    features: FeatureConfig = FeatureConfig()

    @model_validator(mode="after")
    def _no_clash(self) -> Self:
        # Compared without case: the warehouses treat names that differ only in case as one column.
        contract_names = {c.name.casefold() for c in CLIENTS.columns}
        names = [c.name for c in self.extra_columns]
        clashes = sorted(n for n in names if n.casefold() in contract_names)
        if clashes:
            raise ValueError(f"extra columns redefine contract columns: {clashes}")
        if len({n.casefold() for n in names}) != len(names):
            raise ValueError("extra column names must be unique, case ignored")
        return self

    @classmethod
    def load(cls, path: Path | str | None) -> DatasetConfig:
        """Read a YAML dataset config; ``None`` gives the defaults (no extra columns)."""
        if path is None:
            return cls()
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"dataset config {path}: file not found") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"dataset config {path}: not valid YAML: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"dataset config {path}: {exc}") from exc

    def clients_spec(self) -> TableSpec:
        """The clients contract extended with this dataset's declared columns."""
        extras = tuple(Column(c.name, c.type, min_value=c.min_value, max_value=c.max_value) for c in self.extra_columns)
        return TableSpec(CLIENTS.table, CLIENTS.key, CLIENTS.columns + extras)

    def sales_spec(self) -> TableSpec:
        return SALES
