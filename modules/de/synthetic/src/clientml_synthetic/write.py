"""Output: CSV files streamed chunk by chunk, each moved into place only once complete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv


class CsvSink:
    """Streams all-string record batches as unquoted CSV (no value we write needs quoting).

    The header line is written at once; :meth:`close` must be called before ``handle`` is closed.
    """

    def __init__(self, handle: BinaryIO, columns: Sequence[str]) -> None:
        self._columns = tuple(columns)
        self._schema = pa.schema([(c, pa.string()) for c in columns])
        handle.write((",".join(columns) + "\n").encode("utf-8"))
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        self._writer = pacsv.CSVWriter(handle, self._schema, write_options=options)

    def write(self, columns: dict[str, pa.Array]) -> None:
        """Append rows: one string array per column name (extra names ignored, all of equal length).

        Raises KeyError when a column is missing.
        """
        self._writer.write_table(pa.table([columns[c] for c in self._columns], schema=self._schema))

    def close(self) -> None:
        """Flush the rows written so far (the handle stays open)."""
        self._writer.close()
