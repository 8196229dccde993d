"""Per-dataset declarations (YAML); the runtime settings are :mod:`clientml_de.settings`.

A dataset config declares what differs between datasets (extra client columns, the as-of date, feature
windows and periods, derived features) so that no code changes are needed for a new dataset. Every
error names the file and the line of the YAML it comes from (:meth:`DatasetConfig.where`), whether it is
found when the file is read (a wrong type, a window that is not positive, an expression outside the
language) or when ``feature_store`` is built (a derived feature naming a column that does not exist).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from clientml_de.contract import CLIENTS, EXTRA_COLUMN_TYPES, SALES, Column, ColumnType, TableSpec
from clientml_de.expressions import ExpressionError, parse

# A letter first: names starting with "_" are the loader's own (``_line``, ``_c1`` ...).
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"name {value!r} is not a plain identifier (a letter, then letters, digits or _)")
    return value


# A column name of the dataset's own (an extra client column, a derived feature).
Identifier = Annotated[str, AfterValidator(_identifier)]


class ExtraColumn(BaseModel):
    """A dataset-specific client column and its type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    type: ColumnType
    min_value: float | None = None
    max_value: float | None = None

    @field_validator("type")
    @classmethod
    def _allowed_type(cls, value: ColumnType) -> ColumnType:
        if value not in EXTRA_COLUMN_TYPES:
            allowed = ", ".join(t.value for t in EXTRA_COLUMN_TYPES)
            raise ValueError(f"type {value.value!r} is not allowed for an extra column (allowed: {allowed})")
        return value


# 100 years: the longest look-back an as-of date minus a day count stays a date for on every engine.
MAX_LOOKBACK_DAYS = 36_525
Days = Annotated[StrictInt, Field(ge=1, le=MAX_LOOKBACK_DAYS)]


def _ascending(name: str, value: Sequence[int]) -> None:
    """Day counts are listed in ascending order, each once, so that column order and names are unambiguous."""
    if not value:
        raise ValueError(f"{name} must list at least one day count")
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        raise ValueError(f"{name} lists {', '.join(map(str, repeated))} more than once")
    if list(value) != sorted(value):
        raise ValueError(f"{name} must be in ascending order, got {list(value)}")


