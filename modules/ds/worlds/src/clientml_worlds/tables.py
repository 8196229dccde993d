"""Rows of one chunk as numpy columns, and their rendering as the exact text of the contract's CSV fields.

A world draws its clients and sales as integer columns (days since 1970-01-01, cents, hundredths of a
discount, category codes), so that what its label mechanism computes from them is exactly what a reader
recomputes from the files: nothing is rounded between the label and the text. Empty values are in-band:
:data:`MISSING` in code and number columns, :data:`NO_DATE` in day columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MISSING = -1
NO_DATE = np.iinfo(np.int64).min
EPOCH = dt.date(1970, 1, 1)
SECONDS_PER_DAY = 86_400
CLIENT_ID_DIGITS = 7
SALE_ID_DIGITS = 9


def day_number(date: dt.date) -> int:
    """Days since 1970-01-01 (the unit of every day column)."""
    return (date - EPOCH).days


@dataclass(frozen=True)
class Coded:
    """A categorical column: ``codes`` index ``values``; MISSING is an empty field."""

    values: tuple[str, ...]
    codes: IntArray

    def take(self, idx: IntArray) -> Coded:
        return Coded(self.values, self.codes[idx])

    def isin(self, *names: str) -> BoolArray:
        """True where the value is one of ``names`` (each must be one of ``values``)."""
        return np.isin(self.codes, [self.values.index(name) for name in names])


def draw_codes(rng: np.random.Generator, size: int, values: tuple[str, ...], p: tuple[float, ...]) -> Coded:
    """``size`` draws of ``values`` with probabilities ``p``; the mass ``1 - sum(p)`` is left empty."""
    codes = np.searchsorted(np.cumsum(p), rng.random(size), side="right").astype(np.int64)
    codes[codes >= len(values)] = MISSING
    return Coded(values, codes)


@dataclass(frozen=True)
class Clients:
    """One chunk's clients (one element per client), numbered consecutively."""

    number: IntArray  # client_id: the world's prefix + CLIENT_ID_DIGITS digits
    signup: IntArray  # day
    birth: IntArray  # day; NO_DATE -> empty
    gender: Coded
    region: Coded
    segment: Coded
    channel: Coded  # acquisition_channel
    income: IntArray  # whole currency units; MISSING -> empty
    observation: IntArray  # day; NO_DATE -> empty (the dataset's as-of date applies)

    def __len__(self) -> int:
        return len(self.number)


@dataclass(frozen=True)
class Sales:
    """One chunk's sales (one element per sale), in the order the world writes them."""

    client: IntArray  # client number
    day: IntArray
    second: IntArray  # second of the day; MISSING -> the sale_date is a plain date
    category: Coded
    quantity: IntArray  # >= 1
    cents: IntArray  # unit price in cents, >= 0
    discount: IntArray  # hundredths, 0 to 100; MISSING -> empty (0 by the contract)
    channel: Coded  # sales_channel

    def __len__(self) -> int:
        return len(self.client)

    def take(self, idx: IntArray) -> Sales:
        """The sales at positions ``idx``, in that order."""
        return Sales(
            client=self.client[idx],
            day=self.day[idx],
            second=self.second[idx],
            category=self.category.take(idx),
            quantity=self.quantity[idx],
            cents=self.cents[idx],
            discount=self.discount[idx],
            channel=self.channel.take(idx),
        )

    def amount(self) -> FloatArray:
        """quantity * unit_price * (1 - discount) per sale, in currency units, as a reader of the CSV computes it."""
        discount = np.where(self.discount == MISSING, 0, self.discount) / 100.0
        return self.quantity * (self.cents / 100.0) * (1.0 - discount)


def _integers(values: IntArray, valid: BoolArray | None = None) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64(), mask=None if valid is None else ~valid), pa.string())


def _padded(values: IntArray, width: int, valid: BoolArray | None = None) -> pa.Array:
    return pc.utf8_lpad(_integers(values, valid), width=width, padding="0")


def ids(prefix: str, number: IntArray, width: int) -> pa.Array:
    """``prefix`` + the number zero-padded to ``width`` digits."""
    return pc.binary_join_element_wise(prefix, _padded(number, width), "")


def decimals(scaled: IntArray, places: int, valid: BoolArray | None = None) -> pa.Array:
    """Non-negative integers divided by ``10**places``, with exactly ``places`` decimals; null where not valid."""
    whole = _integers(scaled // 10**places, valid)
    return pc.binary_join_element_wise(whole, _padded(scaled % 10**places, places, valid), ".")


def _dates(days: IntArray) -> pa.Array:
    valid = days != NO_DATE
    return pc.cast(pa.array(np.where(valid, days, 0).astype(np.int32), pa.date32(), mask=~valid), pa.string())


def _categories(column: Coded) -> pa.Array:
    return pa.array(list(column.values), pa.string()).take(pa.array(column.codes, mask=column.codes == MISSING))


def render_clients(c: Clients, label: IntArray, prefix: str) -> dict[str, pa.Array]:
    """The clients.csv fields by contract column name; ``label`` is 0 / 1 or MISSING per client."""
    return {
        "client_id": ids(prefix, c.number, CLIENT_ID_DIGITS),
        "signup_date": _dates(c.signup),
        "birth_date": _dates(c.birth),
        "gender": _categories(c.gender),
        "region": _categories(c.region),
        "segment": _categories(c.segment),
        "acquisition_channel": _categories(c.channel),
        "annual_income": _integers(c.income, c.income != MISSING),
        "label": _integers(label, label != MISSING),
        "observation_date": _dates(c.observation),
    }


def render_sales(s: Sales, first_number: int, client_prefix: str, sale_prefix: str) -> dict[str, pa.Array]:
    """The sales.csv fields by contract column name; sale ids count from ``first_number`` in row order."""
    timed = s.second != MISSING
    stamps = pa.array(s.day[timed] * SECONDS_PER_DAY + s.second[timed], pa.timestamp("s"))
    sale_date = pc.replace_with_mask(_dates(s.day), pa.array(timed), pc.strftime(stamps, "%Y-%m-%dT%H:%M:%S"))
    return {
        "sale_id": ids(sale_prefix, np.arange(first_number, first_number + len(s), dtype=np.int64), SALE_ID_DIGITS),
        "client_id": ids(client_prefix, s.client, CLIENT_ID_DIGITS),
        "sale_date": sale_date,
        "product_category": _categories(s.category),
        "quantity": _integers(s.quantity),
        "unit_price": decimals(s.cents, 2),
        "discount": decimals(s.discount, 2, s.discount != MISSING),
        "sales_channel": _categories(s.channel),
    }
