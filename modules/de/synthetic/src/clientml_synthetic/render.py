"""Rendering: a chunk's numpy rows -> Arrow string columns, the exact text each CSV field holds.

Everything is vectorised with Arrow's own kernels (no Python per row): dates through the date32 -> string
cast, numbers through the integer -> string cast, zero-padded where the format has a fixed width. An empty
field is a null string.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clientml_de.contract import CLIENTS, SALES

from clientml_synthetic.clients import ClientRows
from clientml_synthetic.frame import MISSING, NO_DATE, BoolArray, FloatArray, IntArray
from clientml_synthetic.sales import SaleRows
from clientml_synthetic.story import CATEGORIES, CHANNELS, DISCOUNTS, GENDERS, REGIONS, SALES_CHANNELS, SEGMENTS

CLIENT_COLUMNS = tuple(column.name for column in CLIENTS.columns)
SALES_COLUMNS = tuple(column.name for column in SALES.columns)
GROUND_TRUTH_COLUMNS = ("client_id", "p_true")

SECONDS_PER_DAY = 86_400


def _dates(days: IntArray) -> pa.Array:
    """``YYYY-MM-DD`` per day since 1970-01-01 (years 1 to 9999); null where NO_DATE."""
    valid = days != NO_DATE
    return pc.cast(pa.array(np.where(valid, days, 0).astype(np.int32), pa.date32(), mask=~valid), pa.string())


def _dates_or_timestamps(days: IntArray, seconds: IntArray) -> pa.Array:
    """``YYYY-MM-DD``, or ``YYYY-MM-DDTHH:MM:SS`` where a second of the day (0 to 86,399) is known."""
    timed = seconds != MISSING
    stamps = pa.array(days[timed] * SECONDS_PER_DAY + seconds[timed], pa.timestamp("s"))
    return pc.replace_with_mask(_dates(days), pa.array(timed), pc.strftime(stamps, "%Y-%m-%dT%H:%M:%S"))


def _integers(values: IntArray, valid: BoolArray | None = None) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64(), mask=None if valid is None else ~valid), pa.string())


def _zero_padded(values: IntArray, width: int, valid: BoolArray | None = None) -> pa.Array:
    """Non-negative integers in decimal, left-padded with zeros to at least ``width`` digits; null where not valid."""
    return pc.utf8_lpad(_integers(values, valid), width=width, padding="0")


def _ids(prefix: str, number: IntArray, width: int, valid: BoolArray) -> pa.Array:
    """``prefix`` + the number in ``width`` digits (zero-padded); null where not valid."""
    return pc.binary_join_element_wise(prefix, _zero_padded(number, width, valid), "")


def client_ids(number: IntArray) -> pa.Array:
    """``C`` + 7 digits per client number (0 to 9,999,999); null where MISSING."""
    return _ids("C", number, 7, number != MISSING)


def _categories(labels: Sequence[str], codes: IntArray) -> pa.Array:
    return pa.array(list(labels), pa.string()).take(pa.array(codes, mask=codes == MISSING))


def _decimals(scaled: IntArray, places: int) -> pa.Array:
    """Non-negative integers divided by ``10**places``, written with exactly ``places`` decimals."""
    return pc.binary_join_element_wise(_integers(scaled // 10**places), _zero_padded(scaled % 10**places, places), ".")


def price_strings(cents: IntArray) -> pa.Array:
    """Non-negative cents as ``units.cc``."""
    return _decimals(cents, 2)


def fixed_decimals(x: FloatArray, places: int) -> pa.Array:
    """Non-negative values with exactly ``places`` decimals (never scientific notation)."""
    return _decimals(np.round(x * 10**places).astype(np.int64), places)


def render_clients(c: ClientRows) -> dict[str, pa.Array]:
    """The clients.csv columns of ``c``, by name (:data:`CLIENT_COLUMNS`)."""
    n = len(c)
    return {
        "client_id": client_ids(c.number),
        "signup_date": _dates(c.signup),
        "birth_date": _dates(c.birth),
        "gender": _categories(GENDERS, c.gender),
        "region": _categories(REGIONS, c.region),
        "segment": _categories(SEGMENTS, c.segment),
        "acquisition_channel": _categories(CHANNELS, c.channel),
        "annual_income": _integers(c.income, c.income != MISSING),
        "label": _integers(c.label, c.label != MISSING),
        "observation_date": pa.nulls(n, pa.string()),
    }


def render_sales(s: SaleRows, id_offset: int) -> dict[str, pa.Array]:
    """The sales.csv columns of ``s``, by name (:data:`SALES_COLUMNS`); sale ids are ``number + id_offset``."""
    return {
        "sale_id": _ids("S", s.number + id_offset, 9, s.number != MISSING),
        "client_id": client_ids(s.client),
        "sale_date": _dates_or_timestamps(s.day, s.second),
        "product_category": _categories(CATEGORIES, s.category),
        "quantity": _integers(s.quantity),
        "unit_price": price_strings(s.cents),
        "discount": _categories(DISCOUNTS, s.discount),
        "sales_channel": _categories(SALES_CHANNELS, s.channel),
    }
