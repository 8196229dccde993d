"""Rendering: a chunk's numpy rows -> Arrow string columns, the exact text each CSV field holds.

Everything is vectorised (no Python per row). An empty field is a null string.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
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

ByteMatrix = npt.NDArray[np.uint8]


def _digits(values: IntArray, width: int) -> ByteMatrix:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def _literal(n: int, text: str) -> ByteMatrix:
    return np.broadcast_to(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (n, len(text)))


def _strings(matrix: ByteMatrix, valid: BoolArray | None = None, widths: IntArray | None = None) -> pa.Array:
    """Rows of a byte matrix as an Arrow string array; ``widths`` keeps only each row's first bytes."""
    n, w = matrix.shape
    if widths is None:
        offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)[: n + 1]
        data = np.ascontiguousarray(matrix).reshape(-1)
    else:
        offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
        data = matrix[np.arange(w)[None, :] < widths[:, None]]
    bitmap = None
    null_count = 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(n - valid.sum())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, null_count)


def _date_matrix(days: IntArray) -> ByteMatrix:
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]")
    month = d.astype("datetime64[M]")
    month_no = (month - year.astype("datetime64[M]")).astype(np.int64) + 1
    day_no = (d - month.astype("datetime64[D]")).astype(np.int64) + 1
    n = len(days)
    return np.hstack(
        [
            _digits(year.astype(np.int64) + 1970, 4),
            _literal(n, "-"),
            _digits(month_no, 2),
            _literal(n, "-"),
            _digits(day_no, 2),
        ]
    )


def _dates(days: IntArray) -> pa.Array:
    valid = days != NO_DATE
    return _strings(_date_matrix(np.where(valid, days, 0)), valid)


def _dates_or_timestamps(days: IntArray, seconds: IntArray) -> pa.Array:
    """``YYYY-MM-DD``, or ``YYYY-MM-DDTHH:MM:SS`` where a second of the day is known."""
    n = len(days)
    s = np.maximum(seconds, 0)
    matrix = np.hstack(
        [
            _date_matrix(days),
            _literal(n, "T"),
            _digits(s // 3600, 2),
            _literal(n, ":"),
            _digits(s // 60 % 60, 2),
            _literal(n, ":"),
            _digits(s % 60, 2),
        ]
    )
    return _strings(matrix, widths=np.where(seconds == MISSING, 10, 19))


def client_ids(number: IntArray) -> pa.Array:
    """``C`` + 7 digits per client number (0 to 9,999,999); null where MISSING."""
    return _strings(np.hstack([_literal(len(number), "C"), _digits(number, 7)]), number != MISSING)


def _categories(labels: Sequence[str], codes: IntArray) -> pa.Array:
    return pa.array(list(labels), pa.string()).take(pa.array(codes, mask=codes == MISSING))


def _integers(values: IntArray, valid: BoolArray | None = None) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64(), mask=None if valid is None else ~valid), pa.string())


def price_strings(cents: IntArray) -> pa.Array:
    """Non-negative cents as ``units.cc``."""
    units = pc.cast(pa.array(cents // 100), pa.string())
    return pc.binary_join_element_wise(units, _strings(_digits(cents % 100, 2)), ".")


def fixed_decimals(x: FloatArray, places: int) -> pa.Array:
    """Values in [0, 1] with exactly ``places`` decimals (never scientific notation)."""
    scaled = np.round(x * 10**places).astype(np.int64)
    n = len(x)
    return _strings(
        np.hstack([_digits(scaled // 10**places, 1), _literal(n, "."), _digits(scaled % 10**places, places)])
    )


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
    n = len(s)
    valid_id = s.number != MISSING
    return {
        "sale_id": _strings(np.hstack([_literal(n, "S"), _digits(s.number + id_offset, 9)]), valid_id),
        "client_id": client_ids(s.client),
        "sale_date": _dates_or_timestamps(s.day, s.second),
        "product_category": _categories(CATEGORIES, s.category),
        "quantity": _integers(s.quantity),
        "unit_price": price_strings(s.cents),
        "discount": _categories(DISCOUNTS, s.discount),
        "sales_channel": _categories(SALES_CHANNELS, s.channel),
    }
