"""The data contract as data: the source files (``CONTRACT.md`` section 1) and the feature_store names.

Validation, the warehouse schema and the docs are all derived from these declarations, so a rule is
written once. A dataset adds columns through its :class:`~clientml_de.config.DatasetConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The feature_store contract (CONTRACT.md section 2): its table, key, label and bookkeeping columns.
FEATURE_STORE = "feature_store"
KEY_COLUMNS = ("client_id", "as_of_date")
LABEL_COLUMN = "label"
BOOKKEEPING_COLUMNS = ("feature_set_version", "created_at")


class ColumnType(StrEnum):
    """Logical types a source column can have (the contract's vocabulary)."""

    STRING = "string"
    CATEGORY = "category"
    NUMBER = "number"
    INTEGER = "integer"
    DATE = "date"
    TIMESTAMP = "timestamp"  # a date or an ISO 8601 timestamp
    BOOLEAN = "boolean"
    LABEL = "label"  # 0, 1 or empty


@dataclass(frozen=True)
class Column:
    """One source column and the rules every value must satisfy."""

    name: str
    type: ColumnType
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None
    unique: bool = False
    references: str | None = None  # "table.column" that must contain the value
    default: float | None = None  # stored when the value is empty
    # The largest value the features can take in a product and a sum (see MONEY_LIMITS), beyond the rule.
    supported_max: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """A source file's contract: its warehouse table name and its columns."""

    table: str
    key: str
    columns: tuple[Column, ...]

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


CLIENTS = TableSpec(
    table="clients",
    key="client_id",
    columns=(
        Column("client_id", ColumnType.STRING, required=True, unique=True),
        Column("signup_date", ColumnType.DATE, required=True),
        Column("birth_date", ColumnType.DATE),
        Column("gender", ColumnType.CATEGORY),
        Column("region", ColumnType.CATEGORY),
        Column("segment", ColumnType.CATEGORY),
        Column("acquisition_channel", ColumnType.CATEGORY),
        Column("annual_income", ColumnType.NUMBER, min_value=0),
        Column("label", ColumnType.LABEL),
        Column("observation_date", ColumnType.DATE),
    ),
)

# quantity <= 1e9 and unit_price <= 1e12 keep each sale's amount (quantity x unit_price x (1 - discount))
# <= 1e21, so a client's sum over up to 1e11 sales stays below 1e32, the limit of the DECIMAL(38, 6) money
# type that features.py sums in (in DuckDB, PostgreSQL and Spark alike).
MONEY_LIMITS = {"quantity": 1e9, "unit_price": 1e12}

SALES = TableSpec(
    table="sales",
    key="sale_id",
    columns=(
        Column("sale_id", ColumnType.STRING, required=True, unique=True),
        Column("client_id", ColumnType.STRING, required=True, references="clients.client_id"),
        Column("sale_date", ColumnType.TIMESTAMP, required=True),
        Column("product_category", ColumnType.CATEGORY, required=True),
        Column("quantity", ColumnType.INTEGER, required=True, min_value=1, supported_max=MONEY_LIMITS["quantity"]),
        Column("unit_price", ColumnType.NUMBER, required=True, min_value=0, supported_max=MONEY_LIMITS["unit_price"]),
        Column("discount", ColumnType.NUMBER, min_value=0, max_value=1, default=0.0),
        Column("sales_channel", ColumnType.CATEGORY),
    ),
)

# Types a dataset config may declare for its extra client columns.
EXTRA_COLUMN_TYPES = (
    ColumnType.CATEGORY,
    ColumnType.NUMBER,
    ColumnType.INTEGER,
    ColumnType.DATE,
    ColumnType.BOOLEAN,
)
