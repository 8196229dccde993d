"""Row frames: one chunk's rows as numpy columns, before they are rendered as text.

A frame is a frozen dataclass whose fields are numpy arrays of equal length, one element per row.
Empty values are kept in-band: :data:`MISSING` in code and number columns, :data:`NO_DATE` in day
columns; rendering turns them into empty CSV fields.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Self, cast

import numpy as np
import numpy.typing as npt

__all__ = ["MISSING", "NO_DATE", "BoolArray", "FloatArray", "Frame", "IntArray"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NO_DATE = np.iinfo(np.int64).min  # an empty date in a column of days since 1970-01-01
MISSING = -1  # an empty value in a column of codes or non-negative numbers


class Frame:
    """Columnar rows as numpy arrays of equal length (subclasses are frozen dataclasses)."""

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Field name -> its array, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(cast(Any, self))}

    def take(self, idx: IntArray) -> Self:
        """The rows at ``idx`` (positions, repeats allowed), in that order."""
        return replace(cast(Any, self), **{k: v[idx] for k, v in self.columns().items()})

    def concat(self, other: Self) -> Self:
        """These rows followed by ``other``'s."""
        theirs = other.columns()
        return replace(cast(Any, self), **{k: np.concatenate([v, theirs[k]]) for k, v in self.columns().items()})

    def __len__(self) -> int:
        return len(next(iter(self.columns().values())))
