"""Stage 4: bad rows.

With ``bad_rows > 0`` extra rows are injected into both files after the clean data and the ground truth
are fixed, one kind per contract rule (see :data:`CLIENT_CORRUPTIONS`, :data:`SALES_CORRUPTIONS`), plus
exact duplicates of valid rows; every kind gets an equal share of the injected rows. Injected rows are
always *extra* rows, so every genuine client and sale still loads and the ground truth stays exact; a row
that duplicates an id always comes after the genuine row it copies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clientml_synthetic.clients import ClientRows
from clientml_synthetic.frame import MISSING, NO_DATE, BoolArray, Frame, IntArray
from clientml_synthetic.render import price_strings
from clientml_synthetic.sales import SaleRows
from clientml_synthetic.story import REGIONS

EXACT_DUPLICATE = "exact_duplicate"
CLIENT_CORRUPTIONS = (
    "empty_client_id",
    "duplicate_client_id",
    "bad_signup_date",
    "missing_signup_date",
    "bad_birth_date",
    "negative_income",
    "non_numeric_income",
    "bad_label",
    "bad_observation_date",
    EXACT_DUPLICATE,
)
SALES_CORRUPTIONS = (
    "empty_sale_id",
    "duplicate_sale_id",
    "unknown_client_id",
    "bad_sale_date",
    "missing_product_category",
    "bad_quantity",
    "negative_unit_price",
    "bad_discount",
    EXACT_DUPLICATE,
)
BAD_DATES = ("2023-02-30", "not-a-date", "2023/01/05", "31.12.2022", "2023-13-01", "2021-04-31")
BAD_BIRTH_DATES = ("1985-02-29", "unknown", "31/12/1980", "1990-00-10")
BAD_INCOMES = ("12k", "forty thousand", "50 000", "abc")
BAD_LABELS = ("2", "yes", "-1", "0.5", "no")
BAD_SALE_DATES = ("2024-02-30", "not-a-date", "2024/03/05", "2024-13-01T10:00:00", "yesterday")
BAD_QUANTITIES = ("0", "-1", "-5", "1.5", "two")
BAD_DISCOUNTS = ("1.5", "-0.1", "2", "-0.25", "15", "1.01")
# Unknown client ids are drawn above any id this generator ever gives a client.
UNKNOWN_CLIENT_RANGE = (2_000_000, 10_000_000)
# Column -> (kind, texts to draw from), for the kinds that write one bad text in one column.
CLIENT_BAD_TEXTS = {
    "signup_date": ("bad_signup_date", BAD_DATES),
    "birth_date": ("bad_birth_date", BAD_BIRTH_DATES),
    "label": ("bad_label", BAD_LABELS),
    "observation_date": ("bad_observation_date", BAD_DATES),
}
SALES_BAD_TEXTS = {
    "sale_date": ("bad_sale_date", BAD_SALE_DATES),
    "quantity": ("bad_quantity", BAD_QUANTITIES),
    "discount": ("bad_discount", BAD_DISCOUNTS),
}

F = TypeVar("F", bound=Frame)
Override = tuple[IntArray, pa.Array]  # (file positions, text written there)


@dataclass(frozen=True)
class Injected(Generic[F]):
    """Clean rows merged with injected rows, plus text overrides applied after rendering."""

    rows: F  # merged, in file order
    overrides: dict[str, Override]  # column -> (positions, text values)
    kinds: npt.NDArray[Any]  # the kind of each injected row (a name of *_CORRUPTIONS)

    def apply(self, render: Callable[[F], dict[str, pa.Array]]) -> dict[str, pa.Array]:
        """``render(self.rows)`` with the overrides written over the rendered text."""
        columns = render(self.rows)
        for column, (positions, values) in self.overrides.items():
            order = np.argsort(positions, kind="stable")
            mask = np.zeros(len(self.rows), dtype=bool)
            mask[positions] = True
            columns[column] = pc.replace_with_mask(columns[column], pa.array(mask), values.take(order))
        return columns

    def kind_counts(self) -> dict[str, int]:
        """Injected rows per kind (kinds with none left out)."""
        names, n = np.unique(self.kinds.astype(str), return_counts=True)
        return dict(zip(names.tolist(), n.tolist(), strict=True))


def inject_clients(
    rng: np.random.Generator, clean: ClientRows, *, n: int, first_number: int, kind_offset: int
) -> Injected[ClientRows]:
    """``n`` (<= len(clean) / 2) bad or duplicated rows among ``clean``, kinds in equal shares.

    Broken clients get fresh numbers from ``first_number`` on; ``kind_offset`` rotates which kinds get the
    rounding remainder, so that small chunks together still cover every kind.
    """
    kinds = _assign_kinds(rng, n, CLIENT_CORRUPTIONS, kind_offset)
    source = _sources(rng, len(clean), n)
    extra = clean.take(source)
    number = extra.number.copy()
    # Broken clients get fresh ids after the genuine ones; their content is a copy of a real client.
    fresh = (kinds != EXACT_DUPLICATE) & (kinds != "duplicate_client_id")
    number[fresh] = first_number + np.arange(int(fresh.sum()))
    number[kinds == "empty_client_id"] = MISSING
    signup = extra.signup.copy()
    signup[kinds == "missing_signup_date"] = NO_DATE
    # Same id, different content: another region and another income (both still valid).
    dup = kinds == "duplicate_client_id"
    region = extra.region.copy()
    region[dup] = (region[dup] + 1) % len(REGIONS)
    income = extra.income.copy()
    income[dup] = np.maximum(income[dup], 0) + 1_000
    extra = replace(extra, number=number, signup=signup, region=region, income=income)

    same_id = (kinds == EXACT_DUPLICATE) | dup
    merged, position = _merge(rng, clean, extra, source, same_id)
    placed = _Placed(rng, kinds, position)
    overrides = placed.texts_by_column(CLIENT_BAD_TEXTS)
    negative = placed.negatives("negative_income", 100_000, lambda v: pc.cast(pa.array(v), pa.string()))
    overrides["annual_income"] = _concat_overrides(negative, placed.texts("non_numeric_income", BAD_INCOMES))
    return Injected(merged, overrides, kinds)


def inject_sales(rng: np.random.Generator, clean: SaleRows, *, n: int, kind_offset: int) -> Injected[SaleRows]:
    """``n`` (<= len(clean) / 2) bad or duplicated rows among ``clean``, kinds in equal shares.

    The merged rows are numbered 1, 2, ... in file order (a copy of a sale reuses its source's number);
    ``kind_offset`` as for :func:`inject_clients`.
    """
    kinds = _assign_kinds(rng, n, SALES_CORRUPTIONS, kind_offset)
    source = _sources(rng, len(clean), n)
    extra = clean.take(source)
    client = extra.client.copy()
    unknown = kinds == "unknown_client_id"
    client[unknown] = rng.integers(*UNKNOWN_CLIENT_RANGE, int(unknown.sum()))
    category = extra.category.copy()
    category[kinds == "missing_product_category"] = MISSING
    # Same sale id, different content: one more item.
    quantity = extra.quantity.copy()
    quantity[kinds == "duplicate_sale_id"] += 1
    extra = replace(extra, client=client, category=category, quantity=quantity)

    same_id = (kinds == EXACT_DUPLICATE) | (kinds == "duplicate_sale_id")
    merged, position = _merge(rng, clean, extra, source, same_id)
    # Sale ids number the file's rows; a copy of a sale reuses the id of the row it copies.
    number = np.arange(1, len(merged) + 1, dtype=np.int64)
    is_extra = np.zeros(len(merged), dtype=bool)
    is_extra[position] = True
    clean_position = np.flatnonzero(~is_extra)
    number[position[same_id]] = number[clean_position[source[same_id]]]
    number[position[kinds == "empty_sale_id"]] = MISSING
    merged = replace(merged, number=number)

    placed = _Placed(rng, kinds, position)
    overrides = placed.texts_by_column(SALES_BAD_TEXTS)
    overrides["unit_price"] = placed.negatives("negative_unit_price", 50_000, price_strings)
    return Injected(merged, overrides, kinds)


def _assign_kinds(rng: np.random.Generator, n: int, kinds: Sequence[str], offset: int) -> npt.NDArray[Any]:
    """Equal share per kind; ``offset`` rotates the first kind across chunks so that small chunks together
    still cover every kind."""
    codes = (np.arange(n) + offset) % len(kinds)
    return np.asarray(kinds, dtype=object)[rng.permutation(codes)]


def _merge(
    rng: np.random.Generator, clean: F, extra: F, source: IntArray, after_source: BoolArray
) -> tuple[F, IntArray]:
    """Interleave extra rows at random places; those flagged ``after_source`` land after their source row.

    Returns the merged frame and the file position of every extra row.
    """
    m = len(clean)
    anchor = rng.integers(-1, m, len(extra))
    anchor[after_source] = rng.integers(source[after_source], m)
    keys = np.concatenate([np.arange(m, dtype=np.float64), anchor + 0.5])
    order = np.argsort(keys, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return clean.concat(extra).take(order), position[m:]


def _sources(rng: np.random.Generator, n_clean: int, n: int) -> IntArray:
    """Distinct source rows (n <= n_clean / 2): two copies of one row could be identical to each other,
    and would then be exact duplicates instead of the bad rows they are meant to be."""
    return rng.choice(n_clean, n, replace=False).astype(np.int64)


@dataclass(frozen=True)
class _Placed:
    """Where the injected rows of each kind landed, and the stream their bad values are drawn from."""

    rng: np.random.Generator
    kinds: npt.NDArray[Any]  # kind of each injected row
    position: IntArray  # file position of each injected row

    def texts(self, kind: str, values: Sequence[str]) -> Override:
        """The positions of the rows of ``kind``, each with a text drawn from ``values``."""
        sel = self.kinds == kind
        draws = self.rng.integers(0, len(values), int(sel.sum()))
        return self.position[sel], pa.array(list(values), pa.string()).take(pa.array(draws))

    def texts_by_column(self, table: Mapping[str, tuple[str, Sequence[str]]]) -> dict[str, Override]:
        """:meth:`texts` for each column of ``table`` (column -> (kind, values)), drawn in table order."""
        return {column: self.texts(kind, values) for column, (kind, values) in table.items()}

    def negatives(self, kind: str, high: int, render: Callable[[IntArray], pa.Array]) -> Override:
        """The positions of the rows of ``kind``, each with ``-`` and ``render`` of a draw from 1 to high - 1."""
        sel = self.kinds == kind
        values = render(self.rng.integers(1, high, int(sel.sum())))
        minus = pa.array(["-"] * len(values), pa.string())
        return self.position[sel], pc.binary_join_element_wise(minus, values, "")


def _concat_overrides(*parts: Override) -> Override:
    return np.concatenate([p for p, _ in parts]), pa.concat_arrays([v for _, v in parts])