def _unique(kind: str, names: list[str]) -> None:
    """Names are unique without case: the warehouses treat names that differ only in case as one column."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name.casefold() in first:
            earlier = first[name.casefold()]
            raise ValueError(
                f"{kind} names must be unique, case ignored: {name!r} (item {index + 1}) "
                f"repeats {names[earlier]!r} (item {earlier + 1})"
            )
        first[name.casefold()] = index


class FeatureConfig(BaseModel):
    """Knobs of the feature definition; they are part of the feature-set version.

    ``windows_days``: the per-window activity columns (count, spend, mean sale value, discount share over
    the last W days). ``periods_days``: each P compares the last P days with the P days before them
    (look-back 2P). ``mix_window_days``: the window of the category and channel shares, distinct
    categories and mean discount. All in days, ascending, each at most 100 years of look-back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows_days: tuple[Days, ...] = Field(default=(30, 60, 90, 180, 365, 730), max_length=12)
    periods_days: tuple[Days, ...] = Field(default=(90, 365), max_length=6)
    mix_window_days: Days = 365
    # Share and recency features are made for the most frequent values only, so the schema stays bounded.
    top_categories: int = Field(default=8, ge=0, le=50)
    top_channels: int = Field(default=5, ge=0, le=20)

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        _ascending("windows_days", value)
        return value

    @field_validator("periods_days")
    @classmethod
    def _periods(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        _ascending("periods_days", value)
        if 2 * value[-1] > MAX_LOOKBACK_DAYS:
            raise ValueError(
                f"periods_days: {value[-1]} looks back {2 * value[-1]} days (the period and the one before it); "
                f"at most {MAX_LOOKBACK_DAYS}"
            )
        return value


class DerivedFeature(BaseModel):
    """A feature_store column computed from others: ``name`` and an expression (:mod:`clientml_de.expressions`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    expression: str

    @model_validator(mode="after")
    def _parses(self) -> Self:
        try:
            parse(self.expression)
        except ExpressionError as exc:
            raise ValueError(f"derived feature {self.name!r}: {exc}") from None
        return self


class DatasetConfig(BaseModel):
    """What a dataset declares beyond the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    as_of_date: date | None = None
    extra_columns: tuple[ExtraColumn, ...] = ()
    features: FeatureConfig = FeatureConfig()
    derived_features: tuple[DerivedFeature, ...] = Field(default=(), max_length=200)
    # Where the config was read from, for error messages; not part of the feature-set version.
    _source: Path | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @field_validator("extra_columns")
    @classmethod
    def _extras_do_not_clash(cls, value: tuple[ExtraColumn, ...]) -> tuple[ExtraColumn, ...]:
        # Compared without case: the warehouses treat names that differ only in case as one column.
        contract_names = {c.name.casefold() for c in CLIENTS.columns}
        names = [c.name for c in value]
        clashes = sorted(n for n in names if n.casefold() in contract_names)
        if clashes:
            raise ValueError(f"extra columns redefine contract columns: {clashes}")
        _unique("extra column", names)
        return value

    @field_validator("derived_features")
    @classmethod
    def _derived_unique(cls, value: tuple[DerivedFeature, ...]) -> tuple[DerivedFeature, ...]:
        _unique("derived feature", [d.name for d in value])
        return value

    def where(self, *loc: str | int) -> str:
        """``dataset config <file>, line <n>`` for a place in the config (``loc`` as in pydantic's errors,
        e.g. ``("derived_features", 2)``); the line of the nearest enclosing YAML node, none when the config
        was not read from a file."""
        if self._source is None:
            return "dataset config"
        line = _line_of(self._lines, loc)
        return f"dataset config {self._source}" + (f", line {line}" if line else "")

    @classmethod
    def load(cls, path: Path | str | None) -> DatasetConfig:
        """Read a YAML dataset config; ``None`` gives the defaults (no extra columns)."""
        if path is None:
            return cls()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            raw = yaml.safe_load(text) or {}
            lines = _node_lines(yaml.compose(text, Loader=yaml.SafeLoader))
        except FileNotFoundError:
            raise FileNotFoundError(f"dataset config {path}: file not found") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"dataset config {path}: not valid YAML: {exc}") from exc
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            problems = [_problem(error, lines) for error in exc.errors(include_url=False)]
            raise ValueError(f"dataset config {path}: " + "; ".join(problems)) from None
        config._source, config._lines = path, lines
        return config

    def clients_spec(self) -> TableSpec:
        """The clients contract extended with this dataset's declared columns."""
        extras = tuple(Column(c.name, c.type, min_value=c.min_value, max_value=c.max_value) for c in self.extra_columns)
        return TableSpec(CLIENTS.table, CLIENTS.key, CLIENTS.columns + extras)

    def sales_spec(self) -> TableSpec:
        return SALES


def _node_lines(node: yaml.Node | None, loc: tuple[str | int, ...] = ()) -> dict[tuple[str | int, ...], int]:
    """The 1-based line of every mapping key and sequence item of a composed YAML document, by path."""
    lines: dict[tuple[str | int, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*loc, str(key.value))
            lines[path] = key.start_mark.line + 1
            lines.update(_node_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            lines.update(_node_lines(item, (*loc, index)))
    return lines


def _line_of(lines: dict[tuple[str | int, ...], int], loc: Sequence[str | int]) -> int | None:
    # pydantic may add steps the YAML does not have (a union member's name): the longest known prefix.
    for end in range(len(loc), 0, -1):
        if tuple(loc[:end]) in lines:
            return lines[tuple(loc[:end])]
    return None


def _problem(error: ErrorDetails, lines: dict[tuple[str | int, ...], int]) -> str:
    """One pydantic error as ``line N, features.windows_days: message``."""
    loc = tuple(error["loc"])
    line = _line_of(lines, loc)
    field = ".".join(str(part) for part in loc) or "the document"
    cause = error.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else error["msg"]
    return (f"line {line}, " if line else "") + f"{field}: {message}"
