"""Per-client aggregates of a chunk's realised sales: what the label mechanisms read.

Every aggregate is order-free (the rows may be in any order) and gives one float per client of the
chunk, the clients being numbered consecutively from ``first``. A sale's day is its ``sale_date`` with the
time of day dropped, as a reader of the CSV sees it.
"""

from __future__ import annotations

import numpy as np

from clientml_worlds.tables import BoolArray, FloatArray, IntArray, Sales


class Observed:
    """The sales of ``n`` consecutive clients (``first`` to ``first + n - 1``), each seen before its ``as_of`` day."""

    def __init__(self, sales: Sales, first: int, as_of: IntArray) -> None:
        self.n = len(as_of)
        self.sales = sales
        self.local = sales.client - first
        # Days before the client's as-of day, counted back from it: 1 is the day before.
        self.age = as_of[self.local] - sales.day
        self.before = self.age >= 1

    def window(self, newest: int, oldest: int) -> BoolArray:
        """Sales from ``oldest`` days to ``newest`` days before the as-of day, both included (``newest >= 1``)."""
        return self.before & (self.age >= newest) & (self.age <= oldest)

    def count(self, mask: BoolArray, weights: FloatArray | None = None) -> FloatArray:
        """Number of sales where ``mask`` (or the sum of ``weights`` over them) per client; 0 without any."""
        w = None if weights is None else weights[mask]
        return np.bincount(self.local[mask], weights=w, minlength=self.n).astype(np.float64)

    def most_recent_age(self, mask: BoolArray) -> FloatArray:
        """Days from the latest sale where ``mask`` to the as-of day (>= 1); NaN without any."""
        out = np.full(self.n, np.inf)
        np.minimum.at(out, self.local[mask], self.age[mask].astype(np.float64))
        return np.where(np.isinf(out), np.nan, out)

    def oldest_age(self, mask: BoolArray) -> FloatArray:
        """Days from the earliest sale where ``mask`` to the as-of day; NaN without any."""
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.local[mask], self.age[mask].astype(np.float64))
        return np.where(np.isinf(out), np.nan, out)
