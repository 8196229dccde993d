"""Encoders: validated records -> the float64 model matrix (what ``model[:-1].transform`` gives).

- :class:`LookupEncoder` (``lookup-tables``): numeric features placed in their columns, the numeric
  steps replayed as the numpy operations sklearn performs (:class:`ColumnOp`), every categorical
  feature's block read from a table probed from the fitted steps (:class:`CategoryBlock`);
- :class:`PipelineEncoder` (``pipeline-transform``): the literal path, a DataFrame through the
  pipeline's own transform.

Both are built by :mod:`clientml_mle.serve.fastpath.compile_encoders` and checked by
:func:`clientml_mle.serve.fastpath.verify.verify`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clientml_mle.serve.fastpath.base import dense
from clientml_mle.serve.schemas import ValidRecords

if TYPE_CHECKING:  # only the literal encoder builds a DataFrame (see PipelineEncoder.frame)
    import pandas as pd


class Encoder(Protocol):
    """Validated records -> the model matrix (what ``model[:-1].transform`` gives)."""

    @property
    def kind(self) -> str: ...
    @property
    def n_columns(self) -> int: ...
    @property
    def column_feature(self) -> np.ndarray | None:
        """The source feature index of every matrix column; None when they cannot be traced."""
        ...

    def encode(self, valid: ValidRecords) -> np.ndarray:
        """The ``(valid.n, n_columns)`` float64 model matrix of the records."""
        ...

    def raw_value(self, column: int, value: float) -> tuple[str, float] | None:
        """The feature and (about) the raw value giving ``value`` in a numeric column, when known."""
        ...


@dataclass(frozen=True)
class CategoryBlock:
    """One categorical feature's output columns ``[start, stop)`` and the value table."""

    name: str
    start: int
    stop: int
    lookup: dict[str | None, int]  # category (None: null) -> row of ``table``
    table: np.ndarray  # (len(lookup) + 1, stop - start); the last row is an unseen value
    unseen: int


# Column operations: fill (NaN -> value), sub, div, mul, add; and indicator (1.0 where the ``values``
# columns are NaN: SimpleImputer(add_indicator=True)), which LookupEncoder.encode performs itself.
INVERSE_OPS = {"sub": "add", "add": "sub", "mul": "div", "div": "mul"}


def apply_op(op: str, x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``x`` after one column-wise operation (``values`` broadcast over rows); ValueError if unknown."""
    if op == "fill":
        return np.where(np.isnan(x), values, x)
    if op == "sub":
        return x - values
    if op == "div":
        return x / values
    if op == "mul":
        return x * values
    if op == "add":
        return x + values
    raise ValueError(f"unknown column operation {op!r}")


@dataclass(frozen=True)
class ColumnOp:
    """One column-wise numeric operation, as sklearn performs it, on some matrix columns."""

    columns: slice | np.ndarray
    op: str  # see INVERSE_OPS above
    values: np.ndarray  # one value per column (for ``indicator``: the source columns)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The operation on ``x``, the ``(n, len(columns))`` block of the matrix."""
        return apply_op(self.op, x, self.values)


@dataclass
class LookupEncoder:
    """Numeric features into their columns (then the numeric steps replayed), categories via tables."""

    n_columns: int
    numeric_targets: np.ndarray  # output column of each validator.numeric_names entry (-1: unused)
    numeric_ops: list[ColumnOp]
    blocks: list[CategoryBlock]
    column_feature: np.ndarray  # source feature index of every output column
    column_source: dict[int, str]  # numeric output column -> its feature
    kind: str = "lookup-tables"

    def __post_init__(self) -> None:
        used = self.numeric_targets >= 0
        # Where each validated numeric column goes (a feature the transformer drops goes nowhere).
        self._sources = None if used.all() else np.flatnonzero(used)
        self._targets = self.numeric_targets if self._sources is None else self.numeric_targets[used]

    def encode(self, valid: ValidRecords) -> np.ndarray:
        """The ``(valid.n, n_columns)`` model matrix, bit for bit what the pipeline's transform gives."""
        matrix = np.zeros((valid.n, self.n_columns), dtype=np.float64)
        matrix[:, self._targets] = valid.numeric if self._sources is None else valid.numeric[:, self._sources]
        for op in self.numeric_ops:
            if op.op == "indicator":  # SimpleImputer(add_indicator=True): 1.0 where the source is null
                matrix[:, op.columns] = np.isnan(matrix[:, op.values])
            else:
                matrix[:, op.columns] = op.apply(matrix[:, op.columns])
        if valid.n == 1:  # a single record (the most common request): one table row per block, no arrays
            row = matrix[0]
            for block in self.blocks:
                value = valid.categorical[block.name][0]
                row[block.start : block.stop] = block.table[block.lookup.get(value, block.unseen)]
            return matrix
        for block in self.blocks:
            column = valid.categorical[block.name]
            index = np.fromiter(map(block.lookup.get, column, repeat(block.unseen)), dtype=np.intp, count=valid.n)
            matrix[:, block.start : block.stop] = block.table[index]
        return matrix

    def raw_value(self, column: int, value: float) -> tuple[str, float] | None:
        """The numeric feature of ``column`` and the raw value the numeric steps map to ``value``."""
        source = self.column_source.get(column)
        if source is None:
            return None
        positions = np.arange(self.n_columns)
        raw = np.array([value], dtype=np.float64)
        for op in reversed(self.numeric_ops):
            hits = np.flatnonzero(positions[op.columns] == column)
            if len(hits) and op.op in INVERSE_OPS:
                raw = apply_op(INVERSE_OPS[op.op], raw, op.values[hits])
        number = float(raw[0])
        return (source, number) if math.isfinite(number) else None


@dataclass
class PipelineEncoder:
    """The literal encoder: a DataFrame of the validated records through ``model[:-1].transform``."""

    transformer: Any
    names: list[str]
    numeric_names: list[str]
    categorical_names: list[str]
    n_columns: int
    column_feature: np.ndarray | None
    kind: str = "pipeline-transform"

    def frame(self, valid: ValidRecords) -> pd.DataFrame:
        """The frame ``bundle.feature_frame`` builds: float64 numbers (NaN for null), object categories."""
        import pandas as pd  # the literal path only, whose bundle's model has imported pandas already

        data: dict[str, Any] = {name: valid.numeric[:, j] for j, name in enumerate(self.numeric_names)}
        for name in self.categorical_names:
            data[name] = np.array(valid.categorical[name], dtype=object)
        return pd.DataFrame(data, columns=self.names)

    def encode(self, valid: ValidRecords) -> np.ndarray:
        """The transformer's output on :meth:`frame` (dense float64); raises whatever it raises."""
        return dense(self.transformer.transform(self.frame(valid)))

    def raw_value(self, column: int, value: float) -> tuple[str, float] | None:
        """Unknown for an arbitrary transformer: always None."""
        return None
