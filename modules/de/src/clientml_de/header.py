"""The header row of a source file, matched to the columns its table declares.

The rules (``modules/de/README.md``, "Headers"): the header is the file's first line, RFC 4180 fields
stripped of surrounding spaces (:func:`clientml_de.csv_line.read_header_line`). Names are matched to
the declared columns (the contract's and the dataset config's) exactly, case included.

- A declared column named twice fails the file, naming the column and its positions.
- A header name that differs from a declared column only in case fails the file, naming both: DuckDB,
  PostgreSQL and Spark treat such names as one, and loading neither would silently drop the column.
- A missing required column fails the file, naming it.
- Every other column is ignored and listed in ``ignored_columns``, in header order: a name repeated
  among ignored columns is listed once per occurrence with its position (``notes (column 12)``), an empty
  name as ``(no name, column 9)`` (a trailing comma on the header line makes one).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from clientml_de.contract import TableSpec
from clientml_de.csv_line import read_header_line
from clientml_de.errors import SourceError


def read_header(path: Path) -> list[str]:
    """The names of the header of ``path``, in file order (stripped; empty where a field is empty).

    Raises:
        SourceError: the file is missing, empty, not UTF-8, or its first line is not a CSV header
            (see :func:`clientml_de.csv_line.read_header_line`).
    """
    return list(read_header_line(path).names)


def _positions(numbers: list[int]) -> str:
    """``column 3``, ``columns 3 and 7``, ``columns 3, 7 and 9``."""
    if len(numbers) == 1:
        return f"column {numbers[0]}"
    return "columns " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def check_columns(path: Path, header: list[str], spec: TableSpec) -> tuple[str, ...]:
    """Check the header against ``spec``; return the labels of the ignored columns, in header order.

    Raises:
        SourceError: a declared column appears twice, a header name matches a declared one only when case
            is ignored, or a required column is missing; the message names the columns and positions.
    """
    declared = {c.name for c in spec.columns}
    by_name: dict[str, list[int]] = defaultdict(list)
    for number, name in enumerate(header, start=1):
        by_name[name].append(number)
    repeated = [
        f"{name} ({_positions(numbers)})" for name, numbers in by_name.items() if name in declared and len(numbers) > 1
    ]
    if repeated:
        raise SourceError(f"{path}: column(s) appear more than once in the header: {'; '.join(repeated)}")
    folded = {name.casefold(): name for name in declared}
    for number, name in enumerate(header, start=1):
        match = folded.get(name.casefold())
        if match is not None and name != match:
            raise SourceError(
                f"{path}: header column {name!r} ({_positions([number])}) differs from the column {match!r} only in "
                f"case; column names are case-sensitive: rename it {match!r}"
            )
    missing = [c for c in spec.required_columns if c not in by_name]
    if missing:
        raise SourceError(f"{path}: required column(s) missing: {', '.join(missing)}")
    labels = column_labels(header)
    return tuple(label for label, name in zip(labels, header, strict=True) if name not in declared)


def column_labels(header: list[str]) -> list[str]:
    """A distinct label per header column: its name, or ``name (column N)`` for a name the header repeats,
    ``(no name, column N)`` for an empty one. They name the fields of a quarantined row's ``raw_record``."""
    counts: dict[str, int] = defaultdict(int)
    for name in header:
        counts[name] += 1
    labels = []
    for number, name in enumerate(header, start=1):
        if not name:
            labels.append(f"(no name, column {number})")
        elif counts[name] > 1:
            labels.append(f"{name} (column {number})")
        else:
            labels.append(name)
    return labels
